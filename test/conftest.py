"""Fixtures shared by every test: where ../shared is, and an isolated ROS 2 environment.

Tests that need ../shared skip with a clear reason when it is absent (a clone without it).
Tests that need DDS get a unique ROS_DOMAIN_ID, localhost-only discovery and a ROS_LOG_DIR under
pytest's temporary directory, so parallel or repeated runs never see each other.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
if str(HARNESS_DIR) not in sys.path:  # the shared test helpers (rosharness, hostile, ...) for every folder
    sys.path.insert(0, str(HARNESS_DIR))
SHARED_DIR = Path(os.environ.get("FER_SHARED_DIR", REPO_ROOT.parent / "shared"))
FASTDDS_PROFILE = REPO_ROOT / "config" / "fastdds_shm.xml"

_domain_ids = itertools.count((os.getpid() * 7) % 150 + 10)


def _shared_path(relative: str) -> Path:
    path = SHARED_DIR / relative
    if not path.exists():
        pytest.skip(f"{relative} not found under {SHARED_DIR} (../shared is absent in this checkout)")
    return path


@pytest.fixture(scope="session")
def fer2013_npz() -> Path:
    return _shared_path("data/fer2013.npz")


@pytest.fixture(scope="session")
def ckplus_npz() -> Path:
    return _shared_path("data/ckplus48.npz")


@pytest.fixture(scope="session")
def hamilton_clip() -> Path:
    return _shared_path("media/hamilton_clip.mp4")


@pytest.fixture(scope="session")
def obama_jpg() -> Path:
    return _shared_path("media/obama.jpg")


@pytest.fixture(scope="session")
def two_people_jpg() -> Path:
    return _shared_path("media/two_people.jpg")


def isolated_ros_env(log_dir: Path) -> dict[str, str]:
    """Environment for one isolated ROS 2 test: unique domain, localhost only, logs in the tmp dir."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(next(_domain_ids) % 200 + 1),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOG_DIR=str(log_dir),
        RCUTILS_LOGGING_BUFFERED_STREAM="0",
        PYTHONUNBUFFERED="1",
        PYTHONFAULTHANDLER="1",  # a crashing subprocess prints every thread's stack into the test's output
    )
    if FASTDDS_PROFILE.exists():  # under the name this Fast DDS reads (3: FASTDDS_, 2.x/jazzy: FASTRTPS_)
        from fer_perception.ros.dds import profile_environment

        env.update(profile_environment(str(FASTDDS_PROFILE), env))
    return env


@pytest.fixture
def ros_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Isolated ROS 2 environment, applied to this process and returned for subprocesses."""
    env = isolated_ros_env(tmp_path / "ros_log")
    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR", "FASTDDS_DEFAULT_PROFILES_FILE",
                "FASTRTPS_DEFAULT_PROFILES_FILE"):
        if key in env:
            monkeypatch.setenv(key, env[key])
    return env
