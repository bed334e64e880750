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


def test_ensure_profile_sets_both_fast_dds_generations():
    """Fast DDS 3 (kilted) reads only FASTDDS_DEFAULT_PROFILES_FILE, Fast DDS 2.x (jazzy, humble) only
    FASTRTPS_DEFAULT_PROFILES_FILE: both are set."""
    env: dict[str, str] = {}
    value = dds.ensure_fastdds_profile(env)
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": value, "FASTRTPS_DEFAULT_PROFILES_FILE": value}
    assert Path(value).is_file() and Path(value).read_bytes() == PROFILE.read_bytes()


@pytest.mark.parametrize("name", ["FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"])
def test_ensure_profile_keeps_user_setting_on_either_name(name):
    env = {name: "/etc/my_profile.xml"}
    assert dds.ensure_fastdds_profile(env) == "/etc/my_profile.xml"
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml",
                   "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}
    both = {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/a.xml", "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/b.xml"}
    dds.ensure_fastdds_profile(both)
    assert both == {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/a.xml", "FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/b.xml"}


def test_ensure_profile_defaults_to_process_environment(monkeypatch):
    import os

    for name in dds.PROFILE_ENVS:
        monkeypatch.delenv(name, raising=False)
    value = dds.ensure_fastdds_profile()
    assert value == os.environ[dds.PROFILE_ENV] == os.environ[dds.LEGACY_PROFILE_ENV]

