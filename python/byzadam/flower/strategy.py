"""The server half of the round as a Flower strategy (Message API)."""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from .. import _core
from ..round import Config, Engine, Server
from . import _protocol

log = logging.getLogger("byzadam.flower")


@dataclass
class RoundLog:
    """What happened in one round, beside its metrics: which workers' replies were missing
    (no reply before the deadline, an error reply, or a reply refused), why each refused
    reply was refused, why the update was skipped when it was, and why the attack was not
    mounted when it could not be for the Byzantine workers present."""

    round: int
    metrics: Optional[Dict[str, Any]]
    missing: List[int] = field(default_factory=list)
    refused: List[Dict[str, Any]] = field(default_factory=list)
    skipped: Optional[str] = None
    #: Why the server's attack could not forge for the Byzantine workers present (their rows
    #: were then left out).
    attack_failed: Optional[str] = None
    #: Seconds from sending the round's messages to the last reply (or the deadline).
    wait_seconds: float = 0.0
    #: Seconds aggregating, stepping and evaluating.
    seconds: float = 0.0
    #: The nodes' own seconds inside the ClientApp function (data, gradient, message), as
    #: they reported them: the mean and the largest.
    node_seconds: Tuple[float, float] = (0.0, 0.0)


def read_checkpoint(path: str) -> Tuple[Dict[str, Any], bytes]:
    """``server.ckpt``'s parts: the strategy's own state (history, which node serves which
    partition, the honest batch-norm states) and the server half's bytes
    (:meth:`byzadam.Server.restore` takes them; ``.params`` are then the run's)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


class ByzadamStrategy(Strategy):
    """byzadam's server half for a Flower run.

    ``config``: the run config (a dict, TOML string, path or ``None`` for the quickstart's
    keys; those of ``byzadam run``), resolved once and sent to every worker with each round,
    so that both halves run the same config. ``data_dir``: where the server finds the test
    set it evaluates on. ``round_timeout``: seconds a round waits for replies; the replies
    that arrived are aggregated when the rule's requirement holds for their count, else the
    round is skipped (the parameters stay) and :class:`RoundLog` says why.
    ``connect_timeout``: seconds to wait, before round 1, for every worker's node to
    connect (then the run starts with those connected). ``out_dir``: where the strategy
    writes ``metrics.jsonl`` (a line per round, with its :class:`RoundLog`) and
    ``server.ckpt`` after every round; a strategy started with an ``out_dir`` holding a
    checkpoint of the same config resumes from it. ``store``: a results store (``byzadam
    grid``'s SQLite file) that receives the finished run as a ``flower`` run. ``poll``:
    seconds between polls for replies (Flower's own loop polls every 3 s). ``attack_at``:
    ``"server"`` (the default: the config's attack forges the Byzantine rows here, as in the
    simulator; the only place an omniscient attack can run) or ``"node"`` (each Byzantine
    node forges its own message with the config's attack, which must be one a lone node can
    mount: blind, label flip, or a per-row attack on its own message such as sign flip; the
    server aggregates the rows as sent).
    """

    def __init__(self, config: Config = None, *, set: Sequence[str] = (),
                 data_dir: Optional[str] = None, round_timeout: float = 300.0,
                 connect_timeout: float = 300.0, out_dir: Optional[str] = None,
                 store: Optional[str] = None, poll: float = 0.2,
                 attack_at: str = "server", torch_model: Optional[str] = None) -> None:
        if round_timeout <= 0 or connect_timeout < 0 or poll <= 0:
            raise ValueError("round_timeout and poll must be positive, connect_timeout >= 0")
        if attack_at not in ("server", "node"):
            raise ValueError(f"attack_at = {attack_at!r}: expected 'server' or 'node'")
        self.torch_model = torch_model or None
        self._sim: Any = None
        self._backend, self._identity = "flower", "flower"
        if self.torch_model is not None:
            from ..round import resolve
            from . import torch_worker as tw

            self._sim, backend, identity = tw.simulation(
                self.torch_model, resolve(config, set=set), data_dir, with_test=True)
            self.server = self._sim.server
            self._backend, self._identity = f"flower/{backend}", f"flower/{identity}"
        else:
            self.server = Server(config, set=set)
        self.attack_at = attack_at
        self._forge = _protocol.node_attacks(self.server.config) if attack_at == "node" else None
        if self._forge is not None:
            self.server.rows_as_sent = True
        self.engine = None if self._sim is not None else Engine(self.server.config,
                                                                 data_dir=data_dir)
        self.config: Dict[str, Any] = self.server.config
        self.config_json = json.dumps(self.config)
        self.round_timeout = float(round_timeout)
        self.connect_timeout = float(connect_timeout)
        self.poll = float(poll)
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.store = None if store is None else os.fspath(store)
        self.history: List[RoundLog] = []
        self._dim = self.server.dim
        if self._sim is not None:
            from . import torch_worker as tw

            self._bn_len = tw.buffers_len(self._sim)
        else:
            self._bn_len = len(self.engine.workers()[0].bn_state)
        # Which node serves which partition: bound by a node's first accepted reply, so a
        # node cannot later speak for another worker and two nodes cannot serve one.
        self._partition_of: Dict[int, int] = {}
        self._node_of: Dict[int, int] = {}
        self._sent: Dict[str, int] = {}
        self._bn: Dict[int, np.ndarray] = {}
        self._train_seconds = 0.0
        if self.out_dir is not None:
            self._resume()

    # --- the Strategy interface -------------------------------------------------------

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """One train message per connected node: the parameters and the run config."""
        params = self.server.params
        messages = []
        for node in sorted(grid.get_node_ids()):
            compute = self._computes(self._partition_of.get(node))
            messages.append(Message(_protocol.request(params, self.config_json, server_round,
                                                      compute, self._forge, self.torch_model),
                                    dst_node_id=node, message_type=_protocol.MESSAGE_TYPE,
                                    group_id=str(server_round)))
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> Tuple[Optional[ArrayRecord], Optional[MetricRecord]]:
        """The replies as rows in worker order, then :meth:`byzadam.Server.step` (with the
        workers present); evaluation when due. Returns the new parameters and metrics."""
        started = time.perf_counter()
        s = self.server
        n, k = s.workers, s.messages
        rows = np.zeros((k, n, self._dim), dtype=np.float32)
        losses = np.zeros(n, dtype=np.float32)
        present = [False] * n
        entry = RoundLog(round=server_round, metrics=None)
        # In node order, whatever order they arrived in: which of two nodes claiming one
        # partition is refused does not depend on timing.
        for reply in sorted(replies, key=lambda r: (
                self._sent.get(r.metadata.reply_to_message_id, 1 << 64), r.metadata.src_node_id)):
            node = self._sent.get(reply.metadata.reply_to_message_id)
            if node is None:
                entry.refused.append({"node": reply.metadata.src_node_id, "partition": None,
                                      "reason": "a reply to no message of this round"})
                continue
            if reply.has_error():
                entry.refused.append({"node": node, "partition": self._partition_of.get(node),
                                      "reason": f"error reply {reply.error.code}: "
                                                f"{reply.error.reason}"})
                continue
            pid = self._partition_of.get(node)
            try:
                # Messages are required from every worker asked to compute them (an unbound
                # node is asked, whatever it turns out to be).
                d = _protocol.decode(reply.content, workers=n, dim=self._dim, messages=k,
                                     bn_len=self._bn_len, compute=self._computes(pid))
            except _protocol.BadReply as e:
                # The partition a refused reply came from: the node's, else the one it claims.
                said = pid if pid is not None else _protocol.claimed_partition(reply.content)
                entry.refused.append({"node": node, "partition": said, "reason": str(e)})
                continue
            reason = self._bind(node, d.partition)
            if reason is None and present[d.partition]:
                reason = f"a second reply for partition {d.partition}"
            if reason is not None:
                entry.refused.append({"node": node, "partition": d.partition, "reason": reason})
                continue
            present[d.partition] = True
            losses[d.partition] = d.loss
            if d.messages is not None:
                for j, m in enumerate(d.messages):
                    rows[j, d.partition] = m
            if not s.is_byzantine(d.partition):
                self._bn[d.partition] = d.bn
        entry.missing = [w for w in range(n) if not present[w]]
        due = s.evaluation_due()
        evaluation = None
        if due == "before":
            evaluation = self._evaluate(server_round)
        metrics: Optional[Dict[str, Any]] = None
        try:
            try:
                metrics = s.step(list(rows), losses, None if all(present) else present)
            except _core.AttackFailed as e:
                if all(present):
                    raise  # the config's attack fails in the simulator too
                # With Byzantine nodes missing the attack may not be mountable (Little needs
                # two Byzantine workers): their rows are left out, the honest ones aggregate.
                entry.attack_failed = str(e)
                honest_only = [p and not s.is_byzantine(w) for w, p in enumerate(present)]
                metrics = s.step(list(rows), losses, honest_only)
        except _core.TooFewReplies as e:
            entry.skipped = str(e)
            s.skip()
        if due == "after":
            evaluation = self._evaluate(server_round)
        if metrics is not None and evaluation is not None:
            metrics["eval"] = {"accuracy": evaluation[0], "loss": evaluation[1]}
        entry.metrics = metrics
        if metrics is None and evaluation is not None:
            entry.metrics = {"round": server_round, "eval": {"accuracy": evaluation[0],
                                                             "loss": evaluation[1]}}
        entry.seconds = time.perf_counter() - started
        self.history.append(entry)
        self._say(entry)
        out = MetricRecord({k2: float(v) for k2, v in (metrics or {}).items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return ArrayRecord({"params": Array(s.params)}), out

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        """None: the server evaluates (on its test set, as the simulator does)."""
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> Optional[MetricRecord]:
        """None: the server evaluates."""
        return None

    def summary(self) -> None:
        """Logs the run's config."""
        attack = self.config.get("attack")
        log.info("byzadam strategy: %d workers (%d Byzantine), %s, %s, %s (forged on the %s), "
                 "%d rounds", self.server.workers, self.config["byzantine"],
                 self.config["optimizer"]["name"], self.config["aggregator"]["name"],
                 attack["name"] if isinstance(attack, dict) else "no attack", self.attack_at,
                 self.config["rounds"])

    # --- the run ----------------------------------------------------------------------

    def start(self, grid: Grid, initial_arrays: Optional[ArrayRecord] = None,
              num_rounds: Optional[int] = None, timeout: Optional[float] = None,
              train_config: Optional[ConfigRecord] = None,
              evaluate_config: Optional[ConfigRecord] = None,
              evaluate_fn: Any = None) -> Result:
        """Runs the config's rounds (from a resumed checkpoint's next round) over ``grid``.
        The parameters are the server's (``initial_arrays`` must be ``None``); the number of
        rounds is the config's (``num_rounds``, when given, must equal it)."""
        if initial_arrays is not None:
            raise ValueError("the parameters are the run config's (its seed or init file): "
                             "give no initial_arrays")
        if num_rounds is not None and num_rounds != self.config["rounds"]:
            raise ValueError(f"num_rounds = {num_rounds}, but the run config has "
                             f"rounds = {self.config['rounds']}")
        deadline = self.round_timeout if timeout is None else float(timeout)
        self.summary()
        self._wait_for_nodes(grid)
        result = Result()
        started = time.perf_counter()
        while self.server.round < self.config["rounds"]:
            t = self.server.round + 1
            messages = list(self.configure_train(t, ArrayRecord(), ConfigRecord(), grid))
            sent = time.perf_counter()
            ids = list(grid.push_messages(messages))
            self._sent = {mid: m.metadata.dst_node_id for mid, m in zip(ids, messages)
                          if mid is not None}
            replies = self._pull(grid, set(self._sent), deadline)
            waited = time.perf_counter() - sent
            arrays, metrics = self.aggregate_train(t, replies)
            self.history[-1].wait_seconds = waited
            own = [float(r.content["metrics"]["seconds"]) for r in replies
                   if not r.has_error() and "metrics" in r.content
                   and isinstance(r.content["metrics"].get("seconds"), float)]
            if own:
                self.history[-1].node_seconds = (sum(own) / len(own), max(own))
            if metrics is not None:
                result.train_metrics_clientapp[t] = metrics
            result.arrays = arrays
            self._checkpoint()
        self._train_seconds += time.perf_counter() - started
        self._record_in_store()
        return result

    # --- helpers ----------------------------------------------------------------------

    def _computes(self, pid: Optional[int]) -> bool:
        """Whether the worker of partition ``pid`` (``None``: a node not yet bound) computes
        its genuine message: every honest one, a Byzantine one when the attack reads it."""
        s = self.server
        return pid is None or not s.is_byzantine(pid) or s.needs_byzantine_messages

    def _bind(self, node: int, pid: int) -> Optional[str]:
        bound = self._partition_of.get(node)
        if bound is not None:
            return None if bound == pid else \
                f"node {node} serves partition {bound}, not {pid}"
        other = self._node_of.get(pid)
        if other is not None and other != node:
            return f"partition {pid} is served by node {other}"
        self._partition_of[node] = pid
        self._node_of[pid] = node
        return None

    def _evaluate(self, t: int) -> Tuple[float, float]:
        if self._sim is not None:
            from . import torch_worker as tw

            for w, state in self._bn.items():
                tw.set_buffers(self._sim, w, state)
            return self._sim.evaluate()
        assert self.engine is not None
        states = [self._bn[w] for w in sorted(self._bn)]
        return tuple(self.engine.evaluate_states(self.server.params, states, t))  # type: ignore

    def _pull(self, grid: Grid, waiting: set, deadline: float) -> List[Message]:
        end = time.monotonic() + deadline
        replies: List[Message] = []
        while waiting:
            got = list(grid.pull_messages(list(waiting)))
            replies.extend(got)
            waiting.difference_update(m.metadata.reply_to_message_id for m in got)
            if not waiting or time.monotonic() >= end:
                break
            time.sleep(self.poll)
        return replies

    def _wait_for_nodes(self, grid: Grid) -> None:
        end = time.monotonic() + self.connect_timeout
        n = self.server.workers
        while True:
            connected = len(list(grid.get_node_ids()))
            if connected >= n or time.monotonic() >= end:
                break
            time.sleep(self.poll)
        if connected < n:
            log.warning("%d of %d workers' nodes connected after %.0f s: starting with them",
                        connected, n, self.connect_timeout)

    def _say(self, e: RoundLog) -> None:
        m = e.metrics or {}
        ev = m.get("eval")
        parts = [f"round {e.round}/{self.config['rounds']}"]
        if e.skipped:
            parts.append(f"skipped: {e.skipped}")
        if e.attack_failed:
            parts.append(f"attack not mounted: {e.attack_failed}")
        elif "train_loss" in m:
            parts.append(f"train loss {m['train_loss']:.4f}")
        if ev:
            parts.append(f"test accuracy {ev['accuracy']:.4f}")
        if e.missing:
            parts.append(f"missing {e.missing}")
        for r in e.refused:
            parts.append(f"refused node {r.get('node')} (partition {r.get('partition')}): "
                         f"{r['reason']}")
        log.info("; ".join(parts))

    def _write(self, name: str, data: bytes) -> None:
        assert self.out_dir is not None
        os.makedirs(self.out_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.out_dir, prefix=f".{name}-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.out_dir, name))

    def _checkpoint(self) -> None:
        if self.out_dir is None:
            return
        meta = {"history": [asdict(h) for h in self.history],
                "partition_of": {str(k): v for k, v in self._partition_of.items()},
                "bn": {str(k): v.tolist() for k, v in self._bn.items()},
                "train_seconds": self._train_seconds}
        head = json.dumps(meta).encode()
        self._write("server.ckpt", len(head).to_bytes(8, "little") + head
                    + self.server.checkpoint())
        lines = "".join(json.dumps(asdict(h)) + "\n" for h in self.history)
        self._write("metrics.jsonl", lines.encode())

    def _resume(self) -> None:
        assert self.out_dir is not None
        path = os.path.join(self.out_dir, "server.ckpt")
        if not os.path.isfile(path):
            return
        meta, server = read_checkpoint(path)
        self.server.restore(server)
        self.history = [RoundLog(**{**h, "node_seconds": tuple(h.get("node_seconds", (0, 0)))})
                        for h in meta["history"]]
        self._partition_of = {int(k): v for k, v in meta["partition_of"].items()}
        self._node_of = {v: k for k, v in self._partition_of.items()}
        self._bn = {int(k): np.asarray(v, np.float32) for k, v in meta["bn"].items()}
        self._train_seconds = meta["train_seconds"]
        log.info("resumed from %s after round %d", path, self.server.round)

    def _record_in_store(self) -> None:
        if self.store is None:
            return
        skipped = [h.round for h in self.history if h.skipped]
        if skipped:
            log.warning("not recorded in %s: rounds %s were skipped (metrics.jsonl has them)",
                        self.store, skipped)
            return
        rows = []
        for h in self.history:
            m = h.metrics or {}
            ev = m.get("eval")
            rows.append((m["round"], m["lr"], m["train_loss"], m["xi_norm"],
                         m["honest_diameter"], m["lambda"], m["diverged"],
                         None if not ev else (ev["accuracy"], ev["loss"])))
        db = _core.GridStore(self.store)
        run_id = _core.run_id(self.config_json, self._identity)
        db.insert_run(self._backend, run_id, self.config_json, rows, self._train_seconds,
                      self._train_seconds, 1, self._identity)
        db.register_grid(f"flower-{run_id}", [run_id])
        log.info("run %s recorded in %s", run_id, self.store)
