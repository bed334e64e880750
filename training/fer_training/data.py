"""Data sets, splits and augmentation for training.

One loader, :func:`load_dataset`, reads

* ``.npz`` files with ``images`` (N x 48 x 48 uint8) and ``labels`` (ints) plus optional
  ``label_names``, ``split``, ``subject`` arrays (the schema of ../shared/data/fer2013.npz and
  ckplus48.npz);
* the original FER2013 CSV (``emotion,pixels,Usage`` with Usage Training/PublicTest/PrivateTest,
  stored as splits ``train``/``public_test``/``private_test``);
* folder-per-class image trees (``root/<class>/<image>``). Small grey crops (<= 64 px on the long
  side) are just resized to 48 x 48; larger photos go through the runtime's face preprocessing
  (``fer_perception.preprocessing.preprocess_photo``: detect + align + crop), imported lazily.

and returns a :class:`FaceDataset`. The class list always comes from the data set itself
(``label_names``); :func:`canonical_label` and :func:`to_fer2013_order` map names such as
``anger``/``sadness``/``happiness`` onto the FER2013 order of ``fer_perception.labels`` when a
model in the runtime's order is wanted (CK+'s ``contempt`` has no FER2013 class and is dropped
there). A label file (one class per line, optionally ``folder_name: class_name``) fixes the
class order and names of folder data sets.

Augmentation (:class:`Augmenter`) is numpy + OpenCV, applied per epoch to the training split only,
deterministically from (seed, epoch), so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import csv
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np

# The runtime's label module (plain numpy) is the one source of FER2013's order and of the table that
# maps data sets' class names onto canonical ones: training and the node cannot drift apart.
from fer_perception.labels import EMOTION_LABELS as FER2013_LABELS
from fer_perception.labels import canonical_label as _canonical_label

IMAGE_SIZE = 48
SMALL_CROP_MAX_SIDE = 64
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


_CSV_USAGE = {"training": "train", "publictest": "public_test", "privatetest": "private_test"}


class DatasetError(ValueError):
    """A data set that cannot be read, or a split that cannot be made; says what and where."""


@dataclass
class FaceDataset:
    images: np.ndarray                     # uint8 N x 48 x 48
    labels: np.ndarray                     # int64 N, indices into label_names
    label_names: tuple[str, ...]
    subjects: np.ndarray | None = None     # str N (identity of the person) or None
    splits: np.ndarray | None = None       # str N (e.g. train/public_test) or None
    # float32 N x C distribution of several annotators' votes over label_names (FER+ for FER2013);
    # an all-zero row means "no votes for this image". Used by fer-train --soft-labels.
    soft_labels: np.ndarray | None = None
    # int64 N: the annotators' majority label (index into label_names) by FER+'s "majority" rule,
    # -1 where the rule gives none (see majority_vote_labels); None without votes.
    majority_labels: np.ndarray | None = None
    source: str = ""
    skipped: list[str] = field(default_factory=list)  # files a folder loader could not use

    def __post_init__(self):
        self.images = np.asarray(self.images)
        self.labels = np.asarray(self.labels).astype(np.int64)
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DatasetError(f"{self.source or 'data set'}: images must be uint8 N x 48 x 48, "
                               f"got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (n,):
            raise DatasetError(f"{self.source}: {n} images but labels of shape {self.labels.shape}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.label_names)):
            raise DatasetError(f"{self.source}: labels outside 0..{len(self.label_names) - 1} "
                               f"(label_names={list(self.label_names)})")
        for name in ("subjects", "splits"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr).astype(str)
                if arr.shape != (n,):
                    raise DatasetError(f"{self.source}: {name} has shape {arr.shape}, expected ({n},)")
                setattr(self, name, arr)
        if self.soft_labels is not None:
            self.soft_labels = np.asarray(self.soft_labels, dtype=np.float32)
            if self.soft_labels.shape != (n, len(self.label_names)):
                raise DatasetError(f"{self.source}: soft_labels has shape {self.soft_labels.shape}, "
                                   f"expected ({n}, {len(self.label_names)})")
        if self.majority_labels is not None:
            self.majority_labels = np.asarray(self.majority_labels).astype(np.int64)
            if self.majority_labels.shape != (n,):
                raise DatasetError(f"{self.source}: majority_labels has shape {self.majority_labels.shape}, "
                                   f"expected ({n},)")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def subset(self, index: np.ndarray) -> "FaceDataset":
        index = np.asarray(index)
        return replace(
            self, images=self.images[index], labels=self.labels[index],
            subjects=None if self.subjects is None else self.subjects[index],
            splits=None if self.splits is None else self.splits[index], skipped=list(self.skipped),
            soft_labels=None if self.soft_labels is None else self.soft_labels[index],
            majority_labels=None if self.majority_labels is None else self.majority_labels[index],
        )

    def split_names(self) -> list[str]:
        return [] if self.splits is None else sorted(set(self.splits.tolist()))

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)


# --------------------------------------------------------------------------------------- labels
def canonical_label(name: str) -> str | None:
    """FER2013 class name for a data set's class name, or None (e.g. CK+ 'contempt'), through the one
    documented table fer_perception.labels.CANONICAL_NAMES."""
    canon = _canonical_label(name)
    return canon if canon in FER2013_LABELS else None


def to_fer2013_order(ds: FaceDataset) -> FaceDataset:
    """Relabel into FER2013 order (7 classes); samples of classes FER2013 lacks are dropped."""
    mapping = np.full(ds.num_classes, -1, dtype=np.int64)
    for i, name in enumerate(ds.label_names):
        canon = canonical_label(name)
        if canon is not None:
            mapping[i] = FER2013_LABELS.index(canon)
    new = mapping[ds.labels]
    keep = np.flatnonzero(new >= 0)
    out = ds.subset(keep)
    out.labels = new[keep]
    out.label_names = FER2013_LABELS
    out.soft_labels = _remap_columns(out.soft_labels, mapping, len(FER2013_LABELS))
    out.majority_labels = _remap_labels(out.majority_labels, mapping)
    return out


def _remap_labels(labels: np.ndarray | None, mapping: np.ndarray) -> np.ndarray | None:
    """Label indices (-1 = none) after a relabelling; classes without a counterpart become -1."""
    if labels is None:
        return None
    return np.where(labels >= 0, mapping[np.clip(labels, 0, None)], -1)


def _remap_columns(soft: np.ndarray | None, mapping: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Soft labels after a relabelling: new class j gets the votes of the old classes mapped to j."""
    if soft is None:
        return None
    return _normalised_rows(np.stack([soft[:, mapping == j].sum(1) for j in range(num_classes)], 1))


def _normalised_rows(counts: np.ndarray) -> np.ndarray:
    """Rows scaled to sum 1; rows without any count stay all-zero ("no votes")."""
    counts = np.clip(np.asarray(counts, dtype=np.float32), 0, None)
    total = counts.sum(1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1e-12), 0.0).astype(np.float32)


def vote_distribution(votes: np.ndarray, vote_names, label_names) -> np.ndarray:
    """Per-image distribution of annotator votes over ``label_names``.

    Vote columns are matched by :func:`canonical_label` (FER+'s "happiness" is "happy"); columns
    without a counterpart (FER+'s contempt, unknown, not-a-face) are dropped, and negative counts
    (FER+ marks images it did not annotate with -1) count as no vote.
    """
    votes = np.clip(np.asarray(votes, dtype=np.float32), 0, None)
    wanted = [canonical_label(str(n)) for n in label_names]
    out = np.zeros((len(votes), len(label_names)), np.float32)
    for col, name in enumerate(vote_names):
        canon = canonical_label(str(name))
        if canon is not None and canon in wanted:
            out[:, wanted.index(canon)] += votes[:, col]
    return _normalised_rows(out)


def majority_vote_labels(votes: np.ndarray, vote_names, label_names) -> np.ndarray:
    """Per image, the annotators' label by FER+'s "majority" rule (Barsoum et al. 2016), as an index
    into ``label_names``, or -1 where the rule gives none.

    Every vote column counts (FER+'s contempt, unknown and not-a-face too); a class with a single vote
    is taken as noise and dropped; the top class needs more than half of the remaining votes; an
    image whose majority is a column without a counterpart in ``label_names`` (contempt, unknown,
    not-a-face), or that has no votes, gets -1."""
    votes = np.clip(np.asarray(votes, dtype=np.float64), 0, None)
    votes = np.where(votes <= 1, 0.0, votes)
    wanted = [canonical_label(str(n)) for n in label_names]
    column_label = np.array([wanted.index(c) if (c := canonical_label(str(name))) is not None and c in wanted
                             else -1 for name in vote_names], dtype=np.int64)
    total = votes.sum(1)
    top = votes.argmax(1) if len(votes) else np.zeros(0, np.int64)
    has_majority = votes[np.arange(len(votes)), top] > 0.5 * total
    return np.where(has_majority & (total > 0), column_label[top], -1)


LABEL_CLEANING_RULES = ("off", "no-vote", "majority")


def label_cleaning_keep(ds: FaceDataset, index: np.ndarray, rule: str) -> np.ndarray:
    """Boolean mask over ``ds[index]``: which faces a training run keeps under ``rule``.

    FER2013's labels are one annotator's; FER+ had ten relabel every face. ``no-vote`` drops the faces
    whose own label got no annotator's vote at all (the ten agreed it is something else), ``majority``
    drops those whose FER+ majority exists and names another class. Faces without usable votes (not
    annotated, or only contempt/unknown/not-a-face votes; no majority for ``majority``) are kept:
    there is nothing to clean them against. ``off`` keeps everything."""
    index = np.asarray(index)
    if rule not in LABEL_CLEANING_RULES:
        raise DatasetError(f"unknown label cleaning rule {rule!r} (one of {', '.join(LABEL_CLEANING_RULES)})")
    if rule == "off":
        return np.ones(len(index), bool)
    if ds.soft_labels is None or ds.majority_labels is None:
        raise DatasetError(f"{ds.source}: label cleaning needs per-image annotator votes "
                           "(an .npz with ferplus_votes and ferplus_vote_names)")
    labels = ds.labels[index]
    if rule == "no-vote":
        votes = ds.soft_labels[index]
        has_votes = votes.sum(1) > 0
        return ~has_votes | (votes[np.arange(len(index)), labels] > 0)
    majority = ds.majority_labels[index]
    return (majority < 0) | (majority == labels)


def read_label_file(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Lines ``name`` or ``folder: name`` (``#`` comments); returns [(folder, class_name)]."""
    entries = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read label file {path}: {exc}") from exc
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        folder, _, name = line.partition(":")
        folder, name = folder.strip(), (name.strip() or folder.strip())
        entries.append((folder, name))
    if len(entries) < 2:
        raise DatasetError(f"label file {path} names {len(entries)} classes; need at least 2")
    return entries


# -------------------------------------------------------------------------------------- loaders
def load_dataset(path: str | os.PathLike, *, label_file: str | os.PathLike | None = None,
                 max_images: int | None = None) -> FaceDataset:
    """Load an .npz, a FER2013 .csv or a folder-per-class tree (see module doc)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"data set {p} does not exist")
    if p.is_dir():
        ds = _load_folder(p, label_file)
    elif p.suffix.lower() == ".npz":
        ds = _load_npz(p)
    elif p.suffix.lower() == ".csv":
        ds = _load_csv(p)
    else:
        raise DatasetError(f"{p}: unknown data set format (expected .npz, .csv or a directory)")
    if label_file is not None and not p.is_dir():
        ds = _apply_label_file(ds, read_label_file(label_file), str(label_file))
    if len(ds) == 0:
        raise DatasetError(f"{p}: the data set contains no images")
    if max_images is not None and len(ds) > max_images:
        ds = ds.subset(np.arange(max_images))
    return ds


def _apply_label_file(ds: FaceDataset, entries, where: str) -> FaceDataset:
    """Rename/reorder classes of a labelled data set: entries [(existing name, new name)]."""
    old = [n.lower() for n in ds.label_names]
    mapping = np.full(ds.num_classes, -1, dtype=np.int64)
    for new_index, (existing, _) in enumerate(entries):
        if existing.lower() not in old:
            raise DatasetError(f"label file {where} names class {existing!r}, "
                               f"which {ds.source} does not have ({list(ds.label_names)})")
        mapping[old.index(existing.lower())] = new_index
    keep = np.flatnonzero(mapping[ds.labels] >= 0)
    out = ds.subset(keep)
    out.labels = mapping[ds.labels[keep]]
    out.label_names = tuple(name for _, name in entries)
    out.soft_labels = _remap_columns(out.soft_labels, mapping, len(entries))
    out.majority_labels = _remap_labels(out.majority_labels, mapping)
    return out


def _load_npz(p: Path) -> FaceDataset:
    try:
        with np.load(p, allow_pickle=False) as z:
            files = set(z.files)
            missing = {"images", "labels"} - files
            if missing:
                raise DatasetError(f"{p}: npz lacks array(s) {sorted(missing)} "
                                   f"(has {sorted(files)}); expected images N x 48 x 48 uint8 + labels")
            images = z["images"]
            labels = z["labels"]
            names = tuple(str(x) for x in z["label_names"]) if "label_names" in files else None
            subjects = z["subject"] if "subject" in files else None
            splits = z["split"] if "split" in files else None
            votes = (z["ferplus_votes"], z["ferplus_vote_names"]) \
                if {"ferplus_votes", "ferplus_vote_names"} <= files else None
    except DatasetError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled object arrays), OSError
        raise DatasetError(f"{p}: not a readable .npz data set ({type(exc).__name__}: {exc})") from exc
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating) and images.size and images.max() <= 1.0:
            images = images * 255.0
        images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    if images.ndim != 3:
        raise DatasetError(f"{p}: images have shape {images.shape}, expected N x H x W")
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        images = np.stack([_resize(im) for im in images]) if len(images) else images.reshape(0, 48, 48)
    if names is None:
        names = tuple(f"class_{i}" for i in range(int(labels.max()) + 1)) if len(labels) else ()
    if subjects is not None and all(str(s) == "" for s in subjects[: min(len(subjects), 1000)]):
        subjects = None  # FER2013 has an empty subject column
    soft = vote_distribution(votes[0], votes[1], names) if votes is not None else None
    majority = majority_vote_labels(votes[0], votes[1], names) if votes is not None else None
    return FaceDataset(images, labels, names, subjects=subjects, splits=splits, source=str(p),
                       soft_labels=soft, majority_labels=majority)


def _load_csv(p: Path) -> FaceDataset:
    images, labels, splits = [], [], []
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "emotion" not in fields or "pixels" not in fields:
                raise DatasetError(f"{p}: CSV header {reader.fieldnames} lacks 'emotion' and 'pixels' "
                                   "(expected the FER2013 layout emotion,pixels,Usage)")
            for line_no, row in enumerate(reader, start=2):
                row = {k.strip().lower(): v for k, v in row.items() if k is not None}
                try:
                    pix = np.array(row["pixels"].split(), dtype=np.int64)
                    label = int(row["emotion"])
                except (ValueError, AttributeError) as exc:
                    raise DatasetError(f"{p}:{line_no}: unreadable row ({exc})") from exc
                if pix.size != IMAGE_SIZE * IMAGE_SIZE or pix.min() < 0 or pix.max() > 255:
                    raise DatasetError(f"{p}:{line_no}: expected 2304 pixel values 0..255, "
                                       f"got {pix.size}")
                images.append(pix.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE))
                labels.append(label)
                usage = (row.get("usage") or "").strip()
                splits.append(_CSV_USAGE.get(usage.lower(), usage.lower() or "all"))
    except DatasetError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{p}: not a readable FER2013 CSV ({type(exc).__name__}: {exc})") from exc
    if not images:
        raise DatasetError(f"{p}: the CSV has a header but no rows")
    labels = np.array(labels)
    if labels.min() < 0 or labels.max() > 6:
        raise DatasetError(f"{p}: FER2013 emotion codes must be 0..6, found {labels.min()}..{labels.max()}")
    return FaceDataset(np.stack(images), labels, FER2013_LABELS, splits=np.array(splits), source=str(p))


def _opencv():
    """OpenCV, or None where it is not installed (e.g. a JAX or PyTorch training box without it):
    augmentation then runs on :func:`warp_affine_numpy`."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _require_opencv(what: str):
    cv2 = _opencv()
    if cv2 is None:
        raise DatasetError(f"{what} needs OpenCV (pip install opencv-python-headless)")
    return cv2


def _resize(grey: np.ndarray) -> np.ndarray:
    cv2 = _require_opencv("resizing a folder data set's images")
    h, w = grey.shape[:2]
    interp = cv2.INTER_AREA if max(h, w) > IMAGE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(grey, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interp)


def _preprocess_photo_fn():
    try:
        from fer_perception.preprocessing import preprocess_photo
    except ImportError as exc:
        raise DatasetError(
            "folder data set contains photos larger than 64 px, which need face detection and "
            f"alignment from fer_perception.preprocessing.preprocess_photo, not importable here ({exc})"
        ) from exc
    return preprocess_photo


def _load_folder(root: Path, label_file) -> FaceDataset:
    if label_file is not None:
        entries = read_label_file(label_file)
    else:
        entries = [(d.name, d.name) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if len(entries) < 2:
        raise DatasetError(f"{root}: a folder data set needs one sub-folder per class (>= 2), "
                           f"found {[e[0] for e in entries]}")
    images, labels, subjects, skipped = [], [], [], []
    preprocess = None
    for index, (folder, _) in enumerate(entries):
        cls_dir = root / folder
        if not cls_dir.is_dir():
            raise DatasetError(f"{root}: class folder {folder!r} (from the label file) does not exist")
        for f in sorted(cls_dir.rglob("*")):
            if not f.is_file() or f.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            cv2 = _require_opencv(f"reading the images of {root}")
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                skipped.append(f"{f} (unreadable image)")
                continue
            if max(bgr.shape[:2]) <= SMALL_CROP_MAX_SIDE:
                face = _resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
            else:
                if preprocess is None:
                    preprocess = _preprocess_photo_fn()
                face = preprocess(bgr)
                if face is None:
                    skipped.append(f"{f} (no face found)")
                    continue
                face = np.asarray(face)
                if face.ndim == 3:
                    face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
                if face.shape != (IMAGE_SIZE, IMAGE_SIZE):
                    face = _resize(face)
                face = face.astype(np.uint8)
            images.append(face)
            labels.append(index)
            # CK+-style file names (S010_004_...) carry the subject; else the file stem's prefix.
            subjects.append(f.stem.split("_")[0])
    if not images:
        raise DatasetError(f"{root}: no readable images in the class folders "
                           f"({len(skipped)} skipped: {skipped[:3]})")
    return FaceDataset(np.stack(images), np.array(labels), tuple(n for _, n in entries),
                       subjects=np.array(subjects), source=str(root), skipped=skipped)


# --------------------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    description: str


def official_split(ds: FaceDataset, train: str = "train", val: str = "public_test") -> Split:
    """Split by the data set's own split column (FER2013: Training / PublicTest)."""
    if ds.splits is None:
        raise DatasetError(f"{ds.source}: has no split column; use a stratified or subject split")
    tr = np.flatnonzero(ds.splits == train)
    va = np.flatnonzero(ds.splits == val)
    if not len(tr) or not len(va):
        raise DatasetError(f"{ds.source}: split names {ds.split_names()} lack {train!r} or {val!r}")
    return Split(tr, va, f"official: {train} ({len(tr)}) / {val} ({len(va)})")


def stratified_split(labels: np.ndarray, val_fraction: float = 0.125, seed: int = 0) -> Split:
    """Per-class random split; every class with >= 2 samples gets at least one val sample."""
    if not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        va.append(idx[:n_val])
        tr.append(idx[n_val:])
    tr, va = np.sort(np.concatenate(tr)), np.sort(np.concatenate(va))
    return Split(tr, va, f"stratified {1 - val_fraction:.0%}/{val_fraction:.0%} seed {seed}")


def subject_folds(subjects: np.ndarray, k: int = 10, seed: int = 0) -> list[np.ndarray]:
    """Subject-independent k folds: each subject's images all land in one fold.

    Subjects are shuffled (seeded) and assigned greedily, largest first, to the fold with the fewest
    images so far, which keeps fold sizes close. Returns k arrays of sample indices.
    """
    subjects = np.asarray(subjects).astype(str)
    unique, counts = np.unique(subjects, return_counts=True)
    if k < 2:
        raise DatasetError(f"k must be >= 2, got {k}")
    if len(unique) < k:
        raise DatasetError(f"{len(unique)} subjects cannot fill {k} subject-independent folds")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    order = order[np.argsort(-counts[order], kind="stable")]
    sizes = np.zeros(k, dtype=np.int64)
    members: list[list[str]] = [[] for _ in range(k)]
    for i in order:
        f = int(np.argmin(sizes))
        members[f].append(unique[i])
        sizes[f] += counts[i]
    return [np.flatnonzero(np.isin(subjects, m)) for m in members]


def subject_kfold_split(ds: FaceDataset, fold: int, k: int = 10, seed: int = 0) -> Split:
    if ds.subjects is None:
        raise DatasetError(f"{ds.source}: no subject ids; a subject-independent split needs them")
    folds = subject_folds(ds.subjects, k, seed)
    if not 0 <= fold < k:
        raise DatasetError(f"fold must be in 0..{k - 1}, got {fold}")
    va = np.sort(folds[fold])
    tr = np.sort(np.concatenate([f for i, f in enumerate(folds) if i != fold]))
    return Split(tr, va, f"subject-independent fold {fold + 1}/{k} seed {seed}")


def make_split(ds: FaceDataset, scheme: str = "auto", *, fold: int = 0, k: int = 10,
               val_fraction: float = 0.125, seed: int = 0) -> Split:
    """``auto``: official split if the data set has train + a test split, subject k-fold if it
    has subject ids, stratified otherwise. Explicit: ``official``, ``subject``, ``stratified``."""
    if scheme == "auto":
        names = set(ds.split_names())
        if "train" in names and names & {"public_test", "val", "validation", "test"}:
            scheme = "official"
        elif ds.subjects is not None:
            scheme = "subject"
        else:
            scheme = "stratified"
    if scheme == "official":
        names = set(ds.split_names())
        val = next((n for n in ("public_test", "val", "validation", "test") if n in names), "public_test")
        return official_split(ds, "train", val)
    if scheme == "subject":
        return subject_kfold_split(ds, fold, k, seed)
    if scheme == "stratified":
        return stratified_split(ds.labels, val_fraction, seed)
    raise DatasetError(f"unknown split scheme {scheme!r} (auto, official, subject, stratified)")


# --------------------------------------------------------------------------------- augmentation
def affine_matrices(angle_deg: np.ndarray, scale: np.ndarray, tx: np.ndarray, ty: np.ndarray,
                    flip: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """N x 2 x 3 forward (source -> output) matrices: rotation/zoom about the centre as
    cv2.getRotationMatrix2D, then a shift, then an optional mirror x' = (size-1) - x."""
    c = (size - 1) / 2.0
    a = np.deg2rad(np.asarray(angle_deg, np.float64))
    alpha, beta = scale * np.cos(a), scale * np.sin(a)
    m = np.empty((len(a), 2, 3), np.float64)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = alpha, beta, (1 - alpha) * c - beta * c + tx
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = -beta, alpha, beta * c + (1 - alpha) * c + ty
    flip = np.asarray(flip, bool)
    m[flip, 0] = -m[flip, 0]
    m[flip, 0, 2] += size - 1
    return m


def warp_affine_numpy(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """cv2.warpAffine(INTER_LINEAR, BORDER_REPLICATE) of N square uint8 images, in numpy.

    Each output pixel samples the source at the inverse-mapped point, bilinearly, with coordinates
    clamped to the image (replicate). OpenCV interpolates in fixed point (1/32 px, 15-bit weights):
    the two agree to within 1-2 grey levels (test/training/test_data.py)."""
    n, h, w = images.shape[:3]
    full = np.concatenate([matrices, np.tile([[[0.0, 0.0, 1.0]]], (n, 1, 1))], axis=1)
    inv = np.linalg.inv(full)[:, :2]                                  # output -> source
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    grid = np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)])         # 3 x HW
    src = inv @ grid                                                  # N x 2 x HW
    sx = np.clip(src[:, 0], 0, w - 1)
    sy = np.clip(src[:, 1], 0, h - 1)
    x0 = np.minimum(np.floor(sx).astype(np.int64), w - 2)
    y0 = np.minimum(np.floor(sy).astype(np.int64), h - 2)
    fx, fy = sx - x0, sy - y0
    flat = images.reshape(n, h * w).astype(np.float64)
    rows = np.arange(n)[:, None]

    def at(yy, xx):
        return flat[rows, yy * w + xx]

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    out = top * (1 - fy) + bottom * fy
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(images.shape)


@dataclass(frozen=True)
class Augmenter:
    """Random geometric + photometric augmentation of uint8 48x48 faces (numpy; OpenCV when installed).

    rotation: max degrees (uniform +-); shift: max fraction of the side; zoom: max relative scale
    change (uniform 1 +- zoom); flip: horizontal flip with p=0.5; erase_prob: random erasing
    (Zhong et al. 2020) of one rectangle covering ``erase_area`` of the image, filled with noise;
    brightness/contrast: max relative jitter.
    """

    rotation: float = 20.0
    shift: float = 0.1
    zoom: float = 0.1
    flip: bool = True
    erase_prob: float = 0.0
    erase_area: tuple[float, float] = (0.02, 0.2)
    brightness: float = 0.0
    contrast: float = 0.0

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(images)
        out = np.empty_like(images)
        s = IMAGE_SIZE
        angle = rng.uniform(-self.rotation, self.rotation, n)
        scale = rng.uniform(1 - self.zoom, 1 + self.zoom, n)
        tx = rng.uniform(-self.shift, self.shift, n) * s
        ty = rng.uniform(-self.shift, self.shift, n) * s
        flip = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        matrices = affine_matrices(angle, scale, tx, ty, flip, s)
        cv2 = _opencv()
        if cv2 is None:
            out = warp_affine_numpy(images, matrices)
        else:
            for i in range(n):
                out[i] = cv2.warpAffine(images[i], matrices[i], (s, s), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE)
        if self.brightness > 0 or self.contrast > 0:
            f = out.astype(np.float32)
            mean = f.mean(axis=(1, 2), keepdims=True)
            c = rng.uniform(1 - self.contrast, 1 + self.contrast, (n, 1, 1)).astype(np.float32)
            b = rng.uniform(-self.brightness, self.brightness, (n, 1, 1)).astype(np.float32) * 255
            out = np.clip((f - mean) * c + mean + b, 0, 255).astype(np.uint8)
        if self.erase_prob > 0:
            for i in np.flatnonzero(rng.random(n) < self.erase_prob):
                area = rng.uniform(*self.erase_area) * s * s
                aspect = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
                h = int(round(math.sqrt(area * aspect)))
                w = int(round(math.sqrt(area / aspect)))
                if 0 < h < s and 0 < w < s:
                    y, x = rng.integers(0, s - h), rng.integers(0, s - w)
                    out[i, y:y + h, x:x + w] = rng.integers(0, 256, (h, w), dtype=np.uint8)
        return out


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """The RNG of one epoch: a pure function of (seed, epoch), so resumes replay it exactly."""
    return np.random.default_rng([int(seed), int(epoch), int(stream)])


def epoch_arrays(images: np.ndarray, labels: np.ndarray, *, seed: int, epoch: int,
                 augmenter: Augmenter | None, shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (and augmented) training arrays of one epoch; deterministic in (seed, epoch)."""
    rng = epoch_rng(seed, epoch)
    order = rng.permutation(len(images)) if shuffle else np.arange(len(images))
    x = images[order]
    if augmenter is not None:
        x = augmenter(x, rng)
    return x, labels[order]


class EpochArraysAhead:
    """:func:`epoch_arrays` of the next epoch, computed in a background thread while the current
    epoch trains (OpenCV's warps release the GIL), so augmentation overlaps training instead of
    stalling it. The arrays are exactly those of calling ``epoch_arrays(epoch)`` in turn: each is
    a pure function of (seed, epoch), which keeps resumed runs exact. ``ahead=False``: no thread."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, seed: int, augmenter: Augmenter | None,
                 end_epoch: int, ahead: bool = True):
        self._args = (images, labels)
        self._seed, self._augmenter, self._end = seed, augmenter, int(end_epoch)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment") if ahead else None
        self._pending: tuple[int, Future] | None = None

    def _compute(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        return epoch_arrays(*self._args, seed=self._seed, epoch=epoch, augmenter=self._augmenter)

    def get(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The arrays of ``epoch``; starts on ``epoch + 1`` (if there is one) before returning."""
        if self._pending is not None and self._pending[0] == epoch:
            arrays = self._pending[1].result()
        else:
            if self._pending is not None:
                self._pending[1].cancel()
            arrays = self._compute(epoch)
        self._pending = None
        if self._pool is not None and epoch + 1 < self._end:
            self._pending = (epoch + 1, self._pool.submit(self._compute, epoch + 1))
        return arrays

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending = None

    def __enter__(self) -> "EpochArraysAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def class_weights(labels: np.ndarray, num_classes: int, power: float = 1.0) -> np.ndarray:
    """Per-class loss weights (1 / class frequency) ** ``power``, normalised to mean 1 over the
    samples (absent classes: 0). power 1 balances the classes fully; 0.5 (square root) is the
    usual compromise, which lifts rare classes without letting ~10x weights on disgust's 436
    images dominate the gradient."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, (len(labels) / np.maximum(counts, 1) / num_classes) ** power, 0.0)
    return w * len(labels) / max(float(np.sum(counts * w)), 1e-12)


def describe(ds: FaceDataset, index: Iterable[int] | None = None) -> str:
    labels = ds.labels if index is None else ds.labels[np.asarray(list(index))]
    counts = np.bincount(labels, minlength=ds.num_classes)
    return ", ".join(f"{n}={c}" for n, c in zip(ds.label_names, counts))
