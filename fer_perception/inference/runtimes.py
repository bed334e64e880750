"""Low-level model runners: one single-input ONNX/TFLite/TensorRT model, batch in, outputs out.

A runner knows nothing about faces. The emotion backends (:mod:`fer_perception.inference`) and the
BlazeFace detector (:mod:`fer_perception.blazeface`) both run on these, so the detector uses the
same runtimes (ONNX Runtime or LiteRT on a CPU, TensorRT on a GPU) as the classifier.

Every runtime library is imported lazily, inside the runner that needs it: importing this module
costs nothing and never fails because an optional runtime is absent.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from fer_perception.errors import BackendUnavailableError, ModelLoadError

PRECISIONS = ("fp32", "fp16", "int8")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise BackendUnavailableError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    return precision


def require_file(path: str | os.PathLike, what: str = "model") -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{what} file not found: {path}")
    return path


class Runner:
    """One loaded model with a single input whose first dimension is the batch.

    ``input_shape`` / ``output_shapes`` hold ``None`` for dynamic dimensions.
    ``run(batch)`` returns the outputs in ``output_names`` order as float32 NumPy arrays.
    """

    name: str = ""
    path: Path
    input_name: str
    input_shape: tuple[int | None, ...]
    output_names: tuple[str, ...]
    output_shapes: tuple[tuple[int | None, ...], ...]
    max_batch: int | None = None  # None: no limit

    def run(self, batch: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release device memory and streams (TensorRT); CPU runtimes free theirs with the object."""

    def describe(self) -> dict:
        return {
            "runtime": self.name,
            "model": str(self.path),
            "input": {self.input_name: list(self.input_shape)},
            "outputs": {n: list(s) for n, s in zip(self.output_names, self.output_shapes)},
            "max_batch": self.max_batch,
        }


def _dims(shape: Sequence) -> tuple[int | None, ...]:
    return tuple(int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else None for d in shape)


# --------------------------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------------------------


def onnxruntime_providers() -> list[str]:
    """ONNX Runtime's available execution providers ([] when onnxruntime is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


class OrtRunner(Runner):
    """ONNX Runtime session: TensorRT/CUDA execution providers first when present, else CPU.

    ``threads`` sets intra-op threads (None: ONNX Runtime's default, one per physical core);
    inter-op parallelism is off (sequential execution) since these graphs are chains.
    ``spinning``: whether idle intra-op worker threads busy-wait for the next run (ONNX Runtime's
    default). Off by default here: the detector and the classifier are two sessions that run one
    after the other, and on a CPU shared with other processes spinning workers of one session take
    cores from the other. Measured on this 2-core machine while another job used ~1 core, one
    BlazeFace + one ARCH-1 run, 2 threads each: p50 6.2 ms / p90 26 ms with spinning, 2.7 / 3.2 ms
    without (1 thread: 2.3 ms either way).
    ``precision='fp16'`` needs ONNX Runtime's TensorRT execution provider; on CPU only fp32 runs;
    int8 is left to the native TensorRT backend (calibration) and to int8 .tflite models.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        threads: int | None = None,
        precision: str = "fp32",
        providers: Sequence[str] | None = None,
        cache_dir: str | os.PathLike | None = None,
        spinning: bool = False,
    ):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a runtime requirement
            raise BackendUnavailableError(
                "onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)"
            ) from exc
        self.path = require_file(path)
        check_precision(precision)
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
                         if p in available] + ["CPUExecutionProvider"]
        else:
            missing = [p for p in providers if p not in available]
            if missing:
                raise BackendUnavailableError(
                    f"ONNX Runtime execution provider(s) {missing} not available; available: {available}"
                )
        if precision == "int8":
            raise BackendUnavailableError(
                "precision 'int8' is not offered on the onnxruntime backend (its TensorRT execution "
                "provider would need a calibration table); use the 'tensorrt' backend with "
                "calibration=..., or an int8 .tflite with the 'tflite' backend"
            )
        if precision != "fp32" and "TensorrtExecutionProvider" not in providers:
            raise BackendUnavailableError(
                f"precision {precision!r} with the onnxruntime backend needs ONNX Runtime's TensorRT "
                f"execution provider (available here: {available}); use precision='fp32', or the "
                "'tensorrt' backend on a GPU, or a quantised .tflite with the 'tflite' backend"
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        if threads is not None:
            if int(threads) < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.spinning = bool(spinning)
        provider_list: list = []
        for p in providers:
            if p == "TensorrtExecutionProvider":
                trt_opts = {
                    "trt_fp16_enable": precision == "fp16",
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache_dir or self.path.parent),
                }
                provider_list.append((p, trt_opts))
            else:
                provider_list.append(p)
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=opts, providers=provider_list)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            raise ModelLoadError(f"ONNX Runtime cannot load {self.path}: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(f"{self.path}: expected one input, found {[i.name for i in inputs]}")
        if inputs[0].type != "tensor(float)":
            raise ModelLoadError(f"{self.path}: input {inputs[0].name} is {inputs[0].type}, expected tensor(float)")
        self.input_name = inputs[0].name
        self.input_shape = _dims(inputs[0].shape)
        outputs = self._session.get_outputs()
        self.output_names = tuple(o.name for o in outputs)
        self.output_shapes = tuple(_dims(o.shape) for o in outputs)
        self.providers = tuple(self._session.get_providers())
        self.threads = threads
        self.precision = precision
        self._output_list = list(self.output_names)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(self._output_list, {self.input_name: batch})

    def describe(self) -> dict:
        import onnxruntime as ort

        d = super().describe()
        d.update(version=ort.__version__, providers=list(self.providers), precision=self.precision,
                 intra_op_threads=self.threads if self.threads is not None else "default (physical cores)",
                 spinning=self.spinning)
        return d


# --------------------------------------------------------------------------------------------
# LiteRT (TFLite)
# --------------------------------------------------------------------------------------------


# LiteRT prints this once per process from C++ straight to fd 2; in a ROS node it is noise between
# the log lines (and breaks "one clear line" start-up errors). No API turns it off.
_LITERT_BANNER = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_litert_banner():
    """Capture native stderr while LiteRT starts; write back everything except its banner line."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, pytest capture): leave it
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            kept = b"".join(line for line in sink.read().splitlines(keepends=True)
                            if not line.startswith(_LITERT_BANNER))
            if kept:
                os.write(fd, kept)


def _tflite_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # older name of the same runtime
        except ImportError as exc:
            raise BackendUnavailableError(
                "the tflite backend needs LiteRT: pip install ai-edge-litert (or tflite-runtime)"
            ) from exc
    return Interpreter


class TfliteRunner(Runner):
    """LiteRT interpreter (XNNPACK on CPU). Resizes its input tensor when the batch size changes;
    models whose graph hard-codes batch 1 (a Reshape to [1, ...]) are run sample by sample.
    Quantised (int8/uint8) inputs and outputs are (de)quantised with the tensors' own parameters.
    """

    name = "tflite"

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        Interpreter = _tflite_interpreter_class()
        self.path = require_file(path)
        try:
            kwargs = {"num_threads": int(threads)} if threads else {}
            with _without_litert_banner():
                self._interp = Interpreter(model_path=str(self.path), **kwargs)
                self._interp.allocate_tensors()
        except Exception as exc:
            raise ModelLoadError(f"LiteRT cannot load {self.path}: {exc}") from exc
        ins = self._interp.get_input_details()
        if len(ins) != 1:
            raise ModelLoadError(f"{self.path}: expected one input, found {[d['name'] for d in ins]}")
        self._in = ins[0]
        self.input_name = self._in["name"]
        sig = self._in.get("shape_signature", self._in["shape"])
        self.input_shape = (None,) + _dims(sig[1:])
        outs = self._interp.get_output_details()
        self._outs = outs
        self.output_names = tuple(d["name"] for d in outs)
        self.output_shapes = tuple((None,) + _dims(d.get("shape_signature", d["shape"])[1:]) for d in outs)
        self.threads = threads
        self._batch = int(self._in["shape"][0])
        self._per_sample = False
        self._in_quant = self._in["dtype"] in (np.int8, np.uint8)
        self.input_dtype = np.dtype(self._in["dtype"])

    def _resize(self, n: int) -> None:
        shape = [n] + [int(d) for d in self._in["shape"][1:]]
        self._interp.resize_tensor_input(self._in["index"], shape, strict=False)
        self._interp.allocate_tensors()
        self._outs = self._interp.get_output_details()
        self._batch = n

    def _quantise(self, x: np.ndarray) -> np.ndarray:
        if not self._in_quant:
            return x
        scale, zero = self._in["quantization"]
        info = np.iinfo(self.input_dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(self.input_dtype)

    def _outputs(self) -> list[np.ndarray]:
        res = []
        for d in self._outs:
            y = self._interp.get_tensor(d["index"])
            if d["dtype"] in (np.int8, np.uint8):
                scale, zero = d["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            res.append(y.astype(np.float32, copy=False))
        return res

    def _invoke(self, x: np.ndarray) -> list[np.ndarray]:
        self._interp.set_tensor(self._in["index"], self._quantise(x))
        self._interp.invoke()
        return self._outputs()

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        n = int(batch.shape[0])
        if not self._per_sample:
            if n != self._batch:
                self._resize(n)
            outs = self._invoke(batch)
            if all(o.shape[0] == n for o in outs):
                return outs
            # The graph fixes batch 1 internally: fall back to one invoke per sample from now on.
            self._per_sample = True
        if self._batch != 1:
            self._resize(1)
        per = [self._invoke(batch[i : i + 1]) for i in range(n)]
        return [np.concatenate([p[k] for p in per], axis=0) for k in range(len(self._outs))]

    def describe(self) -> dict:
        d = super().describe()
        d.update(input_dtype=str(self.input_dtype),
                 threads=self.threads if self.threads else "default",
                 per_sample=self._per_sample)
        return d
