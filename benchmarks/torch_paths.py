"""What ``byzadam.torch``'s CPU defaults buy, gradients only, one process, interleaved:
``--sets`` times, each variant computes one round's worker gradients ``--repeats`` times; the
medians over the sets of the milliseconds per round are printed with their ratio to the
default (``Simulation``'s ``vmap=None``, ``channels_last=None``, ``flush_denormal=True``).

1. Paths and layouts: the per-worker loop and vmap, each on the default (contiguous) and the
   channels-last layout, for the thesis's MNIST CNN (10 workers × 25 images) and CIFAR-10 CNN
   (5 workers × 25 images, batch norm), on random images (the gradients' cost does not
   depend on the values there).
2. Subnormals: the MNIST CNN's ten gradients at the parameters of a run trained
   ``--trained-rounds`` rounds (the thesis's MNIST setting of ``benchmarks/byzfl_baseline.py``:
   RESAM lr 0.75 β 0.99, trimmed mean, ALIE; real MNIST), on that run's next batches, with
   subnormal floats flushed (the default) and kept (``flush_denormal=False``).

    BYZADAM_DATA_DIR=../shared/data python benchmarks/torch_paths.py --sets 5

Report with the CPU model (``lscpu``) and the command, as BENCHMARKS.md does.
"""
import argparse
import os
import statistics
import sys
import time

_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
os.environ.setdefault("RAYON_NUM_THREADS", _threads)

import numpy as np
import torch

import byzadam
import byzadam.torch as bt

p = argparse.ArgumentParser()
p.add_argument("--sets", type=int, default=5)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--trained-rounds", type=int, default=100)
p.add_argument("--skip-cifar", action="store_true", help="the CIFAR-10 CNN takes ~1 s a round")
args = p.parse_args()
torch.set_num_threads(args.threads)


def synthetic(shape, n):
    g = torch.Generator().manual_seed(0)
    x = torch.randn((n,) + shape, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return torch.utils.data.TensorDataset(x, y)


def variant(make, data, workers, vmap, channels_last, flush=True, params=None):
    cfg = {"dataset": "synthetic", "workers": workers, "byzantine": 0, "attack": "none",
           "batch": 25, "rounds": 1000, "eval_every": 1000,
           "aggregator": {"name": "average"}}
    sim = bt.Simulation(make(), data, config=cfg, vmap=vmap, channels_last=channels_last,
                        flush_denormal=flush, params=params, labels=data.tensors[1].numpy())
    batches = [sim._batch(w, np.asarray(sim._samplers[w].next_batch())) for w in range(workers)]
    start = sim.server.params
    return lambda: sim._gradients_at(start, 1, list(range(workers)), batches)


def measure(variants):
    times = {name: [] for name in variants}
    for f in variants.values():
        f()  # warm-up
    for _ in range(args.sets):
        for name, f in variants.items():
            t = time.perf_counter()
            for _ in range(args.repeats):
                f()
            times[name].append((time.perf_counter() - t) * 1e3 / args.repeats)
    return {name: statistics.median(ts) for name, ts in times.items()}


def table(title, med, base):
    print(f"\n{title}\n\n| variant | ms per round | × default |\n| --- | ---: | ---: |")
    for name, m in med.items():
        print(f"| {name} | {m:.1f} | {m / med[base]:.2f} |")


print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.sets} sets × "
      f"{args.repeats} repeats, medians over the sets")
models = [("MNIST CNN, 10 workers × 25", bt.models.mnist_cnn, (1, 28, 28), 10)]
if not args.skip_cifar:
    models.append(("CIFAR-10 CNN, 5 workers × 25", lambda: bt.models.cifar10_cnn(0.25),
                   (3, 32, 32), 5))
for title, make, shape, workers in models:
    data = synthetic(shape, 25 * workers * 4)
    med = measure({
        "default (None, None)": variant(make, data, workers, None, None),
        "loop, default layout": variant(make, data, workers, False, False),
        "loop, channels last": variant(make, data, workers, False, True),
        "vmap, default layout": variant(make, data, workers, True, False),
        "vmap, channels last": variant(make, data, workers, True, True),
    })
    table(title, med, "default (None, None)")

# 2. Subnormals, at trained parameters.
cfg = byzadam.resolve({
    "dataset": "mnist", "workers": 15, "byzantine": 5, "batch": 25, "rounds": 100000,
    "eval_every": 100000, "optimizer": {"name": "resam", "lr": {"name": "constant", "value": 0.75},
                                        "beta": 0.99},
    "aggregator": {"name": "trimmed_mean", "f": 5}, "attack": {"name": "a_little_is_enough"}})
mnist = byzadam.data.load("mnist")
sims = {flush: bt.Simulation(bt.models.mnist_cnn(), mnist, config=cfg, flush_denormal=flush)
        for flush in (True, False)}
trained = sims[True]
for _ in range(args.trained_rounds):
    trained.step()
params = trained.server.params
honest = [w for w in range(15) if not trained.server.is_byzantine(w)]
batches = [trained._batch(w, np.asarray(trained._samplers[w].next_batch())) for w in honest]
tiny = np.finfo(np.float32).tiny
_, g, _ = sims[False]._gradients_at(params, 1, honest, batches)
subnormal = int(((g != 0) & (np.abs(g) < tiny)).sum())
med = measure({f"subnormals {'flushed' if flush else 'kept'}":
               (lambda s=s: s._gradients_at(params, 1, honest, batches))
               for flush, s in sims.items()})
table(f"MNIST CNN, 10 gradients after {args.trained_rounds} rounds of RESAM + ALIE training "
      f"({subnormal} subnormal gradient values when kept)", med, "subnormals flushed")
