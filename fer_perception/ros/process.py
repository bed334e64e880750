"""The life of an entry point's ROS process: DDS set-up, rclpy init/shutdown, spinning, exit codes.

Shared by fer_node, fer_camera, fer_listener, fer_bringup and fer_demo, so that each ends the same
way on Ctrl-C, SIGTERM or a node asking to exit.
"""

from __future__ import annotations

import contextlib
import os
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from fer_perception.ros.dds import ensure_fastdds_profile

EXIT_STARTUP_ERROR = 2  # model/parameters/messages unusable: nothing was started
EXIT_BACKEND_ERROR = 3  # backend failed at run time and exit_on_backend_error is true


def make_executor():
    """Executor of a single-node process: FER_EXECUTOR=events (rclpy's C++ EventsExecutor) or
    single (SingleThreadedExecutor, the default)."""
    if os.environ.get("FER_EXECUTOR", "single") == "events":
        from rclpy.experimental import EventsExecutor  # opt-in: not in every distribution's rclpy

        return EventsExecutor()
    return SingleThreadedExecutor()


def spin_once_unless_shut_down(executor, timeout_sec: float) -> bool:
    """``executor.spin_once``; False when the context was shut down meanwhile.

    SIGINT/SIGTERM shut the context down from rclpy's signal handler; one landing between a loop's
    ``ok()`` check and ``spin_once`` makes rclpy raise RCLError ("context is not valid"). That is a
    normal shutdown, not a crash; an error with the context still alive propagates.
    """
    try:
        executor.spin_once(timeout_sec=timeout_sec)
    except Exception:
        if rclpy.ok(context=executor.context):
            raise
        return False
    return True


def spin_until_exit(executor, nodes) -> int:
    """Spin until shutdown (SIGINT/SIGTERM) or a node asks to exit; returns the exit status.

    Every node in ``nodes`` has an ``exit_code`` (None while it wants to run)."""
    try:
        while rclpy.ok(context=executor.context):
            codes = [n.exit_code for n in nodes if n.exit_code is not None]
            if codes:
                return codes[0]
            if not spin_once_unless_shut_down(executor, 0.25):
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    codes = [n.exit_code for n in nodes if n.exit_code is not None]
    return codes[0] if codes else 0


@contextlib.contextmanager
def ros_process(argv: list[str]):
    """Sets the Fast DDS profile, initialises rclpy, yields a list the caller adds its nodes to, and
    always destroys them and shuts rclpy down. Ctrl-C and an external shutdown end the block
    quietly (no traceback); the caller then returns status 0 after the ``with``.
    """
    ensure_fastdds_profile()
    rclpy.init(args=argv)
    nodes: list = []
    try:
        yield nodes
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            try:
                node.destroy_node()
            except Exception:
                pass
        rclpy.try_shutdown()


def startup_error(prog: str, message: str) -> int:
    """One ``<prog>: error: <message>`` line on stderr; returns the start-up exit status (2)."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_STARTUP_ERROR
