"""One small inference interface, implemented by several runtimes.

    backend = load_backend(model_path, backend=None)     # checkpoint folder or export folder
    emb  = backend.embed_audio(spectrograms)            # (B, 1, F, T) float32 → (B, D)
    maps = backend.localize(frames, flows, emb)         # (B, 3, S, S), (B, 2, S, S) | None, (B, D) → (B, m, n)

Inputs and outputs are numpy float32 arrays, so the evaluator and the engine do not care
which runtime is underneath. Inputs may also be torch tensors built on a device
(hearflow.runtime.device_frames): the torch backend uses them where they are and keeps
the audio embedding on its device (only the map comes back as numpy); TensorRT takes
CUDA tensors as they are too; ONNX Runtime copies them to host numpy first (its CUDA
provider then copies them up again: device preprocessing gains nothing there). ``backend.preprocess`` is the PreprocessConfig the model was
trained with: callers build inputs from it with :mod:`hearflow.media`.

Runtimes: ``torch`` (PyTorch eager, from a checkpoint), ``onnxruntime`` and ``tensorrt``
(from an export folder written by ``hearflow export``; see :mod:`hearflow.runtime.manifest`),
and ``triton:grpc://HOST:PORT[/PREFIX]`` (a Triton Inference Server runs the export's
graphs; :mod:`hearflow.runtime.triton_client`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hearflow.errors import GPUUnavailable, HearflowError
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model.checkpoint import load_checkpoint
from hearflow.runtime.interface import Backend, BackendUnavailable, f32 as _f32, is_tensor as _is_tensor  # noqa: F401
from hearflow.runtime.manifest import GRAPHS, PRECISIONS, ExportError, read_manifest
from hearflow.runtime.tensorrt import EngineSet


class TorchBackend(Backend):
    """PyTorch eager, CPU or CUDA, from a hearflow checkpoint.

    path: checkpoint folder or its model.safetensors.
    device: 'auto' (CUDA when available), 'cpu' or 'cuda'.
    threads: torch CPU threads (0 = torch's default).
    """

    name = "torch"

    def __init__(self, path, device: str = "auto", threads: int = 0):
        import torch

        if threads:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise GPUUnavailable("device 'cuda' asked for, but PyTorch sees no CUDA GPU (use --device cpu)")
        self.torch = torch
        self.device = torch.device(device)
        ck = load_checkpoint(path, device=self.device)
        self.model = ck.model.eval()
        self.preprocess = ck.preprocess
        self.model_config = ck.meta["model"]
        self.uses_flow = self.model.uses_flow
        self.source = str(path)

    def _t(self, x):
        if isinstance(x, self.torch.Tensor):  # built on the device already: no copy when it is ours
            return x.to(self.device, self.torch.float32)
        return self.torch.from_numpy(_f32(x)).to(self.device)

    def embed_audio(self, spectrograms):
        """numpy in, numpy out; a tensor in gives the embedding as a tensor on the device."""
        with self.torch.inference_mode():
            emb = self.model.embed_audio(self._t(spectrograms)).float()
            return emb if isinstance(spectrograms, self.torch.Tensor) else emb.cpu().numpy()

    def localize(self, frames: np.ndarray, flows: np.ndarray | None, audio_embeddings: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            flow = self._t(flows) if (self.uses_flow and flows is not None) else None
            maps = self.model.localize(self._t(frames), flow, self._t(audio_embeddings))
            return maps.float().cpu().numpy()


def physical_cores() -> int:
    """Physical CPU cores available to this process (hyperthreads do not help convolutions).

    Linux: distinct (package, core) pairs among the CPUs in our affinity mask, read from
    sysfs; elsewhere, or when that fails, the logical CPU count.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            return len(cpus) or 1
    return len(cores) or 1


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on an export folder: one InferenceSession per graph, made once.

    path: export folder (manifest.json + audio.onnx + visual.onnx).
    device: 'auto' (CUDA when onnxruntime has its CUDA provider and a GPU, else CPU),
        'cpu' or 'cuda'.
    threads: intra-op threads on CPU; 0 = the number of physical cores. One inter-op
        thread and sequential execution: these graphs are chains of convolutions, so
        parallelism is inside each op, and more threads than cores only contend.
    verify: check the graph files against the manifest's sha256 first (a clear error for a
        damaged export instead of an obscure one from the runtime).
    precision: 'fp32' or 'int8' (the statically quantized graphs of ``hearflow export
        --int8``); None = the manifest's ``precision`` (fp32 unless the export made int8).
    """

    name = "onnxruntime"

    def __init__(self, path, device: str = "auto", threads: int = 0, verify: bool = True,
                 precision: str | None = None):
        import onnxruntime as ort

        self.manifest = read_manifest(path)
        self.precision = precision or self.manifest.precision
        if self.precision not in PRECISIONS:
            raise HearflowError(f"unknown precision {self.precision!r} (known: {', '.join(PRECISIONS)})")
        self.manifest.check_files(verify_hash=verify, precision=self.precision)
        self.preprocess = self.manifest.preprocess
        self.model_config = self.manifest.model_config
        self.uses_flow = self.manifest.uses_flow
        self.source = str(path)

        available = ort.get_available_providers()
        has_cuda = "CUDAExecutionProvider" in available
        if device == "auto":
            device = "cuda" if has_cuda and _cuda_device_present() else "cpu"
        if device.startswith("cuda") and not has_cuda:
            raise GPUUnavailable(
                "device 'cuda' asked for, but this onnxruntime has no CUDA provider "
                "(install onnxruntime-gpu, or use --device cpu)"
            )
        if device != "cpu" and not device.startswith("cuda"):
            raise HearflowError(f"unknown device {device!r} for onnxruntime (cpu, cuda or auto)")
        self.device = device
        self.threads = threads or physical_cores()

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: shape-inference notes are not for users
        if device.startswith("cuda"):
            index = int(device.split(":")[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.sessions = {}
        for graph in GRAPHS:
            self.sessions[graph] = self._session(self.manifest.graph_path(graph, self.precision), opts, providers)
        self._visual_inputs = self.manifest.input_names("visual")
        fg = self.manifest.frame_graph
        if fg is not None and self.precision == "fp32":
            self.sessions["frame"] = self._session(self.manifest.path / fg["file"], opts, providers)
            self.frame_size = tuple(fg["frame_size"])

    @staticmethod
    def _session(file, opts, providers):
        import onnxruntime as ort

        try:
            return ort.InferenceSession(str(file), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{file}: onnxruntime cannot load this graph ({first})") from None

    def embed_audio(self, spectrograms: np.ndarray) -> np.ndarray:
        return self.sessions["audio"].run(None, {"spectrogram": _f32(spectrograms)})[0]

    def localize_frames(self, earlier, later, audio_embedding, fps: float) -> np.ndarray:
        if "frame" not in self.sessions:
            return super().localize_frames(earlier, later, audio_embedding, fps)
        feed = {"earlier": np.ascontiguousarray(earlier, np.uint8), "later": np.ascontiguousarray(later, np.uint8),
                "audio_embedding": _f32(audio_embedding), "fps": np.asarray(fps, np.float32)}
        return self.sessions["frame"].run(None, feed)[0]

    def localize(self, frames: np.ndarray, flows: np.ndarray | None, audio_embeddings: np.ndarray) -> np.ndarray:
        feed = {"frame": _f32(frames), "audio_embedding": _f32(audio_embeddings)}
        if "flow" in self._visual_inputs:
            if flows is None:
                raise HearflowError("this model uses optical flow: pass flows")
            feed["flow"] = _f32(flows)
        return self.sessions["visual"].run(None, feed)[0]

    def describe(self) -> str:
        return f"{self.name} backend ({self.device}, {self.precision}), model {self.source}"


def _cuda_device_present() -> bool:
    """Whether a CUDA GPU is visible (through torch, which hearflow always has)."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


class TensorRTBackend(Backend):
    """TensorRT engines built from an export folder's ONNX graphs (NVIDIA GPU only).

    path: export folder. Engines are (re)built there when missing or stale (another
        ONNX file, GPU, TensorRT version or precision), which takes minutes once.
    device: 'cuda', 'cuda:N' or 'auto'.
    threads: unused (GPU); accepted for the common signature.
    fp16: build FP16 engines; None = what the export asked for (``--fp16``), else FP32.
    Inputs and outputs stay numpy float32; the engines run on torch CUDA tensors.
    """

    name = "tensorrt"

    def __init__(self, path, device: str = "cuda", threads: int = 0, fp16: bool | None = None):
        self.manifest = read_manifest(path)
        self.manifest.check_files(verify_hash=False)  # the engine keys hash the files anyway
        self.preprocess = self.manifest.preprocess
        self.model_config = self.manifest.model_config
        self.uses_flow = self.manifest.uses_flow
        self.source = str(path)
        if device == "auto":
            device = "cuda"
        if not device.startswith("cuda"):
            raise HearflowError(f"the tensorrt backend runs on an NVIDIA GPU: device must be cuda, not {device!r}")
        self.device = device
        self.runner = EngineSet(self.manifest, device=device, fp16=fp16)
        self._visual_inputs = self.manifest.input_names("visual")
        fg = self.manifest.frame_graph
        if fg is not None and self.precision == "fp32":
            self.sessions["frame"] = self._session(self.manifest.path / fg["file"], opts, providers)
            self.frame_size = tuple(fg["frame_size"])

    def embed_audio(self, spectrograms):
        """numpy in, numpy out; a tensor in gives the embedding as a tensor on the GPU."""
        if _is_tensor(spectrograms):
            return self.runner.run_torch("audio", {"spectrogram": spectrograms}).float()
        return self.runner.run("audio", {"spectrogram": _f32(spectrograms)})

    def localize(self, frames, flows, audio_embeddings) -> np.ndarray:
        feed = {"frame": frames, "audio_embedding": audio_embeddings}
        if "flow" in self._visual_inputs:
            if flows is None:
                raise HearflowError("this model uses optical flow: pass flows")
            feed["flow"] = flows
        if any(_is_tensor(v) for v in feed.values()):  # device inputs stay on the GPU
            import torch

            feed = {k: v if _is_tensor(v) else torch.from_numpy(_f32(v)) for k, v in feed.items()}
            return self.runner.run_torch("visual", feed).float().cpu().numpy()
        return self.runner.run("visual", {k: _f32(v) for k, v in feed.items()})


BACKENDS = {"torch": TorchBackend, "onnxruntime": OnnxRuntimeBackend, "tensorrt": TensorRTBackend}


def is_export_dir(path) -> bool:
    return (Path(path) / "manifest.json").is_file()


def _looks_like_export(path: Path) -> bool:
    """An export folder that lost its manifest still has its .onnx files."""
    return path.is_dir() and any(path.glob("*.onnx"))


def _triton_backend(path: Path, url: str, export: bool, device: str, threads: int, precision: str | None):
    """A TritonBackend on export folder ``path`` (the same folder the server serves)."""
    from hearflow.runtime.triton_client import TritonBackend

    if not export:
        raise HearflowError(f"{path}: the triton backend needs the export folder the server runs (its "
                            f"preprocessing builds the inputs); make one with `hearflow export {path} --to DIR "
                            "--format triton`")
    if precision not in (None, "fp32"):
        raise HearflowError(f"precision {precision!r} applies to the onnxruntime backend, not triton")
    return TritonBackend(path, url, device=device, threads=threads)


def load_backend(path, backend: str | None = None, device: str = "auto", threads: int = 0,
                 precision: str | None = None) -> Backend:
    """Load a model for inference.

    path: a checkpoint folder (or model.safetensors) or an export folder (manifest.json).
    backend: 'torch', 'onnxruntime', 'tensorrt' or 'triton:grpc://HOST:PORT[/PREFIX]' (a
        Triton server runs the export folder's graphs); None = torch for a checkpoint, the
        manifest's default for an export folder. 'onnxruntime-fp32' / 'onnxruntime-int8'
        name the precision too (the same as ``precision``).
    device: 'auto', 'cpu', 'cuda' or 'cuda:N' (TensorRT: CUDA only).
    threads: CPU threads (0 = the runtime's choice; onnxruntime: physical cores).
    precision: onnxruntime only: 'fp32' or 'int8' graphs; None = the manifest's choice.
    """
    path = Path(path)
    if not path.exists():
        raise HearflowError(f"{path}: model not found (give a checkpoint folder or an export folder)")
    export = is_export_dir(path)
    if not export and _looks_like_export(path) and not (path / "model.safetensors").is_file():
        raise ExportError(f"{path}: has ONNX files but no manifest.json (incomplete export; re-export the model)")
    if backend is None:
        backend = read_manifest(path).default_backend if export else "torch"
    if backend.startswith("triton:"):
        return _triton_backend(path, backend, export, device, threads, precision)
    base, _, suffix = backend.partition("-")
    if base == "onnxruntime" and suffix:
        if suffix not in PRECISIONS:
            raise HearflowError(f"unknown backend {backend!r} (onnxruntime-{' or onnxruntime-'.join(PRECISIONS)})")
        if precision is not None and precision != suffix:
            raise HearflowError(f"backend {backend!r} contradicts precision {precision!r}")
        backend, precision = base, suffix
    if backend not in BACKENDS:
        raise HearflowError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)}, triton:grpc://HOST:PORT)")
    if backend == "torch" and export:
        raise HearflowError(f"{path}: an export folder has no PyTorch weights; use --backend onnxruntime or "
                            "tensorrt, or give the checkpoint for torch")
    if backend != "torch" and not export:
        raise HearflowError(f"{path}: the {backend} backend needs an export folder; make one with "
                            f"`hearflow export {path} --to DIR`")
    if precision is not None and backend != "onnxruntime":
        raise HearflowError(f"precision {precision!r} applies to the onnxruntime backend, not {backend}")
    if backend == "onnxruntime":
        return OnnxRuntimeBackend(path, device=device, threads=threads, precision=precision)
    return BACKENDS[backend](path, device=device, threads=threads)
