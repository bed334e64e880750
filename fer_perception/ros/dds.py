"""DDS set-up that has to happen before ``rclpy.init()``.

Fast DDS reads its XML profiles file from an environment variable once, when the first participant
is created. The variable's name depends on the Fast DDS generation: ``FASTDDS_DEFAULT_PROFILES_FILE``
for Fast DDS 3 (ROS 2 Kilted and newer), ``FASTRTPS_DEFAULT_PROFILES_FILE`` for Fast DDS 2.x (Humble,
Jazzy: 2.14), and each reads only its own. Our profile (config/fastdds_shm.xml) enlarges the
shared-memory segment to 16 MB so that best-effort 640x480 image topics between processes stop
losing most frames. Call :func:`ensure_fastdds_profile` at the top of every entry point (and in
launch files, for the processes they start); it sets both names. A file the user already named in
either variable always wins (and is put in the other one too). Pure module: no rclpy import.
"""

from __future__ import annotations

import os
from pathlib import Path

from fer_perception.params import config_candidates

#: Fast DDS 3.x (Kilted+)
PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
#: Fast DDS 2.x (Humble, Jazzy)
LEGACY_PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
PROFILE_ENVS = (PROFILE_ENV, LEGACY_PROFILE_ENV)
PROFILE_NAME = "fastdds_shm.xml"


def fastdds_profile_path() -> Path | None:
    """Where config/fastdds_shm.xml is (source tree, ament share directory or <prefix>/share)."""
    return next((path for path in config_candidates(PROFILE_NAME) if path.is_file()), None)


def profile_environment(path: str) -> dict[str, str]:
    """The variables that make every Fast DDS generation load the profiles file ``path``."""
    return {name: path for name in PROFILE_ENVS}


def ensure_fastdds_profile(environ: dict[str, str] | None = None) -> str | None:
    """Point both profile variables (Fast DDS 3 and 2.x) at our profile unless the user named a file
    in one of them; a user's file is copied into the variable they left unset, so it is in force
    on either Fast DDS. Returns the file in force.

    Must run before ``rclpy.init()`` in this process; for child processes pass ``environ`` (a dict
    that becomes their environment). Returns None when neither variable is set and no profile was
    found (Fast DDS then uses its defaults).
    """
    env = os.environ if environ is None else environ
    current = next((env[name] for name in PROFILE_ENVS if env.get(name)), None)
    if current is None:
        path = fastdds_profile_path()
        if path is None:
            return None
        current = str(path)
    for name in PROFILE_ENVS:
        if not env.get(name):
            env[name] = current
    return current
