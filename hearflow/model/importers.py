"""Import the checkpoints the Hear-The-Flow and EZ-VSL authors released.

``import_checkpoint("htf", "flickr.pth", "models/htf_flickr")`` reads the authors' file,
checks that every weight is there with the shape their ``model.py`` gives it, renames
the weights to hearflow's modules and writes a normal hearflow checkpoint whose
ModelConfig and PreprocessConfig reproduce the authors' inference:

========  ==========================  =====================================  ===============
kind      source repository           model                                  preprocessing
========  ==========================  =====================================  ===============
htf       denfed/heartheflow          ``flow: cnn`` (or ``maxpool``),        ``htf_compat``
                                      no projection heads
ezvsl     stoneMo/EZ-VSL              ``flow: none``, ``proj_dim`` = the     ``ezvsl_compat``
                                      file's projection width
========  ==========================  =====================================  ===============

Accepted file layouts (all read with ``torch.load(..., weights_only=True)``):

* ``{"model": state_dict, ...}`` — the authors' ``.pth`` files (EZ-VSL keys may carry
  DistributedDataParallel's ``module.`` prefix);
* ``{"state_dict": {"model.<key>": ...}, ...}`` — a PyTorch-Lightning ``.ckpt`` from
  HTF's training script;
* a bare state dict.

Only tensors and plain containers are unpickled. The few harmless non-tensor types the
authors' training scripts put next to the weights (``argparse.Namespace`` hyper-parameters
in Lightning files, numpy scalars for the best scores in EZ-VSL files) are allowed by name;
anything else (a pickled module or a custom class) is refused with a clear message rather
than executed.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from hearflow.media.preprocess import ezvsl_compat, htf_compat
from hearflow.model.checkpoint import SIDECAR, WEIGHTS, CheckpointError, file_sha256, save_checkpoint
from hearflow.model.htf import HTFModel, ModelConfig

KINDS = ("htf", "ezvsl")

# How many offending keys an error message names before it only counts the rest.
SHOW_KEYS = 6


class ForeignCheckpointError(CheckpointError):
    """A file given to the importer is unreadable, unsafe or not the expected layout."""


@dataclass(frozen=True)
class _Kind:
    """What is known about one source method."""

    title: str
    repository: str
    preset: str
    prefixes: dict[str, str]
    """The authors' module prefix → hearflow's module prefix (checked in order)."""


_KINDS = {
    "htf": _Kind(
        title="Hear-The-Flow",
        repository="denfed/heartheflow",
        preset="htf_compat",
        prefixes={
            "imgnet.": "visual_encoder.",
            "audnet.": "audio_encoder.",
            "flownet.": "flow_encoder.",
            "flowatt.query_conv.": "attention.query.",
            "flowatt.key_conv.": "attention.key.",
            "flowatt.value_conv.": "attention.value.",
        },
    ),
    "ezvsl": _Kind(
        title="EZ-VSL",
        repository="stoneMo/EZ-VSL",
        preset="ezvsl_compat",
        prefixes={
            "imgnet.": "visual_encoder.",
            "img_proj.": "visual_proj.",
            "audnet.": "audio_encoder.",
            "aud_proj.": "audio_proj.",
        },
    ),
}

_PRESETS = {"htf_compat": htf_compat, "ezvsl_compat": ezvsl_compat}


# --------------------------------------------------------------------------- reading
def _harmless_globals() -> list:
    """Non-tensor types the authors' scripts store beside the weights, safe to rebuild.

    argparse.Namespace only receives a __dict__ of plain values; numpy scalars are
    rebuilt from raw bytes of a numeric dtype (an object dtype is not allowed, so no
    arbitrary object can come in through them).
    """
    import numpy as np

    allowed: list = [argparse.Namespace, np.dtype]
    # The scalar constructor lives in numpy.core (numpy 1.x, which wrote most such files)
    # or numpy._core (numpy 2); the unpickler matches the name stored in the file.
    scalar = np._core.multiarray.scalar
    allowed += [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    for name in ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                 "Float16", "Float32", "Float64"):
        allowed.append(getattr(np.dtypes, name + "DType"))
    return allowed


def read_foreign(src) -> tuple[dict[str, torch.Tensor], str]:
    """Load a foreign checkpoint file weights-only and return (state dict, layout).

    layout: ``model`` ({"model": sd}), ``lightning`` ({"state_dict": {"model.k": v}}) or
    ``bare``. Prefixes are removed: Lightning's ``model.`` and DDP's ``module.``.
    Raises ForeignCheckpointError when the file is missing, unreadable, needs unpickling
    of other objects, or holds no state dict.
    """
    src = Path(src)
    if not src.is_file():
        raise ForeignCheckpointError(f"{src}: file not found")
    try:
        with torch.serialization.safe_globals(_harmless_globals()):
            obj = torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ForeignCheckpointError(f"{src}: {_unpickling_problem(str(exc))}") from None
    except Exception as exc:  # noqa: BLE001 - arbitrary bytes make the loader fail in arbitrary ways
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ForeignCheckpointError(f"{src}: not a readable PyTorch checkpoint ({first})") from None

    if _is_state_dict(obj):
        state, layout = obj, "bare"
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        state, layout = obj["model"], "model"
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state, layout = obj["state_dict"], "lightning"
        # Lightning prefixes the LightningModule's attribute (HTF: self.model).
        if state and all(k.startswith("model.") for k in state):
            state = {k[len("model."):]: v for k, v in state.items()}
    else:
        found = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
        raise ForeignCheckpointError(
            f"{src}: no state dict found (expected a 'model' or 'state_dict' entry or a bare state dict; found {found})"
        )
    if not state:
        raise ForeignCheckpointError(f"{src}: the state dict is empty")
    if not _is_state_dict(state):
        bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
        raise ForeignCheckpointError(f"{src}: the state dict holds non-tensor entries: {_listing(bad)}")
    # DistributedDataParallel wraps the model as self.module (EZ-VSL's training script).
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return state, layout


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _unpickling_problem(message: str) -> str:
    """One line saying why torch's weights-only loader refused the file."""
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    detail = detail.group(1).strip() if detail else ""
    needs = re.search(r"GLOBAL (\S+)", detail) or re.search(r"(?:got|function) (<[^>]+>|\S+)", detail)
    if needs or detail.startswith(("Can only", "Trying to call")):
        what = needs.group(1) if needs else "a Python object"
        return (
            f"the file contains a pickled Python object ({what}); only weights-only files are accepted "
            "(tensors in dicts/lists, as torch.save(model.state_dict()) writes). Re-save just the state "
            "dict in a trusted environment: torch.save({'model': model.state_dict()}, 'weights.pth')"
        )
    return f"not a readable PyTorch checkpoint ({detail or 'weights-only load failed'})"


# --------------------------------------------------------------------------- converting
def _detect_config(kind: str, state: dict[str, torch.Tensor]) -> tuple[ModelConfig, str]:
    """The hearflow ModelConfig a foreign state dict needs, and a short variant name."""
    if kind == "htf":
        key = state.get("flowatt.key_conv.weight")
        has_flownet = any(k.startswith("flownet.") for k in state)
        # HTF's flowtype=maxpool has no flow CNN: its key conv sees the 2 flow channels.
        if not has_flownet and key is not None and key.ndim == 4 and key.shape[1] == 2:
            variant = "maxpool"
        else:
            variant = "cnn"
        # freeze_vision: HTF's training default; it only matters if the model is trained further.
        return ModelConfig(backbone="resnet18", flow=variant, feature_size=7, proj_dim=0,
                           pretrained="none", freeze_vision=True), variant
    proj = state.get("img_proj.weight")
    dim = int(proj.shape[0]) if proj is not None and proj.ndim == 4 else 512
    return ModelConfig(backbone="resnet18", flow="none", feature_size=7, proj_dim=dim, pretrained="none"), f"dim {dim}"


def _foreign_name(kind: str, key: str) -> str | None:
    """hearflow state-dict key → the authors' key (None if the authors have no such module)."""
    for theirs, ours in _KINDS[kind].prefixes.items():
        if key.startswith(ours):
            return theirs + key[len(ours):]
    return None


def convert_state_dict(kind: str, state: dict[str, torch.Tensor], source: str = "<state dict>"):
    """Check a foreign state dict against the authors' model and rename it for hearflow.

    kind: ``htf`` or ``ezvsl``. state: the authors' state dict (prefixes already removed).
    Returns (ModelConfig, hearflow state dict, variant). Raises ForeignCheckpointError
    listing the unknown, missing and mis-shaped keys (the first few of each, and counts).
    """
    if kind not in _KINDS:
        raise ForeignCheckpointError(f"unknown checkpoint kind {kind!r} (known: {', '.join(KINDS)})")
    cfg, variant = _detect_config(kind, state)
    with torch.device("meta"):  # only names, shapes and dtypes are needed: allocate nothing
        target = HTFModel(cfg).state_dict()
    wanted = {}  # the authors' key → hearflow's key
    for key in target:
        theirs = _foreign_name(kind, key)
        if theirs is None:  # a hearflow module the authors' model does not have: a bug here
            raise AssertionError(f"no foreign name for {key}")
        wanted[theirs] = key

    unknown = [k for k in state if k not in wanted]
    missing = [k for k in wanted if k not in state]
    misshaped = []
    out = {}
    for theirs, ours in wanted.items():
        if theirs not in state:
            continue
        value, ref = state[theirs], target[ours]
        if tuple(value.shape) != tuple(ref.shape):
            misshaped.append(f"{theirs} {list(value.shape)} (expected {list(ref.shape)})")
        elif value.is_floating_point() != ref.is_floating_point():
            misshaped.append(f"{theirs} dtype {value.dtype} (expected {ref.dtype})")
        else:
            # A half-precision copy loads too; weights are stored in the model's dtype.
            out[ours] = value.detach().to(ref.dtype).contiguous()

    if unknown or missing or misshaped:
        what = f"{_KINDS[kind].title} ({variant})"
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} unknown key{'s' * (len(unknown) != 1)}: {_listing(unknown)}")
        if missing:
            parts.append(f"{len(missing)} missing key{'s' * (len(missing) != 1)}: {_listing(missing)}")
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped key{'s' * (len(misshaped) != 1)}: {_listing(misshaped)}")
        hint = _other_kind_hint(kind, state)
        raise ForeignCheckpointError(
            f"{source}: does not match the {what} checkpoint layout: " + "; ".join(parts) + hint
        )
    return cfg, out, variant


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:SHOW_KEYS])
    return shown + (f", ... and {len(items) - SHOW_KEYS} more" if len(items) > SHOW_KEYS else "")


def _other_kind_hint(kind: str, state: dict) -> str:
    """Point at the other importer when the file plainly belongs to it."""
    if kind == "htf" and "img_proj.weight" in state and "aud_proj.weight" in state:
        return " (this looks like an EZ-VSL checkpoint: use kind ezvsl)"
    if kind == "ezvsl" and any(k.startswith("flowatt.") for k in state):
        return " (this looks like a Hear-The-Flow checkpoint: use kind htf)"
    return ""


# --------------------------------------------------------------------------- writing
def import_checkpoint(kind: str, src, out_dir, *, overwrite: bool = False) -> Path:
    """Convert the authors' checkpoint ``src`` into a hearflow checkpoint folder ``out_dir``.

    kind: ``htf`` (denfed/heartheflow, preset htf_compat) or ``ezvsl`` (stoneMo/EZ-VSL,
        preset ezvsl_compat).
    overwrite: replace a checkpoint already in out_dir (refused by default so an import
        never clobbers a trained model).
    The sidecar records where the weights came from (kind, repository, file name,
    sha256, layout, variant, preset). Returns out_dir.
    """
    if kind not in _KINDS:
        raise ForeignCheckpointError(f"unknown checkpoint kind {kind!r} (known: {', '.join(KINDS)})")
    src, out_dir = Path(src), Path(out_dir)
    if (out_dir / WEIGHTS).exists() and not overwrite:
        raise ForeignCheckpointError(f"{out_dir}: already holds a checkpoint (choose another folder or overwrite it)")
    state, layout = read_foreign(src)
    cfg, weights, variant = convert_state_dict(kind, state, str(src))
    with torch.device("meta"):  # every tensor is replaced by an imported one just below
        model = HTFModel(cfg)
    model.load_state_dict(weights, strict=True, assign=True)
    info = _KINDS[kind]
    provenance = {
        "kind": kind,
        "method": info.title,
        "repository": f"https://github.com/{info.repository}",
        "source_file": src.name,
        "source_sha256": file_sha256(src),
        "layout": layout,
        "variant": variant,
        "preset": info.preset,
    }
    return save_checkpoint(out_dir, model, _PRESETS[info.preset](), imported_from=provenance)


def import_summary(out_dir) -> str:
    """One line describing an imported checkpoint folder (for the CLI after an import)."""
    out_dir = Path(out_dir)
    meta = json.loads((out_dir / SIDECAR).read_text())
    src = meta.get("imported_from") or {}
    model = meta.get("model", {})
    n_params = _count_parameters(out_dir / WEIGHTS)
    flow = model.get("flow", "?")
    heads = f", projection {model['proj_dim']}" if model.get("proj_dim") else ""
    return (
        f"imported {src.get('method', '?')} ({src.get('variant', '?')}) from {src.get('source_file', '?')} "
        f"[sha256 {str(src.get('source_sha256', ''))[:12]}] -> {out_dir}: flow {flow}{heads}, "
        f"{n_params / 1e6:.1f} M parameters, preprocess {src.get('preset', '?')}"
    )


def _count_parameters(weights: Path) -> int:
    """Learned parameters in a safetensors file (BatchNorm statistics not counted)."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), "pt") as f:
        for key in f.keys():
            if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
                total += _numel(f.get_slice(key).get_shape())
    return total


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


__all__ = [
    "KINDS",
    "ForeignCheckpointError",
    "convert_state_dict",
    "import_checkpoint",
    "import_summary",
    "read_foreign",
]
