"""config/fastdds_shm.xml and fer_perception.ros.dds.ensure_fastdds_profile."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fer_perception.ros import dds

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILE = REPO_ROOT / "config" / "fastdds_shm.xml"
NS = {"f": "http://www.eprosima.com"}


def test_profile_has_16mb_shm_segment_and_is_default():
    root = ET.parse(PROFILE).getroot()
    assert root.tag == "{http://www.eprosima.com}dds"
    shm = [d for d in root.iterfind(".//f:transport_descriptor", NS) if d.findtext("f:type", namespaces=NS) == "SHM"]
    assert len(shm) == 1 and int(shm[0].findtext("f:segment_size", namespaces=NS)) == 16 * 1024 * 1024
    shm_id = shm[0].findtext("f:transport_id", namespaces=NS)
    participant = root.find(".//f:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [e.text for e in participant.iterfind(".//f:userTransports/f:transport_id", NS)]
    assert shm_id in used and len(used) == 2  # SHM plus UDPv4 for discovery and other hosts
    assert participant.findtext(".//f:useBuiltinTransports", namespaces=NS) == "false"


def _fake_fast_dds(tmp_path, *libraries: str) -> dict[str, str]:
    """An environment whose only library folder (besides sys.prefix/lib) holds ``libraries``."""
    lib = tmp_path / "prefix" / "lib"
    lib.mkdir(parents=True)
    for name in libraries:
        (lib / name).write_bytes(b"")
    return {"AMENT_PREFIX_PATH": str(lib.parent)}


@pytest.fixture
def no_venv_fast_dds(monkeypatch, tmp_path):
    """sys.prefix without a Fast DDS library, so only the given environment decides."""
    monkeypatch.setattr(dds.sys, "prefix", str(tmp_path / "empty_prefix"))


@pytest.mark.parametrize("library, name", [("libfastdds.so", "FASTDDS_DEFAULT_PROFILES_FILE"),
                                           ("libfastrtps.so", "FASTRTPS_DEFAULT_PROFILES_FILE")])
def test_ensure_profile_sets_the_name_this_fast_dds_reads(tmp_path, no_venv_fast_dds, library, name):
    """Fast DDS 3 (kilted, libfastdds) reads FASTDDS_DEFAULT_PROFILES_FILE (the old name only with a
    deprecation warning), Fast DDS 2.x (jazzy, humble: libfastrtps) only FASTRTPS_DEFAULT_PROFILES_FILE."""
    env = _fake_fast_dds(tmp_path, library)
    value = dds.ensure_fastdds_profile(env)
    assert {k: v for k, v in env.items() if k in dds.PROFILE_ENVS} == {name: value}
    assert Path(value).is_file() and Path(value).read_bytes() == PROFILE.read_bytes()


def test_ensure_profile_sets_both_names_when_the_fast_dds_is_unknown(tmp_path, no_venv_fast_dds):
    for env in ({}, _fake_fast_dds(tmp_path, "libfastdds.so", "libfastrtps.so")):
        value = dds.ensure_fastdds_profile(env)
        assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == env["FASTRTPS_DEFAULT_PROFILES_FILE"] == value


@pytest.mark.parametrize("user_name", ["FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"])
def test_ensure_profile_keeps_user_setting_on_either_name(tmp_path, no_venv_fast_dds, user_name):
    env = {**_fake_fast_dds(tmp_path, "libfastrtps.so"), user_name: "/etc/my_profile.xml"}
    assert dds.ensure_fastdds_profile(env) == "/etc/my_profile.xml"
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == "/etc/my_profile.xml"  # in force on this Fast DDS
    assert env.get("FASTDDS_DEFAULT_PROFILES_FILE") in (None, "/etc/my_profile.xml")
    both = {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/a.xml", "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/b.xml"}
    dds.ensure_fastdds_profile(both)
    assert both == {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/a.xml", "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/b.xml"}


def test_this_environment_has_one_fast_dds(monkeypatch):
    """The venv of the PyPI wheels holds exactly one Fast DDS library, so exactly one name is set."""
    import importlib.util
    import os

    if importlib.util.find_spec("rclpy") is None:
        pytest.skip("no rclpy")
    for name in dds.PROFILE_ENVS:
        monkeypatch.delenv(name, raising=False)
    names = dds.profile_env_names()
    assert len(names) == 1, names
    value = dds.ensure_fastdds_profile()
    assert [n for n in dds.PROFILE_ENVS if os.environ.get(n)] == list(names) and os.environ[names[0]] == value
