"""The entry points' spin loops (fer_node, fer_camera, fer_listener, fer_demo) and shutdown by
signal: a SIGTERM that lands between the loop's ``ok()`` check and ``spin_once`` makes rclpy raise
RCLError ("context is not valid"). That must end the process with status 0 (seen once in CI as a
traceback and exit status 1), while a real error raised with the context still alive must still
propagate."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy")

from fer_perception.ros.process import spin_once_unless_shut_down, spin_until_exit  # noqa: E402


class ShutdownMidSpin:
    """An executor whose context is shut down (as by rclpy's signal handler) during spin_once."""

    def __init__(self, error: Exception, shut_down: bool) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.error, self.shut_down, self.spins = error, shut_down, 0

    def spin_once(self, timeout_sec: float) -> None:
        self.spins += 1
        if self.shut_down:
            self.context.try_shutdown()
        raise self.error

    def close(self) -> None:
        self.context.try_shutdown()


def test_shutdown_racing_spin_once_is_a_clean_exit():
    executor = ShutdownMidSpin(RuntimeError("failed to initialize wait set: the given context is not valid"),
                               shut_down=True)
    assert spin_until_exit(executor, []) == 0
    assert executor.spins == 1


def test_an_error_with_the_context_alive_still_propagates():
    executor = ShutdownMidSpin(ValueError("a real bug"), shut_down=False)
    try:
        with pytest.raises(ValueError, match="a real bug"):
            spin_until_exit(executor, [])
    finally:
        executor.close()


def test_spin_once_reports_the_shutdown_to_the_other_loops():
    """fer_listener and fer_demo run their own loops on the same helper."""
    executor = ShutdownMidSpin(RuntimeError("context is not valid"), shut_down=True)
    assert spin_once_unless_shut_down(executor, 0.1) is False


def test_a_signal_between_start_up_and_spinning_is_a_clean_exit():
    """SIGTERM right after the node came up, before its executor existed, ended fer_node with an
    RCLError traceback ("failed to create guard_condition: the given context is not valid") and
    status 1; ros_process now takes it as the shutdown it is. A real error still propagates."""
    from fer_perception.ros.process import ros_process

    with ros_process([], end_of_process=False) as process:
        assert process.nodes == [] and process.executors == []
        rclpy.shutdown()  # what rclpy's signal handler does
        rclpy.executors.SingleThreadedExecutor()  # raises: the context is not valid
    with pytest.raises(ValueError, match="a real bug"):
        with ros_process([], end_of_process=False):
            raise ValueError("a real bug")



def test_executors_outlive_rclpy_shutdown(monkeypatch):
    """An executor registers a SIGINT guard condition that rclpy's signal thread triggers on Ctrl-C;
    destroying the executor before rclpy.try_shutdown() has stopped that thread frees it under the
    thread's feet (fer_node exited with -11 in CI; a loop that shuts an executor down right after a
    SIGINT crashes within a few hundred rounds). So ros_process tears down nodes, then rclpy, then
    the executors -- also the one a caller handed over as a temporary."""
    import gc
    import weakref

    from fer_perception.ros import process as rp

    events: list[str] = []
    real_try_shutdown = rp.rclpy.try_shutdown

    class Executor:
        def __init__(self):
            self.context = rp.rclpy.get_default_context()

        def add_node(self, node):
            pass

        def spin_once(self, timeout_sec):
            pass

        def shutdown(self, timeout_sec=None):
            events.append("executor.shutdown")

    class Node:
        exit_code = 0  # asks to exit at once

        def destroy_node(self):
            events.append("node.destroy")

    def try_shutdown():
        events.append(f"rclpy.try_shutdown (executor alive: {executor_ref() is not None})")
        real_try_shutdown()

    monkeypatch.setattr(rp.rclpy, "try_shutdown", try_shutdown)
    executor_ref = None
    with rp.ros_process([], end_of_process=False) as process:
        executor = Executor()
        executor_ref = weakref.ref(executor)
        assert process.spin(Node(), executor) == 0
        del executor
        gc.collect()
    assert events == ["node.destroy", "rclpy.try_shutdown (executor alive: True)", "executor.shutdown"]
    assert process.executors == []
