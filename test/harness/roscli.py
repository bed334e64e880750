"""The real ROS 2 command line in tests: ``ros2 launch`` and ``ros2 <verb>`` from the venv.

scripts/bootstrap.sh dev installs them from ../shared/vendor (upstream launch, launch_ros, ros2cli);
without that folder the tests that use them skip with the reason. Processes run in their own
process group, are stopped the way a terminal's Ctrl-C stops them (SIGINT to the whole group), and
are killed by their group id when they do not end in time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rosharness import REPO, SHARED_DIR, patience

VENDOR_DIR = SHARED_DIR / "vendor"


def require_ros2_cli(prefix: str | os.PathLike = sys.prefix) -> Path:
    """The ``ros2`` executable of the venv at ``prefix``. Skips when ../shared/vendor is absent;
    fails (the set-up is incomplete, not a reason to skip) when it is present but not installed."""
    if not (VENDOR_DIR / "ros2").is_dir():
        pytest.skip(f"{VENDOR_DIR} not found: the real launch/ros2cli come from ../shared/vendor "
                    "(a full ROS 2 install has them); the ROS 2 CLI and launch tests need it")
    ros2 = Path(prefix) / "bin" / "ros2"
    if not ros2.exists():
        pytest.fail(f"{VENDOR_DIR} is present but {ros2} is not installed: run scripts/bootstrap.sh dev",
                    pytrace=False)
    return ros2


def cli_env(env: dict[str, str], prefix: str | os.PathLike = sys.prefix) -> dict[str, str]:
    """``env`` as after ``source <prefix>/setup.bash``: the prefix on AMENT_PREFIX_PATH and PATH."""
    out = dict(env)
    out["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in (str(prefix), env.get("AMENT_PREFIX_PATH", "")) if p)
    out["PATH"] = os.pathsep.join((str(Path(prefix) / "bin"), env.get("PATH", "")))
    return out


class GroupProcess:
    """A command in its own process group, stdout and stderr in one log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO) -> None:
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.popen = subprocess.Popen(self.argv, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      cwd=str(cwd), start_new_session=True)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + patience(timeout)
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in the output of {' '.join(self.argv)} "
                             f"(rc={self.popen.poll()}):\n{self.output()[-4000:]}")

    def ctrl_c(self, timeout: float = 30.0) -> int:
        """SIGINT to the whole group, as Ctrl-C in a terminal; the exit status. Killed (and an
        AssertionError) when it has not ended within ``timeout`` s."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=patience(timeout))
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{' '.join(self.argv)} did not exit within {timeout} s of SIGINT:\n"
                                     + self.output()[-4000:]) from None
        self.close_log()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL to the group (what is left of it), by its id."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=10)
        self.close_log()

    def close_log(self) -> None:
        if not self._log.closed:
            self._log.close()


def ros2_launch(ros2: Path, args: list[str], env: dict[str, str], log_path: Path) -> GroupProcess:
    """``ros2 launch fer_perception fer.launch.py ARGS`` (resolved through the ament index)."""
    return GroupProcess([ros2, "launch", "fer_perception", "fer.launch.py", *args], env, log_path)


def ros2_command(ros2: Path, args: list[str], env: dict[str, str], timeout: float = 60.0,
                 retry_for: float = 20.0) -> str:
    """``ros2 ARGS`` to completion; its stdout (AssertionError with the output on failure).

    "Node not found" is retried for ``retry_for`` s: the first ``ros2`` command of a domain starts
    the ros2 daemon, and the next ones ask that daemon, whose graph may not have discovered the node
    yet (as a person would type the command again)."""
    deadline = time.monotonic() + patience(retry_for)
    while True:
        try:
            done = subprocess.run([str(ros2), *args], env=env, capture_output=True, text=True,
                                  timeout=patience(timeout), cwd=str(REPO), start_new_session=True)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"ros2 {' '.join(args)} did not finish within {timeout} s: "
                                 f"{e.stdout} {e.stderr}") from None
        if done.returncode == 0:
            return done.stdout
        if "Node not found" not in done.stdout + done.stderr or time.monotonic() > deadline:
            raise AssertionError(f"ros2 {' '.join(args)} -> {done.returncode}:\n{done.stdout}\n{done.stderr}")
        time.sleep(0.5)


def assert_clean_launch_exit(rc: int, log: str, executables: list[str]) -> None:
    """``ros2 launch`` ended with 0 and the process of each of ``executables`` ended cleanly (launch
    logs ``[fer_node-2]: process has finished cleanly``): no traceback, no "process has died"."""
    assert rc == 0, f"ros2 launch exited {rc}:\n{log[-4000:]}"
    assert "Traceback" not in log, log[-4000:]
    assert "process has died" not in log, log[-4000:]
    for name in executables:
        assert re.search(rf"\[{name}-\d+\]: process has finished cleanly", log), (
            f"{name} did not finish cleanly:\n{log[-4000:]}")
