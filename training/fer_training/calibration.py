"""Temperature scaling (Guo et al. 2017), post-hoc logit adjustment (Menon et al. 2021), expected
calibration error, and the serving wrapper that folds them and test-time augmentation (mirror,
crops) into the exported graph."""

from __future__ import annotations

import numpy as np

ECE_BINS = 15


def _as_logits(logits_or_probs: np.ndarray) -> np.ndarray:
    """Accept logits or probabilities; probabilities become log-probabilities (equivalent logits)."""
    z = np.asarray(logits_or_probs, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"expected N x C scores, got shape {z.shape}")
    rows = z.sum(axis=1)
    if z.min() >= 0 and np.allclose(rows, 1.0, atol=1e-3):
        z = np.log(np.clip(z, 1e-12, 1.0))
    return z


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits, temperature)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, 1.0))))


def fit_temperature(logits_or_probs: np.ndarray, labels: np.ndarray,
                    bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature T > 0 minimising the NLL of softmax(logits / T) (golden-section on log T).

    The NLL is convex in 1/T, so the 1-D search finds the global minimum within ``bounds``.
    """
    z = _as_logits(logits_or_probs)
    labels = np.asarray(labels, dtype=np.int64)
    if len(z) != len(labels) or len(z) == 0:
        raise ValueError(f"{len(z)} score rows but {len(labels)} labels")
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    g = (np.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(z, labels, np.exp(c)), nll(z, labels, np.exp(d))
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(z, labels, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(z, labels, np.exp(d))
    return float(np.exp((a + b) / 2))


# Logit adjustment strengths tried by ``choose_logit_adjustment`` (0 = none, 1 = the balanced-error
# optimum of Menon et al.).
LOGIT_ADJUST_TAUS = tuple(round(0.05 * i, 2) for i in range(21))


def logit_adjustment(prior: np.ndarray, tau: float) -> np.ndarray:
    """The per-class bias ``-tau * log(prior)`` added to the logits: a model trained on imbalanced
    classes (FER2013: 1.5 % disgust, 25 % happy) carries the training prior in its logits; taking
    ``tau`` of it out lifts the rare classes. Normalised to mean 0 (softmax ignores a constant)."""
    prior = np.asarray(prior, dtype=np.float64)
    if prior.ndim != 1 or not (prior > 0).all():
        raise ValueError(f"the class prior must be positive for every class, got {prior.tolist()}")
    if not tau >= 0:
        raise ValueError(f"the logit adjustment's tau must be >= 0, got {tau}")
    bias = -float(tau) * np.log(prior / prior.sum())
    return bias - bias.mean()


# ``choose_logit_adjustment`` may give up this much validation accuracy (0.25 pt, about a third of
# the standard error of an accuracy on PublicTest's 3,589 faces) for a more balanced model.
LOGIT_ADJUST_ACCURACY_TOLERANCE = 0.0025


def choose_logit_adjustment(logits_or_probs: np.ndarray, labels: np.ndarray, prior: np.ndarray,
                            taus=LOGIT_ADJUST_TAUS,
                            tolerance: float = LOGIT_ADJUST_ACCURACY_TOLERANCE) -> tuple[float, list[dict]]:
    """The ``tau`` of ``taus`` with the highest balanced accuracy (mean per-class recall) among those
    whose accuracy on (logits, labels) is within ``tolerance`` of the most accurate one's, and the
    table behind it: tau, accuracy, balanced accuracy and the lowest per-class recall.

    Accuracy alone is flat in tau within noise (the rare classes are few), so maximising it would
    pick a tau by chance; balanced accuracy then decides among the taus that cost no accuracy."""
    z = _as_logits(logits_or_probs)
    labels = np.asarray(labels, dtype=np.int64)
    present = np.unique(labels)
    rows = []
    for tau in taus:
        pred = (z + logit_adjustment(prior, tau)).argmax(1)
        recall = np.array([(pred[labels == c] == c).mean() for c in present])
        rows.append(dict(tau=float(tau), accuracy=float((pred == labels).mean()),
                         balanced_accuracy=float(recall.mean()), min_recall=float(recall.min())))
    best_accuracy = max(r["accuracy"] for r in rows)
    eligible = [r for r in rows if r["accuracy"] >= best_accuracy - tolerance - 1e-12]
    best = max(eligible, key=lambda r: (r["balanced_accuracy"], -r["tau"]))
    return best["tau"], rows


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with equal-width confidence bins (top-1 confidence vs accuracy), in 0..1."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


# ----------------------------------------------------------------------- Keras serving wrapper
def _keras_layers():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="fer_training")
    class HorizontalFlip(keras.layers.Layer):
        """Mirror N x H x W x C images left-right (no parameters)."""

        def call(self, x):
            return ops.flip(x, axis=2)

    @keras.saving.register_keras_serializable(package="fer_training")
    class CropResize(keras.layers.Layer):
        """Cut the size x size window at (top, left) and resize it back to the input's size.

        Bilinear with half-pixel centres (``tf.image.resize``; ONNX Resize and TFLite
        RESIZE_BILINEAR export it the same way), no antialiasing: the crop is only enlarged.
        """

        def __init__(self, top: int = 0, left: int = 0, size: int = 44, **kwargs):
            super().__init__(**kwargs)
            self.top, self.left, self.size = int(top), int(left), int(size)

        def call(self, x):
            height, width = x.shape[1], x.shape[2]
            window = x[:, self.top:self.top + self.size, self.left:self.left + self.size, :]
            return ops.image.resize(window, (height, width), interpolation="bilinear", antialias=False)

        def get_config(self):
            return {**super().get_config(), "top": self.top, "left": self.left, "size": self.size}

    @keras.saving.register_keras_serializable(package="fer_training")
    class TemperatureScale(keras.layers.Layer):
        """logits / T with a fixed (non-trainable, config-stored) temperature."""

        def __init__(self, temperature: float = 1.0, **kwargs):
            super().__init__(**kwargs)
            if not temperature > 0:
                raise ValueError(f"temperature must be > 0, got {temperature}")
            self.temperature = float(temperature)

        def call(self, x):
            return x * (1.0 / self.temperature)

        def get_config(self):
            return {**super().get_config(), "temperature": self.temperature}

    @keras.saving.register_keras_serializable(package="fer_training")
    class ClassBias(keras.layers.Layer):
        """logits + b with a fixed (non-trainable, config-stored) per-class bias b."""

        def __init__(self, bias=(), **kwargs):
            super().__init__(**kwargs)
            self.bias = [float(v) for v in bias]

        def call(self, x):
            return x + ops.convert_to_tensor(np.asarray(self.bias, dtype=np.float32))

        def get_config(self):
            return {**super().get_config(), "bias": self.bias}

    return HorizontalFlip, CropResize, TemperatureScale, ClassBias


HorizontalFlip, CropResize, TemperatureScale, ClassBias = (None, None, None, None)


def _ensure_layers():
    global HorizontalFlip, CropResize, TemperatureScale, ClassBias
    if HorizontalFlip is None:
        HorizontalFlip, CropResize, TemperatureScale, ClassBias = _keras_layers()
    return HorizontalFlip, CropResize, TemperatureScale, ClassBias


def crop_windows(crop_size: int, image_size: int = 48) -> list[tuple[int, int]]:
    """(top, left) of the five crop-TTA windows: centre, then the four corners."""
    if not 0 < crop_size < image_size:
        raise ValueError(f"crop size must be between 1 and {image_size - 1} pixels, got {crop_size}")
    far, mid = image_size - crop_size, (image_size - crop_size) // 2
    return [(mid, mid), (0, 0), (0, far), (far, 0), (far, far)]


#: which crop-TTA windows ``serving_model`` adds: the centre and four corners, or the centre alone
#: (with the mirror: 4 views, twice the default file's 2 - the model issue's per-face budget)
CROP_TTA_WINDOWS = ("all", "centre")


def serving_model(model, *, temperature: float = 1.0, flip_tta: bool = False, crop_tta: int = 0,
                  crop_tta_windows: str = "all", class_bias=None):
    """Wrap a fer_training model: faces (0..255) -> [TTA logit average] -> [+ class bias] -> / T -> softmax.

    ``flip_tta`` adds the mirror image; ``crop_tta`` (a window size in pixels, 0 = off) adds the
    centre and four corner windows of that size, each resized back to the input size (and
    mirrored too with ``flip_tta``): 2, 6 or 12 views, their logits averaged; ``crop_tta_windows="centre"``
    adds the centre window alone (2 or 4 views). With temperature 1
    and no TTA the output equals ``model``'s. ``class_bias`` (one value per class, e.g.
    :func:`logit_adjustment`) is added to the averaged logits before the temperature. The
    input/output names follow the model contract (``faces`` -> ``probabilities``).
    """
    import keras

    from .models import INPUT_NAME, OUTPUT_NAME, logits_model

    flip_layer, crop_layer, temp_layer, bias_layer = _ensure_layers()
    core = logits_model(model)
    inputs = keras.Input(model.inputs[0].shape[1:], name=INPUT_NAME, dtype="float32")
    if crop_tta_windows not in CROP_TTA_WINDOWS:
        raise ValueError(f"crop_tta_windows must be one of {', '.join(CROP_TTA_WINDOWS)}, got {crop_tta_windows!r}")
    views = [inputs]
    if crop_tta:
        windows = crop_windows(crop_tta, int(inputs.shape[1]))
        views += [crop_layer(top, left, crop_tta, name=f"crop{crop_tta}_{top}_{left}")(inputs)
                  for top, left in (windows[:1] if crop_tta_windows == "centre" else windows)]
    if flip_tta:
        views += [flip_layer(name=f"hflip_{i}" if i else "hflip")(view) for i, view in enumerate(views)]
    logits = [core(view) for view in views]
    logits = keras.layers.Average(name="tta_average")(logits) if len(logits) > 1 else logits[0]
    has_bias = class_bias is not None and np.any(np.asarray(class_bias) != 0)
    if has_bias:
        if len(class_bias) != int(logits.shape[-1]):
            raise ValueError(f"class_bias has {len(class_bias)} values, the model {int(logits.shape[-1])} classes")
        logits = bias_layer(list(class_bias), name="class_bias")(logits)
    if temperature != 1.0:
        logits = temp_layer(temperature, name="temperature")(logits)
    probs = keras.layers.Activation("softmax", name=OUTPUT_NAME)(logits)
    suffix = ("_tta" if flip_tta else "") + (f"_crop{crop_tta}" if crop_tta else "") + \
        ("c" if crop_tta and crop_tta_windows == "centre" else "") + \
        ("_bias" if has_bias else "") + (f"_T{temperature:.3f}" if temperature != 1.0 else "")
    return keras.Model(inputs, probs, name=f"{model.name}_serving{suffix}")


def custom_objects() -> dict:
    flip_layer, crop_layer, temp_layer, bias_layer = _ensure_layers()
    return {"HorizontalFlip": flip_layer, "CropResize": crop_layer, "TemperatureScale": temp_layer,
            "ClassBias": bias_layer}
