"""Parameters on a ROS node: the specs of config/fer.yaml (fer_perception.params) declared with full
descriptors, and every change validated with the spec's own reason."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable, Mapping

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from fer_perception.params import ParameterValueError, ParamSpec, all_parameter_names, load_specs
from fer_perception.ros.compat import on_parameters_set


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ROS parameter descriptor of ``spec``: type, description, range and choices, so that
    ``ros2 param describe`` and rqt show the constraints of config/fer.yaml."""
    types = {
        "bool": ParameterType.PARAMETER_BOOL,
        "integer": ParameterType.PARAMETER_INTEGER,
        "double": ParameterType.PARAMETER_DOUBLE,
        "string": ParameterType.PARAMETER_STRING,
    }
    d = ParameterDescriptor(
        name=spec.name,
        type=types[spec.type_name],
        description=spec.description + (f" [{spec.unit}]" if spec.unit else ""),
        read_only=spec.read_only,
        # rclpy's own type check answers "Wrong parameter type, expected '3' got '4'"; with dynamic
        # typing the wrong type reaches ParameterSet, whose reason names the parameter and the types.
        dynamic_typing=True,
    )
    if spec.choices is not None:
        d.additional_constraints = "one of: " + ", ".join(map(str, spec.choices))
    if spec.range is not None:
        lo, hi, step = spec.range
        if spec.type_name == "integer":
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=int(step))]
        else:
            d.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=float(step))
            ]
    return d


Validator = Callable[[Any], "str | None"]

#: Parameters rclpy itself declares or reads on every node: never "unknown".
ROS_OWN_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})
ROS_OWN_PREFIXES = ("qos_overrides.",)


def unknown_parameter_warnings(given: Iterable[str], known: Iterable[str]) -> list[str]:
    """One line per start-up parameter that no fer node has (ROS ignores a misspelling silently),
    naming the closest real one. ``known``: every node's parameters, since global ``-p`` values and
    ``/**`` sections reach every node of a process (fer_bringup runs fer_camera beside fer_node)."""
    known = sorted(known)
    lines = []
    for name in sorted(set(given)):
        if name in known or name in ROS_OWN_PARAMETERS or name.startswith(ROS_OWN_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else "; see docs/node.md for the parameters"
        lines.append(f"unknown parameter {name!r} ignored{hint}")
    return lines


class ParameterSet:
    """Declares a node's parameters from their specs and validates every change.

    ``extra`` maps parameter names to further checks (returning a reason or None). ``on_change``
    is called after a successful change with {name: new value}.
    """

    def __init__(
        self,
        node,
        node_key: str,
        *,
        extra: Mapping[str, Validator] | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.node = node
        self.specs = load_specs(node_key)
        self.extra = dict(extra or {})
        self.values: dict[str, Any] = {}
        overrides = getattr(node, "_parameter_overrides", None)  # --params-file / -p / parameter_overrides
        overrides = overrides if isinstance(overrides, dict) else {}
        #: names given at start-up (--params-file, -p, parameter_overrides), not taken from fer.yaml
        self.explicit: frozenset[str] = frozenset(overrides) & frozenset(self.specs)
        for line in unknown_parameter_warnings(overrides, all_parameter_names()):
            node.get_logger().warning(line)
        for name, spec in self.specs.items():
            if name in overrides:
                self._check_override(overrides, name, spec)
            try:
                p = node.declare_parameter(name, spec.default, descriptor(spec))
            except InvalidParameterTypeException as e:
                raise ParameterValueError(f"parameter {name}: wrong type, expected {spec.type_name} ({e})") from None
            except InvalidParameterValueException as e:
                raise ParameterValueError(f"parameter {name}: {e}") from None
            value = p.value
            if spec.type_name == "double" and isinstance(value, int):
                value = float(value)
            reason = self.check(name, value)
            if reason:
                raise ParameterValueError(f"parameter {reason}")
            self.values[name] = value
        self._on_change = on_change
        on_parameters_set(node, self._on_set, self._post_set)  # (a shim on Humble: ros/compat.py)

    def _check_override(self, overrides: dict, name: str, spec: ParamSpec) -> None:
        """Validate a start-up value before rclpy sees it (clear reason; 2 -> 2.0 for doubles)."""
        value = overrides[name].value
        if spec.type_name == "double" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            overrides[name] = Parameter(name, Parameter.Type.DOUBLE, value)
        reason = self.check(name, value)
        if reason:
            raise ParameterValueError(f"parameter {reason}")

    def check(self, name: str, value: Any) -> str | None:
        spec = self.specs.get(name)
        if spec is None:
            return None
        reason = spec.validate(value)
        if reason is None and name in self.extra:
            reason = self.extra[name](value)
            if reason:
                reason = f"{name}: {reason}"
        return reason

    def _on_set(self, parameters: Iterable) -> Any:
        for p in parameters:
            if p.name not in self.specs:
                continue
            spec = self.specs[p.name]
            if spec.read_only:
                return SetParametersResult(
                    successful=False, reason=f"{p.name} is read-only: it is fixed at start-up"
                )
            reason = self.check(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _post_set(self, parameters: Iterable) -> None:
        changed = {}
        for p in parameters:
            if p.name in self.specs:
                value = p.value
                if self.specs[p.name].type_name == "double" and isinstance(value, int):
                    value = float(value)
                self.values[p.name] = value
                changed[p.name] = value
        if changed and self._on_change is not None:
            self._on_change(changed)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]
