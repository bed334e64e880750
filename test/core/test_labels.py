"""The label table: canonical names, circumplex points for any model's names, defined values for names
without one."""

from __future__ import annotations

import numpy as np
import pytest

from fer_perception.labels import (
    EMOTION_LABELS,
    NO_CIRCUMPLEX_POINT,
    VALENCE_AROUSAL,
    canonical_label,
    circumplex_point,
    valence_arousal,
)

CKPLUS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


def test_data_sets_names_map_through_the_table_never_by_position():
    assert [canonical_label(n) for n in CKPLUS] == ["angry", "contempt", "disgust", "fear", "happy", "sad",
                                                    "surprise"]
    assert canonical_label(" Happiness ") == "happy" and canonical_label("scared") == "fear"
    assert canonical_label("bored") is None


def test_synonyms_share_the_circumplex_point_of_their_canonical_name():
    for name, canon in (("anger", "angry"), ("sadness", "sad"), ("happiness", "happy"), ("surprised", "surprise")):
        assert circumplex_point(name) == VALENCE_AROUSAL[canon]


def test_names_without_a_point_sit_at_the_documented_origin():
    assert NO_CIRCUMPLEX_POINT == (0.0, 0.0)
    assert circumplex_point("contempt") == NO_CIRCUMPLEX_POINT
    assert circumplex_point("no-such-emotion") == NO_CIRCUMPLEX_POINT
    only_contempt = np.eye(7, dtype=np.float32)[1]
    np.testing.assert_allclose(valence_arousal(only_contempt, CKPLUS), [0.0, 0.0])
    half = np.zeros(7, np.float32)
    half[[0, 1]] = 0.5  # half anger, half contempt: half of anger's point, still inside -1..1
    np.testing.assert_allclose(valence_arousal(half, CKPLUS), np.array(VALENCE_AROUSAL["angry"]) / 2, rtol=1e-6)


def test_any_number_of_classes_and_a_clear_error_on_a_mismatch():
    six = ("anger", "disgust", "fear", "happy", "sadness", "surprise")
    va = valence_arousal(np.full((3, 6), 1 / 6, np.float32), six)
    assert va.shape == (3, 2) and np.all(np.abs(va) <= 1)
    ferplus = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert valence_arousal(np.eye(8, dtype=np.float32)[1], ferplus) == pytest.approx(VALENCE_AROUSAL["happy"])
    with pytest.raises(ValueError, match="expected 6 class probabilities .anger"):
        valence_arousal(np.full(7, 1 / 7, np.float32), six)
    assert valence_arousal(np.eye(7, dtype=np.float32)[3]) == pytest.approx(VALENCE_AROUSAL["happy"])  # FER2013 order
    assert EMOTION_LABELS[3] == "happy"
