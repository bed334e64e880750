"""Camera calibration for fer_camera's ``camera_info``: the camera_calibration_parsers YAML format
(what ROS's camera_calibration writes and camera_info_manager reads), and the uncalibrated default.

No ROS here: fer_perception/ros/camera_source.py turns a :class:`CameraCalibration` into a
sensor_msgs/CameraInfo. The file format (all keys as camera_calibration writes them)::

    image_width: 640
    image_height: 480
    camera_name: head_camera
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, t1, t2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    projection_matrix: {rows: 3, cols: 4, data: [fx', 0, cx', Tx, 0, fy', cy', Ty, 0, 0, 1, 0]}

Uncalibrated (no file): the image size and frame only, K, R and P all zero and D empty - the
sensor_msgs/CameraInfo convention ("K[0] == 0: uncalibrated") that image_proc and rviz read as
"do not rectify, no intrinsics".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

import yaml


class CalibrationError(ValueError):
    """A calibration file or URL that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class CameraCalibration:
    width: int
    height: int
    camera_name: str = ""
    distortion_model: str = ""
    d: tuple[float, ...] = ()
    k: tuple[float, ...] = (0.0,) * 9
    r: tuple[float, ...] = (0.0,) * 9
    p: tuple[float, ...] = (0.0,) * 12
    source: str = field(default="", compare=False)  # the file it came from ("" = uncalibrated)

    @property
    def calibrated(self) -> bool:
        return self.k[0] != 0.0

    def for_size(self, width: int, height: int) -> "CameraCalibration":
        """This calibration for images of ``width`` x ``height`` (fer_camera's ``resize``): the
        focal lengths and principal point scale with the image (as image_proc's resize does)."""
        if (width, height) == (self.width, self.height):
            return self
        if not self.calibrated:
            return replace(self, width=width, height=height)
        sx, sy = width / self.width, height / self.height
        k = list(self.k)
        k[0], k[2], k[4], k[5] = k[0] * sx, k[2] * sx, k[4] * sy, k[5] * sy
        p = list(self.p)
        p[0], p[2], p[3], p[5], p[6], p[7] = p[0] * sx, p[2] * sx, p[3] * sx, p[5] * sy, p[6] * sy, p[7] * sy
        return replace(self, width=width, height=height, k=tuple(k), p=tuple(p))


def uncalibrated(width: int, height: int) -> CameraCalibration:
    return CameraCalibration(width=width, height=height)


def _matrix(data: dict, key: str, rows: int, cols: int | None, path: str) -> tuple[float, ...]:
    entry = data.get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("data"), list):
        raise CalibrationError(f"calibration file {path}: '{key}' must be a mapping with a 'data' list")
    values = entry["data"]
    want = rows * cols if cols is not None else None
    if want is not None and len(values) != want:
        raise CalibrationError(f"calibration file {path}: '{key}' needs {want} values, has {len(values)}")
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise CalibrationError(f"calibration file {path}: '{key}' holds a value that is not a number") from None


def parse_calibration(text: str, path: str = "<string>") -> CameraCalibration:
    """A CameraCalibration from camera_calibration_parsers YAML; CalibrationError says what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CalibrationError(f"calibration file {path} is not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"calibration file {path} is not a camera_calibration YAML mapping")
    try:
        width, height = int(data["image_width"]), int(data["image_height"])
    except (KeyError, TypeError, ValueError):
        raise CalibrationError(f"calibration file {path}: image_width and image_height are required integers") from None
    if width <= 0 or height <= 0:
        raise CalibrationError(f"calibration file {path}: image size {width}x{height} is not positive")
    return CameraCalibration(
        width=width, height=height,
        camera_name=str(data.get("camera_name") or ""),
        distortion_model=str(data.get("distortion_model") or "plumb_bob"),
        d=_matrix(data, "distortion_coefficients", 1, None, path),
        k=_matrix(data, "camera_matrix", 3, 3, path),
        r=_matrix(data, "rectification_matrix", 3, 3, path),
        p=_matrix(data, "projection_matrix", 3, 4, path),
        source=path,
    )


def resolve_url(url: str, package_share: Callable[[str], str] | None = None) -> Path:
    """The file of a camera_info_url: ``file:///abs/path.yaml``, ``package://<pkg>/rel/path.yaml``
    (``package_share(pkg)`` gives the package's share folder) or a plain path."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path if parsed.scheme else url)).expanduser()
    if parsed.scheme == "package":
        if package_share is None:
            raise CalibrationError(f"camera_info_url {url}: package:// URLs need the ament index")
        try:
            share = package_share(parsed.netloc)
        except Exception as e:  # PackageNotFoundError, no AMENT_PREFIX_PATH
            raise CalibrationError(f"camera_info_url {url}: package '{parsed.netloc}' not found ({e})") from None
        return Path(share) / unquote(parsed.path).lstrip("/")
    raise CalibrationError(f"camera_info_url {url}: unsupported scheme '{parsed.scheme}' "
                           "(use file://, package:// or a path)")


def load_calibration(url: str, package_share: Callable[[str], str] | None = None) -> CameraCalibration:
    path = resolve_url(url, package_share)
    try:
        text = path.read_text()
    except OSError as e:
        raise CalibrationError(f"camera_info_url {url}: cannot read {path} ({e.strerror or e})") from None
    return parse_calibration(text, str(path))
