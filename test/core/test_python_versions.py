"""ROS 2 Humble (JetPack 6, Ubuntu 22.04) runs Python 3.10: the package must parse there.

``ast.parse(feature_version=(3, 10))`` rejects syntax newer than 3.10 (``except*``, PEP 695
generics, ...); the few 3.11+ library names are checked by name."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fer_perception"
NEWER_THAN_310 = {"tomllib", "StrEnum", "ExceptionGroup", "TaskGroup", "Self", "reveal_type", "assert_never"}


def test_package_parses_as_python_3_10():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        try:
            tree = ast.parse(source, feature_version=(3, 10))
        except SyntaxError as e:
            bad.append(f"{path.relative_to(PACKAGE)}:{e.lineno} {e.msg}")
            continue
        for node in ast.walk(tree):
            name = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name)
                    else None)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name.split(".")[-1] in NEWER_THAN_310 or (getattr(node, "module", None) == "tomllib"):
                        bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {alias.name}")
            elif name in NEWER_THAN_310:
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    assert not bad, f"not Python 3.10 (ROS 2 Humble): {bad}"
