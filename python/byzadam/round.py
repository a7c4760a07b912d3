"""The round in two halves, the layer every front end stands on (``byzadam run``,
:func:`byzadam.run`, the torch backend, Flower).

- :class:`Server`: the server half. It holds the parameters, the attack on the Byzantine
  workers' messages, the pre-aggregators and the rule, and the optimizer's server step;
  :meth:`Server.step` takes every worker's messages (rows in worker order) and losses.
- :class:`Worker`: the worker half for a gradient computed anywhere (torch, JAX): the gradient
  policy (l2, clipping), then the optimizer's worker step.
- :class:`Engine`: the built-in engine for a run config: its data (as ``byzadam run`` gets
  it), its workers (:meth:`Engine.workers`, each with ``gradient``, ``message`` and ``step``)
  and evaluation (:meth:`Engine.evaluate`).

A loop over these reproduces :func:`byzadam.run` bit for bit (docs/python.md)::

    server, engine = byzadam.Server(cfg), byzadam.Engine(cfg)
    workers = engine.workers()
    for t in range(1, server.config["rounds"] + 1):
        ...
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .simulator import _text

__all__ = ["Server", "Worker", "Engine", "resolve"]

Config = Union[None, dict, str, os.PathLike]


def resolve(config: Config = None, *, set: Sequence[str] = ()) -> Dict[str, Any]:
    """The run config ``byzadam run`` would use (defaults filled in, validated) as a dict:
    ``config`` is a dict, a TOML string, a path, or ``None`` for the quickstart."""
    text, name = _text(config)
    return json.loads(_core.resolve_config(text, name, list(set)))


def _json(config: Config, set: Sequence[str]) -> str:
    if isinstance(config, dict) and not set and "optimizer" in config and "rounds" in config \
            and "aggregator" in config and "seed" in config:
        # Already resolved (a Server's or Engine's .config): validated again in Rust.
        return json.dumps(config)
    text, name = _text(config)
    return _core.resolve_config(text, name, list(set))


def _f32(x, what: str) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
    if not np.issubdtype(np.asarray(x).dtype, np.number):
        raise TypeError(f"{what} must be numeric, got {np.asarray(x).dtype}")
    return a


class Server:
    """The server half of the round for ``config`` (a dict, TOML string, path or ``None`` for
    the quickstart; the keys of ``byzadam run``), at the initial parameters its ``seed``
    draws for its ``model``, or at ``params`` (a flat float vector: a model byzadam does not
    build, such as the torch backend's)."""

    def __init__(self, config: Config = None, *, set: Sequence[str] = (),
                 params: Any = None) -> None:
        cfg = _json(config, set)
        self.config: Dict[str, Any] = json.loads(cfg)
        p = None if params is None else _f32(params, "params").reshape(-1)
        self._core = _core.Server(cfg, p)

    @property
    def params(self) -> np.ndarray:
        """The parameters now (a float32 copy)."""
        return self._core.params

    @property
    def round(self) -> int:
        """Rounds completed."""
        return self._core.round

    @property
    def dim(self) -> int:
        """The parameter count."""
        return self._core.dim

    @property
    def messages(self) -> int:
        """Vectors each worker sends per round (2 for MRA, else 1)."""
        return self._core.messages

    @property
    def workers(self) -> int:
        """Workers in all, honest and Byzantine."""
        return self._core.workers

    @property
    def needs_byzantine_messages(self) -> bool:
        """Whether the attack reads the Byzantine workers' genuine messages (Little, sign flip,
        label flip…): then they compute them; otherwise their rows are ignored."""
        return self._core.needs_byzantine_messages

    @property
    def rows_as_sent(self) -> bool:
        """Whether the Byzantine workers' rows are aggregated as sent, their forgeries made
        elsewhere (the networked mode's node-side attacks), instead of being forged here by
        the config's attack. Off by default; setting it makes
        :attr:`needs_byzantine_messages` true."""
        return self._core.rows_as_sent

    @rows_as_sent.setter
    def rows_as_sent(self, as_sent: bool) -> None:
        self._core.rows_as_sent = bool(as_sent)

    def is_byzantine(self, worker: int) -> bool:
        """Whether ``worker`` is Byzantine."""
        return self._core.is_byzantine(worker)

    def evaluation_due(self) -> Optional[str]:
        """``None``, ``"before"`` or ``"after"``: whether the next round is evaluated, and
        whether before or after its update (``eval_before_update``)."""
        return self._core.evaluation_due()

    def next_is_last(self) -> bool:
        """Whether the next round is the run's last."""
        return self._core.next_is_last()

    def step(self, messages, losses, present: Optional[Sequence[bool]] = None) -> Dict[str, Any]:
        """One round. ``messages``: a ``workers × dim`` array (one message per worker, rows in
        worker order), or a list of them for MRA's two messages (or a ``2 × workers × dim``
        array); ``losses``: each worker's batch loss (the honest ones are averaged). Returns
        the round's metrics (``eval`` is ``None``: evaluation is the caller's).

        ``present`` (a networked round past its deadline): whether each worker's reply
        arrived; the others' rows and losses are not read. The rows that arrived are
        aggregated when the rule's requirement holds for their count (e.g. n′ > 2f), else
        :class:`byzadam.TooFewReplies` is raised and nothing changes (:meth:`skip` moves on).
        With every worker present it is the same round, bit for bit."""
        if isinstance(messages, np.ndarray) and messages.ndim == 2:
            messages = [messages]
        rows = [_f32(m, "a message") for m in messages]
        for m in rows:
            if m.ndim != 2:
                raise _core.ByzadamError(
                    f"each message must be a {self.workers} × {self.dim} array, got shape {m.shape}")
        flags = None if present is None else [bool(p) for p in present]
        return self._core.step(rows, _f32(losses, "losses").reshape(-1), flags)

    def skip(self) -> None:
        """A round without an update (too few replies): the round counter moves on; the
        parameters and the rule's carried state stay."""
        self._core.skip()

    def checkpoint(self) -> bytes:
        """The state carried to the next round (parameters, the rule's state, the round)."""
        return self._core.checkpoint()

    def restore(self, state: bytes) -> None:
        """Continues from :meth:`checkpoint`'s bytes (a server of the same config)."""
        self._core.restore(bytes(state))


class Worker:
    """The worker half for a gradient computed anywhere: the config's gradient policy (l2,
    clipping), then its optimizer's worker step, whose moments this object keeps."""

    def __init__(self, config: Config = None, dim: int = 0, *, set: Sequence[str] = ()) -> None:
        cfg = _json(config, set)
        self.config: Dict[str, Any] = json.loads(cfg)
        self._core = _core.Worker(cfg, int(dim))

    @property
    def dim(self) -> int:
        """The parameter count."""
        return self._core.dim

    def message(self, params, gradient) -> List[np.ndarray]:
        """What this worker sends for ``gradient`` at ``params``: a list of float32 vectors
        (two for MRA). ``gradient`` is not modified."""
        return self._core.message(_f32(params, "params").reshape(-1),
                                  _f32(gradient, "gradient").reshape(-1))

    def message_into(self, params, gradient: np.ndarray, out: Sequence[np.ndarray]) -> None:
        """:meth:`message` without copies, for loops that feed a :class:`Server`: the
        messages are written into ``out`` (one contiguous, writeable float32 vector of
        :attr:`dim` values per message, e.g. ``[m[w] for m in messages]``, the rows of the
        server's message arrays) and ``gradient`` (a contiguous float32 vector) is
        overwritten with the gradient after the policy. The same bits as :meth:`message`.
        Arrays of another dtype or layout are refused rather than converted (a converted copy
        would receive the result)."""
        self._core.message_into(_f32(params, "params").reshape(-1), gradient, list(out))

    def checkpoint(self) -> bytes:
        """The optimizer state."""
        return self._core.checkpoint()

    def restore(self, state: bytes) -> None:
        """Continues from :meth:`checkpoint`'s bytes."""
        self._core.restore(bytes(state))


class Engine:
    """The built-in engine for ``config``: the data as ``byzadam run`` gets it (the data
    directory, else a checked download; the quickstart, ``config=None``, falls back to
    synthetic digits and says why in :attr:`fallback`), its workers and its evaluation."""

    def __init__(self, config: Config = None, *, set: Sequence[str] = (),
                 data_dir: Optional[str] = None) -> None:
        quickstart = config is None and not any(s.strip().startswith("dataset") for s in set)
        self._core = _core.Engine(_json(config, set), None if data_dir is None else os.fspath(data_dir),
                                  quickstart)
        self.config: Dict[str, Any] = json.loads(self._core.config)

    @property
    def fallback(self) -> Optional[str]:
        """Why synthetic digits stand in for MNIST (the quickstart only), else ``None``."""
        return self._core.fallback

    def workers(self) -> list:
        """Every worker, in worker order: objects with ``index``, ``byzantine``,
        ``gradient(params) -> (loss, gradient)``, ``message(params, gradient) -> [messages]``,
        ``step(params) -> (loss, [messages])``, ``step_into(params, out) -> loss`` (the
        messages written into ``out``, one contiguous writeable float32 vector of ``dim``
        values per message, e.g. ``[m[w.index] for m in messages]``: no copies, the same
        bits), ``checkpoint()`` and ``restore(bytes)``."""
        return self._core.workers()

    def evaluate(self, params, workers: list, round: int, recall: bool = False) -> Tuple:
        """``(accuracy, loss)`` of ``params`` as evaluated during round ``round`` (batch-norm
        statistics: the mean of the honest ``workers``'); ``recall=True`` adds each class's
        recall."""
        return self._core.evaluate(_f32(params, "params").reshape(-1), list(workers), int(round),
                                   recall)

    def evaluate_states(self, params, states: Sequence[Any], round: int,
                        recall: bool = False) -> Tuple:
        """:meth:`evaluate` with the honest workers' batch-norm states (each worker's
        ``bn_state``, in worker order) instead of the workers themselves, for a server that
        receives them over the network; their mean is computed as :meth:`evaluate` does."""
        return self._core.evaluate_states(_f32(params, "params").reshape(-1),
                                          [_f32(s, "a batch-norm state").reshape(-1)
                                           for s in states], int(round), recall)
