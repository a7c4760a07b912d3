"""Times ByzFL's implementations of the rules `byzadam bench` times, on the same shapes.

The baseline users know: ByzFL 0.0.11 (numpy and torch CPU inputs), n = 15, f = 5, float32,
random uniform(-1, 1) input, medians of interleaved repetitions (as `byzadam bench` does).

    python3 -m venv /tmp/bzenv && /tmp/bzenv/bin/pip install numpy byzfl==0.0.11
    /tmp/bzenv/bin/python benchmarks/byzfl_baseline.py [--dims 176050,1310922,11000000] [--repeats 5]

Prints a Markdown table. Set OMP_NUM_THREADS / torch threads to match the Rust run.
"""
import argparse
import time

import numpy as np
import torch
import byzfl

p = argparse.ArgumentParser()
p.add_argument("--dims", default="176050,1310922,11000000")
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--backend", default="numpy,torch")
args = p.parse_args()

N, F = 15, 5
rules = {
    "average": byzfl.Average(),
    "trimmed_mean": byzfl.TrMean(f=F),
    "median": byzfl.Median(),
    "mean_around_median": byzfl.Meamed(f=F),
    "minimum_diameter_averaging": byzfl.MDA(f=F),
    "krum": byzfl.Krum(f=F),
    "multi_krum": byzfl.MultiKrum(f=F),
    "nearest_neighbor_mixing": byzfl.NNM(f=F),
}
print(f"ByzFL 0.0.11, numpy {np.__version__}, torch {torch.__version__} "
      f"({torch.get_num_threads()} threads), n = {N}, f = {F}, {args.repeats} repeats (median)\n")
print("| d | backend | rule | median ms |")
print("| ---: | --- | --- | ---: |")
for dim in [int(d) for d in args.dims.split(",")]:
    x = np.random.default_rng(dim).uniform(-1, 1, size=(N, dim)).astype(np.float32)
    for backend in args.backend.split(","):
        data = x if backend == "numpy" else torch.from_numpy(x)
        times = {name: [] for name in rules}
        for name, rule in rules.items():  # warm-up
            rule(data.copy() if backend == "numpy" else data.clone())
        for _ in range(args.repeats):
            for name, rule in rules.items():
                inp = data.copy() if backend == "numpy" else data.clone()
                t = time.perf_counter()
                rule(inp)
                times[name].append((time.perf_counter() - t) * 1e3)
        for name, ts in times.items():
            print(f"| {dim} | {backend} | {name} | {np.median(ts):.3f} |", flush=True)
