"""``hearflow export --format triton``: an export folder that is also a Triton model repository.

Triton Inference Server reads only the sub-folders of its ``--model-repository``, so the
models sit beside the export's own files, and one folder serves both sides::

    DIR/manifest.json, audio.onnx, visual.onnx     the hearflow export (the client's
                                                    PreprocessConfig comes from here)
    DIR/hearflow_audio/config.pbtxt, 1/model.onnx   Triton's ONNX Runtime backend
    DIR/hearflow_visual/config.pbtxt, 1/model.onnx
    DIR/hearflow_audio_trt/..., 1/model.plan        the TensorRT plan variant, only when
    DIR/hearflow_visual_trt/...                     the export ran on a GPU with TensorRT

Each config.pbtxt gives the inputs/outputs and shapes from the manifest (batch axis
dropped: Triton adds it under ``max_batch_size``; the time axis is -1), dynamic batching
(requests of several engines are merged into one call), one instance per GPU
(``KIND_AUTO``: on the CPU where the server has none) and the export's description as
``parameters`` (hearflow.source_sha256, hearflow.preprocess, hearflow.model), so a client
can check that the server runs the model it has the preprocessing of (Triton keeps them;
PyTriton, which the tests serve with, makes its own configs without them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hearflow.export.manifest import write_manifest
from hearflow.runtime.manifest import GRAPHS, TRITON_PREFIX, ExportError, read_manifest, triton_model_name

MAX_BATCH = 32
QUEUE_DELAY_US = 500
"""Longest wait of a request for others to batch with (0.5 ms: small next to a frame's 33 ms)."""
VERSION = "1"
PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "plan": ("tensorrt_plan", "model.plan")}


def _dims(shape: list) -> list[int]:
    """A manifest shape without its batch axis; named (dynamic) axes become -1."""
    if not shape or shape[0] != "batch":
        raise ExportError(f"tensor shape {shape} has no leading batch axis; re-export the model")
    return [d if isinstance(d, int) else -1 for d in shape[1:]]


def _tensors(kind: str, specs: list[dict]) -> str:
    rows = []
    for t in specs:
        if t.get("dtype", "float32") != "float32":
            raise ExportError(f"tensor {t['name']}: dtype {t['dtype']} not supported for Triton (float32 only)")
        dims = ", ".join(str(d) for d in _dims(t["shape"]))
        rows.append(f'  {{\n    name: "{t["name"]}"\n    data_type: TYPE_FP32\n    dims: [ {dims} ]\n  }}')
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _parameter(key: str, value: str) -> str:
    return f"parameters {{\n  key: {json.dumps(key)}\n  value: {{ string_value: {json.dumps(value)} }}\n}}\n"


def model_config(name: str, graph: dict, platform: str, data: dict, max_batch: int = MAX_BATCH,
                 queue_delay_us: int = QUEUE_DELAY_US) -> str:
    """The config.pbtxt text of one model (protobuf text format)."""
    text = (f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch}\n'
            + _tensors("input", graph["inputs"]) + _tensors("output", graph["outputs"])
            + f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}\n"
            + "instance_group [\n  {\n    count: 1\n    kind: KIND_AUTO\n  }\n]\n")
    params = {"hearflow.format": data["format"], "hearflow.source_sha256": data["source"]["weights_sha256"],
              "hearflow.graph_sha256": graph["sha256"],
              "hearflow.preprocess": json.dumps(data["preprocess"], sort_keys=True),
              "hearflow.model": json.dumps(data["model"], sort_keys=True)}
    return text + "".join(_parameter(k, v) for k, v in params.items())


def _write_model(folder: Path, name: str, source: Path, kind: str, graph: dict, data: dict, max_batch: int) -> dict:
    """One model folder: config.pbtxt and version 1's model file (copied: the repository is
    often synced to another machine, where links would dangle)."""
    platform, file = PLATFORMS[kind]
    model_dir = folder / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    (model_dir / VERSION).mkdir(parents=True)
    shutil.copyfile(source, model_dir / VERSION / file)
    (model_dir / "config.pbtxt").write_text(model_config(name, graph, platform, data, max_batch))
    return {"name": name, "platform": platform, "file": f"{name}/{VERSION}/{file}"}


def remove_triton_models(folder) -> None:
    """Delete the Triton models an earlier export left in ``folder`` (sub-folders with a
    config.pbtxt): a re-export must not leave a server serving the old graphs."""
    for config in Path(folder).glob("*/config.pbtxt"):
        shutil.rmtree(config.parent)


def check_prefix(prefix: str) -> None:
    if not prefix.replace("_", "").replace("-", "").isalnum():
        raise ExportError(f"Triton model prefix {prefix!r}: use letters, digits, '_' and '-' only")


def write_triton_repository(folder, prefix: str = TRITON_PREFIX, max_batch: int = MAX_BATCH) -> dict:
    """Add Triton models to export folder ``folder`` (its ONNX graphs, and its TensorRT
    engines when it has them); returns the manifest dict with its ``triton`` section."""
    check_prefix(prefix)
    manifest = read_manifest(folder)
    manifest.check_files(verify_hash=True)
    folder = manifest.path
    data = dict(manifest.data)
    models = {}
    for graph in GRAPHS:
        spec = data["graphs"][graph]
        models[graph] = _write_model(folder, triton_model_name(prefix, graph), manifest.graph_path(graph),
                                     "onnx", spec, data, max_batch)
    plans = {}
    trt = data.get("tensorrt")
    if trt:  # engines built on this GPU: Triton's TensorRT backend runs them (same TensorRT version needed)
        for graph in GRAPHS:
            plans[graph] = _write_model(folder, triton_model_name(prefix, graph, plan=True),
                                        folder / trt["engines"][graph], "plan", data["graphs"][graph], data,
                                        min(max_batch, trt["max_batch"]))
    data["triton"] = {"prefix": prefix, "max_batch_size": max_batch, "models": models, "plan_models": plans,
                      "dynamic_batching": {"max_queue_delay_microseconds": QUEUE_DELAY_US}}
    write_manifest(folder, data)
    return data


def format_triton(data: dict, out) -> list[str]:
    """Lines for the terminal about the Triton models written."""
    t = data.get("triton")
    if not t:
        return []
    names = [m["name"] for m in t["models"].values()] + [m["name"] for m in t["plan_models"].values()]
    return [f"  Triton model repository {out}: {', '.join(names)} (max_batch_size {t['max_batch_size']}, "
            f"dynamic batching); serve with tritonserver --model-repository {out}, run with "
            f"--backend triton:grpc://HOST:8001/{t['prefix']}"]
