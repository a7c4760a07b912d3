"""The worker half on a Flower SuperNode: one honest (or Byzantine) worker of the run.

Node config (``flower-supernode --node-config "…"``):

- ``partition-id`` (required): the worker's index, 0 … workers − 1; its shard is byzadam's
  partition of that index, as in ``byzadam run``.
- ``data-dir``: where the dataset's files are (else ``BYZADAM_DATA_DIR``, else a checked
  download, as ``byzadam run`` finds them).
- ``state-dir``: a folder where the worker keeps its state (optimizer moments, sampler,
  batch-norm statistics, dropout stream) after each round, so that a restarted SuperNode
  rejoins where it was. Without it the state lives in the node's ``context.state`` (kept by
  the SuperNode process for the run).
- ``torch-model``: the run's ``torch-model`` (``"package.module:factory"``) when the nodes
  compute with a PyTorch model (:mod:`byzadam.flower.torch_worker`); a node refuses a run
  whose model differs from the one it was started for.
- ``fault`` (experiments and tests only): ``wrong-length`` or ``garbage`` makes this node
  send a message of the wrong length or an undecodable payload, as a faulty node would.

A Byzantine node (its partition is one of the config's Byzantine workers) computes its
genuine message when the server asks for it, and, when the run's Byzantine nodes forge their
own messages (the strategy's ``attack_at = "node"``), forges them with the config's attack
on its own message and its own random stream.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from flwr.app import Array, ConfigRecord, Context, Message

from .. import _core
from ..round import Engine
from . import _protocol

_STATE = "byzadam-worker"


_ENGINE: Dict[Tuple[str, Optional[str]], Engine] = {}


def _engine(config_json: str, data_dir: Optional[str]) -> Engine:
    """The engine of a config (its data loaded once per process: a SuperNode starts a fresh
    ClientApp process per message, an in-process node reuses it)."""
    key = (config_json, data_dir)
    if key not in _ENGINE:
        _ENGINE.clear()
        _ENGINE[key] = Engine(json.loads(config_json), data_dir=data_dir)
    return _ENGINE[key]


_TORCH: Dict[Tuple[str, str, Optional[str]], Any] = {}
_pristine: Dict[int, bytes] = {}


def _torch_sim(ref: str, config_json: str, data_dir: Optional[str]) -> Any:
    """The torch simulation of a run on this node (built once per process), every worker's
    starting state kept aside."""
    key = (ref, config_json, data_dir)
    if key not in _TORCH:
        from . import torch_worker as tw

        _TORCH.clear()
        sim, _, _ = tw.simulation(ref, json.loads(config_json), data_dir, with_test=False)
        _TORCH[key] = sim
        _pristine.clear()
        _pristine.update({w: tw.state(sim, w) for w in range(len(sim.workers))})
    return _TORCH[key]


def _node_config(context: Context) -> Tuple[int, Optional[str], Optional[str], str]:
    cfg = context.node_config
    if "partition-id" not in cfg:
        raise ValueError("this SuperNode has no `partition-id` in its node config: start it "
                         "with --node-config \"partition-id=I\" (I from 0 to workers - 1)")
    pid = cfg["partition-id"]
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
        raise ValueError(f"node config partition-id = {pid!r}: expected a worker index >= 0")
    data_dir = str(cfg["data-dir"]) if cfg.get("data-dir") else None
    state_dir = str(cfg["state-dir"]) if cfg.get("state-dir") else None
    fault = str(cfg.get("fault", "") or "")
    if fault not in ("", "none", "wrong-length", "garbage"):
        raise ValueError(f"node config fault = {fault!r}: expected wrong-length or garbage")
    return pid, data_dir, state_dir, fault


def _load(context: Context, path: Optional[str], run_key: str) -> Optional[Dict[str, Any]]:
    if path is not None and os.path.isfile(path):
        with open(path, "rb") as f:
            raw = f.read()
        head, _, rest = raw.partition(b"\n")
        meta = json.loads(head)
        if meta.get("run") != run_key:
            return None
        n = meta["state_len"]
        return {"round": meta["round"], "state": rest[:n], "before": rest[n:]}
    rec = context.state.get(_STATE) if hasattr(context.state, "get") else None
    if isinstance(rec, ConfigRecord) and rec.get("run") == run_key:
        return {"round": int(rec["round"]), "state": bytes(rec["state"]),
                "before": bytes(rec["before"])}
    return None


def _save(context: Context, path: Optional[str], run_key: str, t: int, state: bytes,
          before: bytes) -> None:
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        head = json.dumps({"run": run_key, "round": t, "state_len": len(state)}).encode()
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".worker-")
        with os.fdopen(fd, "wb") as f:
            f.write(head + b"\n" + state + before)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return
    context.state[_STATE] = ConfigRecord({"run": run_key, "round": t, "state": state,
                                          "before": before})


def _forge(attacks: List[Dict[str, Any]], genuine: List[np.ndarray], config: Dict[str, Any],
           t: int, pid: int, dim: int) -> List[np.ndarray]:
    """A Byzantine node's own forgeries: each message's attack on this node alone (its own
    genuine message, its own random stream, seeded by the run's seed, the round, the worker
    and the message)."""
    out = []
    for k, spec in enumerate(attacks):
        key = f"byzadam-node-attack/{config['seed']}/{t}/{pid}/{k}".encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
        attack = _core.Attack(json.dumps(spec), seed)
        own = genuine[k][None, :] if k < len(genuine) else None
        out.append(attack.forge(1, own=own, n=int(config["workers"]), dim=dim)[0])
    return out


def train(msg: Message, context: Context) -> Message:
    """One round of one worker: its next batch, its gradient at the server's parameters, the
    gradient policy and its optimizer's worker step; the reply carries its message(s)."""
    started = time.perf_counter()
    pid, data_dir, state_dir, fault = _node_config(context)
    request = msg.content["config"]
    config_json = str(request["run-config"])
    t = int(request["round"])
    compute = bool(request["compute"])
    params = msg.content["arrays"]["params"].numpy()
    config = json.loads(config_json)
    if pid >= int(config["workers"]):
        raise ValueError(f"node config partition-id = {pid}, but the run has "
                         f"{config['workers']} workers")
    ref = str(request.get("torch-model", "") or "")
    mine = str(context.node_config.get("torch-model", "") or "")
    if ref != mine:
        raise ValueError(f"the run's model is torch-model = {ref!r}, this node's node config "
                         f"says {mine!r}: start the node with --node-config "
                         f"\"torch-model='{ref}'\" (importable here)" if ref else
                         f"this node is configured for torch-model = {mine!r}, but the run "
                         "uses the built-in engine")
    run_key = hashlib.sha256((config_json + ref).encode()).hexdigest()[:16]
    path = None if state_dir is None else os.path.join(state_dir, f"worker-{pid}-{run_key}.state")
    saved = _load(context, path, run_key)
    # The same round again (a retried message): start from the state before it, so the reply
    # is the same; otherwise continue from the last round's state (None: the start).
    start = None if saved is None else saved["before"] if saved["round"] == t else saved["state"]
    if ref:
        from . import torch_worker as tw

        sim = _torch_sim(ref, config_json, data_dir)
        tw.restore(sim, pid, _pristine[pid] if start is None else start)
        before = tw.state(sim, pid)
        loss, sent = tw.step(sim, pid, params, t) if compute else (0.0, [])
        after, bn = tw.state(sim, pid), tw.buffers(sim, pid)
        byzantine = sim.server.is_byzantine(pid)
    else:
        worker = _engine(config_json, data_dir).workers()[pid]
        if start is not None:
            worker.restore(start)
        before = worker.checkpoint()
        loss, sent = worker.step(params) if compute else (0.0, [])
        after, bn = worker.checkpoint(), worker.bn_state
        byzantine = worker.byzantine
    forge = request.get("forge")
    if forge and byzantine:
        sent = _forge(json.loads(str(forge)), sent, config, t, pid, len(params))
    _save(context, path, run_key, t, after, before)
    content = _protocol.reply(pid, loss, sent, bn, seconds=time.perf_counter() - started)
    if fault == "wrong-length" and sent:
        content["arrays"]["message-0"] = Array(np.zeros(len(params) + 1, np.float32))
    elif fault == "garbage" and sent:
        content["arrays"]["message-0"] = Array(dtype="float32", shape=(len(params),),
                                                stype="numpy.ndarray", data=b"\x00garbage")
    return Message(content, reply_to=msg)
