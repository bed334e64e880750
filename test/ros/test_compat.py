"""ROS 2 Humble compatibility: only fer_perception/ros/compat.py touches rclpy APIs newer than
Humble, and its fallbacks behave like the new APIs on a node (or an rclpy) that lacks them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
ROS_DIR = Path(__file__).resolve().parents[2] / "fer_perception" / "ros"

#: rclpy names that Humble (rclpy 3.3) does not have, and where they came in.
NEWER_THAN_HUMBLE = {
    "add_post_set_parameters_callback": "Iron",
    "add_pre_set_parameters_callback": "Iron",
    "remove_post_set_parameters_callback": "Iron",
    "EventsExecutor": "Jazzy (rclpy.experimental)",
    "experimental": "Jazzy (rclpy.experimental)",
}


def test_only_compat_uses_apis_newer_than_humble():
    offenders = []
    for path in sorted(ROS_DIR.glob("*.py")):
        if path.name == "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Attribute):
                names.append(node.attr)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names += [a.name.split(".")[-1] for a in node.names]
                if isinstance(node, ast.ImportFrom) and node.module:
                    names += node.module.split(".")
            offenders += [f"{path.name}:{node.lineno} {n} ({NEWER_THAN_HUMBLE[n]})" for n in names
                          if n in NEWER_THAN_HUMBLE]
    assert not offenders, f"use fer_perception/ros/compat.py for APIs newer than Humble: {offenders}"


def test_parameter_set_on_a_node_without_post_set_callbacks():
    """A real rclpy node with add_post_set_parameters_callback hidden, as on Humble: a valid change
    reaches on_change with the new value, a refused one does not and keeps the old value."""
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from fer_perception.ros.params import ParameterSet

    class HumbleNode(Node):
        def __getattribute__(self, name):
            if name == "add_post_set_parameters_callback":
                raise AttributeError(name)
            return super().__getattribute__(name)

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=0)
    try:
        node = HumbleNode("humble_like", context=ctx, start_parameter_services=False)
        assert not hasattr(node, "add_post_set_parameters_callback")
        changes = []
        params = ParameterSet(node, "fer_node", on_change=changes.append)
        ok = node.set_parameters([Parameter("max_faces", value=3)])[0]
        assert ok.successful and changes == [{"max_faces": 3}] and params["max_faces"] == 3
        refused = node.set_parameters([Parameter("smoothing", value="median")])[0]
        assert not refused.successful and "smoothing must be one of" in refused.reason
        assert changes == [{"max_faces": 3}] and params["smoothing"] == "ema"
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_events_executor_falls_back_without_rclpy_experimental(monkeypatch, capsys):
    import sys

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from fer_perception.ros import compat

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=0)
    try:
        monkeypatch.setitem(sys.modules, "rclpy.experimental", None)  # import raises ImportError
        executor = compat.events_executor_or_single(context=ctx)
        assert isinstance(executor, SingleThreadedExecutor)
        assert "no EventsExecutor" in capsys.readouterr().err
        executor.shutdown()
    finally:
        rclpy.try_shutdown(context=ctx)
