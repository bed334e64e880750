"""fer-experiments: plans subject-independent cells, runs one, skips it next time, writes the report."""

from __future__ import annotations

import json

from fer_training.experiments import main, plan_cells


def test_plan_cells(tiny_npz, tiny_ck_npz):
    cells = plan_cells({"fer": str(tiny_npz), "ck": str(tiny_ck_npz)}, ["arch1", "arch3"], None, 5)
    names = [c["name"] for c in cells]
    assert "fer__arch1__all" in names and "ck__arch3__fold4" in names
    assert len(cells) == 2 + 2 * 5
    assert len(plan_cells({"ck": str(tiny_ck_npz)}, ["arch1"], "0,2", 5)) == 2


def test_run_one_cell_then_skip_it(tiny_ck_npz, tmp_path, capsys):
    args = ["--out-dir", str(tmp_path / "exp"), "--cells-dir", str(tmp_path / "cells"),
            "--datasets", "ck", "--dataset-path", f"ck={tiny_ck_npz}",
            "--archs", "arch1", "--folds", "0", "--k", "5", "--epochs", "1", "--max-train-images", "40",
            "--results-md", str(tmp_path / "docs" / "results.md"),
            "--figure", str(tmp_path / "docs" / "figures" / "acc.png")]
    assert main(args) == 0
    cell = json.loads((tmp_path / "cells" / "ck__arch1__fold0.json").read_text())
    assert (tmp_path / "exp" / "runs" / "ck__arch1__fold0" / "model.keras").exists()  # checkpoints apart
    assert cell["epochs_run"] == 1 and "--split subject --fold 0 --folds 5" in cell["command"]
    assert cell["profile"] == "paper"
    md = (tmp_path / "docs" / "results.md").read_text()
    assert "| ck | arch1 |" in md and cell["command"] in md
    assert (tmp_path / "docs" / "figures" / "acc.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(args) == 0
    assert "skipping" in capsys.readouterr().out


def test_arch_lr_variant_cells_are_named_and_commanded_apart(tiny_ck_npz, tmp_path):
    from fer_training.experiments import cell_command

    cells = plan_cells({"ck": str(tiny_ck_npz)}, ["arch1", "arch2"], "0", 5, {"arch2": 0.001})
    by_arch = {c["arch"]: c for c in cells}
    assert by_arch["arch1"]["name"] == "ck__arch1__fold0" and by_arch["arch1"]["lr"] is None
    assert by_arch["arch2"]["name"] == "ck__arch2-lr0.001__fold0"
    cmd = cell_command(by_arch["arch2"], tmp_path, 5, [])
    assert cmd[cmd.index("--lr") + 1] == "0.001" and cmd[cmd.index("--arch") + 1] == "arch2"
    assert "--lr" not in cell_command(by_arch["arch1"], tmp_path, 5, [])


def test_bad_arch_lr_is_a_usage_error(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["--out-dir", str(tmp_path), "--arch-lr", "arch2=fast", "--dry-run"])
    assert exc.value.code == 2 and "--arch-lr wants ARCH=LR" in capsys.readouterr().err


def _cell(out, dataset, label, fold, acc, arch=None, conditions=None):
    out.mkdir(parents=True, exist_ok=True)
    name = f"{dataset}__{label}__fold{fold}"
    (out / f"{name}.json").write_text(json.dumps(dict(
        cell=name, dataset=dataset, arch=arch or label, label=label, fold=fold, val_accuracy=acc, params=10,
        train_seconds=60, epochs_run=5, best_epoch=3, command=f"fer-train {name}",
        conditions=conditions or dict(cpus=2, intra_op_threads="1", other_training_processes=1))))


def test_report_compares_architectures_on_the_folds_they_share(tmp_path):
    from fer_training.experiments import write_report

    cells = tmp_path / "exp" / "cells"
    for fold, acc in ((0, 0.90), (1, 0.80), (2, 0.70)):
        _cell(cells, "ck", "arch1", fold, acc)
    _cell(cells, "ck", "arch2-lr0.001", 1, 0.60, arch="arch2")
    _cell(cells, "ck", "arch2", 0, 0.20)  # the collapsed paper-recipe cell: shown, not compared
    _cell(cells, "fer", "arch3", 0, 0.60, conditions=dict(
        cpus=16, intra_op_threads="default", other_training_processes=8, backend="jax",
        accelerator="NVIDIA H100 80GB HBM3"))
    text = write_report(cells, tmp_path / "results.md", tmp_path / "fig.png")
    assert "| ck | arch1 | 80.00 % +- 8.16 | 3: 0,1,2 |" in text
    assert "| ck | arch2-lr0.001 | 60.00 % | 1: 1 |" in text and "| ck | arch2 | 20.00 % | 1: 0 |" in text
    # the fair comparison uses fold 1 only: arch1 80 %, not its 3-fold mean
    assert "compared on the 1 fold(s) every architecture has finished (1): arch1 80.00 %, arch2-lr0.001 60.00 %" in text
    assert "`arch2-lr0.001` = the paper recipe with initial Adam learning rate 0.001" in text
    assert "2 CPUs, no GPU, TensorFlow intra-op threads 1, 1 other training process(es)" in text
    assert "NVIDIA H100 80GB HBM3 with Keras backend jax, 16 CPUs, 8 other training process(es)" in text
    assert "held-out images that also chose that epoch" in text
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_run_conditions_name_backend_and_accelerator(monkeypatch, tmp_path):
    from fer_training.experiments import run_conditions

    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    c = run_conditions()
    assert c["accelerator"] == "none" and c["backend"] == "jax"
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3'\n")
    fake.chmod(0o755)
    assert run_conditions()["accelerator"] == "NVIDIA H100 80GB HBM3"


def test_parallel_jobs_and_the_cell_lock(tiny_ck_npz, tmp_path, capsys):
    import os
    import subprocess
    import sys

    from fer_training.experiments import _CellLock

    out = tmp_path / "exp"
    common = ["--out-dir", str(out), "--cells-dir", str(out / "cells"),
              "--datasets", "ck", "--dataset-path", f"ck={tiny_ck_npz}",
              "--archs", "arch1", "--k", "5", "--epochs", "1", "--max-train-images", "40",
              "--results-md", str(tmp_path / "results.md"), "--figure", str(tmp_path / "acc.png")]
    (out / "locks").mkdir(parents=True)
    # Fold 1 is being trained by another live process: this run leaves it alone.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / "locks" / "ck__arch1__fold1.lock").write_text(str(other.pid))
        # Fold 2's lock is stale (its process is gone): taken over.
        (out / "locks" / "ck__arch1__fold2.lock").write_text("999999999")
        assert main(common + ["--folds", "0,1,2", "--jobs", "2"]) == 0
    finally:
        other.kill()
        other.wait()
    text = capsys.readouterr().out
    assert f"[ck__arch1__fold1] being trained by process {other.pid}, skipping" in text
    assert "1 cell(s) left to the other process(es)" in text
    done = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert done == ["ck__arch1__fold0.json", "ck__arch1__fold2.json"]
    assert not (out / "locks" / "ck__arch1__fold2.lock").exists()
    lock = _CellLock(out / "locks" / "x.lock")
    assert lock.acquire() and lock.holder() == os.getpid() and lock.acquire()  # re-entrant for its owner
    lock.release()
    assert not (out / "locks" / "x.lock").exists()


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| data set")]


def test_committed_report_is_what_the_committed_cell_records_give(tmp_path):
    """docs/results.md is rebuilt from docs/results/cells; a hand edit of either shows up here."""
    from fer_training.experiments import DEFAULT_CELLS_DIR, REPO_ROOT, load_cells, write_report

    cells = load_cells(DEFAULT_CELLS_DIR)
    assert len(cells) >= 42 and all(c["cell"] == f"{c['dataset']}__{c['label']}__" + (
        "all" if c["fold"] is None else f"fold{c['fold']}") for c in cells)
    text = write_report(DEFAULT_CELLS_DIR, tmp_path / "results.md", tmp_path / "fig.png")
    committed = (REPO_ROOT / "docs" / "results.md").read_text()
    assert _table_rows(text) == _table_rows(committed)
    assert "from the cell records in `docs/results/cells`" in committed


def test_rebuilt_cells_say_so_in_the_report(tmp_path):
    from fer_training.experiments import write_report

    cells = tmp_path / "cells"
    _cell(cells, "ck", "arch1", 0, 0.9, conditions=dict(cpus=2, accelerator="none", backend="tensorflow"))
    record = json.loads((cells / "ck__arch1__fold0.json").read_text())
    record["recovered_from"] = "docs/results.md at commit abc"
    (cells / "ck__arch1__fold0.json").write_text(json.dumps(record))
    text = write_report(cells, tmp_path / "results.md", tmp_path / "fig.png")
    assert "2 CPUs, no GPU (cell rebuilt from docs/results.md at commit abc" in text
