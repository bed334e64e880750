"""A test double at the ``tensorrt`` / ``cuda.bindings.runtime`` module boundary.

It records what the runner asks of TensorRT and answers as this project reads TensorRT's API
(8.5-10.x name-based tensors, 11.x without FP16/INT8 builder flags): builder flags set and cleared,
optimisation profiles, loggers created, input shapes, and an engine whose output is the uniform
distribution. Device memory is host memory (numpy buffers whose addresses stand in for device
pointers), so copies really move bytes. It encodes our reading of the API; only a GPU run proves it.

    fake = install(monkeypatch, version="10.3.0", classes=7)
    fake.fail["runtime"] = TypeError("pybind11::init(): factory function returned nullptr")
"""

from __future__ import annotations

import ctypes
import enum
import sys
import types

import numpy as np


class FakeTensorRT:
    def __init__(self, version: str, classes: int) -> None:
        self.version, self.classes = version, classes
        self.fail: dict[str, BaseException] = {}  # "runtime", "builder", "parse", "build", "execute", "shape"
        self.loggers: list = []
        self.flags_set: list[str] = []
        self.flags_cleared: list[str] = []
        self.profiles: list[tuple] = []  # (min, opt, max) of every profile's input
        self.calibration_profile: tuple | None = None
        self.shapes_set: list[tuple] = []
        self.builds = 0
        self.device: dict[int, np.ndarray] = {}
        self.pinned: dict[int, np.ndarray] = {}  # page-locked host buffers (cudaMallocHost)
        self.module = self._module()
        self.cudart = self._cudart()

    # -- tensorrt ---------------------------------------------------------------------------------
    def _module(self):
        fake = self
        major = int(self.version.split(".")[0])
        trt = types.ModuleType("tensorrt")
        trt.__version__ = self.version

        class Logger:
            WARNING = 2

            def __init__(self, severity):
                fake.loggers.append(self)

        flag_names = ["TF32"] + ([] if major >= 11 else ["FP16", "INT8"])
        trt.BuilderFlag = enum.Enum("BuilderFlag", flag_names)
        trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", ["EXPLICIT_BATCH"], start=0)
        trt.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])
        trt.TensorIOMode = enum.Enum("TensorIOMode", ["INPUT", "OUTPUT"])
        trt.Logger = Logger
        trt.init_libnvinfer_plugins = lambda logger, namespace: True
        trt.nptype = lambda dtype: np.float32
        if major < 11:
            class IInt8EntropyCalibrator2:
                def __init__(self):
                    pass
            trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

        class Input:
            name, shape = "faces", (-1, 48, 48, 1)

        class Network:
            num_inputs = 1

            def get_input(self, i):
                return Input()

        class Parser:
            num_errors = 1

            def __init__(self, network, logger):
                pass

            def parse(self, blob):
                return "parse" not in fake.fail

            def get_error(self, i):
                return "In node 0: unsupported operator"

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                self.shape = (tuple(lo), tuple(opt), tuple(hi))

        class Config:
            def set_memory_pool_limit(self, pool, size):
                pass

            def set_flag(self, flag):
                fake.flags_set.append(flag.name)

            def clear_flag(self, flag):
                fake.flags_cleared.append(flag.name)

            def add_optimization_profile(self, profile):
                fake.profiles.append(profile.shape)

            def set_calibration_profile(self, profile):
                fake.calibration_profile = profile.shape

        class Builder:
            platform_has_fast_fp16 = platform_has_fast_int8 = True

            def __init__(self, logger):
                if "builder" in fake.fail:
                    raise fake.fail["builder"]

            def create_network(self, flags):
                return Network()

            create_builder_config = staticmethod(Config)
            create_optimization_profile = staticmethod(Profile)

            def build_serialized_network(self, network, config):
                fake.builds += 1
                return None if "build" in fake.fail else b"fake-engine"

        class Context:
            def __init__(self):
                self.addresses, self.batch = {}, None

            def set_input_shape(self, name, shape):
                fake.shapes_set.append(tuple(shape))
                if "shape" in fake.fail:
                    return False
                self.batch = shape[0]
                return True

            def get_tensor_shape(self, name):
                return (self.batch, fake.classes)

            def set_tensor_address(self, name, ptr):
                self.addresses[name] = ptr

            def execute_async_v3(self, stream_handle):
                if "execute" in fake.fail:
                    return False
                out = fake.device[self.addresses["probabilities"]].view(np.float32)
                out[: self.batch * fake.classes] = 1.0 / fake.classes
                return True

        class Engine:
            num_io_tensors = 2

            def get_tensor_name(self, i):
                return ("faces", "probabilities")[i]

            def get_tensor_mode(self, name):
                return trt.TensorIOMode.INPUT if name == "faces" else trt.TensorIOMode.OUTPUT

            def get_tensor_shape(self, name):
                return (-1, 48, 48, 1) if name == "faces" else (-1, fake.classes)

            def get_tensor_dtype(self, name):
                return "float32"

            def get_tensor_profile_shape(self, name, profile):
                return fake.profiles[-1] if fake.profiles else ((1, 48, 48, 1), (2, 48, 48, 1), (8, 48, 48, 1))

            create_execution_context = staticmethod(Context)

        class Runtime:
            def __init__(self, logger):
                if "runtime" in fake.fail:
                    raise fake.fail["runtime"]

            def deserialize_cuda_engine(self, blob):
                return Engine() if bytes(blob) == b"fake-engine" else None

        trt.Builder, trt.Runtime, trt.OnnxParser = Builder, Runtime, Parser
        return trt

    # -- cuda.bindings.runtime --------------------------------------------------------------------
    def _cudart(self):
        fake = self
        rt = types.ModuleType("cuda.bindings.runtime")
        rt.cudaMemcpyKind = enum.Enum("cudaMemcpyKind", ["cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost"])

        class Props:
            name, major, minor = b"Fake Orin\0", 8, 7

        def malloc(nbytes):
            if nbytes > 1 << 40:
                return 2, 0  # cudaErrorMemoryAllocation
            buf = np.zeros(int(nbytes), np.uint8)
            fake.device[buf.ctypes.data] = buf
            return 0, buf.ctypes.data

        def memcpy(dst, src, nbytes, kind, stream=None):
            ctypes.memmove(int(dst), int(src), int(nbytes))
            return (0,)

        rt.cudaGetDeviceCount = lambda: (0, 1)
        rt.cudaRuntimeGetVersion = lambda: (0, 12060)
        rt.cudaDriverGetVersion = lambda: (0, 12060)
        rt.cudaGetDeviceProperties = lambda i: (0, Props())
        rt.cudaStreamCreate = lambda: (0, 1)
        rt.cudaStreamSynchronize = lambda s: (0,)
        rt.cudaStreamDestroy = lambda s: (0,)
        rt.cudaMalloc = malloc
        rt.cudaFree = lambda ptr: (fake.device.pop(int(ptr), None), 0)[1:]

        def malloc_host(nbytes):
            buf = np.zeros(int(nbytes), np.uint8)
            fake.pinned[buf.ctypes.data] = buf
            return 0, buf.ctypes.data

        rt.cudaMallocHost = malloc_host
        rt.cudaFreeHost = lambda ptr: (fake.pinned.pop(int(ptr), None), 0)[1:]
        rt.cudaMemcpyAsync = memcpy
        rt.cudaMemcpy = memcpy
        return rt


def install(monkeypatch, version: str = "10.3.0", classes: int = 7) -> FakeTensorRT:
    """Put the fakes where ``import tensorrt`` and ``from cuda.bindings import runtime`` find them."""
    import fer_perception.inference.tensorrt_runtime as trt_runtime

    fake = FakeTensorRT(version, classes)
    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = fake.cudart
    cuda.bindings = bindings
    for name, module in (("tensorrt", fake.module), ("cuda", cuda), ("cuda.bindings", bindings),
                         ("cuda.bindings.runtime", fake.cudart)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(trt_runtime, "_LOGGER", None)
    return fake
