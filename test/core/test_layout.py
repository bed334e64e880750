"""The target layout: the pure core imports no rclpy and no ROS message package; only
fer_perception/ros/ does. Checked on the parse tree of every module (function-local imports too)
and by importing every core module with the ROS packages made unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fer_perception"
ROS_DIR = PACKAGE / "ros"
#: Top-level packages that belong to ROS 2 (the shell's business, not the core's).
ROS_PACKAGES = {"rclpy", "rosidl_runtime_py", "rosidl_parser", "rcl_interfaces", "builtin_interfaces",
                "std_msgs", "sensor_msgs", "diagnostic_msgs", "lifecycle_msgs", "fer_msgs", "hri_msgs",
                "vision_msgs", "launch", "launch_ros", "message_filters", "cv_bridge"}


def _is_ros_module(name: str) -> bool:
    top = name.split(".")[0]
    return top in ROS_PACKAGES or top.endswith(("_msgs", "_srvs", "_interfaces")) or name.startswith(
        "fer_perception.ros")


def imported_modules(source: str, package: str) -> set[str]:
    """Every module ``source`` imports, at any depth (function-local too); relative imports are
    resolved against ``package``, the dotted package the module lives in."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def module_imports(path: Path) -> set[str]:
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    return imported_modules(path.read_text(), package)


def core_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if ROS_DIR not in p.parents)


def test_the_checker_sees_function_local_and_relative_imports():
    dirty = ("import numpy as np\n"
             "def f():\n    import rclpy.node\n    from sensor_msgs.msg import Image\n"
             "from .ros import node\n"
             "from ..ros.params import ParameterSet\n")
    names = imported_modules(dirty, "fer_perception.inference")
    assert names == {"numpy", "rclpy.node", "sensor_msgs.msg", "fer_perception.inference.ros", "fer_perception.ros.params"}
    assert {n for n in names if _is_ros_module(n)} == {"rclpy.node", "sensor_msgs.msg", "fer_perception.ros.params"}
    clean = "import numpy\nfrom fer_perception.pipeline import FacePipeline\nfrom . import labels\n"
    assert not any(_is_ros_module(n) for n in imported_modules(clean, "fer_perception"))


def test_no_core_module_imports_rclpy_or_ros_messages():
    offenders = {}
    for path in core_modules():
        bad = sorted(n for n in module_imports(path) if _is_ros_module(n))
        if bad:
            offenders[str(path.relative_to(PACKAGE.parent))] = bad
    assert not offenders, f"ROS imports outside fer_perception/ros/: {offenders}"


def test_every_module_that_imports_rclpy_is_in_the_ros_package():
    """The README's check: `grep -rlE '^\\s*(import|from) rclpy' fer_perception` lists only ros/ files."""
    with_rclpy = {p for p in PACKAGE.rglob("*.py") if any(n.split(".")[0] == "rclpy" for n in module_imports(p))}
    assert with_rclpy, "no module imports rclpy at all: the node is missing"
    assert all(ROS_DIR in p.parents for p in with_rclpy), sorted(map(str, with_rclpy))


def test_core_modules_import_with_ros_unavailable():
    """Not even a transitive import reaches ROS: each core module imports with rclpy and the message
    packages blocked (a None entry in sys.modules makes ``import`` raise ImportError)."""
    modules = [".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in core_modules()]
    modules = [m.removesuffix(".__init__") for m in modules if not m.endswith("__main__")]
    blocked = sorted(ROS_PACKAGES | {"fer_perception.ros"})
    code = (
        "import importlib, sys\n"
        f"for name in {blocked!r}:\n    sys.modules[name] = None\n"
        f"for name in {modules!r}:\n    importlib.import_module(name)\n"
        "print('ok', len(sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=str(PACKAGE.parent))
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-3000:]
