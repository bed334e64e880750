"""fer_perception.image_conversion: round trips, OpenCV agreement, step/endianness, every bad input."""

from __future__ import annotations

import array
import ast
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image

from fer_perception import image_conversion as ic
from fer_perception.errors import FerError, ImageConversionError
from fer_perception.ros.image_msgs import bgr_to_compressed, numpy_to_image

RNG = np.random.default_rng(1234)

# encoding -> (channels, dtype, OpenCV code to BGR, or None for "already BGR")
CASES = {
    "rgb8": (3, np.uint8, cv2.COLOR_RGB2BGR),
    "bgr8": (3, np.uint8, None),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2BGR),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2BGR),
    "mono8": (1, np.uint8, cv2.COLOR_GRAY2BGR),
    "mono16": (1, np.uint16, cv2.COLOR_GRAY2BGR),
    "yuv422": (2, np.uint8, cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": (2, np.uint8, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (2, np.uint8, cv2.COLOR_YUV2BGR_YUYV),
    "yuyv": (2, np.uint8, cv2.COLOR_YUV2BGR_YUYV),
}


def random_native(encoding: str, height: int = 6, width: int = 8) -> np.ndarray:
    channels, dtype, _ = CASES[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


def raw_message(data: bytes, encoding: str, height: int, width: int, step: int, big: bool = False) -> Image:
    msg = Image()
    msg.height, msg.width, msg.step, msg.encoding = height, width, step, encoding
    msg.is_bigendian = int(big)
    msg.data = data
    return msg


def padded_message(native: np.ndarray, encoding: str, pad: int) -> Image:
    """native pixels with `pad` junk bytes after every row."""
    height = native.shape[0]
    rows = np.ascontiguousarray(native).reshape(height, -1).view(np.uint8)
    padded = np.full((height, rows.shape[1] + pad), 0xEE, np.uint8)
    padded[:, : rows.shape[1]] = rows
    return raw_message(padded.tobytes(), encoding, height, native.shape[1], rows.shape[1] + pad)


def expected_bgr(native: np.ndarray, encoding: str) -> np.ndarray:
    code = CASES[encoding][2]
    if code is None:
        return native
    if native.dtype == np.uint16:
        native = (native >> 8).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(native), code)


def expect_kind(kind: str, func, *args, **kwargs) -> ImageConversionError:
    with pytest.raises(ImageConversionError) as info:
        func(*args, **kwargs)
    assert info.value.kind == kind, f"expected kind {kind!r}, got {info.value.kind!r}: {info.value}"
    assert isinstance(info.value, FerError) and isinstance(info.value, ValueError)
    assert str(info.value)  # a message for the log, not just a kind
    return info.value


# --- round trips and OpenCV agreement ------------------------------------------------------------


def test_every_listed_encoding_is_supported():
    assert set(ic.SUPPORTED_ENCODINGS) == set(CASES)


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_round_trip(encoding):
    native = random_native(encoding)
    msg = numpy_to_image(native, encoding)
    channels, dtype, _ = CASES[encoding]
    assert (msg.height, msg.width, msg.encoding) == (6, 8, encoding)
    assert msg.step == 8 * channels * np.dtype(dtype).itemsize
    assert isinstance(msg.data, array.array) and len(msg.data) == msg.step * msg.height
    back = ic.image_to_numpy(msg)
    assert back.dtype == dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, native)


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_to_bgr_matches_opencv(encoding):
    native = random_native(encoding, 10, 12)
    bgr = ic.image_to_bgr(numpy_to_image(native, encoding))
    assert bgr.shape == (10, 12, 3) and bgr.dtype == np.uint8 and bgr.flags.c_contiguous
    np.testing.assert_array_equal(bgr, expected_bgr(native, encoding))


def test_known_colours_independent_of_opencv():
    red_rgb = np.zeros((2, 2, 3), np.uint8)
    red_rgb[..., 0] = 255
    np.testing.assert_array_equal(ic.image_to_bgr(numpy_to_image(red_rgb, "rgb8"))[0, 0], [0, 0, 255])
    rgba = np.dstack([red_rgb, np.full((2, 2), 7, np.uint8)])
    np.testing.assert_array_equal(ic.image_to_bgr(numpy_to_image(rgba, "rgba8"))[1, 1], [0, 0, 255])
    mono16 = np.full((2, 2), 0xAB12, np.uint16)
    np.testing.assert_array_equal(ic.image_to_bgr(numpy_to_image(mono16, "mono16"))[0, 0], [0xAB] * 3)


@pytest.mark.parametrize(
    "encoding, macropixel",
    [  # a strongly blue pixel pair (U = 255) written in each byte order
        ("yuv422", [255, 128, 128, 128]),  # U Y V Y
        ("uyvy", [255, 128, 128, 128]),
        ("yuv422_yuy2", [128, 255, 128, 128]),  # Y U Y V
        ("yuyv", [128, 255, 128, 128]),
    ],
)
def test_yuv_byte_order(encoding, macropixel):
    msg = raw_message(bytes(macropixel), encoding, 1, 2, 4)
    b, g, r = (int(v) for v in ic.image_to_bgr(msg)[0, 0])
    assert b > 250 and g < 100 and r < 140, (b, g, r)  # swapped UYVY/YUYV decodes to white or grey
    grey = raw_message(bytes([128] * 4), encoding, 1, 2, 4)
    assert np.all(np.abs(ic.image_to_bgr(grey).astype(int) - 128) <= 2)


# --- step, views, endianness ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_padded_step(encoding):
    native = random_native(encoding, 5, 6)
    msg = padded_message(native, encoding, pad=13)  # odd padding, junk bytes
    np.testing.assert_array_equal(ic.image_to_numpy(msg), native)
    np.testing.assert_array_equal(ic.image_to_bgr(msg), expected_bgr(native, encoding))


def test_views_are_zero_copy_and_read_only():
    native = random_native("bgr8", 4, 6)
    msg = padded_message(native, "bgr8", pad=8)
    buffer = np.frombuffer(msg.data, np.uint8)
    view = ic.image_to_numpy(msg)
    assert np.shares_memory(view, buffer), "a padded bgr8 image must be read without copying"
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0, 0] = 1
    unpadded = numpy_to_image(native, "bgr8")
    bgr = ic.image_to_bgr(unpadded)
    assert np.shares_memory(bgr, np.frombuffer(unpadded.data, np.uint8))
    assert bgr.flags.c_contiguous  # padded input gives a contiguous copy instead
    assert ic.image_to_bgr(msg).flags.c_contiguous


@pytest.mark.parametrize("big", [True, False])
def test_mono16_endianness(big):
    values = np.array([[0x0102, 0xA0B0, 0xFFFF], [0, 1, 0x8000]], np.uint16)
    data = values.astype(">u2" if big else "<u2").tobytes()
    msg = raw_message(data, "mono16", 2, 3, 6, big=big)
    out = ic.image_to_numpy(msg)
    assert out.dtype == np.uint16 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)
    # and the same with row padding
    padded = padded_message(values.astype(">u2" if big else "<u2"), "mono16", pad=3)
    padded.is_bigendian = int(big)
    np.testing.assert_array_equal(ic.image_to_numpy(padded), values)


def test_numpy_to_image_keeps_array_byte_order():
    values = np.array([[1, 2], [0x1234, 0xFEDC]], np.uint16)
    msg = numpy_to_image(values.astype(">u2"), "mono16")
    assert msg.is_bigendian == 1 and bytes(msg.data[:2]) == b"\x00\x01"
    np.testing.assert_array_equal(ic.image_to_numpy(msg), values)
    little = numpy_to_image(values.astype("<u2"), "mono16")
    assert little.is_bigendian == 0 and bytes(little.data[:2]) == b"\x01\x00"


def test_header_and_list_data():
    from std_msgs.msg import Header

    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 34
    msg = numpy_to_image(np.zeros((2, 2), np.uint8), "mono8", header=header)
    assert msg.header.frame_id == "cam" and msg.header.stamp.sec == 12
    listed = raw_message(bytes(), "mono8", 2, 2, 2)
    listed.data = [1, 2, 3, 4]
    np.testing.assert_array_equal(ic.image_to_numpy(listed), [[1, 2], [3, 4]])


@settings(max_examples=40, deadline=None)
@given(
    encoding=st.sampled_from(sorted(CASES)),
    height=st.integers(1, 9),
    half_width=st.integers(1, 6),
    pad=st.integers(0, 9),
    extra=st.integers(0, 5),
)
def test_round_trip_property(encoding, height, half_width, pad, extra):
    native = random_native(encoding, height, 2 * half_width)
    msg = padded_message(native, encoding, pad)
    msg.data = bytes(msg.data) + b"\x55" * extra  # trailing bytes beyond step * height are ignored
    np.testing.assert_array_equal(ic.image_to_numpy(msg), native)
    np.testing.assert_array_equal(ic.image_to_bgr(msg), expected_bgr(native, encoding))


# --- malformed raw images ------------------------------------------------------------------------


def test_truncated_data():
    msg = numpy_to_image(random_native("rgb8", 4, 4), "rgb8")
    msg.data = bytes(msg.data)[:-1]
    error = expect_kind("truncated_data", ic.image_to_numpy, msg)
    assert "48" in str(error) and "47" in str(error)
    expect_kind("truncated_data", ic.image_to_bgr, raw_message(b"", "mono8", 2, 2, 2))


def test_step_too_small():
    msg = numpy_to_image(random_native("bgr8", 4, 4), "bgr8")
    msg.step = 11  # < 4 * 3
    expect_kind("bad_step", ic.image_to_bgr, msg)
    expect_kind("bad_step", ic.image_to_numpy, raw_message(bytes(8), "mono16", 2, 2, 3))


@pytest.mark.parametrize("height, width", [(0, 0), (0, 4), (4, 0)])
def test_empty_image(height, width):
    expect_kind("empty_image", ic.image_to_bgr, raw_message(b"", "bgr8", height, width, width * 3))


@pytest.mark.parametrize("encoding", ["bayer_rggb8", "32FC1", "16UC3", "nv12", "", "BGR9"])
def test_unknown_encoding(encoding):
    error = expect_kind("unsupported_encoding", ic.image_to_bgr, raw_message(bytes(12), encoding, 2, 2, 6))
    assert "bgr8" in str(error)  # tells what is supported
    expect_kind("unsupported_encoding", numpy_to_image, np.zeros((2, 2, 3), np.uint8), encoding)


def test_odd_width_yuv():
    expect_kind("bad_dimensions", ic.image_to_bgr, raw_message(bytes(6), "yuyv", 1, 3, 6))
    expect_kind("bad_dimensions", numpy_to_image, np.zeros((2, 3, 2), np.uint8), "uyvy")


def test_absurd_size():
    expect_kind("too_large", ic.image_to_bgr, raw_message(bytes(10), "bgr8", 100_000, 100_000, 300_000))
    expect_kind("too_large", ic.image_to_bgr, raw_message(bytes(10), "mono8", 2**31, 2**31, 2**31))
    small = numpy_to_image(np.zeros((10, 10), np.uint8), "mono8")
    expect_kind("too_large", ic.image_to_numpy, small, max_pixels=99)
    assert ic.image_to_numpy(small, max_pixels=100).shape == (10, 10)


@pytest.mark.parametrize(
    "array_, encoding",
    [
        (np.zeros((2, 2), np.uint8), "bgr8"),
        (np.zeros((2, 2, 4), np.uint8), "rgb8"),
        (np.zeros((2, 2, 3), np.float32), "bgr8"),
        (np.zeros((2, 2), np.uint8), "mono16"),
        (np.zeros((2, 2), np.int16), "mono16"),
        ([[1, 2], [3, 4]], "mono8"),
    ],
)
def test_numpy_to_image_rejects_mismatched_arrays(array_, encoding):
    expect_kind("bad_array", numpy_to_image, array_, encoding)


def test_numpy_to_image_rejects_empty_arrays():
    expect_kind("empty_image", numpy_to_image, np.zeros((0, 4, 3), np.uint8), "bgr8")


# --- compressed ----------------------------------------------------------------------------------


def smooth_bgr(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)]).astype(np.uint8)


def test_png_round_trip_is_exact():
    image = RNG.integers(0, 256, (31, 45, 3), dtype=np.uint8)
    msg = bgr_to_compressed(image, "png")
    assert isinstance(msg, CompressedImage) and msg.format == "bgr8; png compressed bgr8"
    np.testing.assert_array_equal(ic.compressed_to_bgr(msg), image)
    mono = bgr_to_compressed(image[..., 1], "png")
    assert mono.format == "mono8; png compressed mono8"
    np.testing.assert_array_equal(ic.compressed_to_bgr(mono), cv2.cvtColor(image[..., 1], cv2.COLOR_GRAY2BGR))


def test_jpeg_round_trip():
    image = smooth_bgr()
    msg = bgr_to_compressed(image, "jpeg", quality=95)
    assert msg.format == "bgr8; jpeg compressed bgr8"
    decoded = ic.compressed_to_bgr(msg)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).mean() < 3.0
    assert ic._jpeg_size(bytes(msg.data)) == (64, 48)


@pytest.mark.parametrize("fmt", ["jpeg", "JPEG", "jpg", "rgb8; jpeg compressed bgr8", "", "png"])
def test_compressed_format_strings(fmt):
    msg = bgr_to_compressed(smooth_bgr(), "jpeg")
    msg.format = fmt  # content decides; a wrong jpeg/png label is tolerated
    assert ic.msg_to_bgr(msg).shape == (48, 64, 3)


def test_jpeg_with_padding_after_end_marker():
    msg = bgr_to_compressed(smooth_bgr(), "jpeg")
    msg.data = bytes(msg.data) + bytes(300)  # some MJPEG cameras pad frames
    assert ic.compressed_to_bgr(msg).shape == (48, 64, 3)


def test_msg_to_bgr_dispatches_raw_images():
    image = smooth_bgr(4, 6)
    np.testing.assert_array_equal(ic.msg_to_bgr(numpy_to_image(image, "bgr8")), image)


def _compressed(data: bytes, fmt: str = "jpeg") -> CompressedImage:
    msg = CompressedImage()
    msg.format = fmt
    msg.data = data
    return msg


def test_corrupt_compressed():
    good = bytes(bgr_to_compressed(smooth_bgr(), "jpeg").data)
    expect_kind("corrupt_compressed", ic.compressed_to_bgr, _compressed(good[: len(good) // 2]))  # cut short
    expect_kind("corrupt_compressed", ic.compressed_to_bgr, _compressed(b"hello, not an image" * 10))
    no_structure = good[:4] + bytes(200) + good[204:]  # JPEG magic, then the segments are wiped
    expect_kind("corrupt_compressed", ic.compressed_to_bgr, _compressed(no_structure))
    dht = good.index(b"\xff\xc4")  # Huffman tables zeroed: size readable, data undecodable
    length = (good[dht + 2] << 8) | good[dht + 3]
    no_tables = good[: dht + 4] + bytes(length - 2) + good[dht + 2 + length :]
    expect_kind("corrupt_compressed", ic.compressed_to_bgr, _compressed(no_tables))
    png = bytes(bgr_to_compressed(smooth_bgr(), "png").data)
    expect_kind("corrupt_compressed", ic.compressed_to_bgr, _compressed(png[:-40], "png"))
    broken_body = png[:60] + bytes(len(png) - 72) + png[-12:]  # header and IEND intact, data zeroed
    expect_kind("corrupt_compressed", ic.compressed_to_bgr, _compressed(broken_body, "png"))


def test_compressed_absurd_size_is_rejected_before_decoding():
    png = bytearray(bgr_to_compressed(smooth_bgr(), "png").data)
    png[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR claims 10 gigapixels
    expect_kind("too_large", ic.compressed_to_bgr, _compressed(bytes(png), "png"))
    jpeg = bytes(bgr_to_compressed(smooth_bgr(), "jpeg").data)
    sof = next(i for i in range(2, len(jpeg) - 1) if jpeg[i] == 0xFF and jpeg[i + 1] in (0xC0, 0xC2))
    huge = jpeg[: sof + 5] + struct.pack(">HH", 60_000, 60_000) + jpeg[sof + 9 :]
    expect_kind("too_large", ic.compressed_to_bgr, _compressed(huge))


def test_compressed_unsupported_and_empty():
    expect_kind("unsupported_encoding", ic.compressed_to_bgr, _compressed(b"\x89PNG\r\n\x1a\n" * 4, "16UC1; compressedDepth png"))
    expect_kind("unsupported_encoding", ic.compressed_to_bgr, _compressed(b"II*\x00" * 4, "tiff"))
    expect_kind("empty_image", ic.compressed_to_bgr, _compressed(b""))
    expect_kind("unsupported_encoding", bgr_to_compressed, smooth_bgr(), "webp")
    expect_kind("bad_array", bgr_to_compressed, smooth_bgr().astype(np.float32))


def test_error_kinds_are_documented():
    for kind in ("unsupported_encoding", "truncated_data", "bad_step", "empty_image", "corrupt_compressed", "too_large"):
        assert kind in ic.ERROR_KINDS


def test_module_is_pure():
    """image_conversion imports neither rclpy nor sensor_msgs (the node, tests and tools use it without ROS)."""
    tree = ast.parse(Path(ic.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(name.split(".")[0] in ("rclpy", "cv_bridge", "sensor_msgs") for name in imported), imported
