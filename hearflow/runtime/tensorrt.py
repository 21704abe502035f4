"""TensorRT engines of an export folder: (re)built from its ONNX graphs when missing or
stale, deserialised and run. ``hearflow export --format tensorrt`` builds them ahead with
:func:`hearflow.export.tensorrt.build_tensorrt`; the backend builds them here on first use.

Supports TensorRT 10.x and 11.x with one code path:

* Networks are strongly typed (the ``STRONGLY_TYPED`` creation flag on 10.x; always so
  on 11.x, which removed the weak-typing builder flags such as ``BuilderFlag.FP16``).
  Precision therefore comes from the ONNX graph itself: FP32 engines are built from the
  exported graph as is, FP16 engines from a mixed-precision copy (``<graph>.fp16.onnx``)
  made with onnxconverter-common's ``convert_float_to_float16(keep_io_types=True)``
  (inputs/outputs stay float32, so callers never see a dtype change). The L2
  normalisation ops stay in FP32: a sum of squares over 512 channels can exceed FP16's
  range. NVIDIA's recommendation for this step is ModelOpt AutoCast, which picks the FP32
  nodes from calibration data; onnxconverter-common does the plain conversion this
  small convolutional graph needs (the FP32 nodes named by hand, above), is pure Python
  and pip-installable, and is pinned in the ``[gpu]`` extra.
* TF32 (on by default in TensorRT) is switched off, so FP32 engines match PyTorch's FP32
  within 1e-3.
* One optimisation profile: batch 1..max_batch (32), kernels tuned for ``opt_batch``
  (default 1: the live engine's per-frame call is the latency-critical one; offline
  evaluation at batch 32 still runs, on kernels picked for batch 1; export with
  ``opt_batch=32`` for a throughput-only deployment), and the spectrogram time axis over
  the PreprocessConfig's range (a single value for a fixed sample rate).
* A timing cache (``timing.cache``) beside the engines makes rebuilds fast.
* Each engine ``<graph>.<fp32|fp16>.engine`` has a JSON sidecar with its build key (ONNX
  sha256, GPU name and compute capability, TensorRT version, precision, profile); an
  engine whose key differs from the current one is rebuilt automatically on load.

Engines run on torch CUDA tensors: ``set_tensor_address(name, tensor.data_ptr())`` and
``execute_async_v3`` on torch's current stream (no pycuda).
"""

from __future__ import annotations

import json
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hearflow.errors import GPUUnavailable, HearflowError, MissingDependency
from hearflow.runtime.manifest import GRAPHS, ExportError, Manifest, time_range

INSTALL_HINT = "pip install 'hearflow[gpu]'"
TIMING_CACHE = "timing.cache"
KEY_FORMAT = "hearflow-trt-engine/1"
WORKSPACE_BYTES = 2 << 30
"""Builder scratch memory limit (2 GiB): enough for every tactic of these small graphs."""
FP32_OPS = ("ReduceL2", "Clip")
"""Ops kept in FP32 in FP16 engines: F.normalize's norm and its epsilon clamp."""

_LOGGER = None


@dataclass(frozen=True)
class BuildSettings:
    """How engines are built.

    fp16: FP16 (mixed precision) engines instead of FP32.
    opt_batch: batch size the kernels are tuned for.
    max_batch: largest batch per call (larger inputs are run in chunks).
    """

    fp16: bool = False
    opt_batch: int = 1
    max_batch: int = 32

    def __post_init__(self):
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ExportError(f"need 1 <= opt_batch <= max_batch, got {self.opt_batch} and {self.max_batch}")

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"


# ------------------------------------------------------------------------ environment
def import_tensorrt():
    """The tensorrt module, or MissingDependency with the install hint."""
    try:
        import tensorrt as trt
    except ImportError:
        raise MissingDependency(f"TensorRT is not installed: {INSTALL_HINT} (needs an NVIDIA GPU and driver)") from None
    except OSError as exc:  # the wheel is there but libnvinfer / CUDA libraries do not load
        raise MissingDependency(f"TensorRT is installed but cannot load ({exc}); "
                                f"reinstall with {INSTALL_HINT}") from None
    return trt


def require_cuda(device: str = "cuda"):
    """A torch.device for ``device``, or GPUUnavailable when no CUDA GPU is usable."""
    import torch

    if not torch.cuda.is_available():
        raise GPUUnavailable("TensorRT needs an NVIDIA GPU with a working CUDA driver, and none is visible "
                             "(check nvidia-smi and CUDA_VISIBLE_DEVICES, or use --backend onnxruntime)")
    dev = torch.device(device)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise GPUUnavailable(f"no GPU {device} (this machine has {torch.cuda.device_count()})")
    return dev if dev.index is not None else torch.device("cuda", torch.cuda.current_device())


def _logger(trt):
    global _LOGGER
    if _LOGGER is None:  # TensorRT expects one logger per process
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


# ------------------------------------------------------------------------ files and keys
def engine_path(folder: Path, graph: str, settings: BuildSettings) -> Path:
    return Path(folder) / f"{graph}.{settings.precision}.engine"


def key_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def profile_shapes(manifest: Manifest, graph: str, settings: BuildSettings) -> dict[str, list[list[int]]]:
    """{input name: [min, opt, max] shapes}: 'batch' → 1 / opt / max, 'time' → the
    PreprocessConfig's spectrogram frame range."""
    lo, nominal, hi = time_range(manifest.preprocess)
    pick = {"batch": (1, settings.opt_batch, settings.max_batch), "time": (lo, nominal, hi)}
    out = {}
    for spec in manifest.graphs[graph]["inputs"]:
        out[spec["name"]] = [[pick[d][k] if isinstance(d, str) else int(d) for d in spec["shape"]] for k in range(3)]
    return out


def engine_key(manifest: Manifest, graph: str, settings: BuildSettings, device) -> dict:
    """Everything an engine depends on; a different key means the engine must be rebuilt."""
    import torch

    trt = import_tensorrt()
    major, minor = torch.cuda.get_device_capability(device)
    key = {
        "format": KEY_FORMAT,
        "graph": graph,
        "onnx_sha256": manifest.graphs[graph]["sha256"],
        "tensorrt": trt.__version__,
        "gpu": torch.cuda.get_device_name(device),
        "compute_capability": f"{major}.{minor}",
        "profile": profile_shapes(manifest, graph, settings),
        **asdict(settings),
    }
    if settings.fp16:
        key["fp16_converter"] = fp16_converter_version()
    return key


def read_key(engine: Path) -> dict | None:
    try:
        return json.loads(key_path(engine).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ------------------------------------------------------------------------ FP16 graphs
def fp16_converter_version() -> str:
    """The FP16 converter's name and version (part of an FP16 engine's key); MissingDependency without it."""
    try:
        import onnxconverter_common
    except ImportError:
        raise MissingDependency(f"FP16 engines need onnxconverter-common: {INSTALL_HINT}") from None
    return f"onnxconverter-common {onnxconverter_common.__version__}"


def fp16_onnx(src: Path, dst: Path) -> Path:
    """Write a mixed-precision copy of ``src`` to ``dst``: FP16 weights and activations,
    float32 inputs/outputs, FP32_OPS (and the converter's default block list) in FP32."""
    import onnx

    fp16_converter_version()
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
    with warnings.catch_warnings():
        # it warns for every constant below FP16's range it rounds (tiny weights, the
        # normalisation epsilon); expected, and noise on the terminal
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    tmp = dst.with_name(dst.name + ".tmp")
    onnx.save_model(converted, str(tmp), save_as_external_data=False)
    tmp.replace(dst)
    return dst


# ------------------------------------------------------------------------ building
def build_engine(onnx_file: Path, engine: Path, shapes: dict, key: dict, cache_file: Path) -> None:
    """Parse ``onnx_file``, build a serialized engine for ``shapes`` and write it with its key.

    shapes: {input name: [min, opt, max]} for the single optimisation profile.
    cache_file: the timing cache, read before and written after the build.
    """
    trt = import_tensorrt()
    logger = _logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:  # required on 10.x for typed graphs, implied (and accepted) on 11.x
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # parse_from_file resolves paths relative to the file (external data, if any)
    if not parser.parse_from_file(str(onnx_file)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "unknown error"
        raise ExportError(f"{onnx_file}: TensorRT cannot parse this graph ({errors.splitlines()[0]})")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 must mean FP32 (parity with PyTorch)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)

    cache_bytes = cache_file.read_bytes() if cache_file.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    if cache is None or not config.set_timing_cache(cache, False):
        # a cache from another TensorRT/GPU is rejected: start a fresh one
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"{onnx_file}: TensorRT could not build an engine (see the TensorRT log above)")
    tmp = engine.with_name(engine.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(plan)
    tmp.replace(engine)
    key_path(engine).write_text(json.dumps(key, indent=2) + "\n")
    timing = config.get_timing_cache()
    if timing is not None:
        cache_tmp = cache_file.with_name(cache_file.name + ".tmp")
        with open(cache_tmp, "wb") as f:
            f.write(timing.serialize())
        cache_tmp.replace(cache_file)


def ensure_engine(manifest: Manifest, graph: str, settings: BuildSettings, device,
                  rebuild: bool = False) -> tuple[Path, bool]:
    """The engine for ``graph`` under ``settings``, built when missing or stale.

    Returns (engine path, whether it was built now).
    """
    engine = engine_path(manifest.path, graph, settings)
    key = engine_key(manifest, graph, settings, device)
    if not rebuild and engine.is_file() and read_key(engine) == key:
        return engine, False
    source = manifest.graph_path(graph)
    if settings.fp16:
        source = fp16_onnx(source, source.with_name(f"{graph}.fp16.onnx"))
    import torch

    with torch.cuda.device(device):  # TensorRT builds for the current CUDA device
        build_engine(source, engine, profile_shapes(manifest, graph, settings), key, manifest.path / TIMING_CACHE)
    return engine, True


# ------------------------------------------------------------------------ running
def _torch_dtype(trt, dtype):
    import torch

    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT32: torch.int32}
    if dtype not in table:
        raise ExportError(f"unexpected TensorRT tensor type {dtype}")
    return table[dtype]


class TrtGraph:
    """One deserialized engine and its execution context.

    engine_file: a serialized engine. device: the torch CUDA device it runs on.
    Calls are serialised with a lock (an execution context is not thread-safe).
    """

    def __init__(self, engine_file: Path, device):
        trt = import_tensorrt()
        import torch

        self.torch, self.device = torch, device
        with torch.cuda.device(device):
            self.runtime = trt.Runtime(_logger(trt))
            self.engine = self.runtime.deserialize_cuda_engine(Path(engine_file).read_bytes())
            if self.engine is None:
                raise ExportError(f"{engine_file}: TensorRT cannot load this engine (delete it to rebuild)")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self._lock = threading.Lock()

    def __call__(self, feeds: dict) -> object:
        """Run on torch tensors {input name: tensor}; returns the (single) output tensor on the GPU."""
        torch = self.torch
        with self._lock, torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            held = []  # inputs must stay alive until the stream has consumed them
            for name in self.inputs:
                t = feeds[name].to(self.device, self.dtypes[name]).contiguous()
                held.append(t)
                if not self.context.set_input_shape(name, tuple(t.shape)):
                    raise HearflowError(f"input {name} of shape {tuple(t.shape)} is outside the TensorRT engine's "
                                        "profile (batch or spectrogram length out of range)")
                self.context.set_tensor_address(name, t.data_ptr())
            outputs = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                outputs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
                self.context.set_tensor_address(name, outputs[name].data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise HearflowError("TensorRT execution failed (see the TensorRT log above)")
            # the caller's next op on this stream (e.g. .cpu()) orders after the engine;
            # held inputs are freed only after we return, by torch's caching allocator
            # which also orders frees on this stream.
            return outputs[self.outputs[0]]


class EngineSet:
    """The audio and visual engines of an export folder, ready to run.

    manifest: the export folder's Manifest.
    device: 'cuda' or 'cuda:N'.
    fp16: precision; None = the manifest's tensorrt.fp16 (FP32 when it has none).
    rebuild: rebuild the engines even when their keys match.
    """

    def __init__(self, manifest: Manifest, device: str = "cuda", fp16: bool | None = None, rebuild: bool = False):
        import_tensorrt()
        self.device = require_cuda(device)
        saved = manifest.tensorrt or {}
        self.settings = BuildSettings(
            fp16=bool(saved.get("fp16", False)) if fp16 is None else fp16,
            opt_batch=int(saved.get("opt_batch", 1)),
            max_batch=int(saved.get("max_batch", 32)),
        )
        self.built = {}
        self.graphs = {}
        for graph in GRAPHS:
            engine, self.built[graph] = ensure_engine(manifest, graph, self.settings, self.device, rebuild)
            self.graphs[graph] = TrtGraph(engine, self.device)

    def run_torch(self, graph: str, feeds: dict):
        """Run ``graph`` on torch tensors (any device), in chunks of at most max_batch."""
        torch = self.graphs[graph].torch
        n = next(iter(feeds.values())).shape[0]
        step = self.settings.max_batch
        if n <= step:
            return self.graphs[graph](feeds)
        parts = [self.graphs[graph]({k: v[i:i + step] for k, v in feeds.items()}) for i in range(0, n, step)]
        return torch.cat(parts)

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run ``graph`` on numpy float32 inputs; returns a numpy float32 array."""
        torch = self.graphs[graph].torch
        tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
        return self.run_torch(graph, tensors).float().cpu().numpy()
