"""What the server and the workers send each other, and the checks on what comes back.

Server → worker (``train``): ``arrays["params"]`` (float32, the parameters),
``config["run-config"]`` (the resolved run config, JSON: both halves run the same one),
``config["round"]`` (from 1), ``config["compute"]`` (whether this worker computes its
genuine message: always for an honest one; for a Byzantine one only when the attack reads
it), ``config["forge"]`` when the Byzantine nodes forge their own messages (the attack
of each message, JSON), and ``config["torch-model"]`` when the nodes compute with a PyTorch
model (``byzadam.flower.torch_worker``).

Worker → server: ``arrays["message-0"]`` (and ``"message-1"`` under MRA), float32 of the
parameter count, absent when the worker did not compute; ``arrays["bn"]``, its batch-norm
statistics (the torch model's buffers; empty without batch norm); ``metrics["partition-id"]``,
``metrics["loss"]`` and ``metrics["seconds"]`` (the node's own time, for the round-time
breakdown only).
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any, Dict, List, Optional

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

MESSAGE_TYPE = "train"


#: Attacks that use statistics of the whole Byzantine group (a lone node cannot mount them).
GROUP_ATTACKS = ("little",)


def node_attacks(config: Dict[str, Any]) -> str:
    """The attack of each message (JSON list) for Byzantine nodes that forge their own
    messages; a ``ValueError`` naming the attack when a lone node cannot mount it."""
    from .. import _core

    first = config.get("attack")
    if not isinstance(first, dict):  # absent, or "none"
        raise ValueError("attack_at = 'node' needs an attack in the run config")
    attacks = [first]
    if "mra" == config["optimizer"]["name"]:
        second = config.get("second_message_attack")
        attacks.append(second if isinstance(second, dict) else first)
    for a in attacks:
        made = _core.Attack(json.dumps(a), 0)
        if made.threat_model not in ("blind", "data_poisoning", "own_genuine") \
                or made.name in GROUP_ATTACKS:
            raise ValueError(
                f"attack {made.name} ({made.threat_model}) needs more than one node's own "
                "messages: it runs only on the server (attack_at = 'server')")
    return json.dumps(attacks)


def request(params: np.ndarray, config_json: str, round: int, compute: bool,
            forge: Optional[str] = None, torch_model: Optional[str] = None) -> RecordDict:
    """The content of a train message (``forge``: the attacks a Byzantine node forges its
    messages with, when the nodes forge; ``torch_model``: the PyTorch model the nodes
    compute with, when not the built-in engine)."""
    config: Dict[str, Any] = {"run-config": config_json, "round": int(round),
                              "compute": bool(compute)}
    if forge is not None:
        config["forge"] = forge
    if torch_model is not None:
        config["torch-model"] = torch_model
    return RecordDict({
        "arrays": ArrayRecord({"params": Array(np.ascontiguousarray(params, np.float32))}),
        "config": ConfigRecord(config),
    })


def reply(partition: int, loss: float, messages: List[np.ndarray], bn: np.ndarray,
          seconds: float = 0.0) -> RecordDict:
    """The content of a worker's reply (``seconds``: the node's own time for it, reported
    for the round-time breakdown; never used in the round)."""
    arrays = {f"message-{k}": Array(np.ascontiguousarray(m, np.float32))
              for k, m in enumerate(messages)}
    arrays["bn"] = Array(np.ascontiguousarray(bn, np.float32))
    return RecordDict({
        "arrays": ArrayRecord(arrays),
        "metrics": MetricRecord({"partition-id": int(partition), "loss": float(loss),
                                 "seconds": float(seconds)}),
    })


class BadReply(Exception):
    """A reply the server cannot use; the message says why."""


@dataclass
class Decoded:
    """A reply that passed every check."""

    partition: int
    loss: float
    messages: Optional[List[np.ndarray]]
    bn: np.ndarray


def claimed_partition(content: RecordDict) -> Optional[int]:
    """The partition a reply says it is from, unchecked (for the record of a refused one)."""
    try:
        pid = content["metrics"].get("partition-id")
    except Exception:  # noqa: BLE001
        return None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else None


def _vector(arrays: ArrayRecord, key: str, length: Optional[int]) -> np.ndarray:
    try:
        a = arrays[key].numpy()
    except Exception as e:  # noqa: BLE001 - any decoding failure is the sender's
        raise BadReply(f"{key}: not a decodable array ({type(e).__name__}: {e})") from None
    if a.dtype != np.float32:
        raise BadReply(f"{key}: dtype {a.dtype}, expected float32")
    if a.ndim != 1 or (length is not None and a.shape[0] != length):
        raise BadReply(f"{key}: shape {a.shape}, expected ({length},)")
    return a


def decode(content: RecordDict, *, workers: int, dim: int, messages: int, bn_len: int,
           compute: bool) -> Decoded:
    """Checks a reply's content: its keys, each array's dtype and length, the partition and
    the loss. Raises :class:`BadReply`."""
    try:
        metrics = content["metrics"]
        arrays = content["arrays"]
    except Exception:  # noqa: BLE001
        raise BadReply("the reply lacks its metrics or arrays record") from None
    if not isinstance(metrics, MetricRecord) or not isinstance(arrays, ArrayRecord):
        raise BadReply("the reply's records have the wrong types")
    pid = metrics.get("partition-id")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid < workers:
        raise BadReply(f"partition-id {pid!r} is not a worker index below {workers}")
    loss = metrics.get("loss")
    if isinstance(loss, bool) or not isinstance(loss, (int, float)):
        raise BadReply(f"loss {loss!r} is not a number")
    bn = _vector(arrays, "bn", bn_len) if "bn" in arrays else None
    if bn is None:
        raise BadReply("the reply lacks its batch-norm state (`bn`)")
    if not compute:
        return Decoded(pid, float(loss), None, bn)
    expected = {f"message-{k}" for k in range(messages)}
    got = set(arrays.keys()) - {"bn"}
    if got != expected:
        raise BadReply(f"arrays {sorted(got)}, expected {sorted(expected)}")
    rows = [_vector(arrays, f"message-{k}", dim) for k in range(messages)]
    return Decoded(pid, float(loss), rows, bn)
