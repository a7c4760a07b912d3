"""``byzadam.torch.grid``: a grid of runs through the torch backend into the results store
``byzadam grid`` writes, beside the built-in engine's runs."""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from .. import _core
from .. import data as _data
from ..round import Server
from ..simulator import Store, _to_toml
from .models import flat, from_config
from .simulation import Simulation, _check_flag, _check_interval, _device

__all__ = ["grid"]

#: A grid file's largest size (as ``byzadam grid`` reads it).
_MAX_GRID_BYTES = 16 << 20


def _grid_text(spec: Union[str, "os.PathLike[str]", Dict[str, Any]]) -> Tuple[str, str]:
    if isinstance(spec, dict):
        return _to_toml(spec), "<grid dict>"
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"grid must be a grid file's path or a dict, got {type(spec).__name__}")
    path = os.fspath(spec)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such grid file")
    if os.path.getsize(path) > _MAX_GRID_BYTES:
        raise ValueError(f"{path}: larger than {_MAX_GRID_BYTES} bytes: not a grid file")
    with open(path, encoding="utf-8") as f:
        return f.read(), path


def _initial(config: Dict[str, Any], model_factory: Optional[Callable[[Dict[str, Any]],
                                                                      torch.nn.Module]],
             model_name: Optional[str]) -> Tuple[torch.nn.Module, np.ndarray, str, str]:
    """The run's fresh module, its initial flat parameters, its backend (the model's name and
    the fingerprint of its structure: the same for every seed) and its identity (the backend
    and the fingerprint of its initial parameters), which the run id hashes."""
    if model_factory is None:
        # The config's own network, from the built-in engine's initial parameters: the run
        # starts where `byzadam run` starts.
        model = from_config(config["model"])
        name = model_name or "config-model"
    else:
        # The user's module, drawn under the run's seed (the caller's generator restored).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config["seed"]))
            model = model_factory(config)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model_factory must return a torch.nn.Module, got "
                            f"{type(model).__name__}")
        name = model_name or type(model).__qualname__
    if model_factory is None or config.get("init"):
        # The engine's draw, or the config's `init` file (read and checked in Rust).
        start = Server(config).params
    else:
        start = flat(model).detach().cpu().numpy().astype(np.float32)
    structure = hashlib.sha256(repr(
        (type(model).__qualname__,
         [(k, tuple(v.shape), str(v.dtype)) for k, v in model.named_parameters()],
         [(k, tuple(v.shape), str(v.dtype)) for k, v in model.named_buffers()])).encode())
    values = hashlib.sha256(np.ascontiguousarray(start).tobytes())
    backend = f"torch:{name}@{structure.hexdigest()[:8]}"
    return model, start, backend, f"{backend}/{values.hexdigest()[:16]}"


def grid(spec: Union[str, "os.PathLike[str]", Dict[str, Any]],
         model_factory: Optional[Callable[[Dict[str, Any]], torch.nn.Module]] = None, *,
         store: Optional[Union[str, "os.PathLike[str]"]] = None, train: Any = None,
         test: Any = None, data_dir: Optional[str] = None, device: Any = "cpu",
         model_name: Optional[str] = None, vmap: Optional[bool] = None,
         checkpoint_every: float = 60.0, tensorboard: Optional[str] = None,
         progress: bool = True, shard: Optional[Tuple[int, int]] = None) -> Store:
    """Runs every run of a grid (a grid file's path, or the same content as a dict) through the
    torch backend into a results store, as ``byzadam grid`` does for the built-in engine:
    runs already stored are skipped, the run in flight is checkpointed every
    ``checkpoint_every`` seconds and on Ctrl-C (which then raises ``KeyboardInterrupt``), so
    calling ``grid`` again resumes where it stopped, with the same bits. Returns the store.

    - ``model_factory(config)`` builds each run's module from its resolved config (under
      ``torch.manual_seed(config["seed"])``, so its initial parameters follow the run's seed);
      without it, each run trains the network its config's ``model`` names
      (:func:`byzadam.torch.models.from_config`) from the built-in engine's initial
      parameters, as ``byzadam run`` would. A config's ``init`` file gives the initial
      parameters either way (it holds the config's ``model``'s parameter count).
    - Each run is stored with ``backend = "torch:<model>@<structure>"``: ``<model>`` is
      ``model_name`` or the module's class name (``config-model`` without a factory),
      ``<structure>`` 8 hex digits of the SHA-256 of its parameters' and buffers' names,
      shapes and dtypes (the same for every seed, so ``byzadam report`` averages seeds). The
      run id hashes the config, the backend *and* the SHA-256 of the run's initial
      parameters, so torch runs never take a built-in run's id or another model's, and a
      changed model (other initial parameters) runs again.
    - ``store`` defaults to ``results/<grid name>.db``, the file ``byzadam grid`` writes, so
      ``byzadam report`` tabulates the torch runs beside the built-in ones (in a section of
      their own grid). The grid is registered as ``<name>-<backend>`` (characters other than
      letters, digits, ``_``, ``.`` and ``-`` made ``-``: ``tg-torch-Net-1a2b3c4d``).
    - ``train``/``test``: as :class:`Simulation` takes them, for every run; by default each
      run's ``dataset`` is loaded with :func:`byzadam.data.load` (from ``data_dir``).
    - ``tensorboard``: a directory; each run logs to ``<tensorboard>/<run id>``.
    - ``shard=(i, k)``: only every ``k``-th run of the grid's order from the ``i``-th, as
      ``byzadam grid --shard i/k`` selects them (the same runs): ``k`` processes with ``i`` from
      0 to ``k − 1`` share a grid, e.g. on one GPU. They may write the same store (SQLite
      serialises them) or one each (``byzadam store merge`` joins them).

    A run that fails (its exception) does not stop the others: the failures are raised
    together at the end, as a ``RuntimeError`` naming each run.
    """
    if train is not None and test is None:
        raise ValueError("train was given without test: every run is evaluated, give both")
    # Checked before any run (each run would fail on it, one after another).
    _device(device)
    _check_flag("vmap", vmap, optional=True)
    _check_interval(checkpoint_every)
    if shard is not None:
        ok = (isinstance(shard, tuple) and len(shard) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
              and 0 <= shard[0] < shard[1])
        if not ok:
            raise ValueError(f"shard must be (i, k) with 0 <= i < k, got {shard!r}")
    text, file = _grid_text(spec)
    name, runs = _core.expand_grid(text, file)
    prepared: List[Tuple[str, str, Dict[str, Any], str, str]] = []
    for _, config_json in runs:
        config = json.loads(config_json)
        _, _, backend, identity = _initial(config, model_factory, model_name)
        prepared.append((_core.run_id(config_json, identity), config_json, config, backend,
                         identity))
    where = os.fspath(store) if store is not None else os.path.join("results", f"{name}.db")
    db = _core.GridStore(where)
    backends = sorted({p[3] for p in prepared})
    label = backends[0] if len(backends) == 1 else "torch"
    # The grid's name in the store (and in `byzadam report`'s file names): its own, so it never
    # replaces the built-in grid's membership or another model's.
    registered = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{name}-{label}")
    db.register_grid(registered, [p[0] for p in prepared])
    done = set(db.done())
    mine = prepared if shard is None else prepared[shard[0]::shard[1]]
    pending = [p for p in mine if p[0] not in done]
    say = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    part = "" if shard is None else f" (shard {shard[0]}/{shard[1]}: {len(mine)} runs)"
    say(f"grid {name} (byzadam.torch, {device}): {len(prepared)} runs{part}; "
        f"{len(mine) - len(pending)} already in {where}, {len(pending)} to run")
    checkpoints = db.checkpoint_dir()
    datasets: Dict[Tuple[str, int], Dict[str, Any]] = {}
    failed: List[Tuple[str, str]] = []
    for i, (run_id, config_json, config, backend, identity) in enumerate(pending):
        say(f"[{i + 1}/{len(pending)}] run {run_id}: {_describe(config)}")
        started = time.perf_counter()
        try:
            model, start, _, _ = _initial(config, model_factory, model_name)
            tr, te = train, test
            if tr is None:
                key = (config["dataset"],
                       int(config["data_seed"]) if config["dataset"] == "synthetic" else 0)
                if key not in datasets:
                    datasets[key] = _data.load(key[0], data_dir, seed=key[1])
                tr = datasets[key]
                te = te if te is not None else tr
            sim = Simulation(model, tr, te, config=config, device=device,
                             params=None if config.get("init") else start, vmap=vmap)
            if sim.config != config:
                raise RuntimeError("the simulation resolved the run's config differently: "
                                   "please report this as a bug")
            os.makedirs(checkpoints, exist_ok=True)
            summary = sim.run(progress=progress,
                              checkpoint=os.path.join(checkpoints, f"{run_id}.torch.ckpt"),
                              checkpoint_every=checkpoint_every,
                              tensorboard=None if tensorboard is None
                              else os.path.join(tensorboard, run_id))
        except KeyboardInterrupt:
            say(f"interrupted: run {run_id} is checkpointed in {checkpoints}; "
                "calling grid() again resumes it")
            raise
        except Exception as e:  # noqa: BLE001 - one failed run must not stop the others
            failed.append((run_id, f"{type(e).__name__}: {e}"))
            say(f"failed: {run_id}: {type(e).__name__}: {e}")
            continue
        db.insert_run(backend, run_id, config_json, [_row(m) for m in sim.metrics],
                      summary.seconds, time.perf_counter() - started, torch.get_num_threads(),
                      identity, class_recall=summary.class_recall)
        say(f"    final accuracy {summary.final_accuracy:.4f}")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(pending)} runs failed:\n"
                           + "\n".join(f"  {i}: {e}" for i, e in failed))
    return Store(where)


def _describe(config: Dict[str, Any]) -> str:
    attack = config.get("attack")
    attack = attack.get("name") if isinstance(attack, dict) else (attack or "none")
    return (f"{config['optimizer']['name']}, {config['aggregator']['name']}, {attack}, "
            f"seed {config['seed']}")


def _row(m: Dict[str, Any]) -> Tuple[Any, ...]:
    e = m.get("eval")
    return (m["round"], m["lr"], m["train_loss"], m["xi_norm"], m["honest_diameter"],
            m.get("lambda"), bool(m["diverged"]),
            None if not e else (float(e["accuracy"]), float(e["loss"])))
