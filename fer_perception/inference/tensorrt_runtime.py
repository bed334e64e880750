"""Native TensorRT runner: builds an engine from the ONNX file on first start and caches it.

* TensorRT (``import tensorrt``, >= 8.5: the name-based tensor API) and cuda-python (device
  buffers, copies and the stream: ``cuda.bindings.runtime``, or ``cuda.cudart`` in cuda-python
  < 12.6) are imported lazily. cuda-python was chosen over PyCUDA (needs a compiler on the Jetson)
  and torch (a large extra dependency): it is a thin, pip-installable wrapper over the CUDA runtime
  that NVIDIA's own TensorRT samples use.
* Versions: TensorRT 8.5-10.x for every precision; 11.x for fp32 only (TensorRT 11 builds strongly
  typed networks: no BuilderFlag.FP16/INT8, no IInt8EntropyCalibrator2); anything else is refused
  with the reason. Every failure of TensorRT or CUDA (import, CUDA init, parse, build, deserialise,
  a shape it refuses) is a :class:`TensorRTError` naming the cause and the fix; under backend
  ``auto`` the caller falls back to LiteRT/ONNX Runtime (fer_perception.inference.create_backend).
* The engine has one optimisation profile over the batch dimension, 1..max_batch, tuned (OPT) for
  ``opt_batch`` (default :data:`DEFAULT_OPT_BATCH`: frames carry one to three faces); the other
  input dimensions come from the ONNX file.
* Precision fp32 (TF32 off, so fp32 engines match ONNX Runtime to 1e-4), fp16 (``BuilderFlag.FP16``)
  or int8 (``BuilderFlag.INT8`` + FP16 fallback, with an entropy calibrator over representative
  inputs: an array or an .npz file, calibrated on a profile whose OPT is the calibrator's batch).
  int8 without calibration data (as the node runs it) is refused unless a ``.calib`` cache exists.
* The engine is cached next to the ONNX file (or in ``cache_dir`` when that is not writable) as
  ``<stem>.<precision>.b<max_batch>.<key>.engine`` where ``key`` hashes the TensorRT version, GPU
  name and compute capability, precision, max batch and the ONNX file's SHA-256. Any mismatch gives
  a different key and so a rebuild; stale engines of the same stem/precision are removed after a
  successful build (same max batch only). An int8 engine is not rebuilt when only the
  calibration data change: delete its .engine (and .calib) to recalibrate. An engine that fails to deserialise is rebuilt.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from fer_perception.errors import BackendUnavailableError, FerError, ModelLoadError
from fer_perception.inference.runtimes import Runner, check_precision, require_file
from fer_perception.inference.sidecar import file_sha256

log = logging.getLogger(__name__)

#: TensorRT versions this runner supports: [MIN, MAX); FP32_ONLY_FROM and later build fp32 only.
MIN_VERSION, MAX_VERSION, FP32_ONLY_FROM = (8, 5), (12, 0), (11, 0)
#: OPT batch of the classifier's profile: a frame carries 1-3 faces, not max_batch.
DEFAULT_OPT_BATCH = 2


class TensorRTError(BackendUnavailableError):
    """TensorRT or CUDA failed (import, CUDA init, parse, build, deserialise, shapes, execute)."""


_LOGGER = None


def _trt_logger(trt):
    """One trt.Logger per process: TensorRT keeps the first logger it sees globally, and a second
    one (a runner per model) could leave it pointing at a freed object."""
    global _LOGGER
    if _LOGGER is None:
        _LOGGER = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(_LOGGER, "")
    return _LOGGER


def _version(trt) -> tuple[int, int]:
    major, minor = (int(x) for x in str(trt.__version__).split(".")[:2])
    return major, minor


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(
            "the tensorrt backend needs NVIDIA TensorRT's Python bindings (import tensorrt failed: "
            f"{exc}). On a Jetson they come with JetPack (apt install python3-libnvinfer); on x86 "
            "pip install tensorrt. Use backend='onnxruntime' on machines without TensorRT."
        ) from exc
    version = _version(trt)
    if not MIN_VERSION <= version < MAX_VERSION:
        raise BackendUnavailableError(
            f"TensorRT {trt.__version__} is not supported: this runner needs 8.5 <= TensorRT < 12 (every "
            f"precision up to 10.x, fp32 on 11.x); install one (JetPack 6 ships 10.3; pip install "
            f"'tensorrt>=10,<11' on x86) or use backend onnxruntime/tflite")
    return trt


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise BackendUnavailableError(
                "the tensorrt backend needs cuda-python for device buffers: pip install cuda-python "
                "pinned to the CUDA runtime's minor version, e.g. cuda-python==12.6.* on JetPack 6.1/6.2 (docs/jetson.md)"
            ) from exc
    return cudart


def _check(result):
    """cuda-python returns (err, *values); raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise TensorRTError(f"CUDA error {err}: check that the driver, the CUDA runtime and cuda-python match "
                            f"(docs/jetson.md)")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def gpu_info() -> dict:
    """Name and compute capability of GPU 0 (raises BackendUnavailableError without one)."""
    cudart = _import_cudart()
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        raise BackendUnavailableError(f"no CUDA GPU found (cudaGetDeviceCount: {err}, {count})")
    props = _check(cudart.cudaGetDeviceProperties(0))
    name = props.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode()
    info = {"name": str(name), "compute_capability": f"{props.major}.{props.minor}",
            "multiprocessors": int(getattr(props, "multiProcessorCount", 0) or 0),
            "memory_mb": int(getattr(props, "totalGlobalMem", 0) or 0) >> 20}
    info["device_model"] = device_model()
    return info


def cuda_versions() -> dict[str, str] | None:
    """CUDA runtime and driver versions as cuda-python reports them (e.g. '12.6'), None without it."""
    try:
        cudart = _import_cudart()
    except BackendUnavailableError:
        return None

    def fmt(result) -> str:
        err, value = result
        return f"{int(value) // 1000}.{int(value) % 1000 // 10}" if int(err) == 0 else f"unknown ({err})"

    return {"runtime": fmt(cudart.cudaRuntimeGetVersion()), "driver": fmt(cudart.cudaDriverGetVersion())}


#: Where a Jetson names its module: every Orin reports the GPU name "Orin" and capability 8.7, and SM
#: count and memory do not tell an Orin NX 8 GB from an Orin Nano 8 GB; this file does.
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def device_model(path: Path | None = None) -> str:
    """The board's model string (Jetson: e.g. 'NVIDIA Jetson Orin NX Engineering Reference Developer
    Kit'), '' on a machine without one (a desktop GPU: its name and capability identify it)."""
    try:
        return (path or DEVICE_TREE_MODEL).read_bytes().split(b"\0", 1)[0].decode(errors="replace").strip()
    except OSError:
        return ""


def tensorrt_status() -> str | None:
    """None when TensorRT + cuda-python + a GPU are usable here, else the reason they are not."""
    try:
        _import_tensorrt()
        gpu_info()
    except BackendUnavailableError as exc:
        return str(exc)
    except Exception as exc:  # a broken driver install, say
        return f"CUDA/TensorRT not usable: {exc}"
    return None


def engine_cache_key(trt_version: str, gpu_name: str, compute_capability: str, precision: str,
                     onnx_sha256: str, max_batch: int, extra: str = "") -> str:
    """16 hex digits identifying one engine build; any change of an ingredient changes it
    (``extra``: further build settings, e.g. the OPT batch and workspace)."""
    text = "|".join([trt_version, gpu_name, compute_capability, precision, onnx_sha256, str(max_batch), extra])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_info_path(engine_path: Path) -> Path:
    """``<engine>.build.json``: what the engine was built from (never taken for the model's sidecar,
    never packaged: setup.py ships only the sidecars of the shipped models)."""
    return engine_path.with_name(engine_path.name + ".build.json")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file of this writer's own (unique per process and thread) and
    rename it into place: a reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_superseded_engines(engine_path: Path, meta: dict) -> list[Path]:
    """Delete the engines this build replaces, with their build info and .calib: same ONNX file,
    precision and max batch, and the same TensorRT and GPU (so an engine another machine or TensorRT
    install shares this folder for is kept), built from another ONNX hash or other settings."""
    removed = []
    stem = Path(meta["onnx"]).stem
    for other in engine_path.parent.glob(f"{stem}.{meta['precision']}.b{meta['max_batch']}.*.engine"):
        if other == engine_path:
            continue
        try:
            info = json.loads(build_info_path(other).read_text())
        except (OSError, ValueError):
            continue  # unknown provenance: not ours to delete
        if info.get("onnx") != meta["onnx"] or info.get("tensorrt") != meta["tensorrt"] or info.get("gpu") != meta["gpu"]:
            continue
        for path in (other, build_info_path(other), other.with_suffix(".calib")):
            path.unlink(missing_ok=True)
        removed.append(other)
    return removed


def engine_cache_path(onnx_path: Path, precision: str, max_batch: int, key: str,
                      cache_dir: Path | None = None) -> Path:
    directory = Path(cache_dir) if cache_dir is not None else onnx_path.parent
    return directory / f"{onnx_path.stem}.{precision}.b{max_batch}.{key}.engine"


def load_calibration_inputs(calibration, input_shape: tuple[int, ...]) -> np.ndarray:
    """Representative inputs for int8 calibration as float32 of the model's per-sample shape.

    ``calibration`` is an array or an .npz path (array under 'faces', 'images' or 'x', else the
    first array). Grey N x H x W arrays get a channel axis; uint8 stays in 0..255 (the contract).
    """
    if calibration is None:
        raise ModelLoadError("precision='int8' needs representative inputs: pass calibration=<array or .npz>")
    if isinstance(calibration, (str, os.PathLike)):
        path = require_file(calibration, "calibration data")
        with np.load(path) as npz:
            key = next((k for k in ("faces", "images", "x") if k in npz.files), npz.files[0])
            data = npz[key]
    else:
        data = np.asarray(calibration)
    if data.ndim == len(input_shape) and input_shape[-1] == 1:
        data = data[..., None]
    if tuple(data.shape[1:]) != tuple(input_shape):
        raise ModelLoadError(f"calibration data has shape {data.shape}, expected N x {input_shape}")
    if len(data) == 0:
        raise ModelLoadError("calibration data is empty")
    return np.ascontiguousarray(data, dtype=np.float32)


class TensorRTRunner(Runner):
    name = "tensorrt"

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        *,
        precision: str = "fp32",
        max_batch: int = 32,
        opt_batch: int | None = None,
        calibration=None,
        cache_dir: str | os.PathLike | None = None,
        workspace_mb: int = 512,
    ):
        try:
            self._load(onnx_path, precision, max_batch, opt_batch, calibration, cache_dir, workspace_mb)
        except FerError:
            raise
        except Exception as exc:  # e.g. TypeError "factory function returned nullptr": a TensorRT/CUDA mismatch
            raise TensorRTError(f"TensorRT could not load {Path(onnx_path).name}: {type(exc).__name__}: {exc}; "
                                f"check that TensorRT, CUDA and the driver versions match (docs/jetson.md)") from exc

    def _load(self, onnx_path, precision, max_batch, opt_batch, calibration, cache_dir, workspace_mb) -> None:
        self.path = require_file(onnx_path)
        self.precision = check_precision(precision)
        trt = _import_tensorrt()
        if self.precision != "fp32" and _version(trt) >= FP32_ONLY_FROM:
            raise TensorRTError(
                f"precision {self.precision} needs TensorRT 8.5-10.x: TensorRT {trt.__version__} builds strongly "
                f"typed networks only (no FP16/INT8 builder flags); use precision fp32 here, or TensorRT 10.x")
        self._cudart = _import_cudart()
        gpu = gpu_info()
        self.gpu = gpu
        self.max_batch = int(max_batch)
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.opt_batch = min(max(int(opt_batch or DEFAULT_OPT_BATCH), 1), self.max_batch)
        self._trt = trt
        self._logger = _trt_logger(trt)
        self._runtime = runtime = trt.Runtime(self._logger)
        if self.path.suffix in (".engine", ".plan"):  # a prebuilt engine: load it as it is
            self._load_prebuilt(trt, runtime)
            return
        key = engine_cache_key(trt.__version__, gpu["name"], gpu["compute_capability"], precision,
                               file_sha256(self.path), self.max_batch,
                               extra=f"opt{self.opt_batch}|ws{int(workspace_mb)}|{gpu['device_model']}"
                                     f"|sm{gpu['multiprocessors']}|mem{gpu['memory_mb']}")
        engine_path = engine_cache_path(self.path, precision, self.max_batch, key)
        if cache_dir is not None or not os.access(self.path.parent, os.W_OK):
            fallback = Path(cache_dir or Path.home() / ".cache" / "fer_perception")
            fallback.mkdir(parents=True, exist_ok=True)
            if cache_dir is not None or not engine_path.exists():
                engine_path = engine_cache_path(self.path, precision, self.max_batch, key, fallback)
        self.engine_path = engine_path
        if (self.precision == "int8" and calibration is None and not engine_path.exists()
                and not engine_path.with_suffix(".calib").exists()):
            raise TensorRTError(
                f"precision int8 on TensorRT needs calibration faces to build {engine_path.name} (none given, no "
                f"{engine_path.with_suffix('.calib').name} cache): build it once with fer-export --formats tensorrt "
                f"and --calibration-data, or run fp16 (about as fast on Jetson), or backend tflite precision int8")
        engine = None
        self.engine_built = False
        if engine_path.exists():
            engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if engine is None:
                log.warning("cached TensorRT engine %s does not deserialise; rebuilding", engine_path)
        if engine is None:
            blob = self._build(trt, self.opt_batch, calibration, workspace_mb, engine_path)
            engine = runtime.deserialize_cuda_engine(blob)
            if engine is None:
                raise TensorRTError(f"TensorRT built an engine for {self.path} that does not deserialise")
            self.engine_built = True
        self._setup(trt, engine)

    def _load_prebuilt(self, trt, runtime) -> None:
        """A ``.engine``/``.plan`` given as the model: built elsewhere (trtexec, fer-export) for this GPU
        and TensorRT version; its profile gives max_batch."""
        self.engine_path, self.engine_built = self.path, False
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise TensorRTError(f"{self.path} does not deserialise: it was built for another GPU or TensorRT "
                                f"version than {trt.__version__}; rebuild it here (or give the .onnx, which "
                                f"the runner builds and caches)")
        name = next(engine.get_tensor_name(i) for i in range(engine.num_io_tensors)
                    if engine.get_tensor_mode(engine.get_tensor_name(i)) == trt.TensorIOMode.INPUT)
        self.max_batch = int(engine.get_tensor_profile_shape(name, 0)[2][0])
        self._setup(trt, engine)

    def _setup(self, trt, engine) -> None:
        cudart = self._cudart
        self._engine = engine
        self._context = engine.create_execution_context()

        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1:
            raise ModelLoadError(f"{self.path}: expected one input, found {inputs}")
        self.input_name = inputs[0]
        self.output_names = tuple(outputs)
        in_shape = tuple(engine.get_tensor_shape(self.input_name))
        self.input_shape = (None,) + _static(in_shape[1:])
        self._sample_shape = tuple(int(d) for d in in_shape[1:])
        # Output shapes for the max batch give the buffer sizes.
        self._set_batch(self.max_batch)
        self.output_shapes = tuple((None,) + _static(tuple(self._context.get_tensor_shape(n))[1:])
                                   for n in outputs)
        self._in_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self._out_dtypes = [np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in outputs]
        self._stream = _check(cudart.cudaStreamCreate())
        self._buffers: dict[str, int] = {}
        self._pinned: list[int] = []
        # Host buffers are page-locked (cudaMallocHost), as NVIDIA's samples do: an async copy from
        # pageable memory is staged through a driver buffer and is not asynchronous at all.
        self._host_in = self._pinned_array((self.max_batch,) + self._sample_shape, self._in_dtype)
        self._buffers[self.input_name] = _check(cudart.cudaMalloc(self._host_in.nbytes))
        self._host_out: list[np.ndarray] = []
        for n, shape, dt in zip(outputs, self.output_shapes, self._out_dtypes):
            host = self._pinned_array((self.max_batch,) + tuple(shape[1:]), dt)
            self._buffers[n] = _check(cudart.cudaMalloc(host.nbytes))
            self._host_out.append(host)
        for n, ptr in self._buffers.items():
            self._context.set_tensor_address(n, int(ptr))
        self._batch = None

    def _pinned_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = int(_check(self._cudart.cudaMallocHost(nbytes)))
        self._pinned.append(ptr)
        return np.frombuffer((ctypes.c_byte * nbytes).from_address(ptr), dtype=dtype).reshape(shape)

    def _set_batch(self, n: int) -> None:
        if not self._context.set_input_shape(self.input_name, (n,) + self._sample_shape):
            raise TensorRTError(f"TensorRT refused input shape {(n,) + self._sample_shape} for {self.engine_path.name} "
                                f"(its profile is 1..{self.max_batch})")
        self._batch = n

    # -- building -------------------------------------------------------------------------------

    def _build(self, trt, opt_batch, calibration, workspace_mb, engine_path: Path) -> bytes:
        log.warning("building TensorRT %s engine for %s (first start; takes a while)", self.precision, self.path)
        builder = trt.Builder(self._logger)
        flags = 0 if _version(trt)[0] >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(self.path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise TensorRTError(f"TensorRT cannot parse {self.path}: {errors}")
        if network.num_inputs != 1:
            raise ModelLoadError(f"{self.path}: expected one input, found {network.num_inputs}")
        inp = network.get_input(0)
        sample = tuple(int(d) for d in tuple(inp.shape)[1:])
        if any(d < 1 for d in sample):
            raise ModelLoadError(f"{self.path}: only the batch dimension may be dynamic, input is {tuple(inp.shape)}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
        if self.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)  # on by default on Ampere/Orin: 1e-3, not 1e-4, of ONNX Runtime
        opt = int(opt_batch)
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, (1,) + sample, (opt,) + sample, (self.max_batch,) + sample)
        config.add_optimization_profile(profile)
        if self.precision in ("fp16", "int8"):
            if not getattr(builder, "platform_has_fast_fp16", True):
                log.warning("this GPU has no fast fp16; TensorRT may run fp16 layers slowly")
            config.set_flag(trt.BuilderFlag.FP16)
        calibrator = None
        if self.precision == "int8":
            if not getattr(builder, "platform_has_fast_int8", True):
                log.warning("this GPU has no fast int8; TensorRT may fall back to fp16/fp32 kernels")
            cache = engine_path.with_suffix(".calib")
            data = (load_calibration_inputs(calibration, sample) if calibration is not None
                    else np.zeros((1,) + sample, np.float32))  # the .calib cache answers; never read
            calib_batch = min(32, self.max_batch)
            calibrator = _make_calibrator(trt, self._cudart, data, batch=calib_batch, cache=cache)
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = calibrator
            # TensorRT calibrates at the calibration profile's OPT shape: it must be the calibrator's batch.
            calib_profile = builder.create_optimization_profile()
            calib_profile.set_shape(inp.name, (1,) + sample, (calib_batch,) + sample, (calib_batch,) + sample)
            config.set_calibration_profile(calib_profile)
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise TensorRTError(f"TensorRT failed to build a {self.precision} engine for {self.path} (see its log above)")
        blob = bytes(blob)
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"onnx": str(self.path), "onnx_sha256": file_sha256(self.path), "tensorrt": trt.__version__,
                "gpu": self.gpu, "precision": self.precision, "max_batch": self.max_batch, "opt_batch": opt}
        # A file of this process's own (two processes may build at once), renamed into place atomically.
        _atomic_write(engine_path, blob)
        _atomic_write(build_info_path(engine_path), (json.dumps(meta, indent=2) + "\n").encode())
        remove_superseded_engines(engine_path, meta)
        log.warning("TensorRT engine cached at %s", engine_path)
        return blob

    # -- running --------------------------------------------------------------------------------

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        cudart = self._cudart
        n = int(batch.shape[0])
        if n > self.max_batch:
            parts = [self.run(batch[i : i + self.max_batch]) for i in range(0, n, self.max_batch)]
            return [np.concatenate([p[k] for p in parts]) for k in range(len(self.output_names))]
        if n != self._batch:
            self._set_batch(n)
        x = self._host_in[:n]
        x[...] = batch  # into the pinned input buffer (converts the dtype if needed)
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(self._buffers[self.input_name], x.ctypes.data, x.nbytes, h2d, self._stream))
        if not self._context.execute_async_v3(stream_handle=self._stream):
            raise TensorRTError("TensorRT execute_async_v3 failed")
        results = []
        for name, host in zip(self.output_names, self._host_out):
            view = host[:n]
            _check(cudart.cudaMemcpyAsync(view.ctypes.data, self._buffers[name], view.nbytes, d2h, self._stream))
            results.append(view)
        _check(cudart.cudaStreamSynchronize(self._stream))
        return [r.astype(np.float32, copy=True) for r in results]

    def describe(self) -> dict:
        d = super().describe()
        d.update(version=self._trt.__version__, gpu=self.gpu, precision=self.precision,
                 engine=str(self.engine_path), engine_built_now=self.engine_built)
        return d

    def close(self) -> None:
        cudart = getattr(self, "_cudart", None)
        for ptr in getattr(self, "_buffers", {}).values():
            cudart.cudaFree(ptr)
        self._buffers = {}
        for ptr in getattr(self, "_pinned", []):
            cudart.cudaFreeHost(ptr)
        self._pinned = []
        self._host_in, self._host_out = None, []
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self):  # pragma: no cover - GPU only
        try:
            self.close()
        except Exception:
            pass


def _static(dims) -> tuple[int | None, ...]:
    return tuple(int(d) if int(d) > 0 else None for d in dims)


def _make_calibrator(trt, cudart, data: np.ndarray, *, batch: int, cache: Path):
    """An IInt8EntropyCalibrator2 over ``data`` (defined here because trt is imported lazily)."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.data = data
            self.batch = batch
            self.index = 0
            self.nbytes = batch * int(np.prod(data.shape[1:])) * 4
            self.device = _check(cudart.cudaMalloc(self.nbytes))

        def get_batch_size(self):
            return self.batch

        def get_batch(self, names):
            if self.index + self.batch > len(self.data):
                if self.index == 0:  # fewer samples than one batch: repeat them
                    reps = -(-self.batch // len(self.data))
                    chunk = np.concatenate([self.data] * reps)[: self.batch]
                else:
                    return None
            else:
                chunk = self.data[self.index : self.index + self.batch]
            chunk = np.ascontiguousarray(chunk, dtype=np.float32)
            _check(cudart.cudaMemcpy(self.device, chunk.ctypes.data, chunk.nbytes,
                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            self.index += self.batch
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.exists() else None

        def write_calibration_cache(self, blob):
            cache.write_bytes(bytes(blob))

        def __del__(self):
            try:
                cudart.cudaFree(self.device)
            except Exception:
                pass

    return EntropyCalibrator()
