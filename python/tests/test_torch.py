"""``byzadam.torch`` (issue 23, first part): the torch modules of the built-in networks mean the
same flat vector as the Rust engine (their gradients agree), the vmapped gradients equal the
per-worker loop's, the round after the gradients is the Rust one (a torch run tracks
``byzadam.run``), models the engine lacks train, and bad input is a clear exception."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import byzadam
import byzadam.torch as bt
from conftest import engine_messages

SMALL = {"dataset": "synthetic", "model": {"name": "mnist_cnn"}, "workers": 4, "byzantine": 1,
         "batch": 16, "rounds": 3, "eval_every": 1, "eval_samples": 300,
         "aggregator": {"name": "trimmed_mean", "f": 1}, "attack": {"name": "sign_flip"}}


# The tests that take `device` run on the CPU and, where there is one, on CUDA: each CUDA case
# skips with this reason on a machine without (benchmarks/gpu_check.sh runs them on a GPU).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device on this machine (benchmarks/gpu_check.sh runs the CUDA cases)"))]


@pytest.fixture(scope="module")
def synthetic():
    # What `byzadam run` trains on for dataset = "synthetic" (data_seed 0).
    return byzadam.data.load("synthetic", seed=0)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b.astype(np.float64)))


@pytest.mark.parametrize("kind", [{"name": "mnist_cnn"}, {"name": "logistic_regression"},
                                  {"name": "mlp", "hidden": [32, 16]}])
def test_modules_have_the_engines_parameter_count(kind):
    server = byzadam.Server({**SMALL, "model": kind})
    assert sum(p.numel() for p in bt.models.from_config(kind).parameters()) == server.dim


def test_cifar_module_has_the_engines_parameter_count():
    assert sum(p.numel() for p in bt.models.cifar10_cnn().parameters()) == 1_310_922
    assert sum(p.numel() for p in bt.models.cifar10_cnn_thesis_code().parameters()) == 1_310_794


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", [{"name": "mnist_cnn"}, {"name": "mlp", "hidden": [64]}])
def test_gradients_equal_the_rust_engines(kind, device, synthetic):
    """Same initial parameters, same batches (byzadam's partition and samplers): torch's
    per-worker gradients equal the engine's to relative 1e-4."""
    cfg = {**SMALL, "model": kind, "attack": "none", "byzantine": 0}
    server = byzadam.Server(cfg)
    engine = byzadam.Engine(cfg)
    rust = [w.gradient(server.params) for w in engine.workers()]
    sim = bt.Simulation(bt.models.from_config(kind), synthetic, config=cfg,
                        params=server.params, device=device)
    active, grads, losses = sim.gradients(1)
    assert active == [0, 1, 2, 3]
    for w, (loss, g) in enumerate(rust):
        assert relative(grads[w], np.asarray(g)) < 1e-4, w
        assert abs(losses[w] - loss) < 1e-4 * max(1.0, abs(loss)), w


@pytest.mark.parametrize("name", ["cifar10_cnn", "cifar10_cnn_thesis_code"])
def test_cifar_gradients_equal_the_rust_engines(name, data_dir):
    """The CIFAR-10 CNNs (the thesis's, and its code's variant whose batch norms keep no
    running statistics), batch norm in training mode, dropout off: the same losses, the same
    linear layers' gradients (within 1e-4), the whole gradient within 1e-2.

    Why two bounds: below the last max pooling the gradient is not a continuous function of
    the rounding. A ReLU's zeros become equal values after batch norm, and a pooling window
    holding them and a convolution output within rounding of zero takes its maximum by that
    rounding; another choice routes the gradient through another position (the bias
    gradients, sums over positions, stay; the weight and input gradients move). PyTorch
    against itself (its oneDNN convolution against its native one, torch.backends.mkldnn)
    differs by 1.2e-3 on one of four workers of this setting (cifar10_cnn); byzadam's
    Winograd F(4×4, 3×3) rounds otherwise again (4.1e-3 and 1.4e-3 on two of four workers,
    3e-6 on the others; the linear layers 3e-6 on all). A model that differs (a layer, their
    order, a padding, batch norm's statistics) differs by far more than 1e-2."""
    cfg = {**SMALL, "dataset": "cifar10", "model": {"name": name, "dropout": 0.0},
           "attack": "none", "byzantine": 0, "workers": 2, "batch": 8,
           "aggregator": {"name": "average"}}
    server = byzadam.Server(cfg)
    engine = byzadam.Engine(cfg, data_dir=data_dir)
    rust = [w.gradient(server.params) for w in engine.workers()]
    cifar = byzadam.data.load("cifar10", data_dir)
    model = bt.models.from_config(cfg["model"])
    sim = bt.Simulation(model, cifar, config=cfg, params=server.params)
    # The linear layers' parameters in the flat vector (PyTorch's order, the engine's too).
    at, linear = 0, []
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if isinstance(module, nn.Linear):
                linear.append(slice(at, at + p.numel()))
            at += p.numel()
    assert at == len(server.params) and len(linear) == 4
    _, grads, losses = sim.gradients(1)
    for w, (loss, g) in enumerate(rust):
        g = np.asarray(g)
        assert abs(losses[w] - loss) < 1e-4 * max(1.0, abs(loss)), w
        for part in linear:
            assert relative(grads[w][part], g[part]) < 1e-4, (w, part)
        assert relative(grads[w], g) < 1e-2, w


@pytest.mark.parametrize("device", DEVICES)
def test_vmap_equals_the_loop(device, synthetic):
    cfg = {**SMALL, "model": {"name": "mnist_cnn"}}
    start = byzadam.Server(cfg).params
    a = bt.Simulation(bt.models.mnist_cnn(), synthetic, config=cfg, params=start, vmap=True,
                      device=device)
    b = bt.Simulation(bt.models.mnist_cnn(), synthetic, config=cfg, params=start, vmap=False,
                      device=device)
    assert (a.gradient_path, b.gradient_path) == ("vmap", "loop")
    for t in (1, 2):
        ia, ga, la = a.gradients(t)
        ib, gb, lb = b.gradients(t)
        assert ia == ib
        for w in range(len(ia)):
            assert relative(ga[w], gb[w]) < 1e-5
        assert np.allclose(la, lb, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_vmap_equals_the_loop_with_batch_norm_and_dropout(device, synthetic):
    """Batch norm's running statistics per worker, stacked under vmap: the same gradients
    and the same statistics as the loop. Dropout (p = 0.5) draws differ between the paths,
    so it is checked on its own: each worker's masks differ (randomness="different")."""
    torch.manual_seed(1)
    net = SmallResNet()
    cfg = {**SMALL}
    start = bt.models.flat(net).detach().numpy()
    a = bt.Simulation(net, synthetic, config=cfg, params=start, vmap=True, device=device)
    b = bt.Simulation(SmallResNet(), synthetic, config=cfg, params=start, vmap=False,
                      device=device)
    for t in (1, 2):
        _, ga, _ = a.gradients(t)
        _, gb, _ = b.gradients(t)
        for w in range(len(ga)):
            assert relative(ga[w], gb[w]) < 1e-5
    for w in range(cfg["workers"]):
        for k, v in a._worker_buffers[w].items():
            assert torch.allclose(v.float(), b._worker_buffers[w][k].float(), rtol=1e-5,
                                  atol=1e-6), (w, k)
    # Every worker on the same batch: equal gradients without dropout, pairwise different
    # ones with it (each worker its own masks).
    for p, distinct in [(0.0, 1), (0.5, 4)]:
        drop = nn.Sequential(nn.Flatten(), nn.Dropout(p), nn.Linear(784, 10))
        sim = bt.Simulation(drop, synthetic, config={**SMALL, "byzantine": 0, "attack": "none"},
                            vmap=True, device=device)
        same = sim._batch(0, np.arange(16))
        g, _ = sim._vmapped([0, 1, 2, 3], [same] * 4, 1)
        assert len({g[w].cpu().numpy().tobytes() for w in range(4)}) == distinct, p


def test_a_torch_run_tracks_byzadam_run(synthetic):
    """After the gradients the round is Rust's: from the engine's initial parameters the
    torch run's accuracy follows byzadam.run's (the gradients differ in the last bits)."""
    cfg = {**SMALL, "rounds": 30, "eval_every": 10, "workers": 6, "byzantine": 2,
           "aggregator": {"name": "trimmed_mean", "f": 2}, "attack": {"name": "alie"}}
    ref = byzadam.run(cfg, progress=False)
    sim = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=cfg,
                        params=byzadam.Server(cfg).params)
    summary = sim.run(progress=False)
    assert summary.rounds == 30 and len(summary.metrics) == 30
    assert abs(summary.final_accuracy - ref.summary["final_accuracy"]) < 0.03, (
        summary.final_accuracy, ref.summary["final_accuracy"])
    # ξ and λ come from the Rust server: the first round's are the reference's.
    assert summary.metrics[0]["xi_norm"] == pytest.approx(ref.metrics[0]["xi_norm"], rel=1e-3)


class LayerNormNet(nn.Module):
    """A model the engine does not have: LayerNorm and GELU."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.LayerNorm(64),
                                  nn.GELU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SmallResNet(nn.Module):
    """A residual block with batch norm: running statistics per worker, under vmap too."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        return self.head(torch.relu(h + self.block(h)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make,path", [(LayerNormNet, "vmap"), (SmallResNet, "vmap")])
def test_models_the_engine_lacks_train_under_attack(make, path, device, synthetic):
    torch.manual_seed(0)
    cfg = {**SMALL, "rounds": 25, "eval_every": 25, "workers": 7, "byzantine": 2, "batch": 32,
           "aggregator": {"name": "trimmed_mean", "f": 2}, "attack": {"name": "little"},
           "optimizer": {"name": "dra", "lr": {"name": "constant", "value": 0.01}}}
    sim = bt.Simulation(make(), synthetic, synthetic, config=cfg, vmap=True, device=device)
    assert sim.gradient_path == path
    before = sim.evaluate()[0]
    summary = sim.run(progress=False)
    assert summary.final_accuracy > before + 0.2, (before, summary.final_accuracy)


class NoVmap(nn.Module):
    """An op vmap cannot batch (a data-dependent Python branch on a tensor's value)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum().item() > 0:  # .item() inside vmap raises
            return self.lin(x.flatten(1))
        return self.lin(x.flatten(1))


def test_a_model_vmap_cannot_batch_falls_back_and_says_so(synthetic):
    sim = bt.Simulation(NoVmap(), synthetic, config=SMALL, vmap=True)
    with pytest.warns(RuntimeWarning, match="vmap cannot batch this model"):
        _, g, _ = sim.gradients(1)
    assert sim.gradient_path == "loop" and "vmap cannot batch" in sim.fallback_reason
    assert np.isfinite(g).all()


def test_the_cpu_default_is_the_loop_on_channels_last_weights(synthetic):
    """On the CPU the default path is the per-worker loop and a convolutional model's 4-D
    weights are channels-last (kept so through the rounds), a model without 4-D weights is
    left as it is; the flat order is the same, and the gradients equal the default layout's
    to float32 rounding."""
    cfg = {**SMALL}
    start = byzadam.Server(cfg).params
    a = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=cfg, params=start)
    b = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=cfg, params=start,
                      channels_last=False)
    assert (a.gradient_path, a.channels_last, b.gradient_path, b.channels_last) == (
        "loop", True, "loop", False)
    assert "CPU" in a.fallback_reason
    for t in (1, 2):
        ia, ga, la = a.gradients(t)
        ib, gb, lb = b.gradients(t)
        assert ia == ib
        for w in range(len(ia)):
            assert relative(ga[w], gb[w]) < 1e-5, (t, w)
        assert np.allclose(la, lb, rtol=1e-5)
    # The server's flat vector went into the channels-last tensors in its own order.
    assert np.array_equal(bt.models.flat(a.model).detach().numpy(), a.server.params)
    a.step()
    conv = a.model[3].weight  # 20 → 20 channels (the first convolution's 1 is both layouts)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert b.model[3].weight.is_contiguous()
    # Neither a model without 4-D weights nor one with batch norm (see the docstring).
    assert not bt.Simulation(bt.models.logistic_regression(), synthetic, config=cfg).channels_last
    assert not bt.Simulation(SmallResNet(), synthetic, config=cfg).channels_last
    assert bt.Simulation(SmallResNet(), synthetic, config=cfg, channels_last=True).channels_last


def _tiny() -> float:
    """A float32 subnormal times one: 0.0 while the CPU flushes subnormals."""
    return float(torch.tensor(1e-39) * 1.0)


class Probe(nn.Module):
    """Records, at each forward, whether subnormals are flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 10)
        self.flushed: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.flushed.append(_tiny() == 0.0)
        return self.lin(x.flatten(1))


@pytest.mark.skipif(not torch.set_flush_denormal(False),
                    reason="this CPU has no control over subnormals")
def test_subnormals_are_flushed_within_the_gradients_and_evaluation_only(synthetic):
    from byzadam.torch.simulation import _denormals_flushed

    assert _tiny() != 0.0
    with _denormals_flushed(True):
        assert _tiny() == 0.0
    assert _tiny() != 0.0
    with _denormals_flushed(False):
        assert _tiny() != 0.0
    torch.set_flush_denormal(True)
    try:  # a user who flushes already keeps flushing
        with _denormals_flushed(True):
            assert _tiny() == 0.0
        assert _tiny() == 0.0
    finally:
        torch.set_flush_denormal(False)
    for flush in (True, False):
        sim = bt.Simulation(Probe(), synthetic, synthetic, config=SMALL, flush_denormal=flush)
        sim.step()  # the gradients and the evaluation (eval_every = 1)
        assert sim.model.flushed and set(sim.model.flushed) == {flush}
        assert _tiny() != 0.0


class TF32Probe(nn.Module):
    """Records, at each forward call, whether PyTorch may use TensorFloat-32."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(784, 10)
        self.seen: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return self.lin(x.flatten(1))


def test_tf32_is_off_within_the_gradients_and_evaluation_only():
    """By default the gradients and evaluations run with TensorFloat-32 off (PyTorch lets
    cuDNN use it for float32 convolutions: about 1e-3 from float32), and PyTorch's flags are
    as they were afterwards; ``tf32=True`` leaves them alone."""
    data = byzadam.data.load("synthetic", seed=0)
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, True
        for tf32, within in [(False, (False, False)), (True, (True, True))]:
            probe = TF32Probe()
            sim = bt.Simulation(probe, data, data, config=SMALL, tf32=tf32)
            sim.step()  # the gradients and the evaluation (eval_every = 1)
            assert probe.seen and set(probe.seen) == {within}, tf32
            assert (torch.backends.cudnn.allow_tf32,
                    torch.backends.cuda.matmul.allow_tf32) == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("device", DEVICES)
def test_a_byzantine_nan_row_is_data(device, synthetic):
    cfg = {**SMALL, "attack": {"name": "nan"}, "rounds": 3}
    summary = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=cfg,
                            device=device).run(progress=False)
    assert np.isfinite(summary.final_accuracy) and np.isfinite(summary.final_loss)


class Unlabelled(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int):
        return (torch.zeros(1, 28, 28),)


class WrongShape(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3, None] * self.scale


@pytest.mark.parametrize("call,error,message", [
    (lambda d: bt.Simulation(WrongShape(), d, config=SMALL).gradients(1), ValueError,
     r"output has shape \(16, 3, 1\): expected \(batch, classes\)"),
    (lambda d: bt.Simulation(nn.Sequential(nn.Flatten(), nn.Linear(784, 3)), d,
                             config=SMALL).gradients(1), ValueError, r"3 classes, the labels 10"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), Unlabelled(), config=SMALL), ValueError,
     r"no labels"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config=SMALL, device="nope"), ValueError,
     r"device 'nope' is not a torch device"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config=SMALL, device="cuda:7"),
     ValueError, r"cuda:7"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, d, config={
        **SMALL, "eval_samples": None, "eval_subset": [10**6]}),
     ValueError, r"eval_subset: index 1000000 is past the test set"),
    (lambda d: bt.Simulation("not a model", d, config=SMALL), TypeError, r"torch.nn.Module"),
    (lambda d: bt.Simulation(nn.ReLU(), d, config=SMALL), ValueError, r"no parameters"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), [1, 2], config=SMALL), TypeError,
     r"torch Dataset or byzadam.data.load's dict"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config=SMALL, params=np.zeros(5)),
     ValueError, r"params has 5 values, the model 176050"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config={**SMALL, "workers": 0}),
     byzadam.ByzadamError, r"workers"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config=SMALL).evaluate(), ValueError,
     r"no test set"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config=SMALL).run(), ValueError,
     r"give a test set"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, d, config=SMALL, eval_batch=0),
     ValueError, r"eval_batch must be a positive integer .* got 0"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, d, config=SMALL, eval_batch=-5),
     ValueError, r"eval_batch must be a positive integer .* got -5"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, d, config=SMALL, eval_batch=2.5),
     ValueError, r"eval_batch must be a positive integer .* got 2.5"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config=SMALL, channels_last="no"),
     TypeError, r"channels_last must be one of None, True, False, got 'no'"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config=SMALL, vmap=1),
     TypeError, r"vmap must be one of None, True, False, got 1"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config=SMALL, flush_denormal=None),
     TypeError, r"flush_denormal must be one of True, False, got None"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config=SMALL, tf32="off"),
     TypeError, r"tf32 must be one of True, False, got 'off'"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, config={**SMALL, "flush_subnormals": True}),
     ValueError, r"'flush_subnormals': not supported by the torch backend .* flush_denormal"),
    (lambda d: bt.Simulation(bt.models.mnist_cnn(), d, d, config=SMALL).run(
        checkpoint_every=float("nan")), ValueError,
     r"checkpoint_every must be a number of seconds >= 0, got nan"),
])
def test_bad_input_is_a_clear_exception(call, error, message, synthetic):
    with pytest.raises(error, match=message):
        call(synthetic)


def test_a_torch_dataset_is_accepted(synthetic):
    n = 2000
    x = torch.from_numpy(synthetic["train_images"][:n]).float() / 255.0
    y = torch.from_numpy(synthetic["train_labels"][:n].astype(np.int64))
    ds = torch.utils.data.TensorDataset(x, y)
    sim = bt.Simulation(bt.models.logistic_regression(), ds, ds, config={**SMALL, "rounds": 2})
    summary = sim.run(progress=False)
    assert 0.0 <= summary.final_accuracy <= 1.0 and summary.rounds == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_gradients_equal_cpus(synthetic):
    cfg = {**SMALL}
    start = byzadam.Server(cfg).params
    cpu = bt.Simulation(bt.models.mnist_cnn(), synthetic, config=cfg, params=start)
    gpu = bt.Simulation(bt.models.mnist_cnn(), synthetic, config=cfg, params=start,
                        device="cuda")
    _, a, _ = cpu.gradients(1)
    _, b, _ = gpu.gradients(1)
    for w in range(len(a)):
        assert relative(b[w], a[w]) < 1e-4


class EngineGradients(bt.Simulation):
    """The torch backend's round with the Rust engine's gradients fed in: what follows the
    gradients is then exactly the Rust simulator's."""

    def __init__(self, engine, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._engine_workers = engine.workers()

    def gradients(self, t):
        needs = self.server.needs_byzantine_messages
        active = [w for w in range(len(self.workers)) if needs or not self.server.is_byzantine(w)]
        out = [self._engine_workers[w].gradient(self.server.params) for w in active]
        return (active, np.stack([np.asarray(g, np.float32) for _, g in out]),
                np.array([loss for loss, _ in out], np.float32))


@pytest.mark.parametrize("optimizer", ["sgd", "resam", "dra", "mra"])
def test_the_round_after_the_gradients_is_the_rust_simulators(optimizer, synthetic):
    """The Rust engine's gradients through the torch backend's round: after 20 rounds the
    parameters and every round's training metrics are those of the Rust round, bit for bit."""
    cfg = byzadam.resolve({**SMALL, "rounds": 20, "eval_every": 20,
                           "optimizer": {"name": optimizer}, "attack": {"name": "alie"}})
    # The reference: the engine's own workers, the Rust halves (docs/python.md's loop).
    server, engine = byzadam.Server(cfg), byzadam.Engine(cfg)
    workers = engine.workers()
    reference = []
    for _ in range(20):
        messages, losses = engine_messages(server, workers)
        reference.append(server.step(list(messages), losses))
    sim = EngineGradients(byzadam.Engine(cfg), bt.models.mnist_cnn(), synthetic, config=cfg,
                          params=byzadam.Server(cfg).params)
    for _ in range(20):
        sim.step()
    assert np.array_equal(sim.server.params, server.params)
    for mine, theirs in zip(sim.metrics, reference):
        for key in ("train_loss", "xi_norm", "lambda", "diverged"):
            assert mine[key] == theirs[key] or (mine[key] != mine[key] and theirs[key] != theirs[key]), key


def test_the_quickstart_with_the_torch_backend_ends_where_byzadam_run_does(data_dir):
    """The quickstart (DRA, trimmed mean, Little, 15 workers on MNIST, 300 rounds; evaluated
    once, at the end, to keep CI short) from the engine's initial parameters: the torch
    backend's final accuracy is within 0.5 points of byzadam.run's."""
    cfg = byzadam.resolve(None, set=["eval_every=300"])
    ref = byzadam.run(cfg, data_dir=data_dir, progress=False)
    mnist = byzadam.data.load("mnist", data_dir)
    sim = bt.Simulation(bt.models.mnist_cnn(), mnist, mnist, config=cfg,
                        params=byzadam.Server(cfg).params)
    summary = sim.run(progress=False)
    assert abs(summary.final_accuracy - ref.final_accuracy) <= 0.005, (
        summary.final_accuracy, ref.final_accuracy)


def test_a_checkpointed_run_resumes_with_the_same_bits(synthetic, tmp_path):
    """Three rounds, a checkpoint, a fresh simulation restored from it, three more rounds:
    the parameters, the batch-norm statistics and the metrics of six rounds straight."""
    cfg = {**SMALL, "rounds": 6, "eval_every": 3, "optimizer": {"name": "mra"},
           "aggregator": {"name": "centered_clipping", "tau": 1.0}, "attack": {"name": "alie"}}
    torch.manual_seed(3)
    start = bt.models.flat(SmallResNet()).detach().numpy()

    def make():
        torch.manual_seed(3)
        return bt.Simulation(SmallResNet(), synthetic, synthetic, config=cfg, params=start)

    straight = make()
    straight.run(progress=False)
    first = make()
    for _ in range(3):
        first.step()
    state = first.checkpoint()
    second = make()
    second.restore(state)
    assert second.server.round == 3 and len(second.metrics) == 3
    summary = second.run(progress=False)
    assert np.array_equal(second.server.params, straight.server.params)
    assert second.metrics == straight.metrics
    for w in range(cfg["workers"]):
        for k, v in straight._worker_buffers[w].items():
            assert torch.equal(second._worker_buffers[w][k], v)
    assert summary.final_accuracy == straight.metrics[-1]["eval"]["accuracy"]
    # Through a file, as run(checkpoint=...) does: resumed, then deleted at the end.
    path = tmp_path / "run.ckpt"
    path.write_bytes(state)
    third = make()
    third.run(progress=False, checkpoint=str(path))
    assert np.array_equal(third.server.params, straight.server.params)
    assert not path.exists()
    # Another config's checkpoint: refused, nothing changed.
    other = bt.Simulation(SmallResNet(), synthetic, config={**cfg, "seed": 9}, params=start)
    with pytest.raises(ValueError, match="another config"):
        other.restore(state)
    assert other.server.round == 0
    with pytest.raises(ValueError, match="not a byzadam.torch checkpoint"):
        other.restore(b"garbage")


def test_metrics_go_to_tensorboard(synthetic, tmp_path):
    """Every round's metrics as TensorBoard scalars, read back from the event file: the same
    values (float32, as TensorBoard stores them) at the same steps."""
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = {**SMALL, "rounds": 4, "eval_every": 2}
    sim = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=cfg)
    sim.run(progress=False, tensorboard=str(tmp_path / "tb"))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = {tag: {e.step: e.value for e in events.Scalars(tag)}
               for tag in events.Tags()["scalars"]}
    expected = {"train/loss": "train_loss", "train/lr": "lr", "robustness/xi_norm": "xi_norm",
                "robustness/honest_diameter": "honest_diameter", "robustness/lambda": "lambda"}
    for tag, key in expected.items():
        assert scalars[tag] == {m["round"]: np.float32(m[key]) for m in sim.metrics}, tag
    evaluated = [m for m in sim.metrics if m.get("eval")]
    assert [m["round"] for m in evaluated] == [2, 4]
    for tag, key in [("test/accuracy", "accuracy"), ("test/loss", "loss")]:
        assert scalars[tag] == {m["round"]: np.float32(m["eval"][key]) for m in evaluated}


def test_tensorboard_without_the_package_is_a_clear_error(synthetic, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    sim = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=SMALL)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        sim.run(progress=False, tensorboard=str(tmp_path / "tb"))
    assert sim.server.round == 0


def test_init_starts_both_backends_from_the_file(synthetic, tmp_path):
    """`init`: a flat .npy of initial parameters serves `byzadam run` and the torch backend
    alike; the resolved config pins the file's SHA-256; the torch backend with the file's
    parameters tracks the built-in engine as with `params=`."""
    import hashlib

    cfg = {**SMALL, "rounds": 2, "eval_every": 2}
    drawn = byzadam.Server(cfg).params
    path = tmp_path / "init.npy"
    np.save(path, (drawn * 0.5).astype(np.float64))  # float64 is narrowed, as documented
    with_init = byzadam.resolve({**cfg, "init": str(path)})
    assert with_init["init"] == {"path": str(path),
                                 "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert np.array_equal(byzadam.Server(with_init).params, (drawn * 0.5).astype(np.float32))
    sim = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=with_init)
    assert np.array_equal(sim.server.params, (drawn * 0.5).astype(np.float32))
    explicit = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=cfg,
                             params=(drawn * 0.5).astype(np.float32))
    sim.run(progress=False)
    explicit.run(progress=False)
    assert sim.metrics == explicit.metrics
    # byzadam.run from a file of the parameters it would draw: the same run, bit for bit.
    same = tmp_path / "same.npy"
    np.save(same, drawn)
    a = byzadam.run({**cfg, "init": str(same)}, progress=False)
    b = byzadam.run(cfg, progress=False)
    assert a.metrics == b.metrics and a.config["init"]["path"] == str(same)
    with pytest.raises(ValueError, match="give one"):
        bt.Simulation(bt.models.mnist_cnn(), synthetic, config=with_init, params=drawn)
    with pytest.raises(ValueError, match=r"init \(.*\) has \d+ values, the model 7850"):
        bt.Simulation(bt.models.logistic_regression(), synthetic, config=with_init)
    np.save(path, np.zeros_like(drawn))
    with pytest.raises(byzadam.ByzadamError, match="has changed since"):
        bt.Simulation(bt.models.mnist_cnn(), synthetic, config=with_init)


CODE_PROFILE = {"head": "softmax_then_cross_entropy", "shared_first_shuffle": True,
                "normalize_inputs": False}


def test_the_code_profiles_options_give_the_engines_gradients(synthetic):
    """The thesis's code's softmax head and shared first epoch (and unnormalised inputs):
    the same batches and gradients as the engine's workers, round after round (relative
    1e-4), so the torch backend runs the code profile."""
    cfg = {**SMALL, **CODE_PROFILE, "attack": "none", "byzantine": 0}
    server = byzadam.Server(cfg)
    engine = byzadam.Engine(cfg)
    workers = engine.workers()
    sim = bt.Simulation(bt.models.mnist_cnn(), synthetic, config=cfg, params=server.params)
    first = []
    for t in (1, 2):
        rust = [w.gradient(server.params) for w in workers]
        _, grads, losses = sim.gradients(t)
        for w, (loss, g) in enumerate(rust):
            assert relative(grads[w], np.asarray(g)) < 1e-4, (t, w)
            assert abs(losses[w] - loss) < 1e-4 * max(1.0, abs(loss)), (t, w)
        first.append(grads)
    # The shared first epoch is what the engine does: without it the batches differ.
    other = bt.Simulation(bt.models.mnist_cnn(), synthetic,
                          config={**cfg, "shared_first_shuffle": False}, params=server.params)
    assert relative(other.gradients(1)[1][0], first[0][0]) > 1e-3


def test_training_mode_evaluation_is_the_engines(data_dir):
    """``training_mode_eval``: each test batch's own batch-norm statistics (dropout off, so
    nothing random): the same accuracy and loss as the engine's training-mode evaluation;
    another batch size, another loss; evaluation mode differs; the module's running
    statistics are left as they were."""
    cfg = {**SMALL, "dataset": "cifar10", "model": {"name": "cifar10_cnn", "dropout": 0.0},
           "workers": 2, "byzantine": 0, "attack": "none", "aggregator": {"name": "average"},
           "batch": 8, "eval_samples": 24, "training_mode_eval": {"batch": 6}}
    params = byzadam.Server(cfg).params
    engine = byzadam.Engine(cfg, data_dir=data_dir)
    acc, loss = engine.evaluate(params, engine.workers(), 1)
    cifar = byzadam.data.load("cifar10", data_dir)
    model = bt.models.from_config(cfg["model"])
    sim = bt.Simulation(model, cifar, cifar, config=cfg, params=params)
    before = {k: v.clone() for k, v in model.named_buffers()}
    got_acc, got_loss = sim.evaluate(1)
    assert got_acc == acc
    assert abs(got_loss - loss) < 1e-4 * max(1.0, abs(loss))
    assert all(torch.equal(v, before[k]) for k, v in model.named_buffers())
    other = bt.Simulation(bt.models.from_config(cfg["model"]), cifar, cifar,
                          config={**cfg, "training_mode_eval": {"batch": 4}}, params=params)
    assert abs(other.evaluate(1)[1] - got_loss) > 1e-6
    plain = bt.Simulation(bt.models.from_config(cfg["model"]), cifar, cifar,
                          config={k: v for k, v in cfg.items() if k != "training_mode_eval"},
                          params=params)
    assert abs(plain.evaluate(1)[1] - got_loss) > 1e-6


def test_training_mode_evaluation_draws_dropout_from_the_rounds_stream(synthetic):
    """With dropout on, a training-mode evaluation is the same for the same round and seed,
    and another for another round (its masks are drawn per round); the user's generator is
    left as it was."""
    cfg = {**SMALL, "model": {"name": "mlp", "hidden": [64]}, "training_mode_eval": {"batch": 50}}

    class Dropping(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = bt.models.from_config(cfg["model"])
            self.drop = nn.Dropout(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(self.drop(x))

    params = byzadam.Server(cfg).params
    runs = [bt.Simulation(Dropping(), synthetic, synthetic, config=cfg, params=params)
            for _ in range(2)]
    state = torch.random.get_rng_state()
    first = runs[0].evaluate(3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert runs[1].evaluate(3) == first
    assert runs[0].evaluate(3) == first
    assert runs[0].evaluate(4)[1] != first[1]


def test_evaluation_on_an_eval_subset_with_the_softmax_head_is_the_engines(synthetic):
    cfg = {**SMALL, **CODE_PROFILE, "eval_samples": None,
           "eval_subset": [5, 0, 17, 3, 250, 42]}
    params = byzadam.Server(cfg).params
    engine = byzadam.Engine(cfg)
    acc, loss = engine.evaluate(params, engine.workers(), 1)
    sim = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic, config=cfg, params=params)
    got_acc, got_loss = sim.evaluate()
    assert got_acc == acc
    assert abs(got_loss - loss) < 1e-5 * max(1.0, abs(loss))
    # The subset, not the first eval_samples images: another subset, another loss.
    other = bt.Simulation(bt.models.mnist_cnn(), synthetic, synthetic,
                          config={**cfg, "eval_subset": [1, 2, 4, 6, 7, 8]}, params=params)
    assert other.evaluate()[1] != got_loss


@pytest.mark.parametrize("vmap", [False, True])
def test_the_largest_run_seeds_draw_dropout_reproducibly(vmap, synthetic):
    """Every seed ``byzadam run`` accepts (up to 2^63 − 1) runs: the dropout seeds derived
    from it (seed · 1,000,003 + …) pass 2^63, where torch's generators refuse them ("Overflow
    when unpacking long long"); they are taken modulo 2^63. The same seed gives the same bits
    twice, another seed other masks, and a seed below 2^43 the masks it always had."""
    cfg = {**SMALL, "model": {"name": "mlp", "hidden": [32]}, "byzantine": 0,
           "attack": "none", "aggregator": {"name": "average"},
           "training_mode_eval": {"batch": 50}}

    def dropping() -> nn.Module:
        torch.manual_seed(3)
        return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10))

    def run(seed: int):
        c = {**cfg, "seed": seed}
        sim = bt.Simulation(dropping(), synthetic, synthetic, config=c, vmap=vmap)
        metrics = [sim.step() for _ in range(2)]
        return sim.server.params.copy(), [m["train_loss"] for m in metrics], sim.evaluate(2)

    for seed in [2**62 + 12345, 2**63 - 1]:
        a, b = run(seed), run(seed)
        assert np.isfinite(a[0]).all()
        assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    assert not np.array_equal(run(2**62 + 12345)[0], run(2**63 - 1)[0])
    # Below 2^43 the derived seeds are what they were before the modulus: the first round's
    # masks are those of generator seed · 1,000,003 + 4099 + w.
    sim = bt.Simulation(dropping(), synthetic, config={**cfg, "seed": 7}, vmap=False)
    # Worker 0's first batch, from a fresh sampler (the simulation's moves on in gradients()).
    fresh = bt.Simulation(dropping(), synthetic, config={**cfg, "seed": 7})
    (x, y), = sim._batches([0], [np.asarray(fresh._samplers[0].next_batch())])
    _, g, _ = sim.gradients(1)
    model = dropping()
    model.load_state_dict(sim.model.state_dict())
    torch.manual_seed(7 * 1_000_003 + 4099)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    expected = torch.cat([p.reshape(-1) for p in grads])
    assert np.array_equal(g[0], expected.numpy())
