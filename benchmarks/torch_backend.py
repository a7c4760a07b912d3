"""The torch backend's round (``byzadam.torch``) against the alternatives on the same work, in
one process, interleaved: ``--sets`` times, each engine runs ``--rounds`` rounds; the medians
over the sets of the per-round milliseconds are printed with their ratios to the torch
backend's round with its CPU defaults (the per-worker loop, channels-last weights, subnormals
flushed), measured in the same run.

The work: the thesis's MNIST setting of ``benchmarks/byzfl_baseline.py`` (the MNIST CNN,
15 workers of which 5 Byzantine, batch 25, RESAM, trimmed mean f = 5, ALIE), one thread
(``--threads``), on real MNIST batches.

- ``byzadam.torch``: ``bt.Simulation.step`` (gradients by torch, the rest in Rust), no
  evaluation; with its CPU defaults, vmap, and without the channels-last layout or the
  subnormal flushing (``channels_last=False``, ``flush_denormal=False``; "neither" is both
  off, the defaults before them).
- ``built-in engine``: the Rust engine's workers and server half (``byzadam.Engine``),
  driven from Python as docs/python.md's loop drives them (``step_into``).
- ``byzadam run``: the CLI on the same setting (``--cli``), its round end to end as the
  difference between a run of 61 rounds and a run of 1, in each set.
- ``PyTorch loop + ByzFL``: what a ByzFL user's round does: 10 honest gradients in a torch
  loop, RESAM's momentum in torch, ByzFL 0.0.11's ``ALittleIsEnough`` and ``TrMean`` on the
  momentum vectors, the SGD step in torch.
- ``ByzFL's own loop``: ByzFL 0.0.11's ``Client``/``ByzantineClient``/``Server`` classes as its
  documentation's training loop uses them: each round the server's state dict is loaded into
  each of the 10 honest clients, each client draws its batch from its own ``DataLoader``
  (shuffled, batch 25, over pre-normalised tensors: cheaper than the torchvision transforms
  ByzFL's own benchmark applies per image), computes its gradient and its RESAM momentum
  (``get_flat_gradients_with_momentum``), the ``ByzantineClient`` forges ALIE, and
  ``Server.update_model_with_gradients`` aggregates with ``TrMean`` and steps (SGD, lr 0.75).
  The same CNN (``bt.models.mnist_cnn``, registered in ByzFL's model table).
- ``PyTorch loop``: the 15 gradients alone, the floor for any torch-based round.
- ``byzadam.torch`` converts a convolutional model to channels-last weights on the CPU
  (``Simulation(channels_last=None)``); the ``default layout`` rows turn that off, and the
  ``channels last`` row gives the PyTorch loop the same conversion. (ByzFL 0.0.11's own loop
  cannot take it: its ``Client`` flattens the gradients with ``.view(-1)``, which raises on
  channels-last weights.)

    BYZADAM_DATA_DIR=../shared/data python benchmarks/torch_backend.py --sets 3 --rounds 10
    BYZADAM_DATA_DIR=../shared/data python benchmarks/torch_backend.py --sets 2 --whole-run 300

The first times rounds early in a run (each engine's first 1 + sets × rounds); the second
times whole runs, through the phases where training produces subnormal floats (which cost a
torch run that keeps them, ByzFL's included, up to 2.8× in its gradients:
``benchmarks/torch_paths.py``).

Report with the CPU model (``lscpu``) and the command, as BENCHMARKS.md does.
"""
import argparse
import os
import statistics
import sys
import time

# The built-in engine's pool: as many threads as torch gets (set before byzadam loads).
_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
os.environ.setdefault("RAYON_NUM_THREADS", _threads)

import numpy as np
import torch
import torch.nn.functional as F

import byzadam
import byzadam.torch as bt

p = argparse.ArgumentParser()
p.add_argument("--sets", type=int, default=3)
p.add_argument("--rounds", type=int, default=10)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--no-byzfl", action="store_true", help="skip the ByzFL round")
p.add_argument("--cli", default=os.environ.get("BYZADAM_CLI", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "byzadam")),
    help="the byzadam binary for the `byzadam run` row (default: $BYZADAM_CLI, else "
         "target/release/byzadam; the row is left out when it is missing)")
p.add_argument("--whole-run", type=int, default=0, metavar="R",
               help="instead: fresh runs of R rounds each (byzadam.torch with its defaults and "
                    "with subnormals kept, the built-in engine with its defaults and with "
                    "subnormals flushed, ByzFL's own loop), --sets times in turn; the mean "
                    "ms per round of each run (training phases with subnormals included)")
args = p.parse_args()
torch.set_num_threads(args.threads)

SETTING = {
    "dataset": "mnist", "workers": 15, "byzantine": 5, "batch": 25, "rounds": 100000,
    "eval_every": 100000, "optimizer": {"name": "resam", "lr": {"name": "constant", "value": 0.75},
                                        "beta": 0.99},
    "aggregator": {"name": "trimmed_mean", "f": 5}, "attack": {"name": "a_little_is_enough"}}
CFG = byzadam.resolve(SETTING)
# The built-in engine with subnormals flushed in its passes (the run option `flush_subnormals`).
FLUSHED = byzadam.resolve({**SETTING, "flush_subnormals": True})
mnist = byzadam.data.load("mnist")
start = byzadam.Server(CFG).params


def torch_backend(vmap, channels_last=None, flush_denormal=True):
    sim = bt.Simulation(bt.models.mnist_cnn(), mnist, config=CFG, params=start, vmap=vmap,
                        channels_last=channels_last, flush_denormal=flush_denormal)
    return lambda: sim.step()


def engine(cfg=CFG):
    server, eng = byzadam.Server(cfg), byzadam.Engine(cfg)
    workers = eng.workers()
    n, k, dim = server.workers, server.messages, server.dim

    # The server's message arrays are kept between rounds and each worker writes its
    # messages into its rows (`step_into`), as docs/python.md's loop does.
    messages = np.zeros((k, n, dim), np.float32)
    losses = np.zeros(n, np.float32)

    def step():
        params = server.params
        for w in workers:
            if w.byzantine and not server.needs_byzantine_messages:
                continue
            losses[w.index] = w.step_into(params, [m[w.index] for m in messages])
        server.step(list(messages), losses)
    return step


def toml(v):
    """A TOML inline value for `byzadam run --set` (the setting's strings, numbers, tables)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml(x)}" for k, x in v.items()) + "}"
    return f'"{v}"' if isinstance(v, str) else repr(v)


CLI_ROUNDS = 60


def cli_round_ms():
    """`byzadam run`'s round, the main job end to end (batches drawn from the homogeneous
    shards, gradients, messages, server step, ξ/λ, metrics.jsonl written each round): the
    difference between runs of 1 + CLI_ROUNDS and 1 round, divided by CLI_ROUNDS (startup,
    data loading and the evaluation after the last round cancel out)."""
    import subprocess
    import tempfile

    def run(rounds):
        sets = [f"{k}={toml(v)}" for k, v in {**SETTING, "rounds": rounds}.items()]
        with tempfile.TemporaryDirectory() as out:
            cmd = [args.cli, "run", "--threads", str(args.threads), "--quiet", "--out", out]
            for kv in sets:
                cmd += ["--set", kv]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter() - t
    return (run(1 + CLI_ROUNDS) - run(1)) * 1e3 / CLI_ROUNDS


def honest_batches():
    x = torch.from_numpy(mnist["train_images"][:25 * 10]).float().div(255).sub(0.1307).div(0.3081)
    y = torch.from_numpy(mnist["train_labels"][:25 * 10].astype(np.int64))
    return [(x[i * 25:(i + 1) * 25], y[i * 25:(i + 1) * 25]) for i in range(10)]


def cnn(channels_last: bool):
    model = bt.models.mnist_cnn()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def pytorch_loop(workers: int, channels_last: bool = False):
    model = cnn(channels_last)
    batches = (honest_batches() * 2)[:workers]

    def step():
        for x, y in batches:
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
    return step


def pytorch_byzfl():
    import byzfl

    model = bt.models.mnist_cnn()
    params = list(model.parameters())
    batches = honest_batches()
    momenta = [torch.zeros(sum(p.numel() for p in params)) for _ in batches]
    attack, rule = byzfl.ALittleIsEnough(), byzfl.TrMean(f=5)

    def step():
        for i, (x, y) in enumerate(batches):
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
            g = torch.cat([p.grad.reshape(-1) for p in params])
            momenta[i].mul_(0.99).add_(g, alpha=0.01)
        honest = torch.stack(momenta)
        byz = attack(honest)
        agg = rule(torch.cat([honest, byz.unsqueeze(0).repeat(5, 1)]))
        with torch.no_grad():
            flat = torch.nn.utils.parameters_to_vector(params) - 0.75 * agg
            torch.nn.utils.vector_to_parameters(flat, params)
    return step


def byzfl_own_loop():
    import byzfl
    import byzfl.fed_framework.models as byzfl_models

    # The default layout: ByzFL 0.0.11's Client flattens its gradients with ``.view(-1)``,
    # which refuses a channels-last model's weights.
    byzfl_models.byzadam_mnist_cnn = bt.models.mnist_cnn
    x = torch.from_numpy(mnist["train_images"][:6000]).float().div(255).sub(0.1307).div(0.3081)
    y = torch.from_numpy(mnist["train_labels"][:6000].astype(np.int64))
    shards = [torch.utils.data.TensorDataset(x[i::10], y[i::10]) for i in range(10)]
    clients = [byzfl.Client({
        "model_name": "byzadam_mnist_cnn", "device": "cpu", "loss_name": "CrossEntropyLoss",
        "LabelFlipping": False, "nb_labels": 10, "momentum": 0.99,
        "training_dataloader": torch.utils.data.DataLoader(shard, batch_size=25, shuffle=True),
        "store_per_client_metrics": False}) for shard in shards]
    test = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:100], y[:100]))
    server = byzfl.Server({
        "device": "cpu", "model_name": "byzadam_mnist_cnn", "optimizer_name": "SGD",
        "learning_rate": 0.75, "weight_decay": 0.0, "milestones": [], "learning_rate_decay": 1.0,
        "aggregator_info": {"name": "TrMean", "parameters": {"f": 5}}, "pre_agg_list": [],
        "test_loader": test})
    attacker = byzfl.ByzantineClient({"f": 5, "name": "ALittleIsEnough", "parameters": {}})

    def step():
        state = server.get_dict_parameters()
        for client in clients:
            client.set_model_state(state)
            client.compute_gradients()
        honest = [client.get_flat_gradients_with_momentum() for client in clients]
        server.update_model_with_gradients(honest + attacker.apply_attack(honest))
    return step


BASE = "byzadam.torch (CPU defaults)"
factories = {
    BASE: lambda: torch_backend(None),
    "byzadam.torch vmap": lambda: torch_backend(True),
    "byzadam.torch loop, default layout": lambda: torch_backend(False, channels_last=False),
    "byzadam.torch loop, subnormals kept": lambda: torch_backend(False, flush_denormal=False),
    "byzadam.torch loop, neither (the previous defaults but vmap)":
        lambda: torch_backend(False, False, False),
    "byzadam.torch vmap, neither (the previous defaults)":
        lambda: torch_backend(True, False, False),
    "built-in engine": engine,
    "built-in engine, subnormals flushed": lambda: engine(FLUSHED),
    "PyTorch loop (15 gradients)": lambda: pytorch_loop(15),
    "PyTorch loop (15 gradients), channels last": lambda: pytorch_loop(15, channels_last=True),
}
if not args.no_byzfl:
    factories["PyTorch loop + ByzFL"] = pytorch_byzfl
    factories["ByzFL's own loop"] = byzfl_own_loop

if args.whole_run:
    names = [BASE, "byzadam.torch loop, subnormals kept", "built-in engine",
             "built-in engine, subnormals flushed"]
    names += [] if args.no_byzfl else ["ByzFL's own loop"]
    runs = {name: [] for name in names}
    for _ in range(args.sets):
        for name in names:
            step = factories[name]()
            t = time.perf_counter()
            for _ in range(args.whole_run):
                step()
            runs[name].append((time.perf_counter() - t) * 1e3 / args.whole_run)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.sets} fresh "
          f"runs of {args.whole_run} rounds each, in turn\n")
    print(f"| run of | ms per round, each run | median | × {BASE} |")
    print("| --- | --- | ---: | ---: |")
    base = statistics.median(runs[BASE])
    for name, ts in runs.items():
        m = statistics.median(ts)
        print(f"| {name} | {', '.join(f'{t:.1f}' for t in ts)} | {m:.1f} | {m / base:.2f} |")
    sys.exit(0)

engines = {name: make() for name, make in factories.items()}
times = {name: [] for name in engines}
CLI = f"byzadam run (the CLI: rounds 2-{1 + CLI_ROUNDS})"
if os.path.exists(args.cli):
    times[CLI] = []
else:
    print(f"no byzadam binary at {args.cli} (--cli): the `byzadam run` row is left out")
for name, step in engines.items():  # warm-up
    step()
for s in range(args.sets):
    for name, step in engines.items():
        t = time.perf_counter()
        for _ in range(args.rounds):
            step()
        times[name].append((time.perf_counter() - t) * 1e3 / args.rounds)
    if CLI in times:
        times[CLI].append(cli_round_ms())
base = statistics.median(times[BASE])
print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.sets} sets × "
      f"{args.rounds} rounds, medians over the sets\n")
print(f"| round of | ms per round | × {BASE} |")
print("| --- | ---: | ---: |")
for name, ts in times.items():
    m = statistics.median(ts)
    print(f"| {name} | {m:.1f} | {m / base:.2f} |")
