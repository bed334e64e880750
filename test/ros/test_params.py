"""Parameters on a ROS node: descriptors built from config/fer.yaml's specs."""

from __future__ import annotations

from pathlib import Path

from fer_perception.params import load_specs
from fer_perception.ros.params import descriptor

CONFIG = Path(__file__).resolve().parents[2] / "config" / "fer.yaml"


def test_descriptor_fields():
    specs = load_specs("fer_node", CONFIG)
    d = descriptor(specs["confidence_threshold"])
    assert d.floating_point_range[0].from_value == 0.0 and d.floating_point_range[0].to_value == 1.0
    assert not d.read_only and d.description
    d = descriptor(specs["max_faces"])
    assert d.integer_range[0].from_value == 0 and d.integer_range[0].to_value == 64
    d = descriptor(specs["backend"])
    assert d.read_only and "tensorrt" in d.additional_constraints
    assert descriptor(specs["stale_timeout"]).description.endswith("[s]")
