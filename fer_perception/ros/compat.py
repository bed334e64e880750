"""The few rclpy APIs newer than ROS 2 Humble (JetPack 6 / Ubuntu 22.04), behind one function each.

Every other module uses rclpy as Humble has it; test/ros/test_compat.py checks that only this
module touches the newer names, and exercises each fallback on a node that lacks the new API.

* ``Node.add_post_set_parameters_callback`` (Iron+): on Humble a parameter change has only the
  validating on-set callback. The fallback calls ``post`` from inside it, after a successful
  validation (rclpy then stores the values; our ParameterSet keeps its own copy, so what ``post``
  updates is current either way).
* ``rclpy.experimental.EventsExecutor`` (Jazzy+; the opt-in FER_EXECUTOR=events): where rclpy has none,
  the SingleThreadedExecutor, with one line saying so.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable

from rclpy.executors import SingleThreadedExecutor

POST_SET_API = "add_post_set_parameters_callback"


def on_parameters_set(node, validate: Callable[[Iterable], Any], post: Callable[[Iterable], None]) -> None:
    """Register ``validate`` (returns a SetParametersResult) and ``post`` (called after a change was
    accepted) on ``node``, on every distribution."""
    add_post = getattr(node, POST_SET_API, None)
    if add_post is not None:
        node.add_on_set_parameters_callback(validate)
        add_post(post)
        return

    def validate_then_post(parameters):
        parameters = list(parameters)
        result = validate(parameters)
        if result.successful:
            post(parameters)
        return result

    node.add_on_set_parameters_callback(validate_then_post)


def events_executor_or_single(context: Any = None) -> Any:
    """rclpy's EventsExecutor where this rclpy has one, else a SingleThreadedExecutor (on
    ``context``, default: rclpy's default context)."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        print("FER_EXECUTOR=events: this rclpy has no EventsExecutor (Humble); "
              "using the SingleThreadedExecutor", file=sys.stderr, flush=True)
        return SingleThreadedExecutor(context=context)
    return EventsExecutor(context=context)
