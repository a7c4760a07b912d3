"""byzadam.flower's halves over an in-process grid (a stand-in for the SuperLink that hands
each message to the ClientApp's function and its reply back, through Flower's own message
and record types): the simulator's numbers bit for bit, every bad reply refused and
recorded, missing replies, skipped rounds, a resumed server, a retried message, the store.
The real network (SuperLink, SuperNodes, TLS, authentication) is test_flower_loopback.py."""
import json
import os
import sqlite3
import stat

import numpy as np
import pytest

if os.environ.get("CI"):
    import flwr  # noqa: F401  (CI installs it: never skipped there)
else:
    pytest.importorskip("flwr")

from flwr.app import Array, Context, Error, Message, RecordDict  # noqa: E402
from flwr.serverapp import Grid  # noqa: E402

import byzadam  # noqa: E402


@pytest.fixture(autouse=True)
def _data(data_dir, monkeypatch):
    # The nodes find MNIST as byzadam run does: BYZADAM_DATA_DIR.
    monkeypatch.setenv("BYZADAM_DATA_DIR", data_dir)
from byzadam.flower import ByzadamStrategy, app, certs, client  # noqa: E402
from conftest import engine_messages  # noqa: E402

SMALL = ["dataset=mnist", "model.name=mlp", "model.hidden=[16]", "workers=7",
         "byzantine=2", "aggregator.f=2", "batch=10", "eval_every=2", "eval_samples=200"]


class FakeGrid(Grid):
    """Delivers each message to ``client.train`` on a node of its own (node ids 100 + I for
    partition I, each with its own persistent ``Context``); ``tamper(node, round, reply)``
    may replace a reply (``None`` drops it); it gets the message too."""

    def __init__(self, nodes, tamper=None, node_config=None):
        from flwr.supercore.task_identity import TaskIdentity

        # What the SuperLink's ServerApp process has set before any message is made.
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
        self.contexts = {}
        for i in range(nodes):
            cfg = {"partition-id": i}
            cfg.update((node_config or {}).get(i, {}))
            self.contexts[100 + i] = Context(run_id=1, node_id=100 + i, node_config=cfg,
                                             state=RecordDict(), run_config={})
        self.tamper = tamper
        self.replies = {}

    def set_run(self, run):
        pass

    @property
    def run(self):
        raise NotImplementedError

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id=dst_node_id, message_type=message_type,
                       group_id=group_id)

    def get_node_ids(self):
        return list(self.contexts)

    def push_messages(self, messages):
        ids = []
        for m in messages:
            m.metadata.__dict__["_message_id"] = m.object_id
            node = m.metadata.dst_node_id
            reply = client.train(m, self.contexts[node])
            if self.tamper is not None:
                reply = self.tamper(node, int(m.metadata.group_id), reply, m)
            if reply is not None:
                self.replies[m.object_id] = reply
            ids.append(m.object_id)
        return ids

    def pull_messages(self, message_ids):
        return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]

    def send_and_receive(self, messages, *, timeout=None):
        return self.pull_messages(self.push_messages(messages))


def halves(cfg):
    """The final parameters of docs/python.md's loop over the halves (byzadam run's numbers)."""
    server, engine = byzadam.Server(cfg), byzadam.Engine(cfg)
    workers = engine.workers()
    for _ in range(cfg["rounds"]):
        messages, losses = engine_messages(server, workers)
        server.step(list(messages), losses)
    return server.params


def flower_run(sets, tamper=None, **kw):
    strategy = ByzadamStrategy(None, set=sets, connect_timeout=0, round_timeout=5, **kw)
    grid = FakeGrid(strategy.server.workers, tamper)
    strategy.start(grid)
    return strategy, grid


@pytest.mark.parametrize("extra", [
    ["optimizer.name=dra", "attack.name=little", "rounds=5"],
    ["optimizer={name=\"mra\"}", "attack={name=\"sign_flip\"}", "rounds=4", "eval_before_update=true"],
    ["optimizer={name=\"resam\"}", "attack={name=\"label_flip\"}", "rounds=3", "aggregator={name=\"median\"}"],
    ["attack=\"none\"", "rounds=2"],
    # Batch norm and dropout: the evaluation's statistics are the honest nodes' as sent.
    ["dataset=cifar10", "model={name=\"cifar10_cnn\"}", "workers=5", "rounds=2",
     "eval_every=1", "eval_samples=100"],
])
def test_the_strategy_gives_byzadam_runs_metrics_and_parameters_bit_for_bit(extra):
    sets = SMALL + extra
    strategy, _ = flower_run(sets)
    expected = byzadam.run(None, set=sets, progress=False)
    got = [h.metrics for h in strategy.history]
    assert len(got) == len(expected.metrics)
    for a, b in zip(expected.metrics, got):
        for key in ("round", "lr", "train_loss", "xi_norm", "honest_diameter", "lambda",
                    "diverged", "eval"):
            assert a[key] == b[key], (a["round"], key, a[key], b[key])
    assert np.array_equal(strategy.server.params, halves(strategy.config))
    assert all(not h.missing and not h.refused and h.skipped is None for h in strategy.history)


def _replace(reply, key, array):
    reply.content["arrays"][key] = array
    return reply


def test_bad_replies_are_refused_recorded_and_the_round_goes_on():
    def tamper(node, t, reply, msg):
        p = node - 100
        if t != 1:
            return reply
        if p == 0:
            return _replace(reply, "message-0", Array(np.zeros(3, np.float32)))
        if p == 1:
            return _replace(reply, "message-0", Array(dtype="float32", shape=(3,),
                                                      stype="numpy.ndarray", data=b"\x00junk"))
        if p == 2:
            dim = reply.content["arrays"]["message-0"].numpy().shape[0]
            return _replace(reply, "message-0", Array(np.zeros(dim, np.float64)))
        if p == 3:
            reply.content["metrics"]["partition-id"] = 4  # speaks for another worker
            return reply
        if p == 5:
            return Message(Error(code=0, reason="the ClientApp crashed"), reply_to=msg)
        return reply

    sets = SMALL + ["rounds=2", "attack.name=little"]
    # Replies are read in node order: node 103 claims partition 4 before node 104 does.
    strategy, _ = flower_run(sets, tamper)
    first = strategy.history[0]
    reasons = {r["partition"] if r["partition"] is not None else r["node"] - 100: r["reason"]
               for r in first.refused}
    assert "shape (3,)" in reasons[0]
    assert "decodable" in reasons[1]
    assert "float64" in reasons[2]
    assert "crashed" in reasons[5]
    assert any("served by node 103" in r["reason"] for r in first.refused)  # node 104's claim
    # Present: partition 4 (node 103's claim) and 6; two rows are too few for f = 2.
    assert first.missing == [0, 1, 2, 3, 5]
    assert "too few" in first.skipped
    # Round 2, every node honest again: node 103 stays bound to partition 4, so its own
    # partition 3 is refused, and so is node 104's claim on 4; the other five aggregate.
    second = strategy.history[1]
    assert second.missing == [3, 4] and second.skipped is None
    assert sorted(r["node"] for r in second.refused) == [103, 104]
    assert "serves partition 4, not 3" in " ".join(r["reason"] for r in second.refused)
    assert np.isfinite(strategy.server.params).all()


def test_missing_replies_are_aggregated_without_them_when_the_rule_allows():
    # 9 workers, f = 2: the trimmed mean needs more than 4 rows. Two honest workers never
    # reply: the round aggregates the other seven (and the Byzantine rows the attack forges).
    sets = SMALL + ["workers=9", "rounds=2", "attack.name=little"]
    silent = {0, 3}
    strategy, _ = flower_run(sets, lambda node, t, r, m: None if node - 100 in silent else r)
    assert [h.missing for h in strategy.history] == [[0, 3], [0, 3]]
    assert all(h.skipped is None for h in strategy.history)
    # The same rounds through Server.step with those workers absent.
    server, engine = byzadam.Server(strategy.config), byzadam.Engine(strategy.config)
    workers = engine.workers()
    present = [w not in silent for w in range(9)]
    for _ in range(2):
        messages, losses = engine_messages(server, workers)
        server.step(list(messages), losses, present)
    assert np.array_equal(strategy.server.params, server.params)


def test_too_few_replies_skip_the_update_and_say_why(tmp_path):
    sets = SMALL + ["rounds=3", "attack.name=little"]
    start = byzadam.Server(None, set=sets).params
    store = tmp_path / "runs.db"
    strategy, _ = flower_run(sets, lambda node, t, r, m: None if node - 100 in {0, 1, 2} else r,
                             store=str(store), out_dir=str(tmp_path / "out"))
    for h in strategy.history:
        assert h.missing == [0, 1, 2]
        assert "too few" in h.skipped and "4 replies" in h.skipped
    assert strategy.server.round == 3
    assert np.array_equal(strategy.server.params, start)
    assert not store.exists()  # a run with skipped rounds is not a finished run
    lines = [json.loads(line) for line in open(tmp_path / "out" / "metrics.jsonl")]
    assert [line["skipped"] is not None for line in lines] == [True, True, True]


def test_a_restarted_server_resumes_from_its_checkpoint_with_the_same_bits(tmp_path):
    sets = SMALL + ["rounds=4", "attack.name=little"]
    whole, _ = flower_run(sets)
    first = ByzadamStrategy(None, set=sets + [], connect_timeout=0, out_dir=str(tmp_path))
    grid = FakeGrid(7)

    class Stop(Exception):
        pass

    original = first._checkpoint

    def stop_after_two():
        original()
        if first.server.round == 2:
            raise Stop

    first._checkpoint = stop_after_two
    with pytest.raises(Stop):
        first.start(grid)
    again = ByzadamStrategy(None, set=sets, connect_timeout=0, out_dir=str(tmp_path))
    assert again.server.round == 2 and len(again.history) == 2
    again.start(grid)  # the same nodes, with their state
    assert np.array_equal(again.server.params, whole.server.params)
    assert [h.metrics for h in again.history] == [h.metrics for h in whole.history]
    other = SMALL + ["rounds=4", "attack.name=little", "seed=9"]
    with pytest.raises(byzadam.ByzadamError, match="another config"):
        ByzadamStrategy(None, set=other, connect_timeout=0, out_dir=str(tmp_path))


def test_a_retried_message_gets_the_same_reply_and_the_state_moves_on(tmp_path):
    sets = SMALL + ["rounds=3"]
    strategy = ByzadamStrategy(None, set=sets)
    for state_dir in (None, str(tmp_path)):
        grid = FakeGrid(7, node_config={0: {"state-dir": state_dir}} if state_dir else None)
        ctx = grid.contexts[100]
        msgs = list(strategy.configure_train(1, None, None, grid))
        a = client.train(msgs[0], ctx).content["arrays"]["message-0"].numpy()
        b = client.train(msgs[0], ctx).content["arrays"]["message-0"].numpy()
        assert np.array_equal(a, b)
        nxt = list(strategy.configure_train(2, None, None, grid))[0]
        c = client.train(nxt, ctx).content["arrays"]["message-0"].numpy()
        assert not np.array_equal(a, c)  # the next batch, the moments carried
    # With a state-dir the state is a file only its node reads.
    assert any(f.startswith("worker-0-") for f in os.listdir(tmp_path))


def test_a_finished_run_is_recorded_in_the_store_as_a_flower_run(tmp_path):
    sets = SMALL + ["rounds=2", "attack.name=little"]
    store = tmp_path / "runs.db"
    strategy, _ = flower_run(sets, store=str(store))
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT id, backend, final_accuracy FROM runs").fetchall()
    assert len(rows) == 1 and rows[0][1] == "flower"
    assert rows[0][2] == strategy.history[-1].metrics["eval"]["accuracy"]


def test_the_run_config_maps_onto_byzadam_runs_keys():
    config, overrides, options = app.from_run_config({
        "config": "", "set": "aggregator.f=4", "rounds": 20, "attack.name": "gaussian",
        "workers": "", "eval_before_update": True, "round-timeout": 30.0, "out-dir": "/x",
        "store": ""})
    assert config is None
    assert overrides == ['attack={name="gaussian"}', "eval_before_update=true", "rounds=20",
                         "aggregator.f=4"]
    assert options == {"round_timeout": 30.0, "connect_timeout": 300.0, "out_dir": "/x"}
    cfg = byzadam.resolve(None, set=overrides)
    assert cfg["rounds"] == 20 and cfg["attack"]["name"] == "gaussian"


def test_keys_and_certificates_for_tls_and_node_authentication(tmp_path):
    from cryptography import x509

    written = certs.make(str(tmp_path), 2, hosts=["10.0.0.7", "link.example"])
    names = {os.path.basename(p) for p in written}
    assert names == {"ca.crt", "ca.key", "server.pem", "server.key", "node_0", "node_0.pub",
                     "node_1", "node_1.pub"}
    for private in ("ca.key", "server.key", "node_0", "node_1"):
        assert stat.S_IMODE(os.stat(tmp_path / private).st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "link.example" in san.get_values_for_type(x509.DNSName)
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "10.0.0.7"}
    assert (tmp_path / "node_0.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
    # Again: nothing is replaced; one more node is added.
    before = (tmp_path / "ca.crt").read_bytes()
    assert [os.path.basename(p) for p in certs.make(str(tmp_path), 3)] == ["node_2", "node_2.pub"]
    assert (tmp_path / "ca.crt").read_bytes() == before


def test_a_node_without_a_partition_or_with_a_bad_fault_is_an_error():
    strategy = ByzadamStrategy(None, set=SMALL + ["rounds=1"])
    grid = FakeGrid(7)
    msg = list(strategy.configure_train(1, None, None, grid))[0]
    for cfg, match in (({}, "partition-id"), ({"partition-id": 9}, "7 workers"),
                       ({"partition-id": 0, "fault": "bogus"}, "fault")):
        ctx = Context(run_id=1, node_id=5, node_config=cfg, state=RecordDict(), run_config={})
        with pytest.raises(ValueError, match=match):
            client.train(msg, ctx)


def test_byzantine_nodes_forging_their_own_sign_flip_give_the_simulators_bits():
    # Sign flip on each node's own message is per row and deterministic: forged on the nodes
    # or on the server, the same rows.
    sets = SMALL + ["rounds=3", 'attack={name="sign_flip"}']
    node, _ = flower_run(sets, attack_at="node")
    assert node.server.rows_as_sent
    expected = byzadam.run(None, set=sets, progress=False)
    assert [h.metrics["train_loss"] for h in node.history] == \
        [m["train_loss"] for m in expected.metrics]
    assert [h.metrics["xi_norm"] for h in node.history] == [m["xi_norm"] for m in expected.metrics]
    assert np.array_equal(node.server.params, halves(node.config))


def test_byzantine_nodes_forging_gaussian_noise_use_streams_of_their_own():
    sets = SMALL + ["rounds=2", 'attack={name="gaussian", std=200.0}']
    a, _ = flower_run(sets, attack_at="node")
    b, _ = flower_run(sets, attack_at="node")
    server, _ = flower_run(sets)
    assert np.array_equal(a.server.params, b.server.params)  # seeded: reproducible
    assert not np.array_equal(a.server.params, server.server.params)  # not the server's stream
    assert all(not h.refused and h.skipped is None for h in a.history)
    # Round 1's honest rows are the same whoever forges (the parameters only part after it).
    assert a.history[0].metrics["honest_diameter"] == server.history[0].metrics["honest_diameter"]
    assert a.history[0].metrics["xi_norm"] != server.history[0].metrics["xi_norm"]


def test_attacks_a_lone_node_cannot_mount_stay_on_the_server():
    for attack in ('{name="little"}', '{name="alie"}', '{name="mimic"}'):
        with pytest.raises(ValueError, match="runs only on the server"):
            ByzadamStrategy(None, set=SMALL + ["rounds=1", f"attack={attack}"], attack_at="node")
    from byzadam.flower import _protocol

    for none in (None, "none"):
        with pytest.raises(ValueError, match="needs an attack"):
            _protocol.node_attacks({"attack": none, "optimizer": {"name": "dra"}})
    with pytest.raises(ValueError, match="needs an attack"):
        ByzadamStrategy(None, set=SMALL + ["rounds=1", 'attack="none"'], attack_at="node")
    with pytest.raises(ValueError, match="attack_at"):
        ByzadamStrategy(None, set=SMALL + ["rounds=1"], attack_at="nodes")


def test_an_attack_the_byzantine_workers_present_cannot_mount_leaves_their_rows_out():
    # Little needs two Byzantine workers; with one of the two silent it cannot forge: the
    # round aggregates the honest rows alone and says why.
    sets = SMALL + ["rounds=2", "attack.name=little"]
    byz = [w for w in range(7) if byzadam.Server(None, set=sets).is_byzantine(w)]
    strategy, _ = flower_run(sets, lambda node, t, r, m: None if node - 100 == byz[0] else r)
    for h in strategy.history:
        assert h.missing == [byz[0]] and h.skipped is None
        assert "at least 2 Byzantine" in h.attack_failed
    server, engine = byzadam.Server(strategy.config), byzadam.Engine(strategy.config)
    workers = engine.workers()
    honest = [not server.is_byzantine(w) for w in range(7)]
    for _ in range(2):
        messages, losses = engine_messages(server, workers)
        server.step(list(messages), losses, honest)
    assert np.array_equal(strategy.server.params, server.params)


def torch_model(config):
    """A ``torch-model`` factory for the tests: the config's own network as a torch module."""
    import byzadam.torch as bt

    return bt.models.from_config(config["model"])


@pytest.mark.parametrize("extra", [
    ["rounds=3", "attack.name=little"],
    # Batch norm (the buffers travel as the node's `bn`) and dropout (per-worker seeds).
    ["dataset=cifar10", "model={name=\"cifar10_cnn\"}", "workers=5", "rounds=2",
     "eval_every=1", "eval_samples=100"],
])
def test_a_torch_model_on_the_nodes_gives_byzadam_torchs_numbers_bit_for_bit(extra, tmp_path):
    torch = pytest.importorskip("torch")
    import byzadam.torch as bt
    from byzadam.torch.grid import _initial

    sets = SMALL + extra
    strategy = ByzadamStrategy(None, set=sets, connect_timeout=0,
                               torch_model="test_flower:torch_model", store=str(tmp_path / "s.db"))
    grid = FakeGrid(strategy.server.workers,
                    node_config={i: {"torch-model": "test_flower:torch_model"}
                                 for i in range(strategy.server.workers)})
    strategy.start(grid)
    cfg = strategy.config
    model, start, _, identity = _initial(cfg, torch_model, None)
    data = byzadam.data.load(cfg["dataset"], None)
    sim = bt.Simulation(model, data, data, config=cfg, params=start, vmap=False)
    for _ in range(cfg["rounds"]):
        sim.step()
    for a, h in zip(sim.metrics, strategy.history):
        for key in ("train_loss", "xi_norm", "honest_diameter", "lambda", "eval"):
            assert a[key] == h.metrics[key], (a["round"], key)
    assert np.array_equal(sim.server.params, strategy.server.params)
    with sqlite3.connect(tmp_path / "s.db") as db:
        backend, = db.execute("SELECT backend FROM runs").fetchone()
    assert backend.startswith("flower/torch:") and identity.startswith(backend[len("flower/"):])
    del torch


def test_a_node_whose_torch_model_differs_from_the_runs_refuses_the_round():
    strategy = ByzadamStrategy(None, set=SMALL + ["rounds=1"],
                               torch_model="test_flower:torch_model")
    grid = FakeGrid(7)  # nodes configured for the built-in engine
    msg = list(strategy.configure_train(1, None, None, grid))[0]
    with pytest.raises(ValueError, match="torch-model"):
        client.train(msg, grid.contexts[100])
    with pytest.raises(ValueError, match="cannot be imported"):
        ByzadamStrategy(None, set=SMALL + ["rounds=1"], torch_model="no_such_module:f")


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    """``free_port`` never hands out a port twice, and (Linux) none the kernel may give an
    outgoing connection meanwhile: a SuperNode's HTTP port once went so before it bound it."""
    import socket

    from byzadam.flower import local

    ports = [local.free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    low = local._ephemeral_low()
    if low is not None and low > 11000:
        assert all(10000 <= p < low for p in ports), (low, min(ports), max(ports))
    for p in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
