"""Keras/TensorFlow process set-up shared by the CLIs: threads, logical CPU devices, quiet logs, seeds.

Must run before TensorFlow creates its context (i.e. before any op), which is why every CLI calls
:func:`configure` first thing.
"""

from __future__ import annotations

import os

_configured = False


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


#: TensorFlow's oneDNN kernels, unless TF_ENABLE_ONEDNN_OPTS says otherwise: TensorFlow enables them
#: by itself only on CPUs with AVX-512 VNNI/AMX, but they trained ARCH-1 1.1-2x faster on a quiet 2-core
#: AVX2 CPU too (benchmarks/train_throughput.py; docs/training.md, "Training throughput").
ONEDNN_DEFAULT = "1"


def inter_op_threads(threads: int) -> int:
    """TensorFlow inter-op threads: FER_TF_INTER_OP_THREADS, else 1 (ARCH-1 is one chain of layers:
    a second inter-op thread only competes with the intra-op pool; benchmarks/train_throughput.py)."""
    value = os.environ.get("FER_TF_INTER_OP_THREADS", "").strip()
    if not value:
        return 1
    try:
        n = int(value)
    except ValueError:
        raise RuntimeError(f"FER_TF_INTER_OP_THREADS must be a whole number, got {value!r}") from None
    if n < 1:
        raise RuntimeError(f"FER_TF_INTER_OP_THREADS must be >= 1, got {n}")
    return min(n, max(threads, 1))


def augment_ahead() -> bool:
    """Augment the next epoch in a background thread while one trains: FER_AUGMENT_AHEAD (1 | 0,
    default 1). The arrays are the same either way; 0 exists for side-by-side timing."""
    value = os.environ.get("FER_AUGMENT_AHEAD", "1").strip()
    if value not in ("0", "1"):
        raise RuntimeError(f"FER_AUGMENT_AHEAD must be 0 or 1, got {value!r}")
    return value == "1"


def configure(threads: int | None = None, cpu_devices: int = 1, deterministic: bool = False,
              quiet: bool = True) -> None:
    """Thread pools sized to the cores, optional N logical CPU devices, optional op determinism."""
    global _configured
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", ONEDNN_DEFAULT)  # read when TensorFlow loads
    # The training code is plain Keras 3: KERAS_BACKEND=jax (or torch) trains on machines without
    # TensorFlow, e.g. a GPU box with JAX. Thread pools and op determinism below are TensorFlow's.
    if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
        if cpu_devices > 1 or deterministic:
            raise RuntimeError("logical CPU devices and op determinism need KERAS_BACKEND=tensorflow")
        _configured = True
        return
    import tensorflow as tf

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if _configured:
        return
    threads = threads or cpu_count()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads(threads))
        if cpu_devices > 1:
            cpus = tf.config.list_physical_devices("CPU")
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_devices)])
    except RuntimeError as exc:  # context already initialised (e.g. inside a test process)
        if cpu_devices > 1 and len(tf.config.list_logical_devices("CPU")) < cpu_devices:
            raise RuntimeError(f"cannot create {cpu_devices} logical CPU devices: TensorFlow is "
                               f"already initialised ({exc})") from exc
    _configured = True


def set_seed(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(int(seed))
