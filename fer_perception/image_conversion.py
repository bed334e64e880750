"""sensor_msgs/Image and CompressedImage <-> numpy, without cv_bridge (which is not on PyPI).

Pure module: it imports neither rclpy nor sensor_msgs. The readers work on any object with the
fields of sensor_msgs/Image (``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``)
or CompressedImage (``format``, ``data``); the writers return those fields (:class:`RawImage`,
:class:`CompressedData`), and fer_perception.ros.image_msgs puts them into messages.

Reading (``image_to_numpy``, ``image_to_bgr``) is zero-copy where the layout allows:
``np.frombuffer(msg.data)`` is a view of the message buffer, and a padded ``step`` is honoured with
strided views. Views of the message are marked read-only so that nobody scribbles over a received
message by accident; ``.copy()`` them before drawing. Writing (``encode_raw``,
``encode_compressed``) fills ``data`` with an ``array.array('B')`` built by one memcpy: assigning
an ndarray (or a list) to ``msg.data`` goes element by element and costs ~50 ms for 640x480x3.

Every failure raises :class:`fer_perception.errors.ImageConversionError` with a ``kind`` attribute,
one of :data:`ERROR_KINDS`, so that callers can log once per kind.

Supported raw encodings (``sensor_msgs/image_encodings``):

=====================  =========================  ==============================================
encoding               ``image_to_numpy`` result  notes
=====================  =========================  ==============================================
rgb8, bgr8             H x W x 3 uint8
rgba8, bgra8           H x W x 4 uint8
mono8                  H x W uint8
mono16                 H x W uint16 (native)      ``is_bigendian`` honoured; to BGR: top 8 bits
yuv422, uyvy           H x W x 2 uint8            UYVY byte order (U0 Y0 V0 Y1); W must be even
yuv422_yuy2, yuyv      H x W x 2 uint8            YUYV byte order (Y0 U0 Y1 V0); W must be even
=====================  =========================  ==============================================

Compressed images: JPEG and PNG, with ``format`` as image_transport writes it (``"jpeg"``, ``"png"``,
``"rgb8; jpeg compressed bgr8"``, ...). ``compressedDepth`` is not supported.
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from fer_perception.errors import ImageConversionError

try:  # OpenCV does the colour conversions and the JPEG/PNG codecs.
    import cv2
except ImportError:  # pragma: no cover - opencv-python-headless is a runtime requirement
    cv2 = None

#: Machine-readable values of ``ImageConversionError.kind``.
ERROR_KINDS: tuple[str, ...] = (
    "unsupported_encoding",  # encoding / compressed format this module does not handle
    "empty_image",  # width or height is 0, or no data at all
    "too_large",  # more than max_pixels pixels (default MAX_PIXELS)
    "bad_step",  # step < width * bytes per pixel
    "bad_dimensions",  # e.g. odd width for a YUV 4:2:2 encoding
    "truncated_data",  # len(data) < step * height
    "corrupt_compressed",  # JPEG/PNG that cannot be decoded or is cut short
    "bad_array",  # numpy array whose shape/dtype does not fit the requested encoding
)

#: Largest image accepted, in pixels (8192 x 8192). Guards against absurd or hostile sizes.
MAX_PIXELS = 8192 * 8192

IMAGE_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}


@dataclass(frozen=True)
class Encoding:
    name: str
    channels: int
    dtype: np.dtype
    #: "gray", "rgb", "bgr", "rgba", "bgra", "uyvy" or "yuyv"
    layout: str

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.dtype.itemsize


_U8 = np.dtype(np.uint8)
_U16 = np.dtype(np.uint16)

ENCODINGS: dict[str, Encoding] = {
    e.name: e
    for e in (
        Encoding("rgb8", 3, _U8, "rgb"),
        Encoding("bgr8", 3, _U8, "bgr"),
        Encoding("rgba8", 4, _U8, "rgba"),
        Encoding("bgra8", 4, _U8, "bgra"),
        Encoding("mono8", 1, _U8, "gray"),
        Encoding("mono16", 1, _U16, "gray"),
        Encoding("yuv422", 2, _U8, "uyvy"),  # ROS name for UYVY
        Encoding("uyvy", 2, _U8, "uyvy"),
        Encoding("yuv422_yuy2", 2, _U8, "yuyv"),  # ROS name for YUYV
        Encoding("yuyv", 2, _U8, "yuyv"),
    )
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(ENCODINGS)


def _error(kind: str, message: str) -> ImageConversionError:
    assert kind in ERROR_KINDS, kind
    error = ImageConversionError(message, kind)
    return error


def _require_cv2() -> Any:
    if cv2 is None:  # pragma: no cover
        raise _error("unsupported_encoding", "OpenCV is not importable: pip install opencv-python-headless")
    return cv2


def _lookup(encoding: str) -> Encoding:
    enc = ENCODINGS.get(str(encoding).strip().lower())
    if enc is None:
        raise _error(
            "unsupported_encoding",
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)} "
            "(convert at the source, or publish a CompressedImage)",
        )
    return enc


def _check_size(width: int, height: int, max_pixels: int, what: str = "image") -> None:
    if width <= 0 or height <= 0:
        raise _error("empty_image", f"{what} is {width}x{height}: nothing to convert")
    if width * height > max_pixels:
        raise _error(
            "too_large",
            f"{what} is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}; "
            "publish a smaller image or raise max_pixels",
        )


def _byte_view(data: Any) -> np.ndarray:
    """A uint8 view of ``data`` (array.array, bytes, memoryview, ndarray) without copying."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a list of ints, as some hand-written messages carry
        pass
    try:
        arr = np.asarray(data)
        if arr.ndim != 1 or (arr.size and (arr.dtype.kind not in "ui" or arr.min() < 0 or arr.max() > 255)):
            raise ValueError("not a sequence of bytes")
        return arr.astype(np.uint8)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _error(
            "bad_array",
            f"image data must be bytes (uint8 values 0..255), got {type(data).__name__} ({exc})",
        ) from None


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def image_to_numpy(msg: Any, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Pixels of a sensor_msgs/Image in its native layout (see the module table).

    A read-only view of ``msg.data`` whenever possible (row padding is skipped with strides, so the
    result may be non-contiguous); a new array only for byte-swapped mono16.
    """
    enc = _lookup(msg.encoding)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    _check_size(width, height, max_pixels)
    if enc.layout in ("uyvy", "yuyv") and width % 2:
        raise _error("bad_dimensions", f"{enc.name} needs an even width (2 pixels share U and V), got {width}")
    row_bytes = width * enc.bytes_per_pixel
    if step < row_bytes:
        raise _error(
            "bad_step",
            f"step {step} is smaller than width {width} x {enc.bytes_per_pixel} bytes per pixel "
            f"= {row_bytes} for {enc.name}; the publisher fills step wrongly",
        )
    buf = _byte_view(msg.data)
    if buf.size < step * height:
        raise _error(
            "truncated_data",
            f"{enc.name} image {width}x{height} with step {step} needs {step * height} bytes, "
            f"data has {buf.size}",
        )
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]  # strided view, no copy
    if enc.dtype.itemsize == 1:
        arr = rows.reshape(height, width, enc.channels) if enc.channels > 1 else rows
        return _readonly(arr)
    # mono16: reinterpret pairs of bytes; the byte order comes from is_bigendian.
    big = bool(msg.is_bigendian)
    arr = rows.view(">u2" if big else "<u2")
    if arr.dtype.isnative:
        return _readonly(arr)
    return arr.astype(np.uint16)  # byte swap: the one case that has to copy


def image_to_bgr(msg: Any, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A C-contiguous H x W x 3 uint8 BGR image from any supported sensor_msgs/Image.

    For unpadded bgr8 this is a read-only view of ``msg.data`` (no copy); every other encoding gives
    a new array. mono16 keeps the 8 most significant bits (value >> 8).
    """
    arr = image_to_numpy(msg, max_pixels=max_pixels)
    return numpy_to_bgr(arr, msg.encoding)


def numpy_to_bgr(arr: np.ndarray, encoding: str) -> np.ndarray:
    """Convert an array in the native layout of ``encoding`` to C-contiguous H x W x 3 uint8 BGR."""
    enc = _lookup(encoding)
    _check_array(arr, enc)
    layout = enc.layout
    if layout == "bgr":
        return np.ascontiguousarray(arr)
    cv = _require_cv2()
    if layout == "gray":
        if arr.ndim == 3:
            arr = arr[:, :, 0]
        if arr.dtype != np.uint8:
            arr = (arr >> 8).astype(np.uint8)
        return cv.cvtColor(np.ascontiguousarray(arr), cv.COLOR_GRAY2BGR)
    code = {
        "rgb": cv.COLOR_RGB2BGR,
        "rgba": cv.COLOR_RGBA2BGR,
        "bgra": cv.COLOR_BGRA2BGR,
        "uyvy": cv.COLOR_YUV2BGR_UYVY,
        "yuyv": cv.COLOR_YUV2BGR_YUYV,
    }[layout]
    return cv.cvtColor(np.ascontiguousarray(arr), code)


def _check_array(arr: np.ndarray, enc: Encoding) -> None:
    if not isinstance(arr, np.ndarray):
        raise _error("bad_array", f"expected a numpy array for {enc.name}, got {type(arr).__name__}")
    shape_ok = arr.ndim == 3 and arr.shape[2] == enc.channels
    if enc.channels == 1:
        shape_ok = arr.ndim == 2 or shape_ok
    if not shape_ok or arr.dtype.kind != "u" or arr.dtype.itemsize != enc.dtype.itemsize:
        want = "H x W" if enc.channels == 1 else f"H x W x {enc.channels}"
        raise _error(
            "bad_array",
            f"{enc.name} needs a {want} {enc.dtype} array, got shape {arr.shape} dtype {arr.dtype}",
        )


def _to_byte_array(arr: np.ndarray) -> array.array:
    """``array.array('B')`` with the bytes of ``arr`` (one memcpy). rclpy stores it as is."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    return out


@dataclass(frozen=True, eq=False)
class RawImage:
    """The fields of a sensor_msgs/Image holding an array (``data``: one memcpy of its bytes)."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: array.array


def encode_raw(arr: np.ndarray, encoding: str, *, max_pixels: int = MAX_PIXELS) -> RawImage:
    """``arr`` (native layout of ``encoding``) as unpadded sensor_msgs/Image fields.

    mono16 keeps the byte order of ``arr`` (``is_bigendian`` is set from its dtype).
    """
    enc = _lookup(encoding)
    _check_array(arr, enc)
    height, width = int(arr.shape[0]), int(arr.shape[1])
    _check_size(width, height, max_pixels, "array")
    if enc.layout in ("uyvy", "yuyv") and width % 2:
        raise _error("bad_dimensions", f"{enc.name} needs an even width, got {width}")
    big = enc.dtype.itemsize > 1 and (
        arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big")
    )
    return RawImage(height=height, width=width, encoding=enc.name, is_bigendian=1 if big else 0,
                    step=width * enc.bytes_per_pixel, data=_to_byte_array(arr))


# --- compressed images ---------------------------------------------------------------------------


def _compressed_kind(fmt: str, data: np.ndarray) -> str:
    """'jpeg' or 'png', from the data's magic bytes; the format string must name jpeg or png (or be empty)."""
    text = (fmt or "").lower()
    if "compresseddepth" in text:
        raise _error(
            "unsupported_encoding",
            f"CompressedImage format {fmt!r} (compressedDepth) is not supported; subscribe to the raw "
            "or the jpeg/png compressed colour topic",
        )
    if text.strip() and not any(name in text for name in ("jpeg", "jpg", "png")):
        raise _error(
            "unsupported_encoding",
            f"unsupported CompressedImage format {fmt!r}; supported: jpeg, png",
        )
    head = data[:8].tobytes()
    actual = next((name for name, magic in IMAGE_MAGIC.items() if head.startswith(magic)), None)
    if actual is None:
        raise _error(
            "corrupt_compressed",
            f"CompressedImage ({fmt!r}, {data.size} bytes) does not start like a JPEG or PNG file",
        )
    # The content decides (a "png" label on JPEG bytes still decodes correctly).
    return actual


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the JPEG start-of-frame segment, without decoding."""
    i = _jpeg_sof_index(data)
    if i is None:
        return None
    height = (data[i + 5] << 8) | data[i + 6]
    width = (data[i + 7] << 8) | data[i + 8]
    return width, height


def _compressed_size(kind: str, data: np.ndarray) -> tuple[int, int] | None:
    if kind == "png":
        if data.size < 24:
            return None
        head = data[:24].tobytes()
        if head[12:16] != b"IHDR":
            return None
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    # The SOF segment sits in the first few kB (after EXIF/ICC it can be up to 64 kB per segment).
    return _jpeg_size(data[: 1 << 20].tobytes())


def _png_chunks_fit(data: np.ndarray) -> str | None:
    """None if every PNG chunk up to IEND lies inside ``data``, else what is wrong.

    OpenCV >= 4.11 reads PNG chunks itself and allocates the length a chunk header claims before
    reading it: a 1 kB file whose IDAT length field says 3 GB costs 3 GB of memory and seconds.
    A well-formed file never has a chunk running past its end, so this is checked first.
    """
    i, n = 8, int(data.size)
    while i + 12 <= n:
        head = data[i:i + 8].tobytes()
        length, ctype = int.from_bytes(head[:4], "big"), head[4:]
        if length > n - i - 12:
            return f"its {ctype!r} chunk claims {length} bytes, more than the {n - i - 12} left in the data"
        if ctype == b"IEND":
            return None
        i += 12 + length
    return "it has no IEND chunk"


#: Huffman-coded JPEG frames (baseline, extended, progressive, lossless, hierarchical); the
#: arithmetic-coded ones (C9-CB, CD-CF) have no useful lower bound on their size.
_HUFFMAN_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7})


def _min_compressed_bytes(kind: str, data: np.ndarray, width: int, height: int) -> int:
    """A lower bound on the size of a well-formed file of ``width`` x ``height`` pixels.

    Stops decompression bombs (a 700-byte JPEG whose header says 8192 x 8192 decodes into 200 MB
    of grey in seconds) without rejecting any real file:

    * Huffman JPEG: every 8 x 8 block of the full-resolution component costs at least one bit (its
      DC code), so a file needs >= pixels / 512 bytes; we ask for half that. (The smallest JPEG
      OpenCV writes - all black, grey, quality 1, optimised Huffman tables - is 2.0 x pixels / 512.)
    * PNG: deflate expands at most 1032:1, and a row of a 1-bit image is 1 + ceil(width / 8) bytes
      before compression; we ask for 90 % of that bound.
    """
    if kind == "png":
        return int(height * (1 + (width + 7) // 8) / 1032 * 0.9)
    head = data[: 1 << 20].tobytes()
    i = _jpeg_sof_index(head)
    if i is None or head[i + 1] not in _HUFFMAN_SOF:
        return 0
    return (width * height) // 1024


def _jpeg_sof_index(data: bytes) -> int | None:
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _SOF_MARKERS:
            return i
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def _compressed_complete(kind: str, data: np.ndarray) -> bool:
    """The stream's end marker is there. Some cameras append padding after it, so look at the last
    kB; FF D9 cannot occur inside JPEG entropy-coded data (0xFF is stuffed there)."""
    tail = data[-1024:].tobytes()
    return (b"\xff\xd9" if kind == "jpeg" else b"IEND") in tail


def compressed_to_bgr(msg: Any, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a JPEG/PNG sensor_msgs/CompressedImage to a new H x W x 3 uint8 BGR array.

    The size in the file header is checked against ``max_pixels`` before anything is decoded, and a
    stream cut short (no JPEG end-of-image marker / PNG IEND chunk) is rejected instead of being
    decoded into a half-grey frame. So are PNG chunks that claim to run past the end of the data and
    files far too small for the size their header claims (decompression bombs), so that a hostile
    kB of data can never make the decoder allocate more than ``max_pixels`` x 3 bytes (plus the
    decoder's own working memory). JPEGs with an EXIF orientation of 90 degrees come back rotated
    (OpenCV applies the orientation, as image_transport's decoder does).
    """
    cv = _require_cv2()
    data = _byte_view(msg.data)
    if data.size == 0:
        raise _error("empty_image", f"CompressedImage ({msg.format!r}) has no data")
    kind = _compressed_kind(msg.format, data)
    size = _compressed_size(kind, data)
    if size is None:
        raise _error("corrupt_compressed", f"cannot read the image size from the {kind} header ({data.size} bytes)")
    _check_size(size[0], size[1], max_pixels, f"{kind} image")
    if not _compressed_complete(kind, data):
        raise _error(
            "corrupt_compressed",
            f"{kind} data ({data.size} bytes) is cut short: no {'end-of-image marker' if kind == 'jpeg' else 'IEND chunk'}",
        )
    if kind == "png":
        problem = _png_chunks_fit(data)
        if problem is not None:
            raise _error("corrupt_compressed", f"png data ({data.size} bytes) is malformed: {problem}")
    least = _min_compressed_bytes(kind, data, size[0], size[1])
    if data.size < least:
        raise _error(
            "corrupt_compressed",
            f"{kind} data of {data.size} bytes is too short for the {size[0]}x{size[1]} image its header "
            f"claims (a real one needs at least {least} bytes): cut short or a decompression bomb",
        )
    image = cv.imdecode(data, cv.IMREAD_COLOR)
    # OpenCV applies the EXIF orientation, so a valid JPEG may come back rotated by 90 degrees.
    if image is None or image.shape[:2] not in ((size[1], size[0]), (size[0], size[1])):
        raise _error("corrupt_compressed", f"OpenCV could not decode the {kind} data ({data.size} bytes)")
    return image


@dataclass(frozen=True, eq=False)
class CompressedData:
    """The fields of a sensor_msgs/CompressedImage: image_transport's ``format`` and the bytes."""

    format: str
    data: array.array


def encode_compressed(arr: np.ndarray, fmt: str = "jpeg", *, quality: int = 90) -> CompressedData:
    """Encode an H x W x 3 BGR (or H x W mono8) uint8 array as sensor_msgs/CompressedImage fields.

    ``format`` follows image_transport: ``"bgr8; jpeg compressed bgr8"`` / ``"mono8; png compressed
    mono8"``. ``quality`` is the JPEG quality (0-100); PNG is lossless.
    """
    cv = _require_cv2()
    kind = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}.get(str(fmt).strip().lower())
    if kind is None:
        raise _error("unsupported_encoding", f"unsupported compressed format {fmt!r}; use 'jpeg' or 'png'")
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or not (
        arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3))
    ):
        raise _error(
            "bad_array",
            f"expected an H x W x 3 (BGR) or H x W (mono) uint8 array, got "
            f"{getattr(arr, 'shape', None)} {getattr(arr, 'dtype', type(arr).__name__)}",
        )
    _check_size(int(arr.shape[1]), int(arr.shape[0]), MAX_PIXELS, "array")
    encoding = "bgr8" if arr.ndim == 3 and arr.shape[2] == 3 else "mono8"
    params = [cv.IMWRITE_JPEG_QUALITY, int(quality)] if kind == "jpeg" else [cv.IMWRITE_PNG_COMPRESSION, 3]
    ok, encoded = cv.imencode(".jpg" if kind == "jpeg" else ".png", np.ascontiguousarray(arr), params)
    if not ok:  # pragma: no cover - OpenCV encodes any valid uint8 image
        raise _error("corrupt_compressed", f"OpenCV failed to encode a {arr.shape} image as {kind}")
    return CompressedData(format=f"{encoding}; {kind} compressed {encoding}", data=_to_byte_array(encoded))


def msg_to_bgr(msg: Any, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``image_to_bgr`` for a sensor_msgs/Image, ``compressed_to_bgr`` for a CompressedImage."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_to_bgr(msg, max_pixels=max_pixels)
    return image_to_bgr(msg, max_pixels=max_pixels)
