"""Start-up errors of every entry point: one documented line on stderr and exit status 2, never a
traceback; unknown parameter names are reported (and the node runs on)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]
NODE_DOC = REPO / "docs" / "node.md"
ENTRY_POINTS = {"fer_node": "fer_perception.ros.node", "fer_camera": "fer_perception.ros.camera_source",
                "fer_listener": "fer_perception.ros.listener", "fer_bringup": "fer_perception.ros.bringup",
                "fer_demo": "fer_perception.ros.demo"}
#: The "start-up problem" column of the docs/node.md table -> the arguments that cause it.
CASES = {
    "`--params-file missing.yaml`": ["--ros-args", "--params-file", "missing.yaml"],
    "a file that is not YAML": ["--ros-args", "--params-file", "bad.yaml"],
    "YAML without `ros__parameters` sections": ["--ros-args", "--params-file", "empty.yaml"],
    "a wrong type (`-p max_faces:=two`)": ["--ros-args", "-p", "max_faces:=two"],
    "a value outside its range (`-p confidence_threshold:=1.5`)": ["--ros-args", "-p", "confidence_threshold:=1.5"],
}


def documented_rows(marker: str) -> dict[str, list[str]]:
    text = NODE_DOC.read_text()
    block = text.split(f"<!-- {marker}:begin -->")[1].split(f"<!-- {marker}:end -->")[0]
    rows = {}
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows[cells[0]] = [c.strip("`") for c in cells[1:]]
    return rows


def run(entry: str, args: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", ENTRY_POINTS[entry], *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def params_dir(tmp_path):
    (tmp_path / "bad.yaml").write_text("fer_node:\n  ros__parameters:\n    max_faces: [1, 2\n")
    (tmp_path / "empty.yaml").write_text("just a string\n")
    return tmp_path


def test_every_documented_start_up_error_is_the_documented_line(params_dir, ros_env):
    rows = documented_rows("startup-errors")
    assert set(rows) == set(CASES), "docs/node.md's start-up table and this test name different cases"
    for case, args in CASES.items():
        proc = run("fer_node", args, params_dir, ros_env)
        assert proc.returncode == 2, (case, proc.returncode, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert proc.stderr.strip().splitlines()[-1] == rows[case][0], case


@pytest.mark.parametrize("entry", ["fer_camera", "fer_listener", "fer_bringup", "fer_demo"])
def test_every_entry_point_refuses_a_missing_params_file_in_one_line(entry, params_dir, ros_env):
    for args in (["--ros-args", "--params-file", "missing.yaml"], ["--ros-args", "--params-file", "bad.yaml"]):
        proc = run(entry, args, params_dir, ros_env)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (entry, proc.stderr[-2000:])
        assert re.fullmatch(rf"{entry}: error: params file \S+ (does not exist|is not valid YAML.*)",
                            proc.stderr.strip().splitlines()[-1]), proc.stderr
    if entry in ("fer_bringup", "fer_demo"):  # their own --params-file flag too
        proc = run(entry, ["--params-file", "missing.yaml"], params_dir, ros_env)
        assert proc.returncode == 2 and proc.stderr.strip().endswith("params file missing.yaml does not exist")


def test_unknown_parameter_names_are_reported_with_the_closest_real_one(params_dir, ros_env, random_onnx):
    good = params_dir / "typo.yaml"
    good.write_text("fer_node:\n  ros__parameters:\n    confidence_treshold: 0.5\n    use_sim_time: false\n"
                    "    qos_overrides./parameter_events.publisher.depth: 100\n    rate: 5.0\n")
    proc = subprocess.Popen([sys.executable, "-m", ENTRY_POINTS["fer_node"], "--ros-args", "--params-file",
                             str(good), "-p", "max_face:=2", "-p", f"model_path:={random_onnx}"],
                            cwd=params_dir, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "active:" in line:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = "".join(lines)
    assert "unknown parameter 'max_face' ignored; did you mean max_faces?" in text, text
    assert "unknown parameter 'confidence_treshold' ignored; did you mean confidence_threshold?" in text
    assert "use_sim_time" not in text and "qos_overrides" not in text  # ROS's own
    assert "'rate'" not in text  # fer_camera's: global values reach every node of a process
    assert "active:" in text  # and the node runs on
    assert proc.returncode == 0
