"""The round's two halves from Python: a hand-written loop over byzadam.Server, byzadam.Engine
and its workers gives byzadam.run's metrics bit for bit; the docs' loop runs and prints
byzadam.run's accuracy; checkpoints restore; bad shapes are errors, never crashes."""
import contextlib
import os
import io
import pathlib
import re

import numpy as np
import pytest

import byzadam
from conftest import engine_messages

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "python.md"


def small(**over):
    cfg = {"dataset": "synthetic", "model": {"name": "mlp", "hidden": [16]}, "batch": 10,
           "rounds": 9, "eval_every": 4, "eval_samples": 200}
    cfg.update(over)
    return byzadam.resolve(cfg)


def loop(server, engine, workers, rounds):
    out = []
    for _ in range(rounds):
        t = server.round + 1
        due = server.evaluation_due()
        messages, losses = engine_messages(server, workers)
        ev = engine.evaluate(server.params, workers, t) if due == "before" else None
        m = server.step(list(messages), losses)
        if due == "after":
            ev = engine.evaluate(server.params, workers, t)
        if ev is not None:
            m["eval"] = {"accuracy": ev[0], "loss": ev[1]}
        out.append(m)
    return out


@pytest.mark.parametrize("over", [
    {"optimizer": {"name": "dra"}, "attack": {"name": "little"}},
    {"optimizer": {"name": "mra"}, "attack": {"name": "a_little_is_enough"}},
    {"optimizer": {"name": "sgd"}, "attack": {"name": "label_flip"}, "eval_before_update": True},
    {"optimizer": {"name": "resam"}, "attack": {"name": "sign_flip"}, "byzantine_workers": "first"},
])
def test_a_python_loop_over_the_halves_reproduces_run(over):
    cfg = small(**over)
    expected = byzadam.run(cfg, progress=False)
    server, engine = byzadam.Server(cfg), byzadam.Engine(cfg)
    got = loop(server, engine, engine.workers(), cfg["rounds"])
    assert got == expected.metrics


def test_the_docs_loop_prints_runs_accuracy():
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"<!-- the loop: python/tests/test_round.py executes this block -->\n"
                      r"```python\n(.*?)```", text, re.S)
    assert block, "docs/python.md lost its loop"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 32
    out = io.StringIO()
    scope = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOCS), "exec"), scope)
    expected = byzadam.run(scope["cfg"], progress=False)
    assert out.getvalue().strip() == (f"round {expected.summary['rounds']}: test accuracy "
                                      f"{expected.final_accuracy:.4f}")
    assert scope["accuracy"] == expected.final_accuracy  # the same float, not only 4 digits


def test_checkpointed_halves_continue_with_the_same_bits():
    cfg = small(optimizer={"name": "dra"}, attack={"name": "little"},
                aggregator={"name": "centered_clipping"})
    server, engine = byzadam.Server(cfg), byzadam.Engine(cfg)
    workers = engine.workers()
    loop(server, engine, workers, 4)
    saved = server.checkpoint(), [w.checkpoint() for w in workers]
    rest = loop(server, engine, workers, 5)
    server2, engine2 = byzadam.Server(cfg), byzadam.Engine(cfg)
    workers2 = engine2.workers()
    server2.restore(saved[0])
    for w, b in zip(workers2, saved[1]):
        w.restore(b)
    assert loop(server2, engine2, workers2, 5) == rest
    assert np.array_equal(server2.params, server.params)
    with pytest.raises(byzadam.ByzadamError, match="another config"):
        byzadam.Server(small(seed=1)).restore(saved[0])
    with pytest.raises(byzadam.ByzadamError):
        server.restore(b"garbage")
    with pytest.raises(byzadam.ByzadamError):
        workers[0].restore(saved[0])  # a server's state is no worker's


def test_the_generic_worker_half_is_the_optimizers_step_after_the_policy():
    cfg = small(optimizer={"name": "sgd"}, gradient={"l2": 0.0, "clip": 100.0})
    w = byzadam.Worker(cfg, 4)
    params = np.array([1, 2, 3, 4], dtype=np.float32)
    g = np.array([3, 0, 4, 0], dtype=np.float32)
    (m,) = w.message(params, g)
    assert np.array_equal(m, g)  # SGD sends the gradient (norm 5 < 100: unclipped)
    cfg = small(optimizer={"name": "sgd"}, gradient={"l2": 0.0, "clip": 2.5})
    (m,) = byzadam.Worker(cfg, 4).message(params, g)
    np.testing.assert_allclose(m, g / 5 * 2.5, rtol=1e-6)  # clipped to norm 2.5
    assert np.array_equal(g, [3, 0, 4, 0])  # the caller's gradient is not modified
    restored = byzadam.Worker(cfg, 4)
    restored.restore(w.checkpoint())
    with pytest.raises(byzadam.ByzadamError, match="4"):
        w.message(params[:3], g)


def test_message_into_writes_messages_bits_in_place():
    # DRA (two moments, a division and a square root per coordinate) sends what `message`
    # sends, three rounds running, into rows of a larger array; the gradient is overwritten
    # with the policy's result.
    cfg = small(optimizer={"name": "dra"}, gradient={"l2": 0.01, "clip": 0.5})
    rng = np.random.default_rng(3)
    params = rng.standard_normal(37).astype(np.float32)
    a, b = byzadam.Worker(cfg, 37), byzadam.Worker(cfg, 37)
    rows = np.full((3, 37), 7.0, np.float32)
    for _ in range(3):
        g = rng.standard_normal(37).astype(np.float32)
        (expected,) = a.message(params, g)
        scratch = g.copy()
        assert b.message_into(params, scratch, [rows[1]]) is None
        assert rows[1].tobytes() == expected.tobytes()
        assert not np.array_equal(scratch, g)  # clipped in place (norm above 0.5)
    assert np.all(rows[[0, 2]] == 7.0)  # the other rows untouched
    assert a.checkpoint() == b.checkpoint()
    # Wrong shapes and layouts: errors, and nothing written or stepped.
    before = rows.copy()
    with pytest.raises(byzadam.ByzadamError):
        b.message_into(params, g.copy(), [rows[1][:36]])
    with pytest.raises(byzadam.ByzadamError):
        b.message_into(params[:36], g.copy(), [rows[1]])
    with pytest.raises(byzadam.ByzadamError):
        b.message_into(params, g.copy(), [rows[1], rows[2]])  # DRA sends one message
    with pytest.raises(byzadam.ByzadamError, match="contiguous"):
        b.message_into(params, g.copy(), [np.zeros((37, 2), np.float32)[:, 0]])
    with pytest.raises(TypeError):
        b.message_into(params, g.copy(), [np.zeros(37, np.float64)])
    assert np.array_equal(rows, before)
    assert a.checkpoint() == b.checkpoint()


def test_engine_step_into_writes_step_bits_in_place():
    # MRA (two messages) with clipping and l2 on the built-in engine: `step_into` returns
    # the loss `step` returns and writes the messages `step` returns, three rounds running,
    # into rows of the server's arrays, the other rows untouched.
    cfg = small(optimizer={"name": "mra"}, gradient={"l2": 0.01, "clip": 0.5})
    server = byzadam.Server(cfg)
    a, b = byzadam.Engine(cfg).workers()[2], byzadam.Engine(cfg).workers()[2]
    n, dim, k = server.workers, server.dim, server.messages
    assert k == 2
    rows = np.full((k, n, dim), 7.0, np.float32)
    rng = np.random.default_rng(5)
    for _ in range(3):
        params = rng.standard_normal(dim).astype(np.float32)
        loss, sent = a.step(params)
        assert b.step_into(params, [m[2] for m in rows]) == loss
        for j in range(k):
            assert rows[j, 2].tobytes() == sent[j].tobytes()
    assert np.all(rows[:, [0, 1, 3, 4]] == 7.0)
    assert a.checkpoint() == b.checkpoint()
    # Wrong counts, lengths and layouts: errors before the batch is drawn, nothing written.
    before = rows.copy()
    with pytest.raises(byzadam.ByzadamError, match="2 message"):
        b.step_into(params, [rows[0, 2]])
    with pytest.raises(byzadam.ByzadamError, match="values"):
        b.step_into(params, [rows[0, 2], rows[1, 2][:-1]])
    with pytest.raises(byzadam.ByzadamError, match="parameters"):
        b.step_into(params[:-1], [m[2] for m in rows])
    with pytest.raises(byzadam.ByzadamError, match="contiguous"):
        b.step_into(params, [rows[0, 2], rows[1, :, 0]])
    with pytest.raises(TypeError):
        b.step_into(params, [rows[0, 2], np.zeros(dim, np.float64)])
    assert np.array_equal(rows, before)
    assert a.checkpoint() == b.checkpoint()
    # The batch was not drawn: the next round's bits are still a's.
    loss, sent = a.step(params)
    assert b.step_into(params, [m[2] for m in rows]) == loss
    assert rows[1, 2].tobytes() == sent[1].tobytes()


def test_wrong_shapes_are_errors_not_crashes():
    cfg = small()
    server = byzadam.Server(cfg)
    n, dim = server.workers, server.dim
    with pytest.raises(byzadam.ByzadamError, match="array"):
        server.step([np.zeros((n, dim - 1), np.float32)], np.zeros(n, np.float32))
    with pytest.raises(byzadam.ByzadamError):
        server.step([np.zeros((n, dim), np.float32)], np.zeros(n + 1, np.float32))
    assert server.round == 0
    engine = byzadam.Engine(cfg)
    workers = engine.workers()
    with pytest.raises(byzadam.ByzadamError):
        workers[0].step(np.zeros(dim + 1, np.float32))
    with pytest.raises(byzadam.ByzadamError):
        engine.evaluate(np.zeros(3, np.float32), workers, 1)
    with pytest.raises(byzadam.ByzadamError):
        byzadam.Server({"workers": 3, "byzantine": 5})


def test_the_quickstart_falls_back_to_synthetic_digits_as_the_cli_does(tmp_path, cli, monkeypatch):
    """No data directory named, no MNIST in ./data and no download: ``byzadam.run()`` (the
    quickstart) trains on synthetic digits, says why, and gives the CLI's numbers for the
    same fallback; a named directory without MNIST is an error naming the file."""
    import json
    import subprocess

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BYZADAM_DATA_DIR", raising=False)
    sets = ["rounds=3", "eval_every=3", "eval_samples=200", "model={name=\"mlp\", hidden=[8]}"]
    with pytest.warns(UserWarning, match="synthetic digits"):
        res = byzadam.run(set=sets, progress=False)
    assert "mnist" in res.summary["synthetic_fallback"]
    assert res.summary["dataset"] == "synthetic" and res.config["dataset"] == "synthetic"
    out = tmp_path / "out"
    args = [cli, "run", "--quiet", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "BYZADAM_DATA_DIR"})
    assert done.returncode == 0, done.stderr
    assert "synthetic digits" in done.stdout
    theirs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert res.metrics == theirs
    engine = byzadam.Engine(set=sets)
    assert engine.fallback and engine.config["dataset"] == "synthetic"
    with pytest.raises(byzadam.ByzadamError, match="train-images-idx3-ubyte"):
        byzadam.run(set=sets, data_dir=str(tmp_path / "named"), progress=False)
