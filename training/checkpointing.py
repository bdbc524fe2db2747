"""Resumable training state: model (+ extra modules, e.g. EMA weights) and optimizer tensors as safetensors,
progress as JSON metadata (never pickle). Used by both trainers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from tracker_core.errors import WeightsError

STATE_KEY = "roitrack_train_state"


def save_train_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    extra: dict[str, torch.nn.Module] | None = None,
) -> None:
    """Write ``model``'s and ``optimizer``'s tensors, those of the ``extra`` modules (stored under their name) and
    the JSON ``state`` (epoch, step, config) atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for name, module in (extra or {}).items():
        if name in ("model", "optim"):
            raise ValueError(f"extra module name {name!r} is reserved")
        tensors.update({f"{name}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
    osd = optimizer.state_dict()
    for idx, st in osd["state"].items():
        for k, v in st.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[f"optim.{idx}.{k}"] = t.detach().cpu().contiguous()
    meta = dict(state)
    meta["param_groups"] = osd["param_groups"]
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={STATE_KEY: json.dumps(meta)})
    tmp.replace(path)


def load_train_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, torch.nn.Module] | None = None,
) -> dict[str, Any]:
    """Restore ``model``, ``optimizer`` and the ``extra`` modules in place; returns the JSON state."""
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"cannot read training checkpoint {path}: {exc}") from exc
    if STATE_KEY not in md:
        raise WeightsError(f"{path} is not a roitrack training checkpoint")
    meta = json.loads(md[STATE_KEY])
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    for name, module in (extra or {}).items():
        sub = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if not sub:
            raise WeightsError(f"{path} holds no {name!r} tensors")
        module.load_state_dict(sub)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return meta
