"""The life of an entry point's ROS process: DDS set-up, rclpy init/shutdown, spinning, exit codes.

Shared by fer_node, fer_camera, fer_listener, fer_bringup and fer_demo, so that each ends the same
way on Ctrl-C, SIGTERM or a node asking to exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
from pathlib import Path

import rclpy
import rclpy.utilities
import yaml
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from fer_perception.ros.compat import events_executor_or_single
from fer_perception.ros.dds import ensure_fastdds_profile

EXIT_STARTUP_ERROR = 2  # model/parameters/messages unusable: nothing was started
EXIT_BACKEND_ERROR = 3  # backend failed at run time and exit_on_backend_error is true


class RosArgsError(ValueError):
    """ROS arguments (``--ros-args ...``) that cannot start a node; the message says which and why."""


def _params_files(argv: list[str]) -> list[str]:
    files, in_ros = [], False
    for i, token in enumerate(argv):
        if token == "--ros-args":
            in_ros = True
        elif token == "--":
            in_ros = False
        elif in_ros and token == "--params-file" and i + 1 < len(argv):
            files.append(argv[i + 1])
    return files


def check_params_file(path: str) -> None:
    """RosArgsError unless ``path`` is a readable ROS 2 parameters file: YAML whose top level maps
    node names (or ``/**``) to a ``ros__parameters`` mapping."""
    file = Path(path)
    if not file.is_file():
        raise RosArgsError(f"params file {path} does not exist")
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise RosArgsError(f"params file {path} cannot be read ({e})") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise RosArgsError(f"params file {path} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    shape = "sections like 'fer_node: {ros__parameters: {max_faces: 2}}' (or '/**:' for every node)"
    if not isinstance(data, dict) or not data:
        raise RosArgsError(f"params file {path} holds no parameter sections; expected {shape}")
    for node, section in data.items():
        params = section.get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(params, dict):
            raise RosArgsError(f"params file {path}: section {node!r} has no 'ros__parameters' mapping; "
                               f"expected {shape}")


def non_ros_args(argv: list[str]) -> list[str]:
    """``argv`` without its ROS arguments (and without the program name), after checking every
    ``--params-file``; RosArgsError with one clear reason when they cannot start a node."""
    for path in _params_files(argv):
        check_params_file(path)
    try:
        return rclpy.utilities.remove_ros_args(argv)[1:]
    except Exception as e:  # RCLInvalidROSArgsError: rcl's own text, first sentence
        text = str(e).split(", at ")[0]
        raise RosArgsError(f"invalid ROS arguments: {text}") from None


def make_executor():
    """Executor of a single-node process: FER_EXECUTOR=events (rclpy's C++ EventsExecutor) or
    single (SingleThreadedExecutor, the default)."""
    if os.environ.get("FER_EXECUTOR", "single") == "events":
        return events_executor_or_single()  # opt-in: not in every distribution's rclpy
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


@dataclasses.dataclass
class RosProcess:
    """What an entry point's ROS process owns: its nodes and executors, torn down by ``ros_process``.

    The executors are kept alive until rclpy's signal handling is torn down: each one registers a
    SIGINT guard condition that rclpy's signal thread triggers, and destroying an executor while a
    Ctrl-C is being delivered (the moment its spin loop returns) freed that guard condition under the
    thread's feet -- a segmentation fault (exit status -11) instead of a clean exit, seen in CI.
    """

    nodes: list = dataclasses.field(default_factory=list)
    executors: list = dataclasses.field(default_factory=list)

    def own(self, node=None, executor=None) -> None:
        """Leave ``node`` and/or ``executor`` to the process's teardown."""
        if node is not None:
            self.nodes.append(node)
        if executor is not None:
            self.executors.append(executor)

    def spin(self, node, executor) -> int:
        """The entry point's one node, spun on ``executor`` until exit; returns the exit status."""
        self.own(node, executor)
        executor.add_node(node)
        return spin_until_exit(executor, [node])


@contextlib.contextmanager
def ros_process(argv: list[str], *, end_of_process: bool = True):
    """Sets the Fast DDS profile, initialises rclpy, yields a ``RosProcess`` the caller hands its
    nodes and executors to, and always tears them down: nodes first, then rclpy (whose shutdown also
    stops its signal thread), then the executors. Ctrl-C, an external shutdown and whatever rclpy
    raises because a signal shut the context down mid-way end the block quietly (no traceback); the
    caller then returns status 0 after the ``with``. ``end_of_process`` (the entry points): the
    process exits after the block, so SIGINT stays ignored from the teardown on (see
    ``ignoring_sigint``).
    """
    ensure_fastdds_profile()
    rclpy.init(args=argv)
    process = RosProcess()
    try:
        yield process
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGINT/SIGTERM shut the context down from rclpy's signal handler at any moment, also
        # between creating a node and spinning it; whatever rclpy then raises ("context is not
        # valid") is that shutdown, not a crash. An error with the context still alive propagates.
        if rclpy.ok():
            raise
    finally:
        with ignoring_sigint(restore=not end_of_process):
            for node in process.nodes:
                try:
                    node.destroy_node()
                except Exception:
                    pass
            rclpy.try_shutdown()  # uninstalls rclpy's signal handlers: joins its signal thread
            for executor in process.executors:
                shutdown_executor(executor)
            process.executors.clear()


def shutdown_executor(executor) -> None:
    """Shut ``executor`` down, quietly; only after ``rclpy.try_shutdown()`` (see ``RosProcess``)."""
    if executor is None:
        return
    try:
        executor.shutdown(timeout_sec=1.0)
    except Exception:
        pass


@contextlib.contextmanager
def ignoring_sigint(restore: bool = True):
    """SIGINT ignored while a process tears its nodes down (and, with ``restore=False``, until it
    exits). Ctrl-C in a terminal reaches every process of the foreground group and `ros2 launch`
    then forwards its own SIGINT: that second one used to land in ``destroy_node`` as a
    KeyboardInterrupt traceback, or just after the teardown as Python's exit by SIGINT (status -2),
    instead of a clean exit 0. SIGTERM and launch's escalation to SIGKILL still stop a teardown
    that hangs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if restore:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def startup_error(prog: str, message: str) -> int:
    """One ``<prog>: error: <message>`` line on stderr; returns the start-up exit status (2)."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_STARTUP_ERROR
