"""numpy arrays as sensor_msgs/Image and CompressedImage (the encoders live in the pure
fer_perception.image_conversion, which also reads these messages back)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from fer_perception.image_conversion import MAX_PIXELS, encode_compressed, encode_raw


def numpy_to_image(arr: np.ndarray, encoding: str, header: Any = None, *, max_pixels: int = MAX_PIXELS) -> Image:
    """A sensor_msgs/Image with ``arr`` (native layout of ``encoding``) as its unpadded pixels."""
    fields = encode_raw(arr, encoding, max_pixels=max_pixels)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = fields.height, fields.width
    msg.encoding = fields.encoding
    msg.is_bigendian = fields.is_bigendian
    msg.step = fields.step
    msg.data = fields.data  # array.array('B'): rclpy keeps it as is (an ndarray is copied per element)
    return msg


def bgr_to_compressed(arr: np.ndarray, fmt: str = "jpeg", header: Any = None, *, quality: int = 90) -> CompressedImage:
    """A sensor_msgs/CompressedImage (JPEG or PNG, image_transport's ``format``) of a BGR/mono8 array."""
    fields = encode_compressed(arr, fmt, quality=quality)
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fields.format
    msg.data = fields.data
    return msg
