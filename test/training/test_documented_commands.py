"""Every fer-*/fer_* command line of README.md and docs/training.md, executed as written on tiny data.

The commands run in a scratch folder laid out like the repository root beside ../shared: its
``../shared/data/fer2013.npz`` and ``ckplus48.npz`` are tiny generated data sets of the same schema,
``my_faces/`` is a small folder-per-class set, ``clip.mp4`` a short video; ``.venv``, ``training``,
``config`` and ``fer_perception`` are links to the repository's. Two rewrites keep it short, and
nothing else is changed: ``--epochs N`` becomes ``--epochs 1``, and the grid's records go to the
scratch folder (FER_RESULTS_ROOT). Entry points that run until Ctrl-C (the nodes, the listener) must
come up, stay up for a few seconds and end with status 0 on SIGINT; every other command must exit 0.

Lines that cannot run here are listed in EXEMPT with the reason; a test checks the list stays short
and that every entry still matches a documented line.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import rosharness as rh
from .conftest import FER_NAMES, synthetic_faces

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: the venv running the tests (.venv, or .venv-jazzy under FER_ROS_DISTRO=jazzy): documented commands use its programs
VENV = Path(sys.prefix)
DOCS = (REPO / "README.md", REPO / "docs" / "training.md")
#: A documented line that cannot run on this machine (a regular expression searched in it) -> why.
EXEMPT = {
    r"^KERAS_BACKEND=jax ": "needs JAX, which the dev venv does not install (a GPU box has it, TensorFlow not)",
    r"^fer-experiments$": "the whole grid: 44 cells, hours at full size and minutes even on tiny data",
    r"--dataset-path imed=/data/imed": "a data set of your own at /data/imed, and a 40-cell grid",
}
#: Entry points that run until Ctrl-C: up for UP_SECONDS, then SIGINT must end them with status 0.
LONG_RUNNING = ("fer_node", "fer_bringup", "fer_listener", "fer_camera")
UP_SECONDS = 6.0
#: Order of execution: a command reads what an earlier kind wrote (train -> export -> evaluate).
KIND_ORDER = ("fer-train", "fer-export", "fer-evaluate", "fer-experiments", "fer_demo", *LONG_RUNNING)


@dataclass(frozen=True)
class DocCommand:
    doc: str
    line: int
    text: str  # as documented, continuation lines joined, trailing comment removed

    @property
    def program(self) -> str:
        for token in shlex.split(self.text):
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", token):
                return Path(token).name
        return ""

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def _code_lines(text: str):
    """(line number, line) of every line inside ``` fences or 4-space indented blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            yield number, line.strip()


def documented_commands() -> list[DocCommand]:
    out = []
    for doc in DOCS:
        pending, start = "", 0
        for number, line in _code_lines(doc.read_text()):
            if not pending:
                start = number
            line = re.sub(r"\s+#\s.*$", "", line)  # trailing comment
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            text, pending = (pending + line).strip(), ""
            cmd = DocCommand(doc.relative_to(REPO).as_posix(), start, re.sub(r"\s+", " ", text))
            if re.fullmatch(r"fer[-_][a-z_]+", cmd.program or ""):
                out.append(cmd)
    return out


def exemption(cmd: DocCommand) -> str | None:
    return next((why for pattern, why in EXEMPT.items() if re.search(pattern, cmd.text)), None)


def test_the_documents_name_the_commands_users_run():
    commands = documented_commands()
    programs = {c.program for c in commands}
    assert {"fer-train", "fer-evaluate", "fer-export", "fer-experiments", "fer_demo", "fer_node"} <= programs
    assert len(commands) >= 20, [str(c) for c in commands]


def test_the_exemption_list_is_short_and_every_entry_still_matches_a_line():
    commands = documented_commands()
    assert len(EXEMPT) <= 4
    for key in EXEMPT:
        assert any(exemption(c) == EXEMPT[key] for c in commands), f"EXEMPT entry {key!r} matches no documented line"
    assert sum(exemption(c) is not None for c in commands) <= len(EXEMPT)


# --------------------------------------------------------------------------------- the scratch tree
def _scratch_tree(root: Path) -> Path:
    work, data = root / "work", root / "shared" / "data"
    data.mkdir(parents=True)
    work.mkdir()
    (work / ".venv").symlink_to(VENV)
    for name in ("training", "config", "fer_perception"):
        (work / name).symlink_to(REPO / name)
    images, labels = synthetic_faces(280)
    vote_names = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                  "unknown", "NF"]
    fer_to_vote = [4, 5, 6, 1, 3, 2, 0]  # angry..neutral -> their FER+ columns, by name
    votes = np.zeros((len(labels), 10), np.int64)
    votes[np.arange(len(labels)), np.array(fer_to_vote)[labels]] = 10
    np.savez(data / "fer2013.npz", images=images, labels=labels, label_names=np.array(FER_NAMES),
             split=np.array(["train"] * 210 + ["public_test"] * 70), subject=np.array([""] * 280),
             ferplus_votes=votes, ferplus_vote_names=np.array(vote_names))
    images, labels = synthetic_faces(210, seed=3)
    np.savez(data / "ckplus48.npz", images=images, labels=labels,
             label_names=np.array(["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]),
             split=np.array(["all"] * 210), subject=np.array([f"S{100 + i % 20:03d}" for i in range(210)]))
    images, labels = synthetic_faces(60, num_classes=2, seed=5)
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = work / "my_faces" / ("happy" if label == 0 else "surprise")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    writer = cv2.VideoWriter(str(work / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for i in range(20):
        writer.write(np.full((240, 320, 3), 10 * i, np.uint8))
    writer.release()
    return work


def _argv(cmd: DocCommand, work: Path) -> tuple[list[str], dict[str, str]]:
    env_prefix, argv = {}, []
    for token in shlex.split(cmd.text):
        if not argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", token):
            key, _, value = token.partition("=")
            env_prefix[key] = value
            continue
        argv.append(token)
    program = argv[0]
    argv[0] = str(work / program) if "/" in program else str(VENV / "bin" / program)
    for i, token in enumerate(argv[:-1]):
        if token == "--epochs":
            argv[i + 1] = "1"
    return argv, env_prefix


def _run(cmd: DocCommand, work: Path, env: dict[str, str], log: Path) -> str:
    argv, env_prefix = _argv(cmd, work)
    run_env = dict(env, **env_prefix)
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=work, env=run_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            if cmd.program in LONG_RUNNING:
                try:
                    proc.wait(timeout=rh.patience(UP_SECONDS))
                    raise AssertionError(f"{cmd} ended on its own (status {proc.returncode}); it should run "
                                         f"until Ctrl-C:\n{log.read_text()[-3000:]}")
                except subprocess.TimeoutExpired:
                    pass
                proc.send_signal(signal.SIGINT)
            proc.wait(timeout=rh.patience(300))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, f"{cmd}\nexit status {proc.returncode}:\n{text[-4000:]}"
    assert "Traceback" not in text, f"{cmd}\n{text[-4000:]}"
    return text


def test_every_documented_command_runs_on_tiny_data(tmp_path, ros_env):
    pytest.importorskip("tensorflow")
    work = _scratch_tree(tmp_path)
    env = dict(ros_env, FER_SHARED_DIR=str(tmp_path / "shared"), FER_RESULTS_ROOT=str(work),
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    commands = [c for c in documented_commands() if exemption(c) is None]
    commands.sort(key=lambda c: KIND_ORDER.index(c.program) if c.program in KIND_ORDER else len(KIND_ORDER))
    outputs = {}
    for i, cmd in enumerate(commands):
        outputs[str(cmd)] = _run(cmd, work, env, tmp_path / f"cmd_{i:02d}.log")
    # The road from training to the node: the exported models name their own classes.
    import json

    assert json.loads((work / "my_model" / "model.json").read_text())["labels"] == list(FER_NAMES)
    assert json.loads((work / "my_ck_model" / "model.json").read_text())["labels"] == [
        "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    demo = next(text for name, text in outputs.items() if "fer_demo --model my_model/model.onnx" in name)
    assert "fer_demo:" in demo and "frames with" in demo
    assert sys.executable  # the commands ran with the project's venv, not this interpreter
