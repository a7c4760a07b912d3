"""The optimizers' halves against hand-computed steps; the data side against the simulator's
definitions and the CLI."""
import numpy as np
import pytest

import byzadam
from byzadam import optim
from conftest import run_cli


def test_dra_halves_match_adams_formulas():
    g1 = np.array([0.5, -2.0, 0.0], dtype=np.float32)
    g2 = np.array([1.0, 1.0, -1.0], dtype=np.float32)
    b1, b2, eps, lr = 0.9, 0.99, 1e-8, 0.1
    opt = optim.DRA(lr=lr, beta1=b1, beta2=b2, eps=eps)
    w = opt.worker(3)
    m = v = np.zeros(3)
    theta = np.array([1.0, 1.0, 1.0])
    server = opt.server(theta)
    for t, g in enumerate([g1, g2], start=1):
        (q,) = w.message(g)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g.astype(np.float64) ** 2
        want = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(q, want, rtol=1e-5, atol=1e-6)
        theta = theta - lr * want
        np.testing.assert_allclose(server.step([q]), theta, rtol=1e-5)
    assert w.t == 2 and server.t == 2


def test_mra_sends_two_moments_and_steps_with_eps_inside_the_root():
    opt = optim.MRA(lr=0.5, beta1=0.5, beta2=0.5, eps=0.25)
    w = opt.worker(2)
    mh, vh = w.message(np.array([2.0, -4.0], dtype=np.float32))
    np.testing.assert_allclose(mh, [2.0, -4.0])   # m̂ = m / (1 − β₁) after one step
    np.testing.assert_allclose(vh, [4.0, 16.0])
    s = opt.server([0.0, 0.0])
    np.testing.assert_allclose(s.step([mh, vh]), [-0.5 * 2 / np.sqrt(4.25), 0.5 * 4 / np.sqrt(16.25)], rtol=1e-6)


def test_sgd_resam_and_schedules():
    sgd = optim.SGD(lr={"name": "inverse_step", "initial": 0.75, "every": 50})
    assert sgd.lr(1) == 0.75 and sgd.lr(51) == pytest.approx(0.375)
    r = optim.RESAM(lr=1.0, beta=0.5)
    w = r.worker(1)
    assert w.message([2.0])[0].tolist() == [1.0]
    assert w.message([2.0])[0].tolist() == [1.5]
    assert optim.Optimizer({"name": "dra"}).config() == {
        "name": "dra", "lr": {"name": "constant", "value": 0.001}, "beta1": 0.99, "beta2": 0.999, "eps": 1e-8}


def test_partition_matches_the_cli_and_the_homogeneous_counts(cli):
    labels = np.repeat(np.arange(10, dtype=np.uint8), 30)
    shards = byzadam.data.partition(labels, workers=5, scheme="homogeneous", data_seed=3)
    assert [len(s) for s in shards] == [60] * 5
    for s in shards:
        assert np.bincount(labels[s], minlength=10).tolist() == [6] * 10
        assert np.all(np.diff(s.astype(np.int64)) > 0)
    assert len(set(np.concatenate(shards).tolist())) == 300
    d = byzadam.data.partition(labels, workers=4, scheme={"name": "dirichlet", "alpha": 0.5}, data_seed=9)
    again = byzadam.data.partition(labels, workers=4, scheme={"name": "dirichlet", "alpha": 0.5}, data_seed=9)
    assert all(np.array_equal(a, b) for a, b in zip(d, again))
    other = byzadam.data.partition(labels, workers=4, scheme={"name": "dirichlet", "alpha": 0.5}, data_seed=10)
    assert not all(np.array_equal(a, b) for a, b in zip(d, other))
    with pytest.raises(byzadam.ByzadamError, match="alpha"):
        byzadam.data.partition(labels, workers=4, scheme={"name": "dirichlet", "alpha": -1.0})


def test_sampler_epochs_are_permutations_of_the_shard():
    shard = np.arange(100, 150, dtype=np.uint32)
    s = byzadam.data.sampler(shard, batch=10, seed=4, worker=2)
    b = s.batches(5)
    assert b.shape == (5, 10) and sorted(b.ravel().tolist()) == shard.tolist()
    assert s.epoch == 1
    t = byzadam.data.sampler(shard, batch=10, seed=4, worker=3)
    assert not np.array_equal(t.batches(5), b)  # another worker, another stream
    again = byzadam.data.sampler(shard, batch=10, seed=4, worker=2)
    np.testing.assert_array_equal(again.batches(5), b)
    with pytest.raises(byzadam.ByzadamError, match="batch must be in 1..=50"):
        byzadam.data.sampler(shard, batch=51, seed=0, worker=0)


def test_mnist_reader(data_dir):
    d = byzadam.data.load("mnist", data_dir)
    assert d["train_images"].shape == (60000, 1, 28, 28) and d["train_images"].dtype == np.uint8
    assert d["test_labels"].shape == (10000,) and d["classes"] == 10
    assert np.bincount(d["train_labels"]).tolist()[:2] == [5923, 6742]  # MNIST's known counts
    with pytest.raises(byzadam.ByzadamError, match='no dataset .mnst.'):
        byzadam.data.load("mnst")
