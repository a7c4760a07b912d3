"""``byzadam.torch.grid`` (issue 23): a grid through the torch backend into the results store
``byzadam grid`` writes: the stored runs are exactly what ``bt.Simulation`` computes, their
ids are their own (never a built-in run's), ``byzadam report`` tabulates them beside the
built-in engine's, a second call runs nothing, and a run stopped by Ctrl-C resumes with the
same bits."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import byzadam
import byzadam.torch as bt
from byzadam import _core
from byzadam.simulator import _to_toml

BASE = {"dataset": "synthetic", "model": {"name": "mnist_cnn"}, "workers": 4, "byzantine": 1,
        "batch": 16, "rounds": 4, "eval_every": 2, "eval_samples": 300,
        "aggregator": {"name": "trimmed_mean", "f": 1}, "attack": {"name": "sign_flip"}}
GRID = {"name": "tg", "base": BASE,
        "axes": {"aggregator": [{"name": "trimmed_mean", "f": 1}, {"name": "median"}],
                 "seed": [0, 1]}}


@pytest.fixture(scope="module")
def synthetic():
    return byzadam.data.load("synthetic", seed=0)


def stored_rounds(path, run_id):
    import sqlite3

    with sqlite3.connect(path) as c:
        return c.execute("SELECT round, lr, train_loss, xi_norm, test_accuracy, test_loss "
                         "FROM rounds WHERE run_id = ? ORDER BY round", (run_id,)).fetchall()


def test_a_grid_is_stored_as_the_simulation_computes_it(tmp_path, capsys):
    db = tmp_path / "tg.db"
    store = bt.grid(GRID, store=db)
    runs = store.runs()
    assert len(runs) == 4
    name, expanded = _core.expand_grid(_to_toml(GRID), "<test>")
    builtin_ids = {i for i, _ in expanded}
    backends = {r["backend"] for r in runs}
    assert len(backends) == 1
    backend = backends.pop()
    assert backend.startswith("torch:config-model@")
    assert not builtin_ids & {r["id"] for r in runs}, "torch runs have ids of their own"
    # Each stored run equals a direct bt.Simulation of its config, round by round.
    for r in runs:
        cfg = r["config"]
        sim = bt.Simulation(bt.models.mnist_cnn(), byzadam.data.load("synthetic", seed=0),
                            byzadam.data.load("synthetic", seed=0), config=cfg,
                            params=byzadam.Server(cfg).params)
        summary = sim.run(progress=False)
        assert r["summary"]["final_accuracy"] == summary.final_accuracy
        # Each class's recall at the last evaluation, stored as the built-in grid stores it:
        # recomputed here from the final parameters' predictions on the evaluated images.
        model = bt.models.mnist_cnn()
        torch.nn.utils.vector_to_parameters(torch.from_numpy(sim.server.params),
                                            model.parameters())
        with torch.no_grad():
            predicted = model.eval()(sim._test.x[:300]).argmax(1).numpy()
        labels = sim._test.y[:300].numpy()
        expected = [float(np.mean(predicted[labels == c] == c)) for c in range(10)]
        assert summary.class_recall == pytest.approx(expected, abs=1e-12)
        assert r["summary"]["class_recall"] == pytest.approx(expected, abs=1e-12)
        assert np.mean(predicted == labels) == pytest.approx(summary.final_accuracy, abs=1e-12)
        rows = stored_rounds(db, r["id"])
        assert [row[0] for row in rows] == [1, 2, 3, 4]
        for row, m in zip(rows, sim.metrics):
            assert row[2] == m["train_loss"] and row[3] == m["xi_norm"]
            assert (row[4], row[5]) == ((m["eval"]["accuracy"], m["eval"]["loss"])
                                        if m["eval"] else (None, None))
    # A second call finds every run stored and runs none.
    capsys.readouterr()
    bt.grid(GRID, store=db)
    assert "4 already in" in capsys.readouterr().err
    assert len(byzadam.Store(db).runs()) == 4


def test_torch_runs_sit_beside_builtin_runs_in_report(tmp_path):
    grid_file = tmp_path / "tg.toml"
    grid_file.write_text(_to_toml(GRID))
    db = tmp_path / "both.db"
    byzadam.grid(grid_file, store=db, progress=False)
    bt.grid(grid_file, store=db, progress=False)
    runs = byzadam.Store(db).runs()
    assert sorted(r["backend"].split("@")[0] for r in runs) == ["builtin"] * 4 + \
        ["torch:config-model"] * 4
    names = [g[0] for g in byzadam.Store(db).grids()]
    assert "tg" in names and any(n.startswith("tg-torch-config-model-") for n in names)
    out = tmp_path / "report"
    cli = os.environ.get("BYZADAM_CLI", "byzadam")
    subprocess.run([cli, "report", str(db), "--no-figures", "-o", str(out)], check=True,
                   capture_output=True)
    text = (out / "report.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("# ")]
    assert headings[0] == "# tg" and headings[1].startswith("# tg-torch-config-model-")
    # Each grid's table of its own 4 runs (2 cells of 2 seeds).
    assert text.count("4 runs (4 of the grid's 4 finished), 2 cells") == 2


class Net(nn.Module):
    """A user model with dropout and batch norm; sends itself SIGINT once, at the forward
    call ``Net.interrupt_at`` (counted over every Net), to stop a grid mid-run."""

    calls = 0
    interrupt_at = None

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.BatchNorm1d(32),
                                  nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))

    def forward(self, x):
        Net.calls += 1
        if Net.interrupt_at is not None and Net.calls == Net.interrupt_at:
            Net.interrupt_at = None
            os.kill(os.getpid(), signal.SIGINT)
        return self.body(x)


def test_a_grid_stopped_by_ctrl_c_resumes_with_the_same_bits(tmp_path, synthetic):
    grid = {"name": "resume", "base": {**BASE, "rounds": 6, "eval_every": 3,
                                       "optimizer": {"name": "mra"}},
            "axes": {"seed": [0]}}
    straight = bt.grid(grid, lambda cfg: Net(), store=tmp_path / "a.db", train=synthetic,
                       test=synthetic, vmap=False, progress=False)
    (expected,) = straight.runs()
    assert expected["backend"].startswith("torch:Net@")
    # Interrupted in round 3 (4 workers a round with the loop): the round completes, the
    # checkpoint is written, KeyboardInterrupt raised, nothing stored yet.
    Net.calls, Net.interrupt_at = 0, 4 * 2 + 2
    with pytest.raises(KeyboardInterrupt):
        bt.grid(grid, lambda cfg: Net(), store=tmp_path / "b.db", train=synthetic,
                test=synthetic, vmap=False, progress=False)
    checkpoints = list((tmp_path / "b.db.checkpoints").iterdir())
    assert len(checkpoints) == 1 and byzadam.Store(tmp_path / "b.db").runs() == []
    resumed = bt.grid(grid, lambda cfg: Net(), store=tmp_path / "b.db", train=synthetic,
                      test=synthetic, vmap=False, progress=False)
    (got,) = resumed.runs()
    assert got["id"] == expected["id"]
    assert stored_rounds(tmp_path / "b.db", got["id"]) == \
        stored_rounds(tmp_path / "a.db", expected["id"])
    assert not checkpoints[0].exists(), "the checkpoint goes once the run is stored"


def test_a_changed_model_runs_again_under_another_id(tmp_path, synthetic):
    grid = {"name": "m", "base": {**BASE, "rounds": 2}, "axes": {"seed": [0, 1]}}
    db = tmp_path / "m.db"
    bt.grid(grid, lambda cfg: Net(), store=db, train=synthetic, test=synthetic, progress=False)

    class Narrower(Net):  # another structure under the same name: another backend
        def __init__(self):
            super().__init__()
            self.body[1] = nn.Linear(784, 32, bias=False)

    def rescaled(cfg):  # the same structure, other initial values: same backend, new ids
        m = Net()
        with torch.no_grad():
            m.body[1].weight.mul_(0.5)
        return m

    bt.grid(grid, lambda cfg: Narrower(), store=db, train=synthetic, test=synthetic,
            progress=False, model_name="Net")
    bt.grid(grid, rescaled, store=db, train=synthetic, test=synthetic, progress=False)
    runs = byzadam.Store(db).runs()
    assert len(runs) == 6 and len({r["id"] for r in runs}) == 6
    backends = [r["backend"] for r in runs]
    assert len(set(backends)) == 2, "one backend per structure, whatever the seed"
    assert sorted(backends.count(b) for b in set(backends)) == [2, 4]


def test_bad_input_is_a_clear_error(tmp_path, synthetic):
    with pytest.raises(ValueError, match="without test"):
        bt.grid(GRID, store=tmp_path / "x.db", train=synthetic)
    with pytest.raises(FileNotFoundError, match="no such grid file"):
        bt.grid(tmp_path / "missing.toml")
    with pytest.raises(TypeError, match="grid must be"):
        bt.grid(42)
    with pytest.raises(byzadam.ByzadamError, match="unknown"):
        bt.grid({"name": "bad", "base": {**BASE, "nonsense": 1}}, store=tmp_path / "y.db")
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database at all, just bytes" * 10)
    before = foreign.read_bytes()
    with pytest.raises(byzadam.ByzadamError, match="not a byzadam results store"):
        bt.grid(GRID, store=foreign)
    assert foreign.read_bytes() == before
    # Options every run would fail on: refused before the first run.
    with pytest.raises(ValueError, match="device 'nope' is not a torch device"):
        bt.grid(GRID, store=tmp_path / "d.db", device="nope")
    with pytest.raises(TypeError, match="vmap must be one of None, True, False, got 'yes'"):
        bt.grid(GRID, store=tmp_path / "v.db", vmap="yes")
    for bad in [float("nan"), -1.0, "60"]:
        with pytest.raises(ValueError, match="checkpoint_every must be a number of seconds"):
            bt.grid(GRID, store=tmp_path / "c.db", checkpoint_every=bad)
    assert not any((tmp_path / n).exists() for n in ["d.db", "v.db", "c.db"])
    # A factory that does not return a module fails its runs, named, after trying them all.
    with pytest.raises(TypeError, match="must return a torch.nn.Module"):
        bt.grid(GRID, lambda cfg: "not a module", store=tmp_path / "z.db")


def test_a_failing_run_does_not_stop_the_others(tmp_path, synthetic):
    grid = {"name": "f", "base": {**BASE, "rounds": 2},
            "axes": {"seed": [0, 1]}}

    class Breaks(Net):
        def forward(self, x):
            if self.training and self.fail:
                raise RuntimeError("boom")
            return super().forward(x)

    def factory(cfg):
        m = Breaks()
        m.fail = cfg["seed"] == 0
        return m

    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed:\n  [0-9a-f]{16}: .*boom"):
        bt.grid(grid, factory, store=tmp_path / "f.db", train=synthetic, test=synthetic,
                vmap=False, progress=False)
    (stored,) = byzadam.Store(tmp_path / "f.db").runs()
    assert stored["config"]["seed"] == 1


def test_a_grid_with_init_starts_every_run_from_the_file(tmp_path, synthetic):
    """`init` in a grid: each run starts from the file (its SHA-256 pinned at expansion), as
    a direct bt.Simulation of the resolved config does."""
    drawn = byzadam.Server({**BASE, "seed": 0}).params
    path = tmp_path / "init.npy"
    np.save(path, drawn * 0.5)
    grid = {"name": "i", "base": {**BASE, "rounds": 2, "init": str(path)},
            "axes": {"seed": [0, 1]}}
    db = tmp_path / "i.db"
    bt.grid(grid, store=db, train=synthetic, test=synthetic, progress=False)
    runs = byzadam.Store(db).runs()
    assert len(runs) == 2
    for r in runs:
        assert r["config"]["init"]["sha256"] and r["config"]["init"]["path"] == str(path)
        sim = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=r["config"])
        assert np.array_equal(sim.server.params, (drawn * 0.5).astype(np.float32))
        sim.run(progress=False)
        rows = stored_rounds(db, r["id"])
        assert [row[2] for row in rows] == [m["train_loss"] for m in sim.metrics]
    # A user model whose parameter count is not the config's model's: a clear error per run.
    with pytest.raises(RuntimeError, match="2 of 2 runs failed"):
        bt.grid({**grid, "name": "j"}, lambda cfg: Net(), store=tmp_path / "j.db",
                train=synthetic, test=synthetic, progress=False)


def test_shards_partition_the_grid_as_byzadam_grid_shard_does(tmp_path):
    """``shard=(i, k)`` runs every k-th run of the grid's order from the i-th (the runs
    ``byzadam grid --shard i/k`` selects); two shards run as two processes at once into one
    store give the same rows as one process running the whole grid, and a whole-grid call
    afterwards runs nothing."""
    grid_file = tmp_path / "tg.toml"
    grid_file.write_text(_to_toml(GRID))
    _, expanded = _core.expand_grid(_to_toml(GRID), "<test>")
    order = [json.loads(c) for _, c in expanded]
    one = tmp_path / "one.db"
    bt.grid(GRID, store=one, shard=(1, 2), progress=False)
    stored = {json.dumps(r["config"], sort_keys=True) for r in byzadam.Store(one).runs()}
    assert stored == {json.dumps(c, sort_keys=True) for c in order[1::2]}
    bt.grid(GRID, store=one, progress=False)  # the rest
    # Two processes, one shard each, into one store.
    both = tmp_path / "both.db"
    code = ("import sys, byzadam.torch as bt; "
            "bt.grid(sys.argv[1], store=sys.argv[2], shard=(int(sys.argv[3]), 2), progress=False)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(grid_file), str(both), str(i)])
             for i in range(2)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    runs = {r["id"]: r for r in byzadam.Store(both).runs()}
    assert sorted(runs) == sorted(r["id"] for r in byzadam.Store(one).runs())
    for run_id in runs:
        assert stored_rounds(both, run_id) == stored_rounds(one, run_id)
    with pytest.raises(ValueError, match="shard must be"):
        bt.grid(GRID, store=both, shard=(2, 2))
