"""``byzadam.torch`` on the nodes: a user's PyTorch model in the networked mode.

The model is named by a reference ``"package.module:factory"`` importable on the SuperLink's
host and on every node; ``factory(config)`` returns a fresh ``torch.nn.Module`` (as
``byzadam.torch.grid``'s ``model_factory``; it is drawn under the run's seed, so the server's
initial parameters are the same as ``bt.grid``'s). A node computes its worker's gradient as
:class:`byzadam.torch.Simulation`'s per-worker loop does (its batches, its dropout seed, its
own buffers such as batch-norm statistics), so a Flower run gives ``Simulation(…,
vmap=False)``'s numbers bit for bit; the rest of the round is the Rust halves, as always.
"""
from __future__ import annotations

import importlib
import io
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from .. import data as _data
from ..torch.grid import _initial
from ..torch.simulation import Simulation


def load_factory(ref: str) -> Callable[[Dict[str, Any]], torch.nn.Module]:
    """The callable ``"package.module:factory"`` names (``factory(config) -> nn.Module``)."""
    module, _, attr = str(ref).partition(":")
    if not module or not attr:
        raise ValueError(f"torch-model = {ref!r}: expected 'package.module:factory'")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"torch-model = {ref!r}: cannot be imported here ({e})") from None
    if not callable(obj):
        raise TypeError(f"torch-model = {ref!r} is not callable")
    return obj


def config_model(config: Dict[str, Any]) -> torch.nn.Module:
    """The run config's own network (its ``model`` table) as a torch module: ``torch-model =
    "byzadam.flower.torch_worker:config_model"`` runs the built-in network's architecture
    with PyTorch's gradients on the nodes."""
    from ..torch.models import from_config

    return from_config(config["model"])


_DATA: Dict[Tuple[str, int, Optional[str]], Dict[str, Any]] = {}


def _dataset(config: Dict[str, Any], data_dir: Optional[str]) -> Dict[str, Any]:
    seed = int(config["data_seed"]) if config["dataset"] == "synthetic" else 0
    key = (config["dataset"], seed, data_dir)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = _data.load(config["dataset"], data_dir, seed=seed)
    return _DATA[key]


def simulation(ref: str, config: Dict[str, Any], data_dir: Optional[str],
               with_test: bool) -> Tuple[Simulation, str, str]:
    """A :class:`Simulation` of ``config`` with the model ``ref`` names (the per-worker loop),
    its backend and identity (``bt.grid``'s)."""
    model, start, backend, identity = _initial(config, load_factory(ref), None)
    data = _dataset(config, data_dir)
    sim = Simulation(model, data, data if with_test else None, config=config,
                     params=None if config.get("init") else start, vmap=False)
    return sim, backend, identity


def buffers_len(sim: Simulation) -> int:
    """Values in a worker's buffers (batch-norm statistics), flattened."""
    return int(sum(b.numel() for b in sim._buffers.values()))


def buffers(sim: Simulation, w: int) -> np.ndarray:
    """Worker ``w``'s buffers as one float32 vector (in the model's buffer order)."""
    parts = [sim._worker_buffers[w][k].detach().reshape(-1).to("cpu", torch.float32)
             for k in sim._buffers]
    return torch.cat(parts).numpy() if parts else np.zeros(0, np.float32)


def set_buffers(sim: Simulation, w: int, flat: np.ndarray) -> None:
    """Sets worker ``w``'s buffers from :func:`buffers`' vector."""
    at = 0
    for k, b in sim._buffers.items():
        n = b.numel()
        sim._worker_buffers[w][k] = torch.from_numpy(
            np.ascontiguousarray(flat[at:at + n])).reshape(b.shape).to(b.device, b.dtype)
        at += n


def state(sim: Simulation, w: int) -> bytes:
    """Worker ``w``'s state: optimizer moments, sampler, buffers (an ``.npz``, no pickle)."""
    out = io.BytesIO()
    np.savez(out, worker=np.frombuffer(sim.workers[w].checkpoint(), np.uint8),
             sampler=np.frombuffer(sim._samplers[w].checkpoint(), np.uint8),
             buffers=buffers(sim, w))
    return out.getvalue()


def restore(sim: Simulation, w: int, saved: bytes) -> None:
    """Continues worker ``w`` from :func:`state`'s bytes."""
    z = np.load(io.BytesIO(saved), allow_pickle=False)
    sim.workers[w].restore(z["worker"].tobytes())
    sim._samplers[w].restore(z["sampler"].tobytes())
    set_buffers(sim, w, z["buffers"])


def step(sim: Simulation, w: int, params: np.ndarray, t: int) -> Tuple[float, List[np.ndarray]]:
    """Worker ``w``'s round ``t`` at ``params``: its next batch, its gradient by torch (the
    simulation's per-worker loop: the same dropout seed and buffers), then the Rust worker
    half. Returns its loss and messages."""
    batch = sim._batch(w, np.asarray(sim._samplers[w].next_batch()))
    _, g, loss = sim._gradients_at(params, t, [w], [batch])
    return float(loss[0]), sim.workers[w].message(params, g[0])
