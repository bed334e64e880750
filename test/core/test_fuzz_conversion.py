"""Fuzzing fer_perception.image_conversion with hostile sensor_msgs Image / CompressedImage.

The contract under test: for ANY message, ``image_to_bgr`` / ``compressed_to_bgr`` / ``msg_to_bgr``
either return a C-contiguous H x W x 3 uint8 BGR array or raise ImageConversionError whose ``kind``
is one of ERROR_KINDS - never another exception, never a crash or hang, and never more memory
than the pixel limit allows, whatever size a header claims.

CI-sized: a few hundred hypothesis examples plus a seeded corpus of random mutations
(test/harness/hostile.py); benchmarks/fuzz_node.py runs the long version against a running node.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image

from fer_perception import image_conversion as ic
from fer_perception.errors import ImageConversionError
from fer_perception.ros.image_msgs import bgr_to_compressed

import hostile  # test/harness is on sys.path (test/conftest.py)

pytestmark = pytest.mark.hardening

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: FER_FUZZ_EXAMPLES=5000 for a long run (CI: 150 examples per property, derandomized).
FUZZ_SETTINGS = settings(max_examples=int(os.environ.get("FER_FUZZ_EXAMPLES", "150")), deadline=None,
                         derandomize=os.environ.get("FER_FUZZ_EXAMPLES") is None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: No single conversion of a small hostile message may take longer than this (2 loaded cores).
PER_CASE_SECONDS = 2.0


def convert(msg):
    """msg_to_bgr, checked against the contract; returns the array or the error kind."""
    t0 = time.perf_counter()
    try:
        out = ic.msg_to_bgr(msg)
    except ImageConversionError as e:
        assert e.kind in ic.ERROR_KINDS, f"unknown kind {e.kind!r}: {e}"
        assert str(e), "an ImageConversionError must say what is wrong"
        result = e.kind
    else:
        assert isinstance(out, np.ndarray), type(out)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, (out.dtype, out.shape)
        assert out.flags.c_contiguous
        assert 0 < out.shape[0] * out.shape[1] <= ic.MAX_PIXELS
        result = out
    elapsed = time.perf_counter() - t0
    assert elapsed < PER_CASE_SECONDS, f"conversion took {elapsed:.2f} s"
    return result


# --- raw Image: property-based --------------------------------------------------------------------

UINT32 = 2**32 - 1
YUV = {"yuv422", "uyvy", "yuv422_yuy2", "yuyv"}


@st.composite
def raw_images(draw):
    encoding = draw(st.one_of(
        st.sampled_from(sorted(hostile.ENCODING_BYTES)),
        st.sampled_from(hostile.WILD_ENCODINGS),
        st.text(max_size=12),
    ))
    bpp = hostile.ENCODING_BYTES.get(encoding.strip().lower(), draw(st.integers(1, 8)))
    height = draw(st.one_of(st.integers(0, 24), st.sampled_from([1, 2**16, 2**31, UINT32])))
    width = draw(st.one_of(st.integers(0, 24), st.sampled_from([1, 2**16, 2**31, UINT32])))
    row = width * bpp
    step = draw(st.one_of(
        st.just(min(row, UINT32)),
        st.integers(0, 3).map(lambda d: min(row + d, UINT32)),
        st.integers(0, max(0, min(row, UINT32) - 1)),
        st.integers(0, UINT32),
    ))
    needed = step * height
    size = draw(st.one_of(
        st.just(min(needed, 4096)),
        st.integers(0, 4096),
        st.integers(0, 16).map(lambda extra: min(needed, 4096) + extra),
    ))
    data = draw(st.binary(min_size=size, max_size=size))
    return dict(encoding=encoding, height=height, width=width, step=step, data=data,
                is_bigendian=draw(st.integers(0, 1)))


def expected_raw_outcome(f: dict):
    """The kind the contract demands for these fields, or (height, width) for a valid image."""
    enc = f["encoding"].strip().lower()
    if enc not in hostile.ENCODING_BYTES:
        return "unsupported_encoding"
    w, h = f["width"], f["height"]
    if w == 0 or h == 0:
        return "empty_image"
    if w * h > ic.MAX_PIXELS:
        return "too_large"
    if enc in YUV and w % 2:
        return "bad_dimensions"
    if f["step"] < w * hostile.ENCODING_BYTES[enc]:
        return "bad_step"
    if len(f["data"]) < f["step"] * h:
        return "truncated_data"
    return (h, w)


@FUZZ_SETTINGS
@given(raw_images())
def test_raw_image_property(fields):
    msg = hostile.to_msg(hostile.Case("raw", "hypothesis", fields))
    result = convert(msg)
    expected = expected_raw_outcome(fields)
    if isinstance(expected, tuple):
        assert isinstance(result, np.ndarray), f"valid image rejected: {result}"
        assert result.shape[:2] == expected
    else:
        assert result == expected, f"{fields['encoding']!r} {fields['width']}x{fields['height']} step {fields['step']} data {len(fields['data'])}"


# --- CompressedImage: property-based mutations -----------------------------------------------------

_RNG = np.random.default_rng(7)
SEEDS = {
    "jpeg": hostile.encode(_RNG, "jpeg", 24, 32),
    "jpeg_progressive": hostile.encode(_RNG, "jpeg", 20, 18, progressive=True),
    "png": hostile.encode(_RNG, "png", 17, 23),
}


@st.composite
def compressed_images(draw):
    seed = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[seed])
    ops = draw(st.lists(st.sampled_from(["flip", "truncate", "byte", "size", "insert", "fake_end"]),
                        max_size=4))
    for op in ops:
        if not data:
            break
        if op == "flip":
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif op == "byte":
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == "size":
            w = draw(st.sampled_from([0, 1, 8192, 8193, 65535, 2**31, UINT32]))
            h = draw(st.sampled_from([0, 1, 8192, 8193, 65535, 2**31, UINT32]))
            data = bytearray(hostile.with_header_size(bytes(data), w, h))
        elif op == "insert":
            pos = draw(st.integers(0, len(data)))
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "fake_end":
            data += b"\xff\xd9" if seed.startswith("jpeg") else b"\x00\x00\x00\x00IEND\xaeB`\x82"
    fmt = draw(st.one_of(st.sampled_from(hostile.WILD_FORMATS), st.text(max_size=16)))
    return dict(format=fmt, data=bytes(data)), not ops


@FUZZ_SETTINGS
@given(compressed_images())
def test_compressed_image_property(case):
    fields, pristine = case
    msg = hostile.to_msg(hostile.Case("compressed", "hypothesis", fields))
    result = convert(msg)
    fmt = fields["format"].lower()
    names_codec = any(n in fmt for n in ("jpeg", "jpg", "png"))
    if pristine and "compresseddepth" not in fmt and (names_codec or not fmt.strip()):
        assert isinstance(result, np.ndarray), f"valid {fields['format']!r} image rejected: {result}"


# --- seeded random-mutation corpus (the same generator as benchmarks/fuzz_node.py) -------------------


def test_random_mutation_corpus():
    rng = np.random.default_rng(20261127)
    outcomes: dict[str, int] = {}
    for _ in range(600):
        case = hostile.random_case(rng)
        result = convert(hostile.to_msg(case))
        key = "ok" if isinstance(result, np.ndarray) else result
        outcomes[key] = outcomes.get(key, 0) + 1
        if case.expect_shape is not None:
            assert isinstance(result, np.ndarray), f"valid case rejected ({result}): {case.describe()}"
            assert result.shape[:2] == case.expect_shape, case.describe()
    # The corpus exercises every path: valid images and most error kinds.
    assert outcomes.get("ok", 0) > 50
    assert {"unsupported_encoding", "empty_image", "too_large", "bad_step", "truncated_data",
            "corrupt_compressed", "bad_dimensions"} <= set(outcomes), outcomes


@pytest.mark.parametrize("encoding", hostile.WILD_ENCODINGS)
def test_every_wild_encoding(encoding):
    """Each encoding string seen in the wild: a 4 x 2 frame converts or is refused by kind."""
    bpp = hostile.ENCODING_BYTES.get(encoding.strip().lower(), 3)
    msg = hostile.to_msg(hostile.Case("raw", "wild", dict(encoding=encoding, height=2, width=4, step=4 * bpp,
                                                           data=bytes(range(8 * bpp)))))
    result = convert(msg)
    if encoding.strip().lower() in ic.SUPPORTED_ENCODINGS:
        assert isinstance(result, np.ndarray) and result.shape == (2, 4, 3)
    else:
        assert result == "unsupported_encoding"


@pytest.mark.parametrize("height,width", [(0, 0), (0, 5), (5, 0), (1, 1)])
def test_degenerate_sizes(height, width):
    msg = hostile.to_msg(hostile.Case("raw", "degenerate", dict(encoding="bgr8", height=height, width=width,
                                                                 step=3 * width, data=bytes(3 * width * height))))
    result = convert(msg)
    assert (result.shape == (1, 1, 3)) if height * width else result == "empty_image"


def test_8k_frames():
    """7680 x 4320 raw bgr8 (100 MB) and mono8, and an 8K JPEG, convert (no spurious too_large)."""
    rng = np.random.default_rng(3)
    for encoding in ("bgr8", "mono8"):
        case = hostile.big_raw(rng)
        case.fields.update(encoding=encoding, step=7680 * hostile.ENCODING_BYTES[encoding],
                           data=bytes(7680 * 4320 * hostile.ENCODING_BYTES[encoding]))
        out = convert(hostile.to_msg(case))
        assert isinstance(out, np.ndarray) and out.shape == (4320, 7680, 3)
        del out
    big = np.zeros((4320, 7680, 3), np.uint8)
    big[::64] = 255
    msg = bgr_to_compressed(big, "jpeg", quality=50)
    out = convert(msg)
    assert isinstance(out, np.ndarray) and out.shape == (4320, 7680, 3)


def test_list_data_with_out_of_range_values_is_bad_array():
    """A duck-typed message whose data is a list with values > 255 (regression: OverflowError)."""

    class Msg:
        encoding, width, height, step, is_bigendian = "mono8", 2, 1, 2, 0
        data = [12, 300]

    with pytest.raises(ImageConversionError) as err:
        ic.image_to_bgr(Msg())
    assert err.value.kind == "bad_array"
    Msg.data = [12, 200]
    assert ic.image_to_bgr(Msg()).shape == (1, 2, 3)


# --- compressed regressions found by the fuzzer -------------------------------------------------------


def _exif_jpeg(orientation: int) -> bytes:
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :40] = 255  # left half white
    ok, jpg = cv2.imencode(".jpg", img)
    tiff = (b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1)
            + struct.pack(">HHII", 0x0112, 3, 1, orientation << 16) + b"\x00\x00\x00\x00")
    app1 = b"Exif\x00\x00" + tiff
    jpg = jpg.tobytes()
    return jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:]


@pytest.mark.parametrize("orientation,shape", [(1, (40, 80, 3)), (3, (40, 80, 3)), (6, (80, 40, 3)), (8, (80, 40, 3))])
def test_jpeg_with_exif_rotation_is_not_corrupt(orientation, shape):
    """Regression: a phone JPEG with EXIF orientation 6/8 (rotated 90 degrees) was rejected as
    corrupt_compressed because OpenCV rotates it and the size no longer matched the header."""
    msg = CompressedImage(format="jpeg")
    msg.data = _exif_jpeg(orientation)
    out = convert(msg)
    assert isinstance(out, np.ndarray), out
    assert out.shape == shape


BOMB_SCRIPT = textwrap.dedent("""
    import resource, struct, sys, time, json
    sys.path.insert(0, {here!r})
    import numpy as np, cv2
    import hostile
    from sensor_msgs.msg import CompressedImage
    from fer_perception import image_conversion as ic
    from fer_perception.errors import ImageConversionError
    rng = np.random.default_rng(1)
    png = hostile.encode(rng, "png", 40, 54)
    jpg = hostile.encode(rng, "jpeg", 16, 16)
    pjpg = hostile.encode(rng, "jpeg", 16, 16, progressive=True)
    def idat_length(data, n):
        out = bytearray(data); i = 8 + 12 + 13  # the chunk after IHDR
        out[i:i + 4] = struct.pack(">I", n); return bytes(out)
    cases = {{
        "png_idat_claims_3GB": idat_length(png, 3_000_000_000),
        "png_idat_claims_1GB": idat_length(png, 1 << 30),
        "png_header_65535x65535": hostile.with_header_size(png, 65535, 65535),
        "png_header_8192x8192": hostile.with_header_size(png, 8192, 8192),
        "jpeg_header_65535x65535": hostile.with_header_size(jpg, 65535, 65535),
        "jpeg_header_8192x8192": hostile.with_header_size(jpg, 8192, 8192),
        "progressive_jpeg_header_8192x8192": hostile.with_header_size(pjpg, 8192, 8192),
        "jpeg_header_8000x6000": hostile.with_header_size(jpg, 8000, 6000),
    }}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {{}}
    for name, data in cases.items():
        msg = CompressedImage(format="jpeg" if "jpeg" in name else "png"); msg.data = data
        t = time.perf_counter()
        try:
            ic.compressed_to_bgr(msg); kind = "decoded"
        except ImageConversionError as e:
            kind = e.kind
        out[name] = dict(kind=kind, seconds=time.perf_counter() - t, bytes=len(data),
                         peak_growth_mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
    print(json.dumps(out))
""")


def test_decompression_bombs_are_rejected_before_allocating():
    """Tiny JPEG/PNG files whose headers claim huge sizes or chunk lengths are rejected without the
    decoder allocating anything big (measured as the growth of the peak RSS of a fresh process).

    Regressions: (1) OpenCV 4.12 allocates the length a PNG chunk header claims - a 1.4 kB PNG whose
    IDAT length says 3.7 GB took 8 s and 3.6 GB of RSS; (2) a 700-byte JPEG whose header says
    8192 x 8192 was decoded into 200 MB of grey (385 MB peak, 2.5 s)."""
    import json

    r = subprocess.run([sys.executable, "-c", BOMB_SCRIPT.format(here=str(REPO / "test" / "harness"))], capture_output=True,
                       text=True, timeout=120, cwd=str(REPO))
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout.strip().splitlines()[-1])
    for name, res in results.items():
        assert res["kind"] in ("too_large", "corrupt_compressed"), (name, res)
        assert res["peak_growth_mb"] < 40, (name, res)
        assert res["seconds"] < 0.5, (name, res)
