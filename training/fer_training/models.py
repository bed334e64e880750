"""ARCH-1..4 of Chowanda (2021), "Separable convolutional neural networks for facial expressions
recognition", J Big Data 8:132, Tables 1-4, written against backend-agnostic Keras 3.

Two builders:

* :func:`build_architecture` - the architecture proper, exactly the layers of the paper's tables
  (input: normalised 48x48x1, output: softmax probabilities). Its parameter counts are checked
  against :data:`PAPER_PARAM_COUNTS` by :func:`check_paper_counts`.
* :func:`build_model` - the training/serving model: the same layers behind a parameter-free
  ``Rescaling`` layer, so the model contract is "float32 N x 48 x 48 x 1 grey pixels in 0..255 in,
  N x num_classes probabilities out" (normalisation inside the graph). The input is named
  ``faces`` and the softmax layer ``probabilities``; the layer before it, ``logits``, is what
  temperature scaling and flip-TTA wrappers (see :mod:`fer_training.calibration`) hook into.

Every reading of the tables that is not literally printed there is listed in docs/architectures.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

ARCHITECTURES = ("arch1", "arch2", "arch3", "arch4")
# Not the paper's: a larger network to distil ARCH-1 from (fer-train --teacher); never shipped.
TEACHER_ARCHITECTURES = ("vgg",)
VGG_WIDTHS = (32, 64, 128, 256)
INPUT_SHAPE = (48, 48, 1)
INPUT_NAME = "faces"
OUTPUT_NAME = "probabilities"
LOGITS_NAME = "logits"

# Pixel normalisation folded into the graph: 0..255 -> -1..1 (no parameters).
PIXEL_SCALE = 1.0 / 127.5
PIXEL_OFFSET = -1.0


@dataclass(frozen=True)
class ParamCounts:
    total: int
    trainable: int

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable


# From the paper's text and tables. The paper prints 292,862 trainable parameters for ARCH-1,
# which contradicts its own total (293,951 - 2 x 544 BN moving statistics = 292,863).
PAPER_PARAM_COUNTS: dict[str, ParamCounts] = {
    "arch1": ParamCounts(total=293_951, trainable=292_863),
    "arch2": ParamCounts(total=1_142_463, trainable=1_141_375),
    "arch3": ParamCounts(total=306_831, trainable=305_807),
    "arch4": ParamCounts(total=1_155_343, trainable=1_154_319),
}

DESCRIPTIONS = {
    "arch1": "separable convolutions + global average pooling (the proposed model)",
    "arch2": "separable convolutions + flatten/dense head",
    "arch3": "plain convolutions + global average pooling",
    "arch4": "plain convolutions + flatten/dense head",
    "vgg": "teacher for distillation, not the paper's: 4 VGG stages of two 3x3 convs (32-256 channels) + GAP",
}


def normalise_arch_name(name: str) -> str:
    """Accept 'arch1', 'ARCH-1', 'arch-1', '1' ... and return the canonical 'arch1'."""
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key.isdigit():
        key = "arch" + key
    if key not in ARCHITECTURES + TEACHER_ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of "
                         f"{', '.join(ARCHITECTURES + TEACHER_ARCHITECTURES)}")
    return key


# Where an L2 penalty goes: "classifier" = the layer that produces the logits (the classifier
# convolution of ARCH-1/3, the 512 -> k dense of ARCH-2/4); "head" = every classification-head kernel
# (for ARCH-2/4 also the two hidden 512-unit dense layers); "all" = every kernel; "none".
L2_SCOPES = ("classifier", "head", "all", "none")


class _Builder:
    """Creates layers with the regulariser policy of one model."""

    def __init__(self, l2: float, l2_scope: str):
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        if l2_scope not in L2_SCOPES:
            raise ValueError(f"l2_scope must be one of {', '.join(L2_SCOPES)}, got {l2_scope!r}")
        self.l2 = float(l2)
        self.l2_scope = l2_scope

    def _reg(self, head: bool, classifier: bool = False):
        if self.l2 <= 0 or self.l2_scope == "none" or (self.l2_scope == "head" and not head) or (
                self.l2_scope == "classifier" and not classifier):
            return None
        return keras.regularizers.L2(self.l2)

    def conv(self, filters, kernel=3, *, strides=1, use_bias=False, name=None, head=False):
        return layers.Conv2D(
            filters, kernel, strides=strides, padding="same", use_bias=use_bias,
            kernel_initializer="he_normal", kernel_regularizer=self._reg(head, classifier=head), name=name,
        )

    def sepconv(self, filters, *, name=None):
        reg = self._reg(False)
        return layers.SeparableConv2D(
            filters, 3, padding="same", use_bias=False,
            depthwise_initializer="he_normal", pointwise_initializer="he_normal",
            depthwise_regularizer=reg, pointwise_regularizer=reg, name=name,
        )

    def dense(self, units, *, activation=None, name=None, classifier=False):
        return layers.Dense(units, activation=activation, kernel_initializer="he_normal",
                            kernel_regularizer=self._reg(True, classifier), name=name)


def _bn(name):
    return layers.BatchNormalization(name=name)


def _relu(name):
    return layers.Activation("relu", name=name)


def _separable_body(x, b: _Builder):
    """Layers of Tables 1/2 up to activation_10 (6x6x128)."""
    x = b.conv(8, name="conv2d")(x)
    x = _bn("batch_normalization")(x)
    x = _relu("activation")(x)
    x = b.conv(8, name="conv2d_1")(x)
    x = _bn("batch_normalization_1")(x)
    x = _relu("activation_1")(x)
    x = b.conv(16, name="conv2d_2")(x)
    x = _bn("batch_normalization_2")(x)
    x = _relu("activation_2")(x)
    x = b.conv(16, name="conv2d_3")(x)
    x = _bn("batch_normalization_3")(x)
    x = layers.MaxPooling2D(2, name="max_pooling2d")(x)
    trunk = _relu("activation_3")(x)  # 24x24x16, feeds both branches

    # Separable branch.
    s = b.sepconv(32, name="separable_conv2d")(trunk)
    s = _bn("batch_normalization_6")(s)
    s = _relu("activation_4")(s)
    s = b.sepconv(32, name="separable_conv2d_1")(s)
    s = _bn("batch_normalization_7")(s)
    s = layers.MaxPooling2D(2, name="max_pooling2d_1")(s)
    s = _relu("activation_5")(s)  # 12x12x32

    # Residual branch: 1x1 convs; the stride-2 second conv brings 24x24 down to 12x12.
    r = b.conv(16, 1, name="conv2d_4")(trunk)
    r = _bn("batch_normalization_4")(r)
    r = b.conv(32, 1, strides=2, name="conv2d_5")(r)
    r = _bn("batch_normalization_5")(r)

    x = layers.Add(name="add")([s, r])
    x = _relu("activation_6")(x)
    x = b.conv(64, use_bias=True, name="conv2d_6")(x)
    x = _bn("batch_normalization_8")(x)
    x = _relu("activation_7")(x)
    x = b.conv(64, use_bias=True, name="conv2d_7")(x)
    x = _bn("batch_normalization_9")(x)
    x = layers.MaxPooling2D(2, name="max_pooling2d_2")(x)
    x = _relu("activation_8")(x)  # 6x6x64
    x = b.conv(128, use_bias=True, name="conv2d_8")(x)
    x = _bn("batch_normalization_10")(x)
    x = _relu("activation_9")(x)
    x = b.conv(128, use_bias=True, name="conv2d_9")(x)
    x = _bn("batch_normalization_11")(x)
    return _relu("activation_10")(x)  # 6x6x128


def _plain_body(x, b: _Builder):
    """Layers of Tables 3/4 up to activation_10 (6x6x128)."""
    # (filters, max-pool after BN?) for conv2d .. conv2d_10.
    plan = [(8, False), (8, False), (16, False), (16, False), (16, True),
            (32, False), (32, True), (64, False), (64, True), (128, False), (128, False)]
    pools = 0
    for i, (filters, pool) in enumerate(plan):
        suffix = "" if i == 0 else f"_{i}"
        x = b.conv(filters, name=f"conv2d{suffix}")(x)
        x = _bn(f"batch_normalization{suffix}")(x)
        if pool:
            x = layers.MaxPooling2D(2, name="max_pooling2d" + (f"_{pools}" if pools else ""))(x)
            pools += 1
        x = _relu(f"activation{suffix}")(x)
    return x


def _gap_head(x, b: _Builder, num_classes: int, dropout: float, conv_name: str):
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = b.conv(num_classes, use_bias=True, name=conv_name, head=True)(x)
    return layers.GlobalAveragePooling2D(name=LOGITS_NAME)(x)


def _dense_head(x, b: _Builder, num_classes: int, dropout: float, pool_name: str):
    x = layers.MaxPooling2D(2, name=pool_name)(x)
    x = layers.Flatten(name="flatten")(x)
    x = b.dense(512, activation="relu", name="dense")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = b.dense(512, activation="relu", name="dense_1")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout_1")(x)
    return b.dense(num_classes, name=LOGITS_NAME, classifier=True)(x)


def _vgg_body(x, b: _Builder):
    """The distillation teacher: per stage two 3x3 conv-BN-ReLU, then 2x2 max-pool (48 -> 3 px)."""
    for stage, filters in enumerate(VGG_WIDTHS):
        for i in range(2):
            x = b.conv(filters, name=f"vgg{stage}_conv{i}")(x)
            x = _bn(f"vgg{stage}_bn{i}")(x)
            x = _relu(f"vgg{stage}_relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"vgg{stage}_pool")(x)
    return x


def _logits(arch: str, x, b: _Builder, num_classes: int, dropout: float):
    if arch == "vgg":
        return _gap_head(_vgg_body(x, b), b, num_classes, dropout, "vgg_classifier")
    if arch in ("arch1", "arch2"):
        x = _separable_body(x, b)
        if arch == "arch1":
            return _gap_head(x, b, num_classes, dropout, "conv2d_10")
        return _dense_head(x, b, num_classes, dropout, "max_pooling2d_3")
    x = _plain_body(x, b)
    if arch == "arch3":
        return _gap_head(x, b, num_classes, dropout, "conv2d_11")
    return _dense_head(x, b, num_classes, dropout, "max_pooling2d_3")


def _build(arch: str, num_classes: int, dropout: float, l2: float, l2_scope: str, *,
           normalise: bool) -> keras.Model:
    arch = normalise_arch_name(arch)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    b = _Builder(l2, l2_scope)
    if normalise:
        inputs = keras.Input(INPUT_SHAPE, name=INPUT_NAME, dtype="float32")
        x = layers.Rescaling(PIXEL_SCALE, offset=PIXEL_OFFSET, name="normalise")(inputs)
    else:
        inputs = x = keras.Input(INPUT_SHAPE, name="input_1")
    outputs = layers.Activation("softmax", name=OUTPUT_NAME)(_logits(arch, x, b, num_classes, dropout))
    return keras.Model(inputs, outputs, name=arch)


def build_architecture(arch: str, num_classes: int = 7, *, dropout: float = 0.0, l2: float = 0.0,
                       l2_scope: str = "head") -> keras.Model:
    """The architecture proper (paper layers only); input is already normalised."""
    return _build(arch, num_classes, dropout, l2, l2_scope, normalise=False)


def build_model(arch: str, num_classes: int = 7, *, dropout: float = 0.0, l2: float = 0.0,
                l2_scope: str = "head") -> keras.Model:
    """Training/serving model: float32 0..255 pixels in, probabilities out (see module doc)."""
    return _build(arch, num_classes, dropout, l2, l2_scope, normalise=True)


def count_params(model: keras.Model) -> ParamCounts:
    trainable = sum(int(w.numpy().size) if hasattr(w, "numpy") else int(w.size)
                    for w in model.trainable_weights)
    total = trainable + sum(int(w.numpy().size) if hasattr(w, "numpy") else int(w.size)
                            for w in model.non_trainable_weights)
    return ParamCounts(total=total, trainable=trainable)


def check_paper_counts(arch: str, model: keras.Model | None = None) -> ParamCounts:
    """Raise AssertionError unless the (7-class) architecture has the paper's parameter counts."""
    arch = normalise_arch_name(arch)
    model = model if model is not None else build_architecture(arch, 7)
    got = count_params(model)
    want = PAPER_PARAM_COUNTS[arch]
    if got != want:
        raise AssertionError(
            f"{arch}: {got.total:,} total / {got.trainable:,} trainable parameters, "
            f"paper says {want.total:,} / {want.trainable:,}"
        )
    return got


def logits_model(model: keras.Model) -> keras.Model:
    """The same graph as ``model`` but ending at the pre-softmax ``logits`` layer."""
    try:
        layer = model.get_layer(LOGITS_NAME)
    except ValueError as exc:
        raise ValueError(f"model {model.name!r} has no {LOGITS_NAME!r} layer "
                         "(not built by fer_training.models?)") from exc
    return keras.Model(model.inputs, layer.output, name=f"{model.name}_logits")


def main() -> None:  # python -m fer_training.models : print the parameter table
    for arch in ARCHITECTURES:
        got = check_paper_counts(arch)
        print(f"{arch}: {got.total:>9,} total {got.trainable:>9,} trainable  ok ({DESCRIPTIONS[arch]})")


if __name__ == "__main__":
    main()
