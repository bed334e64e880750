"""``fer-train``: train ARCH-1..4 with the paper's recipe or our ``best`` recipe.

Every epoch writes ``<run-dir>/checkpoints/last.keras`` (model + optimizer state) and
``<run-dir>/state.json`` (next epoch, LR-plateau/early-stopping counters, best epoch, seed); the
data order, the augmentation and the dropout masks of epoch e are pure functions of (seed, e), so
``--resume`` continues an interrupted run exactly where the last finished epoch left it.
The best epoch on the validation split (PublicTest for FER2013) is kept in
``checkpoints/best.keras`` and, at the end, copied to ``<run-dir>/model.keras`` together with
``results.json``. Logs: ``log.csv`` and TensorBoard event files under ``tensorboard/``.

    fer-train --data ../shared/data/fer2013.npz --arch arch1 --profile best --run-dir runs/a1
    fer-train --run-dir runs/a1 --resume
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fer_perception.inference.sidecar import file_sha256

from . import data as fdata
from .cli import HelpFormatter
from .runtime import augment_ahead, configure, cpu_count, set_seed

CONFIG_FILE = "config.json"
#: the command line that started a run (fer-train writes it; tools/lever_row.py quotes it)
COMMAND_FILE = "command.txt"
STATE_FILE = "state.json"
LOG_FILE = "log.csv"
RESULTS_FILE = "results.json"
#: Warm-up is at most this share of all training steps, whatever --warmup-epochs says.
WARMUP_MAX_FRACTION = 0.1
SMALL_DATA_IMAGES = 5000  # below this many training images the paper profile uses batch 10 (CK+)


@dataclass
class AugmentConfig:
    rotation: float = 20.0
    shift: float = 0.1
    zoom: float = 0.1
    flip: bool = True
    erase_prob: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0

    def make(self) -> fdata.Augmenter | None:
        if not (self.rotation or self.shift or self.zoom or self.flip or self.erase_prob
                or self.brightness or self.contrast):
            return None
        return fdata.Augmenter(rotation=self.rotation, shift=self.shift, zoom=self.zoom,
                               flip=self.flip, erase_prob=self.erase_prob,
                               brightness=self.brightness, contrast=self.contrast)


@dataclass
class TrainConfig:
    data: str = ""
    run_dir: str = ""
    arch: str = "arch1"
    profile: str = "best"
    epochs: int = 60
    batch_size: int = 128
    optimizer: str = "sgd"            # sgd (nesterov) | adam | adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4        # decoupled, excludes BN and biases
    schedule: str = "cosine"          # cosine (warmup + cosine to 0 over `epochs`) | plateau
    warmup_epochs: int = 3
    plateau_factor: float = 0.1
    plateau_patience: int = 5
    min_lr: float = 1e-6
    early_stopping_patience: int = 0  # 0 = off
    early_stopping_min_delta: float = 1e-3
    l2: float = 0.0
    l2_scope: str = "head"
    dropout: float = 0.25
    label_smoothing: float = 0.1
    soft_labels: float = 0.0          # weight of the annotators' vote distribution in the target
    clean_labels: str = "off"         # drop training faces the annotators' votes contradict (data.LABEL_CLEANING_RULES)
    init_from: str | None = None      # .keras file whose matching layers start the run (fine-tuning)
    class_weighting: float = 0.0      # power of the inverse-frequency loss weights; 0 = off (old configs: False/True)
    teacher: str | None = None        # model whose softened predictions are blended into the targets (distillation)
    teacher_sha256: str | None = None  # of that file when the run started (resume refuses another)
    distill: float = 0.0              # weight of the teacher's distribution in the target
    distill_temperature: float = 2.0  # the teacher's probabilities are softened to p ** (1 / T)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: str = "auto"
    fold: int = 0
    folds: int = 10
    val_fraction: float = 0.125
    label_file: str | None = None
    max_train_images: int | None = None
    max_val_images: int | None = None
    seed: int = 1234
    distribute: str = "none"
    cpu_devices: int = 1
    deterministic: bool = False
    select_metric: str = "val_accuracy"
    tta_eval: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["augment"] = AugmentConfig(**d.get("augment", {}))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _profile_help(key: str, extra: str = "") -> str:
    """'default: paper X, best Y' for an option whose default is the profile's."""
    paper, best = profile_defaults("paper")[key], profile_defaults("best")[key]
    return f"default: the profile's (paper {paper}, best {best}{extra})"


def profile_defaults(profile: str, n_train: int | None = None) -> dict:
    """Hyper-parameters of a profile (documented in docs/training.md)."""
    if profile == "paper":
        return dict(
            epochs=200, batch_size=10 if (n_train is not None and n_train < SMALL_DATA_IMAGES) else 256,
            optimizer="adam", lr=0.01, weight_decay=0.0, schedule="plateau", warmup_epochs=0,
            plateau_factor=0.1, plateau_patience=5, early_stopping_patience=15,
            l2=0.2, l2_scope="classifier", dropout=0.5, label_smoothing=0.0, class_weighting=0.0,
            augment=AugmentConfig(rotation=20, shift=0.1, zoom=0.1, flip=True),
            select_metric="val_accuracy", tta_eval=False,
        )
    if profile == "best":
        return dict(
            epochs=60, batch_size=128 if (n_train is None or n_train >= SMALL_DATA_IMAGES) else 32,
            optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine",
            warmup_epochs=3, plateau_factor=0.1, plateau_patience=5, early_stopping_patience=0,
            l2=0.0, dropout=0.25, label_smoothing=0.1,
            class_weighting=0.0,
            augment=AugmentConfig(rotation=15, shift=0.1, zoom=0.15, flip=True, erase_prob=0.5,
                                  brightness=0.2, contrast=0.3),
            select_metric="val_accuracy", tta_eval=True,
        )
    raise ValueError(f"unknown profile {profile!r} (paper, best)")


# ------------------------------------------------------------------------------------ helpers
def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def _save_keras(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _promote_pending_best(ckpt_dir: Path, state: dict) -> None:
    """best_pending_<epoch>.keras becomes best.keras once state.json has committed that epoch as
    the best; pending files of epochs that were never committed are removed."""
    for pending in ckpt_dir.glob("best_pending_*.keras"):
        tail = pending.stem.rsplit("_", 1)[1]
        if tail.isdigit() and int(tail) == state["best_epoch"] + 1 and int(tail) <= state["next_epoch"]:
            os.replace(pending, ckpt_dir / "best.keras")
        else:
            pending.unlink()


def _link_last(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.stem + ".link.keras")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # file systems without hard links
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def run_records(model_path, *names: str):
    """The readable JSON records ``names`` of the fer-train run a .keras file belongs to, in order:
    the run directory is the model's folder (model.keras) or its parent (checkpoints/*.keras)."""
    path = Path(model_path)
    for folder in (path.parent, path.parent.parent):
        for name in names:
            try:
                record = json.loads((folder / name).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict):
                yield record


def model_label_names(model_path) -> tuple[str, ...] | None:
    """The class names of a .keras model written by fer-train, from its run's records (state.json or
    results.json); None if none is there. fer-export writes them into the sidecar, so a CK+ model
    keeps anger/contempt/... whatever data it is exported with."""
    for record in run_records(model_path, STATE_FILE, RESULTS_FILE):
        names = record.get("label_names")
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            return tuple(names)
    return None


def load_keras_model(path, compile: bool = False):
    """Load a .keras file written by fer_training (registers the custom serving layers)."""
    import keras

    from .calibration import custom_objects

    return keras.models.load_model(str(path), custom_objects=custom_objects(), compile=compile)


def _make_strategy(name: str):
    if name == "none":
        return None
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        cross = None if gpus else tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown --distribute {name!r} (none, mirrored, multiworker)")


def _is_chief() -> bool:
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = tf_config.get("task", {})
    return task.get("type") in (None, "chief") or (task.get("type") == "worker"
                                                    and int(task.get("index", 0)) == 0
                                                    and "chief" not in tf_config.get("cluster", {}))


class _Scope:
    def __init__(self, strategy):
        self.strategy = strategy

    def __enter__(self):
        self.ctx = self.strategy.scope() if self.strategy is not None else None
        return self.ctx.__enter__() if self.ctx is not None else None

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc) if self.ctx is not None else False


def init_weights_from(model, path) -> str:
    """Copy the weights of every layer of the .keras file at ``path`` that ``model`` has under the
    same name with the same shapes (fine-tuning: a FER2013 model into a run on your own faces, where
    a different class count leaves the classifier layer to start fresh). Returns a summary line."""
    try:
        source = load_keras_model(path)
    except Exception as exc:  # missing, corrupt or not a Keras file
        raise SystemExit(f"fer-train: --init-from {path}: cannot load it ({type(exc).__name__}: {exc})") from exc
    by_name = {layer.name: layer for layer in source._flatten_layers(include_self=False, recursive=True)}
    copied, skipped = [], []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not layer.weights:
            continue
        src = by_name.get(layer.name)
        if src is not None and [w.shape for w in src.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(src.get_weights())
            copied.append(layer.name)
        else:
            skipped.append(layer.name)
    if not copied:
        raise SystemExit(f"fer-train: --init-from {path}: no layer matches this {len(skipped)}-layer model "
                         "(another architecture?)")
    return (f"init: {len(copied)} layers from {path}"
            + (f"; starting fresh: {', '.join(skipped)}" if skipped else ""))


def _reseed_dropout(model, seed: int, epoch: int) -> None:
    """Set every SeedGenerator (dropout masks) to a state that depends only on (seed, epoch)."""
    value = np.array([(int(seed) * 1_000_003 + int(epoch) * 7919) % (2**31 - 1), 0])
    for i, layer in enumerate(model._flatten_layers(include_self=False, recursive=True)):
        for gen in getattr(layer, "_seed_generators", []) or []:
            gen.state.assign((value + np.array([i, 0])).astype(gen.state.dtype))


def _lr_schedule(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    if cfg.schedule == "cosine":
        total = cfg.epochs * steps_per_epoch
        # A short run (a smoke test, a fine-tune of a few epochs) must still reach the full rate.
        warm = min(cfg.warmup_epochs * steps_per_epoch, int(WARMUP_MAX_FRACTION * total))
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=cfg.lr * 0.1 if warm else cfg.lr, decay_steps=max(total - warm, 1),
            alpha=0.0, warmup_target=cfg.lr if warm else None, warmup_steps=warm)
    if cfg.schedule == "plateau":
        return cfg.lr
    raise ValueError(f"unknown schedule {cfg.schedule!r} (cosine, plateau)")


def plateau_step(state: dict, val_loss: float, lr: float, cfg: TrainConfig) -> float | None:
    """ReduceLROnPlateau on ``val_loss``, its counters kept in the run's ``state`` (so it resumes):
    the new learning rate once ``cfg.plateau_patience`` epochs in a row did not improve on the best
    val_loss by 1e-4, else None."""
    if val_loss < state["plateau_best"] - 1e-4:
        state.update(plateau_best=val_loss, plateau_wait=0)
        return None
    state["plateau_wait"] += 1
    if state["plateau_wait"] < cfg.plateau_patience:
        return None
    state["plateau_wait"] = 0
    return max(lr * cfg.plateau_factor, cfg.min_lr)


def _make_optimizer(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    lr = _lr_schedule(cfg, steps_per_epoch)
    wd = cfg.weight_decay or None
    if cfg.optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=cfg.momentum, nesterov=True, weight_decay=wd)
    elif cfg.optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=lr, weight_decay=wd)
    elif cfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r} (sgd, adam, adamw)")
    if wd:
        opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return opt


def current_lr(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr))


def _set_lr(optimizer, value: float) -> None:
    optimizer.learning_rate.assign(value)


def _tensorflow_backend() -> bool:
    import keras

    return keras.backend.backend() == "tensorflow"


def _dataset(x, y_onehot, batch_size, weights=None):
    """Batches of (float32 N x 48 x 48 x 1, targets[, sample weights]): a tf.data pipeline on the
    TensorFlow backend (needed by tf.distribute), a Keras PyDataset on JAX or PyTorch."""
    if not _tensorflow_backend():
        return _array_batches_class()(x, y_onehot, batch_size, weights)
    import tensorflow as tf

    tensors = (x, y_onehot) if weights is None else (x, y_onehot, weights)
    ds = tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size)

    def cast(*t):
        return (tf.cast(tf.expand_dims(t[0], -1), tf.float32),) + tuple(t[1:])

    return ds.map(cast, num_parallel_calls=1).prefetch(2)


@functools.cache
def _array_batches_class():
    """A Keras PyDataset over in-memory arrays (defined lazily: keras must not be imported before
    :func:`configure` has chosen the backend)."""
    import keras

    class ArrayBatches(keras.utils.PyDataset):
        def __init__(self, x, y, batch_size, weights=None):
            super().__init__()
            self.x, self.y, self.w, self.batch_size = x, y, weights, batch_size

        def __len__(self):
            return math.ceil(len(self.x) / self.batch_size)

        def __getitem__(self, i):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            batch = (self.x[sl].astype(np.float32)[..., None], self.y[sl])
            return batch if self.w is None else batch + (self.w[sl],)

    return ArrayBatches


def training_targets(ds, index: np.ndarray, soft_weight: float) -> np.ndarray:
    """One-hot targets of ``ds[index]``, blended with the annotators' vote distribution when
    ``soft_weight`` > 0 (images without votes keep their one-hot target)."""
    eye = np.eye(ds.num_classes, dtype=np.float32)
    targets = eye[ds.labels[index]]
    if soft_weight <= 0:
        return targets
    if ds.soft_labels is None:
        raise fdata.DatasetError(f"{ds.source}: --soft-labels needs per-image vote counts "
                                 "(an .npz with ferplus_votes and ferplus_vote_names)")
    soft = ds.soft_labels[index]
    has_votes = soft.sum(1) > 0
    targets[has_votes] = (1 - soft_weight) * targets[has_votes] + soft_weight * soft[has_votes]
    return targets


TEACHER_CACHE = "teacher_targets.npz"


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs ** (1 / T)`` renormalised: softmax(logits / T) for probabilities that came from logits."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)) / float(temperature)
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def teacher_targets(teacher, images: np.ndarray, label_names, temperature: float, cache: Path | None = None,
                    log=print) -> np.ndarray:
    """The teacher's class distribution for each image: the mean of its probabilities on the face and
    its mirror (run here unless the exported graph averages the mirror itself), in ``label_names``' order (matched by name
    through the teacher's sidecar or run records), softened by ``temperature``.

    Computed once on the un-augmented training faces - offline distillation: an augmented view
    learns its clean face's soft target - and cached in ``cache`` (keyed by the teacher's sha256,
    the images and the temperature), so a resumed run does not run the teacher again."""
    from .evaluate import Predictor, align_to_data

    key = f"{file_sha256(teacher)}:{len(images)}:{float(temperature)}:{int(images[: 64].sum())}"
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return z["targets"]
    t0 = time.time()
    predictor = Predictor(teacher)
    if predictor.num_classes != len(label_names):
        raise fdata.DatasetError(f"teacher {teacher} outputs {predictor.num_classes} classes; the data set has "
                                 f"{len(label_names)} ({', '.join(label_names)})")
    try:
        probs = align_to_data(predictor(images), predictor.labels, label_names)
        if not predictor.mirrors_in_graph:  # an export with flip-TTA inside has averaged the mirror already
            probs = 0.5 * (probs + align_to_data(predictor(images[:, :, ::-1]), predictor.labels, label_names))
    except ValueError as exc:
        raise fdata.DatasetError(f"teacher {teacher}: {exc}") from exc
    targets = soften(probs, temperature)
    views = "mirror inside the graph" if predictor.mirrors_in_graph else "face + mirror"
    log(f"teacher {teacher}: {len(images)} training faces ({views}) in {time.time() - t0:.0f} s")
    if cache is not None:
        np.savez(cache, key=np.array(key), targets=targets)
    return targets


def predict_probs(model, images: np.ndarray, batch_size: int = 512, flip_tta: bool = False) -> np.ndarray:
    x = images.astype(np.float32)[..., None]
    p = model.predict(x, batch_size=batch_size, verbose=0)
    if flip_tta:
        p = 0.5 * (p + model.predict(x[:, :, ::-1], batch_size=batch_size, verbose=0))
    return np.asarray(p)


class _TensorBoardScalars:
    """Scalar event files for TensorBoard, written with TensorFlow core ops only.

    ``tf.summary.scalar`` needs the ``tensorboard`` package; ``tf.summary.write`` with the scalar
    plugin's metadata writes the same events without it (TensorBoard reads them as scalars).
    """

    def __init__(self, log_dir: Path):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self.tf = tf
        self.writers = {k: tf.summary.create_file_writer(str(log_dir / k)) for k in ("train", "validation")}
        meta = summary_pb2.SummaryMetadata()
        meta.plugin_data.plugin_name = "scalars"
        self.metadata = meta.SerializeToString()

    def write(self, epoch: int, logs: dict) -> None:
        tf = self.tf
        for key, value in logs.items():
            which = "validation" if key.startswith("val_") else "train"
            tag = "epoch_" + (key[4:] if which == "validation" else key)
            with self.writers[which].as_default():
                tf.summary.write(tag, tf.constant(float(value), tf.float32), step=epoch, metadata=self.metadata)
        for w in self.writers.values():
            w.flush()


class _Progress:
    """Epoch-level progress line (the per-batch bar is Keras's own when stdout is a terminal)."""

    def __init__(self, total_epochs: int, start_epoch: int):
        self.total = total_epochs
        self.start = start_epoch
        self.t0 = time.time()

    def line(self, epoch: int, logs: dict, lr: float, secs: float, best: str) -> str:
        done = epoch + 1 - self.start
        eta = (time.time() - self.t0) / max(done, 1) * (self.total - epoch - 1)
        width = 24
        filled = int(width * (epoch + 1) / self.total)
        bar = "#" * filled + "." * (width - filled)
        return (f"[{bar}] epoch {epoch + 1}/{self.total} loss {logs.get('loss', float('nan')):.4f} "
                f"acc {logs.get('accuracy', float('nan')):.4f} val_loss {logs.get('val_loss', float('nan')):.4f} "
                f"val_acc {logs.get('val_accuracy', float('nan')):.4f} lr {lr:.2e} {secs:.0f}s "
                f"eta {eta / 60:.1f} min {best}")


# --------------------------------------------------------------------------------------- train
def prepare_data(cfg: TrainConfig):
    ds = fdata.load_dataset(cfg.data, label_file=cfg.label_file)
    split = fdata.make_split(ds, cfg.split, fold=cfg.fold, k=cfg.folds, val_fraction=cfg.val_fraction,
                             seed=cfg.seed)
    tr, va = split.train, split.val
    # Cleaning touches the training faces only: validation keeps the data set's own labels, the ones
    # the held-out test is scored on.
    tr = tr[fdata.label_cleaning_keep(ds, tr, cfg.clean_labels)]
    if cfg.max_train_images and len(tr) > cfg.max_train_images:
        tr = np.sort(np.random.default_rng(cfg.seed).choice(tr, cfg.max_train_images, replace=False))
    if cfg.max_val_images and len(va) > cfg.max_val_images:
        va = np.sort(np.random.default_rng(cfg.seed + 1).choice(va, cfg.max_val_images, replace=False))
    return ds, split, tr, va


def train(cfg: TrainConfig, *, resume: bool = False, verbose: int | None = None,
          on_epoch_end=None) -> dict:
    """Run (or resume) one training run; returns the results dict also written to results.json.

    ``on_epoch_end(epoch, logs)`` is called after each epoch's checkpoint is on disk (progress
    reporting; the tests raise from it to simulate a crash and then ``resume``).
    """
    configure(cpu_devices=cfg.cpu_devices, deterministic=cfg.deterministic)
    import keras

    if not _tensorflow_backend() and cfg.distribute != "none":
        raise SystemExit(f"fer-train: --distribute {cfg.distribute} needs the TensorFlow backend "
                         f"(KERAS_BACKEND={keras.backend.backend()})")

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    chief = _is_chief()
    worker_dir = run_dir / f".worker_{os.getpid()}"
    if not chief:
        worker_dir.mkdir(exist_ok=True)
    state_path = run_dir / STATE_FILE
    log = print if chief else (lambda *a, **k: None)

    state = None
    if resume:
        if not state_path.exists():
            raise SystemExit(f"fer-train: --resume but {state_path} does not exist (no finished epoch)")
        state = json.loads(state_path.read_text())
    elif state_path.exists():
        raise SystemExit(f"fer-train: {run_dir} already holds a run (state.json); use --resume or a new --run-dir")

    ds, split, tr, va = prepare_data(cfg)
    num_classes = ds.num_classes
    x_tr, y_tr = ds.images[tr], ds.labels[tr]
    x_va, y_va = ds.images[va], ds.labels[va]
    log(f"data: {ds.source}: {len(ds)} images, classes {list(ds.label_names)}; {split.description}; "
        f"training on {len(tr)}, validating on {len(va)}")
    if cfg.clean_labels != "off":
        kept = int(fdata.label_cleaning_keep(ds, split.train, cfg.clean_labels).sum())
        log(f"label cleaning {cfg.clean_labels}: {len(split.train) - kept} of {len(split.train)} training faces "
            f"dropped; training on per class {np.bincount(y_tr, minlength=num_classes).tolist()}")
    steps = math.ceil(len(tr) / cfg.batch_size)
    augmenter = cfg.augment.make()
    eye = np.eye(num_classes, dtype=np.float32)
    targets = training_targets(ds, tr, cfg.soft_labels)
    if cfg.teacher and cfg.distill > 0:
        if not Path(cfg.teacher).is_file():
            raise SystemExit(f"fer-train: teacher {cfg.teacher} does not exist")
        if cfg.teacher_sha256 and file_sha256(cfg.teacher) != cfg.teacher_sha256:
            raise SystemExit(f"fer-train: teacher {cfg.teacher} changed since the run started (sha256 differs)")
        taught = teacher_targets(cfg.teacher, x_tr, ds.label_names, cfg.distill_temperature,
                                 cache=run_dir / TEACHER_CACHE, log=log)
        log(f"distillation: targets = {1 - cfg.distill:g} x label + {cfg.distill:g} x teacher (T = {cfg.distill_temperature:g}); "
            f"teacher top-1 agrees with the labels on {100 * float(np.mean(taught.argmax(1) == y_tr)):.1f} % of the training faces")
        targets = (1 - cfg.distill) * targets + cfg.distill * taught
    weights = (fdata.class_weights(y_tr, num_classes, power=float(cfg.class_weighting)).astype(np.float32)
               if cfg.class_weighting else None)
    val_ds = _dataset(x_va, eye[y_va], max(cfg.batch_size, 256))

    strategy = _make_strategy(cfg.distribute)
    if strategy is not None:
        import tensorflow as tf

        log(f"distribute: {cfg.distribute} over {strategy.num_replicas_in_sync} replica(s)")
        opts = tf.data.Options()
        opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        val_ds = val_ds.with_options(opts)

    if not resume:
        _atomic_json(run_dir / CONFIG_FILE, asdict(cfg))
        set_seed(cfg.seed)
    with _Scope(strategy):
        from .models import build_model

        model = build_model(cfg.arch, num_classes, dropout=cfg.dropout, l2=cfg.l2, l2_scope=cfg.l2_scope)
        model.compile(
            optimizer=_make_optimizer(cfg, steps),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        if resume:
            # Rebuild from the config and load weights + optimizer variables: load_model() would
            # lose optimizer settings that are not in its config (the weight-decay exclusions).
            model.optimizer.build(model.trainable_variables)
            ckpt = ckpt_dir / f"epoch_{state['next_epoch']:04d}.keras"
            model.load_weights(ckpt if ckpt.exists() else ckpt_dir / "last.keras")
        elif cfg.init_from:
            log(init_weights_from(model, cfg.init_from))
    if state is None:
        state = dict(next_epoch=0, best_epoch=-1, best_metric=-math.inf, best_val_loss=math.inf,
                     plateau_wait=0, plateau_best=math.inf, stop_wait=0, stop_best=math.inf,
                     lr=cfg.lr, stopped_early=False, train_seconds=0.0, seed=cfg.seed,
                     num_classes=num_classes, label_names=list(ds.label_names))
    else:
        _promote_pending_best(ckpt_dir, state)
        if cfg.schedule == "plateau":
            _set_lr(model.optimizer, state["lr"])

    # CSV: keep rows of finished epochs only (a crash can leave a row newer than the checkpoint).
    log_path = run_dir / LOG_FILE
    fields = ["epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "images_per_s"]
    rows = []
    if log_path.exists():
        with open(log_path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) < state["next_epoch"]]
    if chief:
        with open(log_path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)

    # TensorBoard event files are written with TensorFlow ops: TensorFlow backend only.
    tb = _TensorBoardScalars(run_dir / "tensorboard") if chief and _tensorflow_backend() else None
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 0
    progress = _Progress(cfg.epochs, state["next_epoch"])
    log(f"model: {cfg.arch} ({model.count_params():,} parameters), profile {cfg.profile}, "
        f"Keras backend {keras.backend.backend()}, "
        f"{cfg.optimizer} lr {cfg.lr} {cfg.schedule}, batch {cfg.batch_size}, {steps} steps/epoch, "
        f"epochs {state['next_epoch']}..{cfg.epochs - 1}, run dir {run_dir}")
    # The next epoch is augmented in a background thread while this one trains (same arrays).
    with fdata.EpochArraysAhead(x_tr, np.arange(len(tr)), seed=cfg.seed, augmenter=augmenter,
                                end_epoch=cfg.epochs, ahead=augment_ahead()) as arrays:
        for epoch in range(state["next_epoch"], cfg.epochs):
            if state["stopped_early"]:
                break
            t0 = time.time()
            _reseed_dropout(model, cfg.seed, epoch)
            xe, order = arrays.get(epoch)
            train_ds = _dataset(xe, targets[order], cfg.batch_size, None if weights is None else weights[y_tr[order]])
            if strategy is not None:
                train_ds = train_ds.with_options(opts)
            hist = model.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, validation_data=val_ds,
                             shuffle=False, verbose=verbose)
            logs = {k: float(v[-1]) for k, v in hist.history.items()}
            secs = time.time() - t0
            lr_used = current_lr(model.optimizer)  # cosine: the schedule's value after this epoch
            state["train_seconds"] += secs

            # Model selection on the validation split.
            metric = logs.get(cfg.select_metric, -logs.get("val_loss", math.inf))
            improved = metric > state["best_metric"] + 1e-12
            if improved:
                state.update(best_epoch=epoch, best_metric=metric, best_val_loss=logs.get("val_loss"))
                _save_keras(model, ckpt_dir / f"best_pending_{epoch + 1:04d}.keras" if chief
                            else worker_dir / "best.keras")
            # ReduceLROnPlateau (paper) and early stopping, both on val_loss.
            vl = logs.get("val_loss", math.inf)
            if cfg.schedule == "plateau":
                new_lr = plateau_step(state, vl, current_lr(model.optimizer), cfg)
                if new_lr is not None:
                    _set_lr(model.optimizer, new_lr)
                    log(f"  reducing learning rate to {new_lr:.2e}")
                state["lr"] = current_lr(model.optimizer)
            if cfg.early_stopping_patience:
                if vl < state["stop_best"] - cfg.early_stopping_min_delta:
                    state.update(stop_best=vl, stop_wait=0)
                else:
                    state["stop_wait"] += 1
                    if state["stop_wait"] >= cfg.early_stopping_patience:
                        state["stopped_early"] = True
                        log(f"  early stopping: val_loss did not improve for {cfg.early_stopping_patience} epochs")
            state["next_epoch"] = epoch + 1
            # Commit protocol (a kill at any point resumes exactly): 1. the new checkpoint goes to its
            # own file epoch_<next>.keras, 2. the CSV row, 3. state.json (the commit point), 4. last.keras
            # becomes a hard link to the new checkpoint and the previous epoch file is removed. Resume
            # loads epoch_<next_epoch>.keras, which exists whichever step was interrupted.
            # Under MultiWorkerMirroredStrategy every worker takes part in saving; non-chief workers
            # write to a scratch directory that is dropped.
            ckpt = ckpt_dir / f"epoch_{epoch + 1:04d}.keras"
            _save_keras(model, ckpt if chief else worker_dir / "last.keras")
            if chief:
                with open(log_path, "a", newline="") as fh:
                    csv.DictWriter(fh, fieldnames=fields).writerow(dict(
                        epoch=epoch, lr=f"{lr_used:.6g}", loss=f"{logs.get('loss', float('nan')):.6f}",
                        accuracy=f"{logs.get('accuracy', float('nan')):.6f}",
                        val_loss=f"{logs.get('val_loss', float('nan')):.6f}",
                        val_accuracy=f"{logs.get('val_accuracy', float('nan')):.6f}",
                        seconds=f"{secs:.1f}", images_per_s=f"{len(tr) / secs:.1f}"))
                _atomic_json(state_path, state)
                _promote_pending_best(ckpt_dir, state)
                _link_last(ckpt, ckpt_dir / "last.keras")
                for old in ckpt_dir.glob("epoch_*.keras"):
                    if old != ckpt:
                        old.unlink(missing_ok=True)
            if tb is not None:
                tb.write(epoch, {**logs, "learning_rate": lr_used, "images_per_s": len(tr) / secs})
            best = f"(best {state['best_metric']:.4f} @ {state['best_epoch'] + 1})"
            log(progress.line(epoch, logs, lr_used, secs, best), flush=True)
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)

    if not chief:
        shutil.rmtree(worker_dir, ignore_errors=True)
        return {}
    return finish(cfg, run_dir, state, ds, x_va, y_va, log)


def finish(cfg, run_dir: Path, state: dict, ds, x_va, y_va, log=print) -> dict:
    """Evaluate the selected epoch on the validation split and write model.keras + results.json."""
    from .calibration import expected_calibration_error

    best_path = run_dir / "checkpoints" / "best.keras"
    model = load_keras_model(best_path)
    probs = predict_probs(model, x_va)
    acc = float((probs.argmax(1) == y_va).mean()) if len(y_va) else float("nan")
    results = dict(
        arch=cfg.arch, profile=cfg.profile, data=str(cfg.data), split=cfg.split, fold=cfg.fold,
        label_names=list(ds.label_names), epochs_run=state["next_epoch"], best_epoch=state["best_epoch"] + 1,
        stopped_early=state["stopped_early"], train_seconds=round(state["train_seconds"], 1),
        val_images=int(len(y_va)), val_accuracy=acc,
        val_ece=expected_calibration_error(probs, y_va) if len(y_va) else None,
        params=int(model.count_params()),
    )
    if cfg.tta_eval and len(y_va):
        p_tta = predict_probs(model, x_va, flip_tta=True)
        results["val_accuracy_flip_tta"] = float((p_tta.argmax(1) == y_va).mean())
    shutil.copyfile(best_path, run_dir / "model.keras")
    _atomic_json(run_dir / RESULTS_FILE, results)
    log("result: " + json.dumps(results))
    return results


# ----------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fer-train", description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter)
    p.add_argument("--data", help=".npz, FER2013 .csv or folder-per-class directory")
    p.add_argument("--run-dir", required=True, help="where checkpoints, logs and the model go")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last epoch")
    p.add_argument("--arch", default="arch1",
                   help="arch1..arch4 (the paper's), or vgg: a 1.2 M-parameter teacher to distil ARCH-1 from (--teacher)")
    p.add_argument("--profile", default="best", choices=["paper", "best"],
                   help="recipe whose values the options below default to (docs/training.md)")
    p.add_argument("--epochs", type=int, help=_profile_help("epochs"))
    p.add_argument("--batch-size", type=int, help=_profile_help("batch_size", "; 10 and 32 below 2,000 training images"))
    p.add_argument("--lr", type=float, help=_profile_help("lr"))
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help=_profile_help("optimizer"))
    p.add_argument("--weight-decay", type=float, help=_profile_help("weight_decay"))
    p.add_argument("--warmup-epochs", type=int,
                   help=_profile_help("warmup_epochs", f"; at most {100 * WARMUP_MAX_FRACTION:g} %% of the run"))
    p.add_argument("--schedule", choices=["cosine", "plateau"],
                   help=_profile_help("schedule", "; cosine: warm-up, then cosine to 0 over --epochs; "
                                      "plateau: x --plateau-factor when val_loss stalls"))
    p.add_argument("--plateau-factor", type=float, help=_profile_help("plateau_factor", "; plateau schedule only"))
    p.add_argument("--plateau-patience", type=int,
                   help=_profile_help("plateau_patience", " epochs; plateau schedule only"))
    p.add_argument("--early-stopping-patience", type=int,
                   help=_profile_help("early_stopping_patience", " epochs without a better val_loss; 0 = off"))
    p.add_argument("--dropout", type=float, help=_profile_help("dropout"))
    p.add_argument("--l2", type=float, help=_profile_help("l2"))
    p.add_argument("--label-smoothing", type=float, help=_profile_help("label_smoothing"))
    p.add_argument("--soft-labels", type=float,
                   help="weight W of the annotators' vote distribution (FER+ votes in fer2013.npz) in the "
                        "training target: (1-W) one-hot + W votes; validation keeps the data set's labels (default: 0, off)")
    p.add_argument("--clean-labels", choices=list(fdata.LABEL_CLEANING_RULES), default="off",
                   help="drop training faces the annotators' votes (FER+ in fer2013.npz) contradict: no-vote = "
                        "no annotator voted for the face's label, majority = the FER+ majority names another "
                        "class; validation keeps the data set's labels")
    p.add_argument("--class-weighting", nargs="?", type=float, const=1.0, default=None, metavar="POWER",
                   help="weight the loss by (1 / class frequency) ** POWER, normalised to mean 1; without a "
                        "value POWER is 1 (fully balanced), 0.5 is the square root (default: off, 0, in both profiles)")
    p.add_argument("--teacher", metavar="MODEL",
                   help="distil from this model (.keras/.onnx/.tflite, e.g. a fer-train --arch vgg run): its "
                        "softened probabilities on each un-augmented training face (and its mirror) are blended "
                        "into that face's target (default: no teacher)")
    p.add_argument("--distill", type=float, metavar="W",
                   help="weight of the teacher's distribution in the target: (1-W) label + W teacher "
                        "(default: 0.5 with --teacher)")
    p.add_argument("--distill-temperature", type=float, default=2.0, metavar="T",
                   help="soften the teacher's probabilities to p ** (1/T) before blending")
    p.add_argument("--init-from", metavar="MODEL.keras",
                   help="start from the weights of a fer-train model (layers with the same name and shape; "
                        "e.g. fine-tune the FER2013 model on your own faces; default: random initialisation)")
    p.add_argument("--no-augment", action="store_true", help="disable augmentation")
    p.add_argument("--augment", metavar="KEY=VALUE,...",
                   help="override the profile's augmentation, e.g. erase_prob=0.25,rotation=10 (keys: "
                        + ", ".join(f.name for f in dataclasses.fields(AugmentConfig)) + "; default: the profile's)")
    p.add_argument("--split", default="auto", choices=["auto", "official", "subject", "stratified"],
                   help="validation split: the data set's own (official), subject-independent folds, or stratified")
    p.add_argument("--fold", type=int, default=0, help="fold index for --split subject")
    p.add_argument("--folds", type=int, default=10, help="number of folds for --split subject")
    p.add_argument("--val-fraction", type=float, default=0.125, help="validation share for --split stratified")
    p.add_argument("--label-file", help="class list / mapping for the data set (see data.py; default: the data set's own names)")
    p.add_argument("--max-train-images", type=int, help="cap the training split (tests, smoke runs; default: all of it)")
    p.add_argument("--max-val-images", type=int, help="cap the validation split (default: all of it)")
    p.add_argument("--seed", type=int, default=1234, help="seed of splits, augmentation and initialisation")
    p.add_argument("--distribute", default="none", choices=["none", "mirrored", "multiworker"],
                   help="TensorFlow distribution strategy")
    p.add_argument("--cpu-devices", type=int, default=1,
                   help="split the CPU into N logical devices (to exercise --distribute mirrored)")
    p.add_argument("--deterministic", action="store_true", help="tf op determinism (slower)")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], help="Keras per-batch output (default: bar on a tty)")
    return p


def parse_augment(text: str, base: AugmentConfig) -> AugmentConfig:
    """``rotation=10,erase_prob=0.25`` applied on top of ``base``."""
    kinds = {f.name: f.type for f in dataclasses.fields(AugmentConfig)}
    changes = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in kinds:
            raise SystemExit(f"fer-train: --augment {item!r}: expected KEY=VALUE with KEY one of {sorted(kinds)}")
        try:
            changes[key] = value.strip().lower() in ("1", "true", "yes") if kinds[key] in (bool, "bool") \
                else float(value)
        except ValueError:
            raise SystemExit(f"fer-train: --augment {item!r}: {value!r} is not a number") from None
    return dataclasses.replace(base, **changes)


def config_from_args(args) -> TrainConfig:
    if not args.data:
        raise SystemExit("fer-train: --data is required for a new run")
    n_train = None
    try:
        ds, split, tr, _ = prepare_data(TrainConfig(data=args.data, split=args.split, fold=args.fold,
                                                    folds=args.folds, val_fraction=args.val_fraction,
                                                    label_file=args.label_file, seed=args.seed,
                                                    max_train_images=args.max_train_images,
                                                    clean_labels=args.clean_labels))
        n_train = len(tr)
    except fdata.DatasetError as exc:
        raise SystemExit(f"fer-train: {exc}") from exc
    values = profile_defaults(args.profile, n_train)
    for key in ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "warmup_epochs", "schedule",
                "plateau_factor", "plateau_patience", "early_stopping_patience", "dropout",
                "l2", "label_smoothing", "soft_labels", "class_weighting"):
        v = getattr(args, key)
        if v is not None:
            values[key] = v
    if args.teacher:
        if not Path(args.teacher).is_file():
            raise SystemExit(f"fer-train: --teacher {args.teacher} does not exist")
        values.update(teacher=str(args.teacher), teacher_sha256=file_sha256(args.teacher),
                      distill=0.5 if args.distill is None else args.distill,
                      distill_temperature=args.distill_temperature)
        if not 0.0 < values["distill"] <= 1.0:
            raise SystemExit(f"fer-train: --distill is a weight in (0, 1], got {values['distill']}")
        if not values["distill_temperature"] > 0:
            raise SystemExit(f"fer-train: --distill-temperature must be > 0, got {values['distill_temperature']}")
    elif args.distill is not None:
        raise SystemExit("fer-train: --distill needs --teacher MODEL")
    if not 0.0 < values["plateau_factor"] < 1.0:
        raise SystemExit(f"fer-train: --plateau-factor must be in (0, 1), got {values['plateau_factor']}")
    if values["plateau_patience"] < 1 or values["early_stopping_patience"] < 0:
        raise SystemExit("fer-train: --plateau-patience must be >= 1 and --early-stopping-patience >= 0")
    if values.get("class_weighting", 0.0) < 0:
        raise SystemExit(f"fer-train: --class-weighting POWER must be >= 0, got {values['class_weighting']}")
    if not 0.0 <= values.get("soft_labels", 0.0) <= 1.0:
        raise SystemExit(f"fer-train: --soft-labels is a weight in 0..1, got {values['soft_labels']}")
    if args.no_augment:
        values["augment"] = AugmentConfig(rotation=0, shift=0, zoom=0, flip=False)
    if args.augment:
        values["augment"] = parse_augment(args.augment, values["augment"])
    from .models import normalise_arch_name

    return TrainConfig(
        data=str(args.data), run_dir=str(args.run_dir), arch=normalise_arch_name(args.arch),
        profile=args.profile, split=args.split, fold=args.fold, folds=args.folds,
        val_fraction=args.val_fraction, label_file=args.label_file,
        max_train_images=args.max_train_images, max_val_images=args.max_val_images, seed=args.seed,
        clean_labels=args.clean_labels, init_from=str(args.init_from) if args.init_from else None,
        distribute=args.distribute, cpu_devices=args.cpu_devices, deterministic=args.deterministic,
        **values)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.resume:
        cfg_path = Path(args.run_dir) / CONFIG_FILE
        if not cfg_path.exists():
            raise SystemExit(f"fer-train: --resume but {cfg_path} does not exist")
        cfg = TrainConfig.from_dict(json.loads(cfg_path.read_text()))
        cfg.run_dir = str(args.run_dir)
        if args.epochs is not None and args.epochs != cfg.epochs:
            raise SystemExit("fer-train: --epochs cannot change on --resume (the LR schedule depends on it)")
    else:
        cfg = config_from_args(args)
        import shlex

        Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
        words = sys.argv[1:] if argv is None else list(argv)
        (Path(cfg.run_dir) / COMMAND_FILE).write_text("fer-train " + shlex.join(str(w) for w in words) + "\n")
    try:
        train(cfg, resume=args.resume, verbose=args.verbose)
    except fdata.DatasetError as exc:
        raise SystemExit(f"fer-train: {exc}") from exc
    return 0


if __name__ == "__main__":
    sys.exit(main())
