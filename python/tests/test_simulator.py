"""``byzadam.run`` gives ``byzadam run``'s numbers; ``byzadam.grid`` and ``Store`` give
``byzadam grid``'s store; Ctrl-C stops a run cleanly."""
import json
import signal
import threading
import _thread
import time

import numpy as np
import pytest

import byzadam
from conftest import run_cli

CONFIG = """
rounds = 20
eval_every = 10
eval_samples = 1000
aggregator = { name = "trimmed_mean", f = 5 }
attack = { name = "little" }
"""


def test_run_gives_the_cli_metrics_on_20_mnist_rounds(cli, data_dir, tmp_path):
    (tmp_path / "cfg.toml").write_text(CONFIG)
    run_cli(cli, "run", tmp_path / "cfg.toml", "--data-dir", data_dir, "--quiet", "--out", tmp_path / "out")
    theirs = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    res = byzadam.run(CONFIG, data_dir=data_dir, progress=False)
    assert len(res.metrics) == 20
    assert res.metrics == theirs  # every field of every round, floats bit-identical through JSON
    for k in ("final_accuracy", "best_accuracy", "final_loss", "rounds", "diverged_at"):
        assert res.summary[k] == summary[k]
    np.testing.assert_array_equal(res.eval_rounds, [10, 20])
    assert res.final_accuracy == theirs[-1]["eval"]["accuracy"]
    # The same run from a dict and from a file path.
    as_dict = byzadam.run({"rounds": 20, "eval_every": 10, "eval_samples": 1000,
                           "aggregator": byzadam.TrMean(f=5), "attack": {"name": "little"}},
                          data_dir=data_dir, progress=False)
    assert as_dict.metrics == theirs
    assert byzadam.run(tmp_path / "cfg.toml", data_dir=data_dir, progress=False).metrics == theirs


def test_run_is_the_same_whatever_the_thread_count():
    cfg = {"dataset": "synthetic", "workers": 6, "byzantine": 2, "rounds": 3, "eval_every": 3,
           "eval_samples": 200, "aggregator": {"name": "median"}}
    one = byzadam.run(cfg, threads=1, progress=False)
    two = byzadam.run(cfg, threads=2, progress=False)
    assert one.metrics == two.metrics


def test_ctrl_c_interrupts_a_run_cleanly():
    # A process started in the background by a shell ignores SIGINT, and Python then leaves it
    # ignored: install Python's own handler for this test, as an interactive session has it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    cfg = {"dataset": "synthetic", "workers": 6, "byzantine": 2, "rounds": 3000, "eval_every": 1000,
           "aggregator": {"name": "median"}}
    timer = threading.Timer(1.5, _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            byzadam.run(cfg, progress=False)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - t0 < 30
    # The interpreter is fine afterwards.
    assert byzadam.Median()(np.ones((3, 2), dtype=np.float32)).tolist() == [1.0, 1.0]


GRID = """
name = "py-grid"
[base]
dataset = "synthetic"
workers = 6
byzantine = 2
rounds = 4
eval_every = 2
eval_samples = 200
[axes]
aggregator = [{ name = "median" }, { name = "trimmed_mean", f = 1 }]
"""


def test_grid_and_store_match_the_cli(cli, tmp_path):
    (tmp_path / "g.toml").write_text(GRID)
    run_cli(cli, "grid", tmp_path / "g.toml", "--store", tmp_path / "cli.db", "--quiet")
    store = byzadam.grid(tmp_path / "g.toml", tmp_path / "py.db", progress=False)
    assert isinstance(store, byzadam.Store)
    theirs = byzadam.Store(tmp_path / "cli.db")
    ours = {r["id"]: r for r in store.runs()}
    cli_runs = {r["id"]: r for r in theirs.runs()}
    assert set(ours) == set(cli_runs) and len(ours) == 2
    for i, r in ours.items():
        a, b = dict(r["summary"]), dict(cli_runs[i]["summary"])
        a.pop("seconds"), b.pop("seconds")
        assert a == b and r["config"] == cli_runs[i]["config"]
        np.testing.assert_array_equal(store.curve(i), theirs.curve(i))
    assert store.grids() == [("py-grid", 2, 2)]
    assert store.results_versions() == [(byzadam.RESULTS_VERSION, 2)]
    # A second call finds every run stored and runs nothing.
    again = byzadam.grid(tmp_path / "g.toml", tmp_path / "py.db", progress=False)
    assert len(again.runs()) == 2
