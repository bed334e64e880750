"""fer_camera's calibration files (camera_calibration YAML) and the uncalibrated camera_info."""

from __future__ import annotations

import pytest

from fer_perception.camera_calibration import (
    CalibrationError,
    load_calibration,
    parse_calibration,
    resolve_url,
    uncalibrated,
)

CALIBRATION = """\
image_width: 640
image_height: 480
camera_name: head_camera
camera_matrix: {rows: 3, cols: 3, data: [500.0, 0, 320.5, 0, 502.0, 240.5, 0, 0, 1]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [-0.1, 0.01, 0.001, 0.002, 0]}
rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
projection_matrix: {rows: 3, cols: 4, data: [498.0, 0, 321.0, 0, 0, 499.0, 241.0, 0, 0, 0, 1, 0]}
"""


def test_parse_calibration_file():
    c = parse_calibration(CALIBRATION, "head.yaml")
    assert (c.width, c.height, c.camera_name, c.distortion_model) == (640, 480, "head_camera", "plumb_bob")
    assert c.k[0] == 500.0 and c.k[5] == 240.5 and len(c.p) == 12 and len(c.d) == 5
    assert c.calibrated


def test_uncalibrated_is_zero_intrinsics_and_no_distortion():
    c = uncalibrated(320, 240)
    assert not c.calibrated and c.k == (0.0,) * 9 and c.p == (0.0,) * 12 and c.d == ()
    assert c.for_size(640, 480).width == 640 and not c.for_size(640, 480).calibrated


def test_calibration_scales_with_the_published_size():
    c = parse_calibration(CALIBRATION).for_size(320, 240)
    assert (c.width, c.height) == (320, 240)
    assert c.k[0] == 250.0 and c.k[2] == 160.25 and c.k[4] == 251.0 and c.k[5] == 120.25
    assert c.p[0] == 249.0 and c.p[6] == 120.5 and c.d == parse_calibration(CALIBRATION).d


@pytest.mark.parametrize("text, reason", [
    ("image_width: 640\n", "image_width and image_height are required"),
    (CALIBRATION.replace("data: [500.0, 0, 320.5, 0, 502.0, 240.5, 0, 0, 1]", "data: [1, 2]"),
     "'camera_matrix' needs 9 values, has 2"),
    (CALIBRATION.replace("projection_matrix: {rows: 3, cols: 4, data:", "projection_matrix: {rows: 3, cols: 4, x:"),
     "'projection_matrix' must be a mapping with a 'data' list"),
    ("[1, 2", "is not valid YAML"),
])
def test_bad_calibration_files_say_why(text, reason):
    with pytest.raises(CalibrationError, match=reason):
        parse_calibration(text, "bad.yaml")


def test_urls(tmp_path):
    f = tmp_path / "head.yaml"
    f.write_text(CALIBRATION)
    assert load_calibration(f"file://{f}").camera_name == "head_camera"
    assert load_calibration(str(f)).width == 640
    assert resolve_url("package://my_robot/calib/head.yaml", lambda pkg: f"/opt/{pkg}/share") == \
        tmp_path.__class__("/opt/my_robot/share/calib/head.yaml")
    with pytest.raises(CalibrationError, match="unsupported scheme 'http'"):
        resolve_url("http://example.org/head.yaml")
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(f"file://{tmp_path}/missing.yaml")
    with pytest.raises(CalibrationError, match="package 'nope' not found"):
        resolve_url("package://nope/x.yaml", lambda pkg: (_ for _ in ()).throw(LookupError(pkg)))
