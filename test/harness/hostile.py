"""Hostile sensor_msgs/Image and CompressedImage messages, for fuzzing image_conversion and fer_node.

Pure (no rclpy import at module level): a case is a plain :class:`Case` with the message fields;
:func:`to_msg` builds the real sensor_msgs message (the ROS types validate field types on
assignment, exactly as a message that arrives over DDS would be typed).

    rng = np.random.default_rng(seed)
    case = random_case(rng)            # one hostile or valid case, any category
    msg = to_msg(case)                 # sensor_msgs/Image or CompressedImage

Used by test/core/test_fuzz_conversion.py (bounded, in CI) and benchmarks/fuzz_node.py (the
long run against a running fer_node).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: Every encoding string seen in the wild (sensor_msgs/image_encodings, camera drivers, typos),
#: plus garbage. Supported ones are in fer_perception.image_conversion.SUPPORTED_ENCODINGS.
WILD_ENCODINGS: tuple[str, ...] = (
    "rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "rgb16", "bgr16", "rgba16", "bgra16",
    "8UC1", "8UC2", "8UC3", "8UC4", "8SC1", "16UC1", "16UC3", "16SC1", "32SC1", "32FC1", "32FC3", "64FC1",
    "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "bayer_rggb16",
    "yuv422", "uyvy", "yuyv", "yuv422_yuy2", "UYVY", "YUYV", "nv12", "nv21", "nv24", "i420", "yv12",
    "jpeg", "png", "h264", "", " ", "BGR8", " bgr8 ", "bgr8\x00", "mono8; jpeg compressed mono8",
    "\u00e9ncod\u00efng", "\U0001f600", "bgr\u200b8", "\ufffd\ufffd", "r" * 300, "mono\n8",
)
#: CompressedImage.format values, valid and not.
WILD_FORMATS: tuple[str, ...] = (
    "jpeg", "png", "jpg", "JPEG", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8",
    "mono8; png compressed mono8", "16UC1; compressedDepth png", "compressedDepth", "tiff", "webp",
    "bmp", "h264", "theora", "", " ", "\U0001f4f7", "jpeg\x00png", "\u00e9\u00e9",
)

ENCODING_BYTES = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2,
                  "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2}
UINT32_MAX = 2**32 - 1


@dataclass
class Case:
    """One message to send: ``transport`` "raw" (Image) or "compressed" (CompressedImage)."""

    transport: str
    category: str
    fields: dict = field(default_factory=dict)
    #: For a case built to be valid: the (height, width) the conversion must return.
    expect_shape: tuple[int, int] | None = None

    def describe(self) -> str:
        f = dict(self.fields)
        data = f.pop("data", b"")
        return f"{self.transport}/{self.category} {f} data={len(data)} bytes"


def to_msg(case: Case):
    """The sensor_msgs message of ``case`` (imports sensor_msgs)."""
    from sensor_msgs.msg import CompressedImage, Image

    if case.transport == "raw":
        msg = Image()
        f = case.fields
        msg.height, msg.width, msg.step = f["height"], f["width"], f["step"]
        msg.encoding = f["encoding"]
        msg.is_bigendian = f.get("is_bigendian", 0)
    else:
        msg = CompressedImage()
        msg.format = case.fields["format"]
    msg.header.frame_id = "fuzz"
    data = case.fields["data"]
    msg.data = data if isinstance(data, (bytes, bytearray)) else bytes(data)
    return msg


# --- raw images --------------------------------------------------------------------------------


def _raw(encoding: str, height: int, width: int, step: int, data: bytes, big: int = 0,
         category: str = "raw", expect: tuple[int, int] | None = None) -> Case:
    return Case("raw", category, dict(encoding=encoding, height=height, width=width, step=step,
                                      data=data, is_bigendian=big), expect)


def valid_raw(rng: np.random.Generator, max_side: int = 64) -> Case:
    encoding = str(rng.choice(list(ENCODING_BYTES)))
    bpp = ENCODING_BYTES[encoding]
    height = int(rng.integers(1, max_side + 1))
    width = int(rng.integers(1, max_side + 1))
    if encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv"):
        width += width % 2
    pad = int(rng.choice([0, 0, 0, 1, 3, 64]))
    step = width * bpp + pad
    extra = int(rng.choice([0, 0, 0, 1, 100]))
    data = rng.bytes(step * height + extra)
    return _raw(encoding, height, width, step, data, int(rng.integers(0, 2)), "valid_raw", (height, width))


def mismatched_raw(rng: np.random.Generator) -> Case:
    """width/height/step/data that disagree."""
    encoding = str(rng.choice(list(ENCODING_BYTES)))
    bpp = ENCODING_BYTES[encoding]
    height, width = int(rng.integers(1, 80)), int(rng.integers(1, 80))
    row = width * bpp
    choice = int(rng.integers(0, 8))
    if choice == 0:  # step too small
        step, size = int(rng.integers(0, max(row, 1))), row * height
    elif choice == 1:  # data truncated by a few bytes or by a lot
        step = row
        size = max(0, row * height - int(rng.integers(1, row * height + 1)))
    elif choice == 2:  # oversized data (more than step * height)
        step, size = row, row * height + int(rng.integers(1, 10_000))
    elif choice == 3:  # step absurdly large, data small
        step, size = int(rng.integers(row + 1, UINT32_MAX)), row * height
    elif choice == 4:  # step not a multiple of the pixel size
        step = row + int(rng.integers(1, bpp + 1)) if bpp > 1 else row + 1
        size = step * height
    elif choice == 5:  # height says more rows than data has
        step, size = row, row * max(0, height - 1)
    elif choice == 6:  # width * height overflows 32 bits
        width, height = int(rng.integers(2**16, 2**31)), int(rng.integers(2**16, 2**31))
        step, size = min(width * bpp, UINT32_MAX), int(rng.integers(0, 4096))
    else:  # no data at all
        step, size = row, 0
    return _raw(encoding, height, width, step, rng.bytes(size), int(rng.integers(0, 2)), "mismatched_raw")


def wild_encoding_raw(rng: np.random.Generator) -> Case:
    encoding = str(rng.choice(WILD_ENCODINGS))
    height, width = int(rng.integers(0, 40)), int(rng.integers(0, 40))
    bpp = int(rng.choice([1, 2, 3, 4, 8]))
    step = width * bpp
    return _raw(encoding, height, width, step, rng.bytes(step * height), 0, "wild_encoding")


def degenerate_raw(rng: np.random.Generator) -> Case:
    """0x0, 1x1, one row, one column, maximal uint32 fields."""
    encoding = str(rng.choice(list(ENCODING_BYTES)))
    bpp = ENCODING_BYTES[encoding]
    even = encoding in ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
    shapes = [(0, 0), (1, 0), (0, 1), (1, 1), (1, 2), (2, 1), (1, 4096 if even else 4095), (4095, 2 if even else 1),
              (UINT32_MAX, UINT32_MAX), (1, UINT32_MAX), (UINT32_MAX, 1)]
    height, width = shapes[int(rng.integers(0, len(shapes)))]
    step = min(width * bpp, UINT32_MAX)
    size = min(step * height, 1 << 16)
    valid = 0 < height * width and step * height <= size and not (even and width % 2)
    expect = (height, width) if valid else None
    return _raw(encoding, height, width, step, rng.bytes(size), 0, "degenerate", expect)


def big_raw(rng: np.random.Generator, width: int = 7680, height: int = 4320) -> Case:
    """An 8K frame (mono8 33 MB or bgr8 100 MB), valid."""
    encoding = str(rng.choice(["mono8", "bgr8"]))
    bpp = ENCODING_BYTES[encoding]
    data = np.full(width * height * bpp, int(rng.integers(0, 256)), np.uint8).tobytes()
    return _raw(encoding, height, width, width * bpp, data, 0, "8k", (height, width))


# --- compressed images ---------------------------------------------------------------------------


def encode(rng: np.random.Generator, kind: str, height: int, width: int, progressive: bool = False) -> bytes:
    import cv2

    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(5, 100)), cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
        ok, buf = cv2.imencode(".jpg", img, params)
    else:
        ok, buf = cv2.imencode(".png", img if rng.random() < 0.7 else img[:, :, 0])
    assert ok
    return buf.tobytes()


def jpeg_sof_offset(data: bytes) -> int | None:
    """Offset of the JPEG start-of-frame marker (FF Cx), or None."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return i
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def with_header_size(data: bytes, width: int, height: int) -> bytes:
    """The same JPEG/PNG with the image size in its header replaced (the rest left as it is)."""
    out = bytearray(data)
    if out[:4] == b"\x89PNG":
        out[16:24] = struct.pack(">II", width & 0xFFFFFFFF, height & 0xFFFFFFFF)  # IHDR CRC now wrong
    else:
        i = jpeg_sof_offset(data)
        if i is None:
            return bytes(out)
        out[i + 5:i + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    return bytes(out)


def valid_compressed(rng: np.random.Generator, max_side: int = 64) -> Case:
    kind = str(rng.choice(["jpeg", "png"]))
    height, width = int(rng.integers(1, max_side + 1)), int(rng.integers(1, max_side + 1))
    data = encode(rng, kind, height, width, progressive=bool(rng.random() < 0.3))
    fmt = str(rng.choice([kind, f"bgr8; {kind} compressed bgr8", "", "jpeg" if kind == "png" else "png"]))
    return Case("compressed", "valid_compressed", dict(format=fmt, data=data), (height, width))


def corrupt_compressed(rng: np.random.Generator) -> Case:
    kind = str(rng.choice(["jpeg", "png"]))
    height, width = int(rng.integers(1, 64)), int(rng.integers(1, 64))
    data = bytearray(encode(rng, kind, height, width, progressive=bool(rng.random() < 0.3)))
    choice = int(rng.integers(0, 7))
    if choice == 0:  # truncated anywhere
        data = data[: int(rng.integers(0, len(data)))]
        category = "truncated"
    elif choice == 1:  # truncated, then a fake end marker appended
        data = data[: int(rng.integers(2, len(data)))] + (b"\xff\xd9" if kind == "jpeg" else b"IEND\xaeB`\x82")
        category = "truncated_fake_end"
    elif choice in (2, 3):  # bit flips
        for _ in range(int(rng.integers(1, 33))):
            pos = int(rng.integers(0, len(data)))
            data[pos] ^= 1 << int(rng.integers(0, 8))
        category = "bit_flips"
    elif choice == 4:  # random bytes overwritten in the header
        for _ in range(int(rng.integers(1, 8))):
            data[int(rng.integers(0, min(len(data), 200)))] = int(rng.integers(0, 256))
        category = "header_garbage"
    elif choice == 5:  # header says a huge size
        big = [(65535, 65535), (8193, 8192), (100_000, 1), (2**31, 2**31), (0, 100), (100, 0), (1, 2**32 - 1)]
        w, h = big[int(rng.integers(0, len(big)))]
        data = bytearray(with_header_size(bytes(data), w, h))
        category = "huge_header"
    else:  # chunks duplicated / shuffled
        cut = int(rng.integers(2, len(data)))
        data = data[:cut] + data[2:cut] + data[cut:]
        category = "spliced"
    fmt = str(rng.choice([kind, "", f"bgr8; {kind} compressed bgr8"]))
    return Case("compressed", category, dict(format=fmt, data=bytes(data)))


def junk_compressed(rng: np.random.Generator) -> Case:
    size = int(rng.choice([0, 1, 2, 3, 8, 24, 100, 5000]))
    body = rng.bytes(size)
    prefix = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xd9", b"\x89PNG\r\n\x1a\nIEND"][int(rng.integers(0, 5))]
    fmt = str(rng.choice(WILD_FORMATS))
    return Case("compressed", "junk", dict(format=fmt, data=prefix + body))


def wild_format_compressed(rng: np.random.Generator) -> Case:
    kind = str(rng.choice(["jpeg", "png"]))
    height, width = int(rng.integers(1, 32)), int(rng.integers(1, 32))
    return Case("compressed", "wild_format", dict(format=str(rng.choice(WILD_FORMATS)),
                                                  data=encode(rng, kind, height, width)))


GENERATORS: dict[str, tuple[str, Callable[[np.random.Generator], Case], float]] = {
    # name: (transport, generator, weight)
    "valid_raw": ("raw", valid_raw, 1.0),
    "mismatched_raw": ("raw", mismatched_raw, 3.0),
    "wild_encoding": ("raw", wild_encoding_raw, 2.0),
    "degenerate": ("raw", degenerate_raw, 1.0),
    "valid_compressed": ("compressed", valid_compressed, 1.0),
    "corrupt_compressed": ("compressed", corrupt_compressed, 4.0),
    "junk": ("compressed", junk_compressed, 1.5),
    "wild_format": ("compressed", wild_format_compressed, 1.0),
}


def random_case(rng: np.random.Generator, transport: str | None = None) -> Case:
    """One case of a random category (``transport`` "raw"/"compressed" restricts the choice)."""
    names = [n for n, (t, _, _) in GENERATORS.items() if transport in (None, t)]
    weights = np.array([GENERATORS[n][2] for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return GENERATORS[name][1](rng)


def run_corpus(cases: int, seed: int, per_case_limit_s: float = 2.0) -> dict:
    """Convert ``cases`` random cases with image_conversion.msg_to_bgr and check the contract.

    Returns outcome counts, the slowest case and every contract violation (at most 20 kept)."""
    import time

    from fer_perception import image_conversion as ic
    from fer_perception.errors import ImageConversionError

    rng = np.random.default_rng(seed)
    outcomes: dict[str, int] = {}
    violations: list[str] = []
    slowest = (0.0, "")
    for _ in range(cases):
        case = random_case(rng)
        msg = to_msg(case)
        t = time.perf_counter()
        try:
            out = ic.msg_to_bgr(msg)
            ok = (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
                  and out.flags.c_contiguous and (case.expect_shape is None or out.shape[:2] == case.expect_shape))
            key = "ok" if ok else "BAD_OUTPUT"
        except ImageConversionError as e:
            key = e.kind if e.kind in ic.ERROR_KINDS else f"UNKNOWN_KIND {e.kind}"
            if case.expect_shape is not None:
                key = f"VALID_REFUSED {e.kind}"
        except Exception as e:  # noqa: BLE001 - any other exception breaks the contract
            key = f"EXCEPTION {type(e).__name__}"
        dt = time.perf_counter() - t
        if dt > slowest[0]:
            slowest = (dt, case.describe()[:160])
        if dt > per_case_limit_s:
            key = "TOO_SLOW"
        outcomes[key] = outcomes.get(key, 0) + 1
        if key.isupper() or key.split(" ")[0].isupper():
            if len(violations) < 20:
                violations.append(f"{key}: {case.describe()[:300]}")
    return dict(cases=cases, seed=seed, outcomes=outcomes, violations=violations,
                slowest_s=round(slowest[0], 4), slowest_case=slowest[1])


if __name__ == "__main__":
    import argparse
    import json
    import time

    parser = argparse.ArgumentParser(description="Long fuzz run of image_conversion with this generator.")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    a = parser.parse_args()
    t0 = time.time()
    result = run_corpus(a.cases, a.seed)
    result["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result, indent=1))
    raise SystemExit(1 if result["violations"] else 0)
