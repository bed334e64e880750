"""config/fer.yaml parsing and parameter validation (no DDS)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fer_perception import params
from fer_perception.params import ParamSpec, load_specs, markdown_table, parse_config

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "fer.yaml"
DOC = REPO / "docs" / "node.md"


def test_config_is_a_plain_ros_parameters_file():
    data = yaml.safe_load(CONFIG.read_text())
    assert set(data) == {"fer_node", "fer_camera"}
    for section in data.values():
        assert set(section) == {"ros__parameters"}
        for value in section["ros__parameters"].values():
            assert isinstance(value, (bool, int, float, str))


def test_defaults_come_from_the_yaml():
    data = yaml.safe_load(CONFIG.read_text())
    for node in ("fer_node", "fer_camera"):
        specs = load_specs(node, CONFIG)
        assert {k: s.default for k, s in specs.items()} == data[node]["ros__parameters"]
        for s in specs.values():
            assert s.description, s.name


def test_config_path_finds_the_source_tree_config():
    assert params.config_path().resolve() == CONFIG.resolve()


@pytest.mark.parametrize("name,value,fragment", [
    ("confidence_threshold", 1.5, "within [0, 1]"),
    ("confidence_threshold", "high", "must be a double"),
    ("smoothing", "median", "one of ema, window, none"),
    ("max_faces", -1, "within [0, 64]"),
    ("max_faces", 2.5, "must be an integer"),
    ("backend", "cuda", "one of auto, tensorrt, onnxruntime, tflite"),
    ("enabled", 1, "must be a bool"),
])
def test_validation_reasons(name, value, fragment):
    spec = load_specs("fer_node", CONFIG)[name]
    reason = spec.validate(value)
    assert reason is not None and fragment in reason and name in reason


@pytest.mark.parametrize("name,value", [("confidence_threshold", 0.0), ("confidence_threshold", 1),
                                        ("smoothing", "window"), ("max_faces", 0), ("enabled", False)])
def test_validation_accepts(name, value):
    assert load_specs("fer_node", CONFIG)[name].validate(value) is None


def test_parse_rejects_undocumented_parameters_and_bad_defaults():
    with pytest.raises(ValueError, match="no description"):
        parse_config("n:\n  ros__parameters:\n    x: 1\n")
    with pytest.raises(ValueError, match="default of x"):
        parse_config("n:\n  ros__parameters:\n    # about x\n    # @range [0, 1]\n    x: 5\n")
    with pytest.raises(ValueError, match="unknown tag"):
        parse_config("n:\n  ros__parameters:\n    # about x\n    # @bogus\n    x: 5\n")


def test_parse_tags():
    specs = parse_config(
        "n:\n  ros__parameters:\n"
        "    # Line one\n    # line two.\n    # @choices [a, b]\n    # @read_only\n    mode: a\n"
        "    # Step.\n    # @range [0, 10, 2]\n    # @unit px\n    size: 4\n"
    )["n"]
    assert specs["mode"] == ParamSpec("mode", "a", "Line one line two.", read_only=True, choices=("a", "b"))
    assert specs["size"].range == (0, 10, 2) and specs["size"].unit == "px"


def test_docs_parameter_tables_are_generated_from_the_yaml():
    text = DOC.read_text()
    for node in ("fer_node", "fer_camera"):
        table = markdown_table(node, CONFIG)
        assert table in text, f"docs/node.md {node} table is stale: python -m fer_perception.params --markdown"


def test_every_documented_topic_parameter_exists():
    # Parameters named in docs/node.md's prose (as `name`) and in the YAML agree for fer_node.
    names = set(load_specs("fer_node", CONFIG))
    text = DOC.read_text()
    for name in names:
        assert re.search(rf"`{name}`", text), name
