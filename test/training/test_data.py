"""Loaders (npz / FER2013 CSV / folder tree), label mapping, splits and augmentation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_training import data as fdata

from .conftest import FER_NAMES, FERPLUS_NAMES, synthetic_faces


def test_npz_loader_and_official_split(tiny_npz):
    ds = fdata.load_dataset(tiny_npz)
    assert ds.images.shape == (560, 48, 48) and ds.images.dtype == np.uint8
    assert ds.label_names == FER_NAMES
    assert ds.subjects is None  # the empty FER2013 subject column is dropped
    split = fdata.make_split(ds)
    assert len(split.train) == 420 and len(split.val) == 140
    assert not set(split.train) & set(split.val)


def test_fer2013_csv_loader(tmp_path):
    images, labels = synthetic_faces(9)
    usage = ["Training"] * 5 + ["PublicTest"] * 2 + ["PrivateTest"] * 2
    lines = ["emotion,pixels,Usage"] + [f"{l},{' '.join(map(str, im.ravel()))},{u}"
                                        for im, l, u in zip(images, labels, usage)]
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(lines) + "\n")
    ds = fdata.load_dataset(path)
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.label_names == FER_NAMES
    assert list(ds.splits) == ["train"] * 5 + ["public_test"] * 2 + ["private_test"] * 2
    split = fdata.make_split(ds)
    assert list(split.val) == [5, 6]


def test_csv_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,image\n1,2 3\n")
    with pytest.raises(fdata.DatasetError, match="emotion"):
        fdata.load_dataset(bad)
    short = tmp_path / "short.csv"
    short.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(fdata.DatasetError, match="2304"):
        fdata.load_dataset(short)


def test_unreadable_datasets(tmp_path):
    with pytest.raises(fdata.DatasetError, match="does not exist"):
        fdata.load_dataset(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(fdata.DatasetError, match="not a readable"):
        fdata.load_dataset(junk)
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(fdata.DatasetError, match="labels"):
        fdata.load_dataset(tmp_path / "nolabels.npz")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(fdata.DatasetError, match="format"):
        fdata.load_dataset(tmp_path / "x.txt")
    empty = tmp_path / "emptytree"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    with pytest.raises(fdata.DatasetError, match="no readable images"):
        fdata.load_dataset(empty)


def test_folder_loader_small_crops_and_label_file(tmp_path):
    images, labels = synthetic_faces(12, num_classes=3)
    root = tmp_path / "tree"
    for i, (im, l) in enumerate(zip(images, labels)):
        d = root / ["Happiness", "Sadness", "Calm"][l]
        d.mkdir(parents=True, exist_ok=True)
        big = cv2.resize(im, (60, 60))  # <= 64 px: resized, no face detection needed
        cv2.imwrite(str(d / f"S{i % 4:03d}_{i}.png"), cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    (root / "Calm" / "broken.png").write_bytes(b"nope")
    ds = fdata.load_dataset(root)
    assert ds.label_names == ("Calm", "Happiness", "Sadness")  # sorted folders
    assert len(ds) == 12 and ds.images.shape[1:] == (48, 48)
    assert any("broken.png" in s for s in ds.skipped)
    assert set(ds.subjects) == {"S000", "S001", "S002", "S003"}
    # A label file fixes order and names.
    lf = tmp_path / "labels.txt"
    lf.write_text("# folder: class\nHappiness: happy\nSadness: sad\nCalm: neutral\n")
    ds2 = fdata.load_dataset(root, label_file=lf)
    assert ds2.label_names == ("happy", "sad", "neutral")
    expected = np.array([["Happiness", "Sadness", "Calm"].index(n) for n in
                         [["Happiness", "Sadness", "Calm"][l] for l in labels]])
    assert sorted(ds2.labels.tolist()) == sorted(expected.tolist())
    fer = fdata.to_fer2013_order(ds2)
    assert fer.label_names == FER_NAMES
    assert set(np.array(FER_NAMES)[fer.labels]) == {"happy", "sad", "neutral"}


def test_folder_loader_large_photos_need_preprocessing(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        cv2.imwrite(str(root / cls / "p.jpg"), np.full((200, 160, 3), 128, np.uint8))
    import sys
    import types

    fake = types.ModuleType("fer_perception.preprocessing")
    calls = []

    def preprocess_photo(bgr):
        calls.append(bgr.shape)
        return None if len(calls) == 1 else np.full((48, 48), 7, np.uint8)

    fake.preprocess_photo = preprocess_photo
    monkeypatch.setitem(sys.modules, "fer_perception.preprocessing", fake)
    ds = fdata.load_dataset(root)
    assert calls == [(200, 160, 3), (200, 160, 3)]
    assert len(ds) == 1 and ds.images[0, 0, 0] == 7
    assert any("no face" in s for s in ds.skipped)


def test_ckplus_mapping_drops_contempt(tiny_ck_npz):
    ds = fdata.load_dataset(tiny_ck_npz)
    assert ds.label_names[1] == "contempt" and ds.num_classes == 7
    fer = fdata.to_fer2013_order(ds)
    assert len(fer) == len(ds) - int((ds.labels == 1).sum())
    # anger -> angry (0), sadness -> sad (4), surprise -> surprise (5)
    for ck, fe in ((0, 0), (5, 4), (6, 5), (4, 3)):
        src = ds.images[ds.labels == ck]
        dst = fer.images[fer.labels == fe]
        np.testing.assert_array_equal(src, dst)


def test_subject_folds_on_ckplus_fixture(tiny_ck_npz):
    ds = fdata.load_dataset(tiny_ck_npz)
    seen = set()
    for fold in range(10):
        split = fdata.make_split(ds, "subject", fold=fold, k=10)
        tr_subj, va_subj = set(ds.subjects[split.train]), set(ds.subjects[split.val])
        assert not tr_subj & va_subj
        assert len(split.train) + len(split.val) == len(ds)
        seen |= set(split.val.tolist())
    assert seen == set(range(len(ds)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=12, max_size=200), st.integers(2, 6), st.integers(0, 5))
def test_subject_folds_never_share_a_subject(subject_ids, k, seed):
    subjects = np.array([f"S{s}" for s in subject_ids])
    if len(set(subject_ids)) < k:
        with pytest.raises(fdata.DatasetError):
            fdata.subject_folds(subjects, k, seed)
        return
    folds = fdata.subject_folds(subjects, k, seed)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(subjects)))
    owners = {}
    for f, idx in enumerate(folds):
        assert len(idx) > 0
        for s in set(subjects[idx]):
            assert owners.setdefault(s, f) == f


def test_stratified_split_keeps_every_class():
    labels = np.repeat(np.arange(5), [2, 10, 40, 3, 100])
    split = fdata.stratified_split(labels, 0.2, seed=1)
    assert set(labels[split.val]) == set(range(5))
    assert not set(split.train) & set(split.val)
    assert len(split.train) + len(split.val) == len(labels)


def test_augmentation_is_deterministic_and_label_preserving():
    images, labels = synthetic_faces(64)
    aug = fdata.Augmenter(rotation=20, shift=0.1, zoom=0.1, flip=True, erase_prob=0.5, brightness=0.2,
                          contrast=0.3)
    a1, l1 = fdata.epoch_arrays(images, labels, seed=3, epoch=5, augmenter=aug)
    a2, l2 = fdata.epoch_arrays(images, labels, seed=3, epoch=5, augmenter=aug)
    a3, _ = fdata.epoch_arrays(images, labels, seed=3, epoch=6, augmenter=aug)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(l1, l2)
    assert not np.array_equal(a1, a3)
    assert a1.dtype == np.uint8 and a1.shape == images.shape
    assert sorted(l1.tolist()) == sorted(labels.tolist())
    # A pure flip augmenter mirrors (p=0.5) and otherwise leaves the pixels alone.
    flip_only = fdata.Augmenter(rotation=0, shift=0, zoom=0, flip=True)
    out = flip_only(images, np.random.default_rng(0))
    for o, im in zip(out, images):
        assert np.array_equal(o, im) or np.array_equal(o, im[:, ::-1])
    assert any(np.array_equal(o, im[:, ::-1]) and not np.array_equal(o, im) for o, im in zip(out, images))


@pytest.mark.parametrize("ahead", [True, False])
def test_epoch_arrays_ahead_are_the_epochs_own_arrays(ahead):
    """Prefetched epochs equal epoch_arrays() called in turn, also when a run resumes mid-way or
    asks for an epoch out of order."""
    images, labels = synthetic_faces(48)
    aug = fdata.Augmenter(rotation=20, shift=0.1, zoom=0.1, flip=True, erase_prob=0.5)
    with fdata.EpochArraysAhead(images, labels, seed=3, augmenter=aug, end_epoch=6, ahead=ahead) as arrays:
        for epoch in (2, 3, 4, 1, 5):  # resume at 2, then a jump back
            x, y = arrays.get(epoch)
            want_x, want_y = fdata.epoch_arrays(images, labels, seed=3, epoch=epoch, augmenter=aug)
            np.testing.assert_array_equal(x, want_x)
            np.testing.assert_array_equal(y, want_y)
    assert arrays._pool is None  # closed: no thread left behind


def test_affine_matrices_are_opencvs_rotation_matrix_with_shift_and_mirror():
    rng = np.random.default_rng(1)
    n = 20
    angle, scale = rng.uniform(-30, 30, n), rng.uniform(0.8, 1.2, n)
    tx, ty, flip = rng.uniform(-5, 5, n), rng.uniform(-5, 5, n), rng.random(n) < 0.5
    got = fdata.affine_matrices(angle, scale, tx, ty, flip)
    for i in range(n):
        m = cv2.getRotationMatrix2D((23.5, 23.5), float(angle[i]), float(scale[i]))
        m[0, 2] += tx[i]
        m[1, 2] += ty[i]
        if flip[i]:
            m[0] = -m[0]
            m[0, 2] += 47
        np.testing.assert_allclose(got[i], m, atol=1e-12)


def test_numpy_warp_matches_opencv_so_training_without_opencv_is_the_same_recipe():
    images, _ = synthetic_faces(64)
    rng = np.random.default_rng(2)
    n = len(images)
    m = fdata.affine_matrices(rng.uniform(-15, 15, n), rng.uniform(0.85, 1.15, n), rng.uniform(-5, 5, n),
                              rng.uniform(-5, 5, n), rng.random(n) < 0.5)
    ref = np.stack([cv2.warpAffine(images[i], m[i], (48, 48), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE) for i in range(n)])
    got = fdata.warp_affine_numpy(images, m)
    diff = np.abs(ref.astype(int) - got.astype(int))
    # OpenCV interpolates in fixed point (measured: mean 0.22, 99.6 % within 1 level); a warp off by
    # half a pixel already differs by 7.8 on average.
    assert diff.mean() < 0.5 and (diff <= 1).mean() > 0.98 and diff.max() <= 8
    identity = fdata.affine_matrices(np.zeros(n), np.ones(n), np.zeros(n), np.zeros(n), np.zeros(n, bool))
    np.testing.assert_array_equal(fdata.warp_affine_numpy(images, identity), images)


def test_augmenter_runs_without_opencv(monkeypatch):
    images, labels = synthetic_faces(16)
    aug = fdata.Augmenter(rotation=15, shift=0.1, zoom=0.15, flip=True, erase_prob=0.5)
    with_cv = aug(images, np.random.default_rng(4))
    monkeypatch.setattr(fdata, "_opencv", lambda: None)
    without = aug(images, np.random.default_rng(4))
    assert np.abs(with_cv.astype(int) - without.astype(int)).mean() < 0.5
    with pytest.raises(fdata.DatasetError, match="needs OpenCV"):
        fdata._resize(np.zeros((100, 100), np.uint8))



def test_vote_distribution_maps_ferplus_columns_and_drops_the_rest():
    votes = np.array([[4, 0, 0, 1, 3, 2, 0, 0, 0, 0],     # neutral/anger/disgust/sad
                      [0, 0, 0, 0, 0, 0, 0, 5, 3, 2],     # only contempt/unknown/not-a-face
                      [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1],  # image FER+ did not annotate
                      [0, 9, 1, 0, 0, 0, 0, 0, 0, 0]])
    dist = fdata.vote_distribution(votes, FERPLUS_NAMES, FER_NAMES)
    np.testing.assert_allclose(dist[0], [0.3, 0.2, 0, 0, 0.1, 0, 0.4])
    assert not dist[1].any() and not dist[2].any()  # no usable vote: all-zero row
    np.testing.assert_allclose(dist[3], [0, 0, 0, 0.9, 0, 0.1, 0])


def test_npz_votes_become_soft_labels_that_follow_relabelling(tmp_path):
    images, labels = synthetic_faces(28)
    ferplus_column = {FER_NAMES.index(fdata.canonical_label(n)): j for j, n in enumerate(FERPLUS_NAMES[:7])}
    votes = np.zeros((28, 10), np.int16)
    votes[np.arange(28), [ferplus_column[c] for c in labels]] = 8  # every annotator agrees with the label
    votes[:, 7] = 2                                                  # plus some contempt, which FER2013 lacks
    path = tmp_path / "votes.npz"
    np.savez(path, images=images, labels=labels, label_names=np.array(FER_NAMES),
             split=np.array(["train"] * 28), ferplus_votes=votes, ferplus_vote_names=FERPLUS_NAMES)
    ds = fdata.load_dataset(path)
    np.testing.assert_array_equal(ds.soft_labels, np.eye(7)[labels])  # FER+ column order undone
    sub = ds.subset(np.array([3, 1]))
    np.testing.assert_array_equal(sub.soft_labels, ds.soft_labels[[3, 1]])
    # Renaming/reordering classes with a label file moves the vote columns along with the labels.
    label_file = tmp_path / "labels.txt"
    label_file.write_text("sad: unhappy\nhappy\n")
    two = fdata.load_dataset(path, label_file=label_file)
    assert len(two) == 8 and two.label_names == ("unhappy", "happy")
    np.testing.assert_array_equal(two.soft_labels, np.eye(2)[two.labels])
    with pytest.raises(fdata.DatasetError, match="soft_labels"):
        fdata.FaceDataset(images, labels, FER_NAMES, soft_labels=np.zeros((28, 3)))


def test_npz_without_votes_has_no_soft_labels(tiny_npz):
    ds = fdata.load_dataset(tiny_npz)
    assert ds.soft_labels is None and ds.majority_labels is None


def test_majority_vote_labels_follow_the_ferplus_rule():
    votes = np.array([[6, 1, 1, 1, 1, 0, 0, 0, 0, 0],     # neutral 6 of 10; the single votes are dropped
                      [4, 0, 0, 3, 3, 0, 0, 0, 0, 0],     # 4 of 10: no majority
                      [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],     # every class a single vote: nothing left
                      [0, 0, 0, 0, 0, 0, 0, 6, 4, 0],     # majority contempt: FER2013 has no such class
                      [0, 0, 0, 0, 3, 2, 0, 0, 0, 0],     # anger 3 of 5 after the drop
                      [0, 0, 0, 0, 0, 0, 0, 0, 0, 9],     # not a face
                      [-1] * 10,                          # not annotated
                      [0, 1, 5, 0, 0, 0, 0, 0, 4, 0]])    # surprise 5 of 9 (the 1 dropped), beside unknown 4
    got = fdata.majority_vote_labels(votes, FERPLUS_NAMES, FER_NAMES)
    want = [FER_NAMES.index("neutral"), -1, -1, -1, FER_NAMES.index("angry"), -1, -1, FER_NAMES.index("surprise")]
    np.testing.assert_array_equal(got, want)


def test_npz_votes_give_majority_labels_that_follow_relabelling(tmp_path):
    images, labels = synthetic_faces(28)
    ferplus_column = {FER_NAMES.index(fdata.canonical_label(n)): j for j, n in enumerate(FERPLUS_NAMES[:7])}
    votes = np.zeros((28, 10), np.int16)
    majority = (labels + 1) % 7                          # annotators disagree with every label
    votes[np.arange(28), [ferplus_column[c] for c in majority]] = 8
    votes[:5, 8] = 9                                     # ... and call the first five "unknown"
    path = tmp_path / "votes.npz"
    np.savez(path, images=images, labels=labels, label_names=np.array(FER_NAMES),
             split=np.array(["train"] * 28), ferplus_votes=votes, ferplus_vote_names=FERPLUS_NAMES)
    ds = fdata.load_dataset(path)
    np.testing.assert_array_equal(ds.majority_labels, np.where(np.arange(28) < 5, -1, majority))
    np.testing.assert_array_equal(ds.subset(np.array([6, 2])).majority_labels, ds.majority_labels[[6, 2]])
    label_file = tmp_path / "labels.txt"
    label_file.write_text("sad: unhappy\nhappy\n")
    two = fdata.load_dataset(path, label_file=label_file)
    kept = np.flatnonzero(np.isin(labels, [FER_NAMES.index("sad"), FER_NAMES.index("happy")]))
    old = ds.majority_labels[kept]
    want = np.select([old == FER_NAMES.index("sad"), old == FER_NAMES.index("happy")], [0, 1], -1)
    np.testing.assert_array_equal(two.majority_labels, want)


def test_label_cleaning_drops_only_the_faces_the_votes_contradict():
    names = ("angry", "happy", "sad")
    labels = np.array([0, 1, 2, 0, 1, 2])
    votes = np.array([[0.7, 0.0, 0.3],   # own label voted for, majority agrees: kept by both rules
                      [0.0, 0.0, 1.0],   # nobody voted happy, majority sad: dropped by both
                      [0.0, 0.6, 0.4],   # some votes for sad, majority happy: only "majority" drops it
                      [0.0, 0.0, 0.0],   # no usable votes: nothing to clean against, kept
                      [0.0, 0.5, 0.5],   # no majority: kept by "majority"
                      [1.0, 0.0, 0.0]], np.float32)  # no vote for sad: "no-vote" drops it
    majority = np.array([0, 2, 1, -1, -1, 0])
    ds = fdata.FaceDataset(np.zeros((6, 48, 48), np.uint8), labels, names, soft_labels=votes,
                           majority_labels=majority)
    every = np.arange(6)
    np.testing.assert_array_equal(fdata.label_cleaning_keep(ds, every, "off"), [1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(fdata.label_cleaning_keep(ds, every, "no-vote"), [1, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(fdata.label_cleaning_keep(ds, every, "majority"), [1, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(fdata.label_cleaning_keep(ds, np.array([5, 2]), "majority"), [0, 0])
    with pytest.raises(fdata.DatasetError, match="unknown label cleaning rule"):
        fdata.label_cleaning_keep(ds, every, "strict")
    bare = fdata.FaceDataset(ds.images, labels, names, source="bare.npz")
    assert fdata.label_cleaning_keep(bare, every, "off").all()
    with pytest.raises(fdata.DatasetError, match="bare.npz: label cleaning needs .*ferplus_votes"):
        fdata.label_cleaning_keep(bare, every, "no-vote")


def test_class_weights_power_balances_fully_at_one_and_partly_below():
    labels = np.array([0] * 80 + [1] * 20)
    for power in (1.0, 0.5):
        w = fdata.class_weights(labels, 3, power=power)
        assert w[2] == 0 and np.mean(w[labels]) == pytest.approx(1.0)  # mean 1 over the samples
    full, root = fdata.class_weights(labels, 3, 1.0), fdata.class_weights(labels, 3, 0.5)
    assert full[1] / full[0] == pytest.approx(4.0) and root[1] / root[0] == pytest.approx(2.0)
