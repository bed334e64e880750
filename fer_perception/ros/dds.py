"""DDS set-up that has to happen before ``rclpy.init()``.

Fast DDS reads ``FASTDDS_DEFAULT_PROFILES_FILE`` once, when the first participant is created. Our
profile (config/fastdds_shm.xml) enlarges the shared-memory segment to 16 MB so that best-effort
640x480 image topics between processes stop losing most frames. Call :func:`ensure_fastdds_profile`
at the top of every entry point (and in launch files, for the processes they start); a value the
user already set always wins. Pure module: no rclpy import.
"""

from __future__ import annotations

import os
from pathlib import Path

from fer_perception.params import config_candidates

PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_NAME = "fastdds_shm.xml"


def fastdds_profile_path() -> Path | None:
    """Where config/fastdds_shm.xml is (source tree, ament share directory or <prefix>/share)."""
    return next((path for path in config_candidates(PROFILE_NAME) if path.is_file()), None)


def ensure_fastdds_profile(environ: dict[str, str] | None = None) -> str | None:
    """Set FASTDDS_DEFAULT_PROFILES_FILE to our profile unless it is set; return the value in force.

    Must run before ``rclpy.init()`` in this process; for child processes pass ``environ`` (a dict
    that becomes their environment). Returns None when the variable is unset and no profile was
    found (Fast DDS then uses its defaults).
    """
    env = os.environ if environ is None else environ
    current = env.get(PROFILE_ENV)
    if current:
        return current
    path = fastdds_profile_path()
    if path is None:
        return None
    env[PROFILE_ENV] = str(path)
    return str(path)
