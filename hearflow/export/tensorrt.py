"""``hearflow export --format tensorrt``: build an export folder's TensorRT engines ahead of
use and record them in its manifest (TensorRT becomes the folder's default backend).

Building, keys and running live in :mod:`hearflow.runtime.tensorrt`, which also rebuilds
stale engines when a folder is loaded.
"""

from __future__ import annotations

from dataclasses import asdict

from hearflow.export.manifest import write_manifest
from hearflow.runtime.manifest import GRAPHS, read_manifest
from hearflow.runtime.tensorrt import (
    TIMING_CACHE,
    BuildSettings,
    engine_key,
    ensure_engine,
    import_tensorrt,
    require_cuda,
)


def build_tensorrt(folder, settings: BuildSettings = BuildSettings(), device: str = "cuda",
                   rebuild: bool = False) -> dict:
    """Build the engines of an export folder and make TensorRT its default backend.

    folder: export folder written by :func:`hearflow.export.onnx.export_onnx`.
    settings: precision and batch profile.
    device: the CUDA device to build for (engines are specific to the GPU model).
    rebuild: build even when the engines are up to date.
    Returns the updated manifest dict (``tensorrt`` section filled).
    """
    import_tensorrt()
    dev = require_cuda(device)
    manifest = read_manifest(folder)
    manifest.check_files(verify_hash=True)
    built = {}
    for graph in GRAPHS:
        engine, fresh = ensure_engine(manifest, graph, settings, dev, rebuild)
        built[graph] = {"file": engine.name, "built": fresh}
    data = dict(manifest.data)
    data["tensorrt"] = {
        **asdict(settings),
        "engines": {g: built[g]["file"] for g in GRAPHS},
        "timing_cache": TIMING_CACHE,
        "built_with": {k: v for k, v in engine_key(manifest, "audio", settings, dev).items()
                       if k in ("tensorrt", "gpu", "compute_capability")},
        "note": "engines are rebuilt automatically when the GPU, TensorRT version or ONNX files change",
    }
    data["default_backend"] = "tensorrt"
    write_manifest(folder, data)
    return data
