"""Reading an export folder: what it holds, its manifest.json and the metadata of its graphs.

An export folder is usable without the checkpoint it came from::

    manifest.json   format, hearflow version, model config, PreprocessConfig, source
                    weights sha256, per graph: file, sha256, input/output names and shapes;
                    default_backend; the TensorRT build settings when engines were built
    audio.onnx      spectrogram (batch, 1, F, time) → audio_embedding (batch, D)
    visual.onnx     frame (batch, 3, S, S) [, flow (batch, 2, S, S)], audio_embedding
                    (batch, D) → map (batch, m, n)
    *.engine ...    TensorRT engines, their build keys and the timing cache (optional)
    frame.onnx      earlier, later (1, H, W, 3) uint8, audio_embedding (1, D), fps () →
                    map (1, m, n): preprocessing, flow and the visual network in one
                    graph for one frame size (optional, ``--frame-graph``; ``frame_graph``)
    audio.int8.onnx, visual.int8.onnx
                    statically quantized copies of the two graphs (optional, ``--int8``;
                    same inputs/outputs); the manifest's ``int8`` section lists them with
                    their calibration, and ``precision`` says which set onnxruntime loads

    hearflow_audio/, hearflow_visual/
                    Triton Inference Server models (optional, ``--format triton``):
                    config.pbtxt + 1/model.onnx each (``*_trt/1/model.plan`` too when
                    built on a GPU); the folder is then also a Triton model repository
                    (Triton reads only its sub-folders); the manifest's ``triton``
                    section lists the models

Each .onnx file also carries the same description in its ``metadata_props`` (keys
``hearflow.*``), so a single graph file can be traced back to its model and
preprocessing. Shapes use the names ``batch`` and ``time`` for the dynamic axes.
Writing them is :mod:`hearflow.export`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hearflow.errors import ConfigError, HearflowError
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model.checkpoint import file_sha256

FORMAT = "hearflow-export/1"
MANIFEST = "manifest.json"
GRAPHS = ("audio", "visual")
"""The two graphs: the engine runs audio every hop and visual every frame."""
GRAPH_FILES = {"audio": "audio.onnx", "visual": "visual.onnx"}
INT8_FILES = {"audio": "audio.int8.onnx", "visual": "visual.int8.onnx"}
FRAME_GRAPH_FILE = "frame.onnx"
"""The optional third graph: two uint8 frames + audio embedding → map (``--frame-graph``)."""
PRECISIONS = ("fp32", "int8")
"""Graph sets an export folder can hold: the exported FP32 graphs, and INT8 ones (CPU)."""
BACKENDS = ("onnxruntime", "tensorrt")
"""Backends an export folder can name as its default."""
META_PREFIX = "hearflow."
"""Prefix of the keys written to each ONNX file's metadata_props."""

TRITON_PREFIX = "hearflow"
"""Default prefix of the Triton model names: ``hearflow_audio``, ``hearflow_visual``."""


def triton_model_name(prefix: str, graph: str, plan: bool = False) -> str:
    """The Triton model serving ``graph``: ``<prefix>_<graph>``, ``_trt`` added for the TensorRT plan."""
    return f"{prefix}_{graph}" + ("_trt" if plan else "")


# Sample rates the audio graph is expected to see when the PreprocessConfig keeps each
# file's native rate (EZ-VSL): TensorRT needs a range for the dynamic time axis.
NATIVE_RATES = (8000, 22050, 48000)


class ExportError(HearflowError):
    """An export folder or ONNX file is missing, corrupt or unusable, or a model cannot be exported."""


def time_range(pre: PreprocessConfig) -> tuple[int, int, int]:
    """(min, nominal, max) spectrogram frames T the audio graph gets under ``pre``.

    A fixed sample rate gives one T (276 for HTF's 3 s at 22,050 Hz); ``native`` gives
    the T of the slowest, a typical and the fastest rate in NATIVE_RATES.
    """
    if pre.sample_rate == "native":
        lo, mid, hi = (pre.spectrogram_frames(r) for r in NATIVE_RATES)
        return lo, mid, hi
    t = pre.spectrogram_frames(pre.rate_for(0))
    return t, t, t


@dataclass
class Manifest:
    """A parsed, checked manifest.json.

    path: the export folder.
    data: the JSON content as written (see module docstring).
    preprocess / model_config: the PreprocessConfig and the model config dict.
    """

    path: Path
    data: dict
    preprocess: PreprocessConfig
    model_config: dict

    @property
    def uses_flow(self) -> bool:
        return self.model_config.get("flow", "cnn") != "none"

    @property
    def default_backend(self) -> str:
        return self.data.get("default_backend", "onnxruntime")

    @property
    def graphs(self) -> dict:
        return self.data["graphs"]

    @property
    def frame_graph(self) -> dict | None:
        """The frame graph's entry (file, sha256, inputs, outputs, frame_size), or None."""
        return self.data.get("frame_graph")

    @property
    def tensorrt(self) -> dict | None:
        return self.data.get("tensorrt")

    @property
    def precision(self) -> str:
        """The graph set onnxruntime loads by default: 'fp32' (also for manifests before int8) or 'int8'."""
        return self.data.get("precision", "fp32")

    @property
    def precisions(self) -> tuple[str, ...]:
        """The graph sets this folder holds."""
        return ("fp32", "int8") if self.data.get("int8") else ("fp32",)

    def _graph_entry(self, graph: str, precision: str) -> dict:
        if precision not in self.precisions:
            raise ExportError(f"{self.path}: no {precision} graphs in this export folder "
                              f"(it has {', '.join(self.precisions)}; add int8 with `hearflow export --int8`)")
        return self.data["int8"]["graphs"][graph] if precision == "int8" else self.graphs[graph]

    def graph_path(self, graph: str, precision: str = "fp32") -> Path:
        return self.path / self._graph_entry(graph, precision)["file"]

    def input_names(self, graph: str) -> list[str]:
        return [t["name"] for t in self.graphs[graph]["inputs"]]

    def check_files(self, verify_hash: bool = True, precision: str = "fp32") -> None:
        """Raise ExportError if a graph file of ``precision`` is missing or (verify_hash)
        differs from the manifest."""
        for graph in GRAPHS:
            p = self.graph_path(graph, precision)
            if not p.is_file():
                raise ExportError(f"{p}: ONNX file missing from the export folder (re-export the model)")
            if verify_hash and file_sha256(p) != self._graph_entry(graph, precision)["sha256"]:
                raise ExportError(
                    f"{p}: file does not match the sha256 in {MANIFEST} (changed or corrupt; re-export the model)"
                )


def read_manifest(folder) -> Manifest:
    """Parse and check ``folder``/manifest.json; every problem is a one-line ExportError."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportError(f"{folder}: no {MANIFEST} (not a hearflow export folder)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not valid JSON ({exc}); re-export the model") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise ExportError(f"{path}: not a {FORMAT} manifest (format {found!r})")
    for key in ("model", "preprocess", "graphs"):
        if not isinstance(data.get(key), dict):
            raise ExportError(f"{path}: '{key}' missing or not a mapping; re-export the model")
    try:
        pre = PreprocessConfig.from_dict(data["preprocess"], f"{path} (preprocess)")
    except ConfigError as exc:
        raise ExportError(f"unusable preprocess config: {exc}") from None
    for graph in GRAPHS:
        g = data["graphs"].get(graph)
        if not isinstance(g, dict) or not all(k in g for k in ("file", "sha256", "inputs", "outputs")):
            raise ExportError(f"{path}: graph '{graph}' missing or incomplete; re-export the model")
    precision = data.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ExportError(f"{path}: unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    int8 = data.get("int8")
    if int8 is not None or precision == "int8":
        graphs = int8.get("graphs") if isinstance(int8, dict) else None
        if not isinstance(graphs, dict) or not all(
                isinstance(graphs.get(g), dict) and "file" in graphs[g] and "sha256" in graphs[g] for g in GRAPHS):
            raise ExportError(f"{path}: 'int8' section missing or incomplete; re-export the model with --int8")
    backend = data.get("default_backend", "onnxruntime")
    if backend not in BACKENDS:
        raise ExportError(f"{path}: unknown default_backend {backend!r} (known: {', '.join(BACKENDS)})")
    return Manifest(folder, data, pre, data["model"])


def read_onnx_metadata(path) -> dict:
    """The hearflow description stored in an .onnx file (JSON fields decoded).

    Returns a dict with format, graph, version, source_sha256, model, preprocess,
    inputs, outputs, precision ('fp32' or 'int8'); raises ExportError when the file is
    unreadable or has none.
    """
    import onnx

    path = Path(path)
    try:
        # load_external_data=False: only the header is needed, not the weights
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError... depending on the damage
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path}: not a readable ONNX file ({why})") from None
    props = {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}
    if props.get("format") != FORMAT:
        raise ExportError(f"{path}: no hearflow metadata in this ONNX file (not exported by hearflow)")
    for key in ("model", "preprocess", "inputs", "outputs"):
        props[key] = json.loads(props[key])
    props.setdefault("precision", "fp32")
    return props
