"""``fer-experiments``: the paper's grid (ARCH-1..4 x data sets) with the paper recipe, cell by cell.

Each cell is one ``fer-train`` run in a subprocess (so the command recorded for a cell is exactly
the command that reproduces it). Its checkpoints live under ``<out-dir>/runs/<cell>`` (an interrupted
cell resumes from its last epoch); a finished cell leaves a small record,
``<cells-dir>/<dataset>__<arch>__<fold>.json``, and is skipped next time. The records are kept in the
repository (``docs/results/cells/`` by default) because a grid outlives the machines that train it:
they are what ``docs/results.md`` and the bar chart (like the paper's Figure 5) are rebuilt from,
after every cell.

    fer-experiments                                                  # the whole grid
    fer-experiments --archs arch1,arch3 --datasets ckplus --folds 0,1 --epochs 30
    fer-experiments --dataset-path imed=/data/imed_faces --datasets imed
    fer-experiments --report-only                                    # just rewrite the report
    fer-experiments --jobs 4                                         # 4 cells at once (cores / a GPU)

Data sets: ``fer2013`` (official Training / PublicTest split), ``ckplus`` (10-fold
subject-independent cross-validation, CK+'s own 7 classes incl. contempt), and any other
``name=path`` (npz/csv/folder; subject folds if it has subject ids, else a stratified split).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .cli import HelpFormatter
from .models import ARCHITECTURES, PAPER_PARAM_COUNTS, normalise_arch_name

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = Path(os.environ.get("FER_SHARED_DIR", REPO_ROOT.parent / "shared"))
#: Where the grid's records go by default (docs/results.md, docs/results/cells/, runs/experiments/):
#: the repository, unless FER_RESULTS_ROOT names another folder (the documented-commands test).
RESULTS_ROOT = Path(os.environ.get("FER_RESULTS_ROOT", REPO_ROOT))
DEFAULT_CELLS_DIR = RESULTS_ROOT / "docs" / "results" / "cells"
DEFAULT_DATASETS = {
    "fer2013": str(DEFAULT_SHARED / "data" / "fer2013.npz"),
    "ckplus": str(DEFAULT_SHARED / "data" / "ckplus48.npz"),
}
PAPER_ACCURACY = {  # Chowanda 2021, Figure 5 / text (their augmented random splits, not ours)
    ("fer2013", "arch1"): 0.703,
    ("ckplus", "arch1"): 0.994,
}


def cell_name(dataset: str, arch: str, fold) -> str:
    return f"{dataset}__{arch}__{'all' if fold is None else f'fold{fold}'}"


def _split_args(dataset: str, path: str, fold, k: int) -> list[str]:
    if fold is None:
        return ["--split", "auto"]
    return ["--split", "subject", "--fold", str(fold), "--folds", str(k)]


def arch_label(arch: str, lr: float | None) -> str:
    """How a cell's architecture is named in cell files and the report: ``arch2``, or ``arch2-lr0.001``
    when the paper recipe runs with another initial learning rate (``--arch-lr``)."""
    return arch if lr is None else f"{arch}-lr{lr:g}"


def plan_cells(datasets: dict[str, str], archs, folds_arg: str | None, k: int,
               arch_lr: dict[str, float] | None = None) -> list[dict]:
    from . import data as fdata

    cells = []
    for ds_name, path in datasets.items():
        ds = fdata.load_dataset(path)
        names = set(ds.split_names())
        official = "train" in names and bool(names & {"public_test", "val", "validation", "test"})
        if official:
            folds = [None]
        elif ds.subjects is not None:
            folds = list(range(k)) if not folds_arg else [int(f) for f in folds_arg.split(",")]
        else:
            folds = [None]  # stratified split inside fer-train (--split auto)
        for arch in archs:
            lr = (arch_lr or {}).get(arch)
            label = arch_label(arch, lr)
            for fold in folds:
                cells.append(dict(dataset=ds_name, path=path, arch=arch, lr=lr, label=label, fold=fold,
                                  name=cell_name(ds_name, label, fold)))
    return cells


def cell_command(cell: dict, out_dir: Path, k: int, extra: list[str]) -> list[str]:
    run_dir = out_dir / "runs" / cell["name"]
    lr = ["--lr", f"{cell['lr']:g}"] if cell.get("lr") is not None else []
    return ["fer-train", "--data", cell["path"], "--arch", cell["arch"], "--profile", "paper", *lr,
            *_split_args(cell["dataset"], cell["path"], cell["fold"], k), "--run-dir", str(run_dir), *extra]


def accelerator_name() -> str:
    """The GPU the cell trains on (``nvidia-smi``), or "none"."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "none"
    names = [n.strip() for n in out.stdout.splitlines() if n.strip()] if out.returncode == 0 else []
    return ", ".join(names) or "none"


def run_conditions() -> dict:
    """What the training time of a cell depends on: cores, the Keras backend and accelerator,
    TensorFlow's intra-op threads, and how many other training processes shared the machine when the
    cell started."""
    others = 0
    try:
        import psutil

        for proc in psutil.process_iter(["pid", "cmdline"]):
            argv = proc.info.get("cmdline") or []
            if proc.info["pid"] != os.getpid() and any(os.path.basename(a) == "fer-train" for a in argv[:3]):
                others += 1
    except Exception:  # psutil missing or a process vanished: the count is informative only
        others = -1
    return dict(cpus=os.cpu_count(), intra_op_threads=os.environ.get("TF_NUM_INTRAOP_THREADS") or "default",
                other_training_processes=others, backend=os.environ.get("KERAS_BACKEND", "tensorflow"),
                accelerator=accelerator_name())


def run_cell(cell: dict, out_dir: Path, cells_dir: Path, k: int, extra: list[str], log=print) -> dict | None:
    cells_dir.mkdir(parents=True, exist_ok=True)
    result_path = cells_dir / f"{cell['name']}.json"
    if result_path.exists():
        log(f"[{cell['name']}] done already, skipping")
        return json.loads(result_path.read_text())
    (out_dir / "locks").mkdir(parents=True, exist_ok=True)
    lock = _CellLock(out_dir / "locks" / f"{cell['name']}.lock")
    if not lock.acquire():
        log(f"[{cell['name']}] being trained by process {lock.holder()}, skipping")
        return dict(cell=cell["name"], busy=True)
    try:
        return _run_cell_locked(cell, out_dir, k, extra, result_path, log)
    finally:
        lock.release()


class _CellLock:
    """A lock file holding the pid of the process training a cell, so that several fer-experiments
    (``--jobs``, or separate invocations sharing an --out-dir) never train the same cell at once.
    A lock whose process is gone (killed, machine restarted) is taken over."""

    def __init__(self, path: Path):
        self.path = path

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def acquire(self) -> bool:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = self.holder()
                if pid is not None and pid != os.getpid() and _alive(pid):
                    return False
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            return True
        return False

    def release(self) -> None:
        if self.holder() == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_cell_locked(cell: dict, out_dir: Path, k: int, extra: list[str], result_path: Path, log) -> dict | None:
    if result_path.exists():  # finished by another process while this one waited
        return json.loads(result_path.read_text())
    cmd = cell_command(cell, out_dir, k, extra)
    run_dir = Path(cmd[cmd.index("--run-dir") + 1])
    resume = (run_dir / "state.json").exists()
    exe = [str(Path(sys.executable).with_name("fer-train"))] if Path(sys.executable).with_name("fer-train").exists() \
        else [sys.executable, "-m", "fer_training.train"]
    argv = exe + (["--run-dir", str(run_dir), "--resume"] if resume else cmd[1:])
    log(f"[{cell['name']}] {'resuming' if resume else 'training'}: {shlex.join(cmd)}", flush=True)
    conditions = run_conditions()
    t0 = time.time()
    rc = subprocess.call(argv)
    if rc != 0 or not (run_dir / "results.json").exists():
        log(f"[{cell['name']}] FAILED (exit {rc}); rerun to resume it")
        return None
    res = json.loads((run_dir / "results.json").read_text())
    res.update(cell=cell["name"], dataset=cell["dataset"], arch=cell["arch"], label=cell["label"], fold=cell["fold"],
               command=shlex.join(cmd), wall_seconds=round(time.time() - t0, 1), conditions=conditions)
    result_path.write_text(json.dumps(res, indent=2))
    return res


def load_cells(cells_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(cells_dir.glob("*.json"))]


def aggregate(results: list[dict]) -> dict[tuple[str, str], dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r.get("label", r["arch"])), []).append(r)
    out = {}
    for key, rs in groups.items():
        acc = np.array([r["val_accuracy"] for r in rs])
        out[key] = dict(
            accuracy=float(acc.mean()), std=float(acc.std()) if len(acc) > 1 else 0.0, n=len(rs),
            params=rs[0].get("params"), train_seconds=float(sum(r.get("train_seconds", 0) for r in rs)),
            epochs=[r.get("epochs_run") for r in rs], best_epochs=[r.get("best_epoch") for r in rs],
            commands=[r.get("command", "") for r in rs], cells=[r["cell"] for r in rs],
            folds=[r.get("fold") for r in rs], by_fold={r.get("fold"): r["val_accuracy"] for r in rs},
            arch=rs[0]["arch"],
        )
    return out


def plot_figure(agg: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({d for d, _ in agg})
    arch_of = {label: g["arch"] for (_, label), g in agg.items()}
    archs = sorted(arch_of, key=lambda label: (ARCHITECTURES.index(arch_of[label]), label))
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    width = 0.8 / max(len(archs), 1)
    for i, arch in enumerate(archs):
        xs, ys, es = [], [], []
        for j, d in enumerate(datasets):
            if (d, arch) in agg:
                xs.append(j + (i - (len(archs) - 1) / 2) * width)
                ys.append(100 * agg[(d, arch)]["accuracy"])
                es.append(100 * agg[(d, arch)]["std"])
        bars = ax.bar(xs, ys, width, yerr=es, capsize=3, label=arch.upper().replace("ARCH", "ARCH-").replace("-LR", " lr "))
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Accuracy per architecture and data set (paper recipe, our splits)")
    ax.legend(ncol=4, fontsize=8, loc="lower center")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def paired_comparison(agg: dict) -> list[str]:
    """Fold-wise data sets whose architectures have not all finished the same folds: compare them on
    the folds they share, so a partial grid never ranks architectures on different faces."""
    lines = []
    for d in sorted({d for d, _ in agg}):
        groups = {a: g for (dd, a), g in agg.items() if dd == d}
        # An architecture also run with another learning rate (--arch-lr) is compared in that form;
        # its paper-recipe row stays in the table as evidence of why.
        groups = {a: g for a, g in groups.items()
                  if not (a == g["arch"] and any(o != a and og["arch"] == a for o, og in groups.items()))}
        fold_sets = [set(g["by_fold"]) for g in groups.values()]
        if len(groups) < 2 or None in fold_sets[0] or all(f == fold_sets[0] for f in fold_sets):
            continue
        common = sorted(set.intersection(*fold_sets))
        if not common:
            lines += ["", f"{d}: the architectures share no finished fold yet, so they cannot be compared."]
            continue
        means = ", ".join(f"{a} {100 * np.mean([g['by_fold'][f] for f in common]):.2f} %"
                          for a, g in sorted(groups.items()))
        lines += ["", f"{d}, compared on the {len(common)} fold(s) every architecture has finished "
                      f"({','.join(map(str, common))}): {means}."]
    return lines


def conditions_summary(results: list[dict]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for r in results:
        c = r.get("conditions")
        if r.get("recovered_from") and c:
            key = (f"{c['cpus']} CPUs, no GPU (cell rebuilt from {r['recovered_from']}, which kept per cell "
                   "neither the threads nor the other runs sharing the machine)")
        elif not c:
            key = "not recorded"
        elif c.get("accelerator", "none") != "none":
            key = (f"{c['accelerator']} with Keras backend {c.get('backend')}, {c['cpus']} CPUs, "
                   f"{c['other_training_processes']} other training process(es) running at the start")
        else:
            key = (f"{c['cpus']} CPUs, no GPU, TensorFlow intra-op threads {c['intra_op_threads']}, "
                   f"{c['other_training_processes']} other training process(es) running at the start")
        seen.setdefault(key, []).append(r["cell"])
    if not seen:
        return []
    lines = ["", "Training times depend on where a cell ran and what shared the machine (on the 2-core "
                 "development VM cells often ran two at a time):", ""]
    for key, cells in sorted(seen.items()):
        lines.append(f"- {key}: {len(cells)} cell(s)")
    return lines


def _shown_path(path: Path) -> str:
    """A path as the report names it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def write_report(cells_dir: Path, md_path: Path, fig_path: Path, planned: list[dict] | None = None) -> str:
    results = load_cells(cells_dir)
    agg = aggregate(results)
    lines = [
        "# Results: ARCH-1..4 with the paper recipe",
        "",
        "Generated by `fer-experiments` from the cell records in "
        f"`{_shown_path(cells_dir)}` (do not edit by hand; rerun `fer-experiments --report-only`).",
        "Protocol: see docs/training.md. FER2013 = Training (28,709) / PublicTest (3,589), best epoch selected on "
        "PublicTest; CK+ = subject-independent 10-fold cross-validation, mean +- std over the folds run. "
        "The paper augmented before splitting (its validation images are augmented copies of training images) "
        "and split CK+ at random, so its figures are not directly comparable: both inflate its numbers, "
        "the random CK+ split most (the same person's neutral-to-apex frames land on both sides).",
        "Model selection: as in the paper, each cell reports the accuracy of its best epoch on the held-out "
        "images that also chose that epoch and stopped training (PublicTest; the held-out CK+ fold), which is "
        "optimistic by a point or so; FER2013 PrivateTest, measured outside this project, is the unbiased figure.",
        "",
        "| data set | arch | accuracy | folds | params | training time | epochs (best) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (d, a), g in sorted(agg.items()):
        acc = f"{100 * g['accuracy']:.2f} %" + (f" +- {100 * g['std']:.2f}" if g["n"] > 1 else "")
        paper = PAPER_ACCURACY.get((d, a))
        if paper:
            acc += f" (paper {100 * paper:.1f} %)"
        folds = "all" if g["folds"] == [None] else f"{g['n']}: " + ",".join(str(f) for f in sorted(g["folds"]))
        lines.append(f"| {d} | {a} | {acc} | {folds} | {g['params']:,} | {g['train_seconds'] / 60:.1f} min | "
                     + ", ".join(f"{e} ({b})" for e, b in zip(g["epochs"], g["best_epochs"])) + " |")
    variants = sorted({(c.get("label", c["arch"]), c["arch"]) for c in [*results, *(planned or [])]
                       if c.get("label", c["arch"]) != c["arch"]})
    for label, arch in variants:
        lr = label.split("-lr", 1)[1]
        lines += ["", f"`{label}` = the paper recipe with initial Adam learning rate {lr} instead of 0.01 "
                      f"(`--arch-lr {arch}={lr}`): with 0.01 the dense-head architectures collapse to predicting "
                      "one class (see docs/training.md)."]
    lines += paired_comparison(agg)
    lines += conditions_summary(results)
    if planned:
        done = {r["cell"] for r in results}
        missing = [c["name"] for c in planned if c["name"] not in done]
        if missing:
            lines += ["", f"Cells not run yet ({len(missing)}): " + ", ".join(f"`{m}`" for m in missing)]
    lines += ["", "## Reproduce a cell", "", "Each cell is exactly one command:", ""]
    for r in sorted(results, key=lambda r: r["cell"]):
        lines.append(f"- `{r['cell']}`: `{r.get('command', '')}` "
                     f"-> {100 * r['val_accuracy']:.2f} % ({r.get('epochs_run')} epochs, "
                     f"{r.get('train_seconds', 0) / 60:.1f} min)")
    if agg:
        fig = plot_figure(agg, fig_path)
        rel = os.path.relpath(fig, md_path.parent)
        lines += ["", f"![accuracy per architecture and data set]({rel})"]
    lines += ["", "Parameter counts (checked against the paper in `fer_training.models`): "
              + ", ".join(f"{a} {c.total:,}" for a, c in PAPER_PARAM_COUNTS.items()), ""]
    text = "\n".join(lines)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fer-experiments", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter, epilog=__doc__)
    p.add_argument("--out-dir", default=str(RESULTS_ROOT / "runs" / "experiments"),
                   help="checkpoints and logs of the cells' runs (large; not kept in the repository)")
    p.add_argument("--cells-dir", default=str(DEFAULT_CELLS_DIR),
                   help="the finished cells' records, which the report is built from (kept in the repository)")
    p.add_argument("--archs", default=",".join(ARCHITECTURES))
    p.add_argument("--datasets", default="fer2013,ckplus", help="comma list of data set names")
    p.add_argument("--dataset-path", action="append", default=[], metavar="NAME=PATH",
                   help="add or override a data set (npz, FER2013 csv or folder-per-class)")
    p.add_argument("--folds", help="comma list of fold indices to run (subject-fold data sets)")
    p.add_argument("--k", type=int, default=10, help="number of subject-independent folds")
    p.add_argument("--cells", help="comma list of cell names to run (see --dry-run)")
    p.add_argument("--epochs", type=int, help="cap the epochs of every cell (paper: 200 with early stopping)")
    p.add_argument("--arch-lr", default="", metavar="ARCH=LR,...",
                   help="run these architectures with another initial learning rate (cells are named "
                        "e.g. arch2-lr0.001; everything else stays the paper recipe)")
    p.add_argument("--max-train-images", type=int)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--results-md", default=str(RESULTS_ROOT / "docs" / "results.md"))
    p.add_argument("--figure", default=str(RESULTS_ROOT / "docs" / "figures" / "results_accuracy.png"))
    p.add_argument("--jobs", type=int, default=1, help="train this many cells at once")
    p.add_argument("--dry-run", action="store_true", help="print the cells and their commands")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)

    out_dir, cells_dir = Path(args.out_dir), Path(args.cells_dir)
    datasets = dict(DEFAULT_DATASETS)
    for item in args.dataset_path:
        name, sep, path = item.partition("=")
        if not sep:
            p.error(f"--dataset-path wants NAME=PATH, got {item!r}")
        datasets[name.strip()] = path.strip()
    chosen = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in chosen if d not in datasets]
    if unknown:
        p.error(f"unknown data set(s) {unknown}; add them with --dataset-path NAME=PATH")
    datasets = {d: datasets[d] for d in chosen}
    archs = [normalise_arch_name(a) for a in args.archs.split(",") if a.strip()]
    extra = ["--seed", str(args.seed)]
    if args.epochs:
        extra += ["--epochs", str(args.epochs)]
    if args.max_train_images:
        extra += ["--max-train-images", str(args.max_train_images)]

    from .data import DatasetError

    arch_lr = {}
    for item in filter(None, (i.strip() for i in args.arch_lr.split(","))):
        name, _, value = item.partition("=")
        try:
            arch_lr[normalise_arch_name(name)] = float(value)
        except ValueError as exc:
            p.error(f"--arch-lr wants ARCH=LR pairs like arch2=0.001, got {item!r} ({exc})")

    try:
        planned = plan_cells(datasets, archs, args.folds, args.k, arch_lr)
    except DatasetError as exc:
        print(f"fer-experiments: {exc}", file=sys.stderr)
        return 2
    if args.cells:
        wanted = {c.strip() for c in args.cells.split(",")}
        planned = [c for c in planned if c["name"] in wanted]
        if not planned:
            print(f"fer-experiments: no planned cell matches {sorted(wanted)}", file=sys.stderr)
            return 2
    md, fig = Path(args.results_md), Path(args.figure)
    if args.dry_run:
        for c in planned:
            print(f"{c['name']}: {shlex.join(cell_command(c, out_dir, args.k, extra))}")
        return 0
    failed = 0
    if not args.report_only:
        report_lock = threading.Lock()

        def one(c):
            res = run_cell(c, out_dir, cells_dir, args.k, extra)
            with report_lock:
                write_report(cells_dir, md, fig, planned)
            return res

        # Cells are subprocesses: --jobs N trains N at once (a many-core machine, or one GPU that a
        # single small model leaves mostly idle).
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(one, planned))
        failed = sum(res is None for res in results)
        busy = sum(bool(res and res.get("busy")) for res in results)
        if busy:
            print(f"{busy} cell(s) left to the other process(es) training them")
    write_report(cells_dir, md, fig, planned)
    print(f"wrote {md} and {fig}" + (f"; {failed} cell(s) failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
