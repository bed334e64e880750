"""DDS set-up that has to happen before ``rclpy.init()``.

Fast DDS reads its XML profiles file from an environment variable once, when the first participant
is created. The variable's name depends on the Fast DDS generation: ``FASTDDS_DEFAULT_PROFILES_FILE``
for Fast DDS 3 (ROS 2 Kilted and newer; its rmw still accepts the old name, with a deprecation
warning on every process), ``FASTRTPS_DEFAULT_PROFILES_FILE`` for Fast DDS 2.x (Humble, Jazzy: 2.14,
which ignores the new name). Our profile (config/fastdds_shm.xml) enlarges the shared-memory segment
to 16 MB so that best-effort 640x480 image topics between processes stop losing most frames. Call
:func:`ensure_fastdds_profile` at the top of every entry point (and in launch files, for the
processes they start); it sets the name of the Fast DDS found (its library: libfastdds.so is 3,
libfastrtps.so is 2.x), both when none is found. A file the user already named in either variable
always wins. Pure module: no rclpy import.
"""

from __future__ import annotations

import os
import sys
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


def _library_dirs(environ) -> list[Path]:
    dirs = [Path(sys.prefix) / "lib"]
    for var, suffix in (("AMENT_PREFIX_PATH", "lib"), ("LD_LIBRARY_PATH", "")):
        dirs += [Path(entry) / suffix for entry in environ.get(var, "").split(os.pathsep) if entry]
    return dirs


def profile_env_names(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The profile variable(s) the Fast DDS of this environment reads: FASTDDS_ for libfastdds.so
    (Fast DDS 3), FASTRTPS_ for libfastrtps.so (2.x); both when neither or both are found."""
    env = os.environ if environ is None else environ
    found = set()
    for d in _library_dirs(env):
        if (d / "libfastdds.so").exists():
            found.add(PROFILE_ENV)
        if (d / "libfastrtps.so").exists():
            found.add(LEGACY_PROFILE_ENV)
    return tuple(name for name in PROFILE_ENVS if name in found) if len(found) == 1 else PROFILE_ENVS


def profile_environment(path: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variable(s) that make this environment's Fast DDS load the profiles file ``path``."""
    return {name: path for name in profile_env_names(environ)}


def ensure_fastdds_profile(environ: dict[str, str] | None = None) -> str | None:
    """Point the profile variable of this Fast DDS (see :func:`profile_env_names`) at our profile
    unless the user named a file in either variable; a user's file is put under this Fast DDS's
    name if they used the other one. Returns the file in force.

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
    for name in profile_env_names(env):
        if not env.get(name):
            env[name] = current
    return current
