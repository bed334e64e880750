"""Parameters of the fer_perception nodes: defaults and descriptors read from config/fer.yaml.

config/fer.yaml is the single source of parameter defaults. It is a normal ROS 2 parameters file;
the comment block above each parameter carries its description and constraints (see the header of
that file). This module parses it into :class:`ParamSpec` objects and validates values with a clear
reason; fer_perception.ros.params declares them on a node (with a full ``ParameterDescriptor``).

``python -m fer_perception.params --markdown`` prints the parameter tables of docs/node.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PACKAGE = "fer_perception"
CONFIG_NAME = "fer.yaml"
CONFIG_ENV = "FER_CONFIG"  # overrides where the defaults file is looked up (tests, custom installs)


class ParameterValueError(ValueError):
    """A parameter value that the node cannot run with; the message says which and why."""


SOURCE_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def config_candidates(name: str) -> list[Path]:
    """Where a file of config/ may be, in order: the source tree (editable installs; pip -e installs
    no data_files), the ament share directory of a colcon install, <prefix>/share/fer_perception/config
    (a non-editable pip install)."""
    candidates = [SOURCE_CONFIG_DIR / name]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "config" / name)
    except Exception:  # not installed through ament, or ament_index not importable
        pass
    candidates.append(Path(sys.prefix) / "share" / PACKAGE / "config" / name)
    return candidates


def config_path() -> Path:
    """Where config/fer.yaml is: $FER_CONFIG, else the first of :func:`config_candidates`."""
    candidates = ([Path(os.environ[CONFIG_ENV])] if os.environ.get(CONFIG_ENV) else []) + config_candidates(CONFIG_NAME)
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"{CONFIG_NAME} not found (looked at: {', '.join(str(c) for c in candidates)}); "
        f"set {CONFIG_ENV} to its path"
    )


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: tuple[Any, ...] | None = None
    range: tuple[float, float, float] | None = None  # (from, to, step)
    unit: str = ""

    @property
    def type_name(self) -> str:
        return _type_name(self.default)

    def validate(self, value: Any) -> str | None:
        """None if ``value`` is acceptable, else the reason it is not."""
        if _type_name(value) != self.type_name and not (
            self.type_name == "double" and _type_name(value) == "integer"
        ):
            article = "an" if self.type_name[0] in "aeiou" else "a"
            return f"{self.name} must be {article} {self.type_name}, got {value!r} ({_type_name(value)})"
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {', '.join(map(str, self.choices))}; got {value!r}"
        if self.range is not None:
            lo, hi, _ = self.range
            if not lo <= value <= hi:
                return f"{self.name} must be within [{_fmt(lo)}, {_fmt(hi)}]; got {value!r}"
        return None


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


_KEY = re.compile(r"^(\s+)([A-Za-z_][A-Za-z0-9_]*):")
_NODE = re.compile(r"^([A-Za-z_/*][^:\s]*):\s*$")


def parse_config(text: str) -> dict[str, dict[str, ParamSpec]]:
    """{node name: {parameter name: spec}} from the text of a fer.yaml-style parameters file."""
    values = yaml.safe_load(text) or {}
    comments: dict[tuple[str, str], list[str]] = {}
    node = None
    block: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        m_node = _NODE.match(line)
        if m_node:
            node, block = m_node.group(1), []
            continue
        if stripped.startswith("#"):
            block.append(stripped[1:].strip())
            continue
        m_key = _KEY.match(line)
        if m_key and node is not None and m_key.group(2) != "ros__parameters":
            comments[(node, m_key.group(2))] = block
        block = []
    specs: dict[str, dict[str, ParamSpec]] = {}
    for node_name, section in values.items():
        params = (section or {}).get("ros__parameters") or {}
        node_specs = {}
        for name, default in params.items():
            node_specs[name] = _spec_from_comment(name, default, comments.get((node_name, name), []))
        specs[node_name] = node_specs
    return specs


def _spec_from_comment(name: str, default: Any, lines: list[str]) -> ParamSpec:
    text: list[str] = []
    kw: dict[str, Any] = {}
    for line in lines:
        if not line.startswith("@"):
            text.append(line)
            continue
        tag, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        if tag == "read_only":
            kw["read_only"] = True
        elif tag == "choices":
            kw["choices"] = tuple(yaml.safe_load(rest))
        elif tag == "range":
            r = list(yaml.safe_load(rest))
            if len(r) == 2:
                r.append(0)
            kw["range"] = tuple(r)
        elif tag == "unit":
            kw["unit"] = rest
        else:
            raise ValueError(f"{name}: unknown tag @{tag} in {CONFIG_NAME}")
    if not text:
        raise ValueError(f"{name}: no description comment in {CONFIG_NAME}")
    spec = ParamSpec(name=name, default=default, description=" ".join(text), **kw)
    reason = spec.validate(default)
    if reason:
        raise ValueError(f"default of {reason} ({CONFIG_NAME})")
    return spec


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict[str, dict[str, ParamSpec]]:
    return parse_config(Path(path).read_text())


def load_specs(node_key: str, path: str | os.PathLike | None = None) -> dict[str, ParamSpec]:
    """Parameter specs of one node section (``fer_node``, ``fer_camera``) of config/fer.yaml."""
    all_specs = _load(str(path or config_path()))
    if node_key not in all_specs:
        raise KeyError(f"no '{node_key}' section in {path or config_path()}")
    return dict(all_specs[node_key])


def all_parameter_names(path: str | os.PathLike | None = None) -> frozenset[str]:
    """Every parameter of every node section (fer_node, fer_camera): a name none of them has is a typo."""
    return frozenset(name for specs in _load(str(path or config_path())).values() for name in specs)


def defaults(node_key: str) -> dict[str, Any]:
    return {name: spec.default for name, spec in load_specs(node_key).items()}


def markdown_table(node_key: str, path: str | os.PathLike | None = None) -> str:
    rows = [
        "| Parameter | Type | Default | Constraints | Live | Description |",
        "|---|---|---|---|---|---|",
    ]
    for spec in load_specs(node_key, path).values():
        cons = []
        if spec.choices is not None:
            cons.append(" / ".join(f"`{c}`" for c in spec.choices))
        if spec.range is not None:
            lo, hi, step = spec.range
            cons.append(f"{_fmt(lo)} .. {_fmt(hi)}" + (f" step {_fmt(step)}" if step else ""))
        if spec.unit:
            cons.append(spec.unit)
        if isinstance(spec.default, bool):
            default = f"`{str(spec.default).lower()}`"
        else:
            default = f"`{spec.default!r}`" if isinstance(spec.default, str) else f"`{spec.default}`"
        live = "no (read-only)" if spec.read_only else "yes"
        desc = spec.description.replace("|", "\\|")
        rows.append(f"| `{spec.name}` | {spec.type_name} | {default} | {', '.join(cons)} | {live} | {desc} |")
    return "\n".join(rows)


DOC_BEGIN = "<!-- BEGIN GENERATED PARAMETER TABLES: python -m fer_perception.params --update-doc docs/node.md -->"
DOC_END = "<!-- END GENERATED PARAMETER TABLES -->"


def markdown_tables(path: str | os.PathLike | None = None) -> str:
    path = path or config_path()
    parts = []
    for node_key in _load(str(path)):
        parts.append(f"#### `{node_key}`\n\n{markdown_table(node_key, path)}\n")
    return "\n".join(parts)


def update_doc(doc: str | os.PathLike, path: str | os.PathLike | None = None) -> bool:
    """Replace the generated tables between DOC_BEGIN and DOC_END in ``doc``; True if it changed."""
    doc = Path(doc)
    text = doc.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise ValueError(f"{doc} has no {DOC_BEGIN} ... {DOC_END} block")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    new = f"{head}{DOC_BEGIN}\n\n{markdown_tables(path)}\n{DOC_END}{tail}"
    if new != text:
        doc.write_text(new)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Inspect the parameters of config/fer.yaml.")
    parser.add_argument("--markdown", action="store_true", help="print the docs/node.md parameter tables")
    parser.add_argument("--update-doc", metavar="MD", help="rewrite the generated tables in this Markdown file")
    parser.add_argument("--config", help="parameters file (default: the installed config/fer.yaml)")
    args = parser.parse_args(argv)
    path = args.config or config_path()
    if args.update_doc:
        changed = update_doc(args.update_doc, path)
        print(f"{args.update_doc}: {'updated' if changed else 'up to date'}")
    elif args.markdown:
        print(markdown_tables(path))
    else:
        for node_key, specs in _load(str(path)).items():
            print(f"{node_key}:")
            for spec in specs.values():
                print(f"  {spec.name} = {spec.default!r}  # {spec.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
