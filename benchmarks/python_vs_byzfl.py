"""byzadam from Python against ByzFL 0.0.11, and the bindings' overhead over the Rust kernel.

For each robust rule both libraries have, and NNM, on n = 15 vectors with f = 5, float32 NumPy
input of dimension d (uniform(-1, 1), one seeded draw per d):

- byzadam: the Python call `rule(x)` (conversion, kernel, result array), median of `--pairs`
  calls;
- the Rust kernel alone on the same input, timed inside Rust in the same process into a warm
  output buffer, as the simulator runs it (`_core.Pipeline.time_kernel`), median of repeats:
  overhead = the median over back-to-back (call, kernel) pairs of call / kernel − 1 (the call's extra: reading the input, a fresh output array, the
  GIL released and taken back; pre-aggregators also copy their n × d output into it). On a
  shared machine the pairs scatter by ±10 %, so the table also gives the call's fixed cost,
  measured on n × 8 input where the kernel takes microseconds, as a share of the kernel's time;
- ByzFL with NumPy input and with torch CPU tensors: its faster backend is the baseline.

Each library is timed in its own steady state, byzadam first (every rule), then ByzFL: a
warm-up call, then `repeats` consecutive calls, the median reported (ByzFL's input copies made
outside the timer; a ByzFL rule slower than `--byzfl-budget` seconds per call is timed once).
Interleaving the two libraries would let ByzFL's allocations and torch's spinning OpenMP
threads slow the byzadam call that follows.

    python3 -m venv /tmp/bzenv && /tmp/bzenv/bin/pip install numpy torch byzfl==0.0.11 ./python
    /tmp/bzenv/bin/python benchmarks/python_vs_byzfl.py [--dims 176050,1310922] [--repeats 7]

Prints the machine (CPU model, vector extensions, threads) and a Markdown table.
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
import byzfl

import byzadam
from byzadam import _core

p = argparse.ArgumentParser()
p.add_argument("--dims", default="176050,1310922")
p.add_argument("--repeats", type=int, default=7)
p.add_argument("--rules", default="", help="comma-separated subset of the rules (default: all)")
p.add_argument("--pairs", type=int, default=21,
               help="back-to-back (Python call, Rust kernel) pairs for the overhead")
p.add_argument("--byzfl-budget", type=float, default=20.0,
               help="seconds: a ByzFL rule slower than this per call is timed once")
args = p.parse_args()

N, F = 15, 5
RULES = [
    ("trimmed_mean", lambda: byzadam.TrMean(f=F), lambda: byzfl.TrMean(f=F)),
    ("median", lambda: byzadam.Median(), lambda: byzfl.Median()),
    ("mean_around_median", lambda: byzadam.Meamed(f=F), lambda: byzfl.Meamed(f=F)),
    ("minimum_diameter_averaging", lambda: byzadam.MDA(f=F), lambda: byzfl.MDA(f=F)),
    ("krum", lambda: byzadam.Krum(f=F), lambda: byzfl.Krum(f=F)),
    ("multi_krum", lambda: byzadam.MultiKrum(f=F), lambda: byzfl.MultiKrum(f=F)),
    ("geometric_median", lambda: byzadam.GeometricMedian(nu=0.1, T=3), lambda: byzfl.GeometricMedian(nu=0.1, T=3)),
    ("centered_clipping", lambda: byzadam.CenteredClipping(tau=100.0, L=1), lambda: byzfl.CenteredClipping(tau=100.0, L=1)),
    ("monna", lambda: byzadam.MoNNA(f=F), lambda: byzfl.MoNNA(f=F)),
    ("covariance_filter", lambda: byzadam.CAF(f=F), lambda: byzfl.CAF(f=F)),
    ("smallest_eigenvalue_averaging", lambda: byzadam.SMEA(f=F), lambda: byzfl.SMEA(f=F)),
    ("nearest_neighbor_mixing", lambda: byzadam.NNM(f=F), lambda: byzfl.NNM(f=F)),
]


if args.rules:
    wanted = set(args.rules.split(","))
    RULES = [r for r in RULES if r[0] in wanted]


def cpu():
    model, flags = platform.processor(), set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    ext = [e for e in ["avx2", "fma", "avx512f", "avx512bw", "avx512vl"] if e in flags]
    return model, ext


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


model, ext = cpu()
print(f"CPU: {model}; vector extensions: {', '.join(ext) or 'none of avx2/fma/avx512'}; "
      f"{os.cpu_count()} logical cores; torch {torch.__version__} ({torch.get_num_threads()} threads), "
      f"numpy {np.__version__}, ByzFL 0.0.11, byzadam {byzadam.__version__}; n = {N}, f = {F}, "
      f"float32 NumPy input, medians of {args.repeats} consecutive calls after a warm-up\n")
# The call's fixed cost (argument checks, reading the array, the GIL released and taken back,
# the result array), measured where the kernel is negligible: n = 15 vectors of d = 8, the
# median of call − kernel over many back-to-back pairs.
tiny = np.random.default_rng(8).uniform(-1, 1, size=(N, 8)).astype(np.float32)
fixed = {}
for name, make, _ in RULES:
    rule = make()
    kernel = (_core.PreAggregator if isinstance(rule, byzadam.PreAggregator) else _core.Pipeline)(
        json.dumps(rule.config()))
    rule(tiny)
    diffs = []
    for _ in range(201):
        if hasattr(rule, "reset"):
            rule.reset()
        c = timed(lambda: rule(tiny))
        diffs.append(c - kernel.time_kernel(tiny, 1)[0])
    fixed[name] = statistics.median(diffs)

print("| d | rule | byzadam call ms | Rust kernel ms | fixed cost µs (% of kernel) | paired call / kernel − 1 | ByzFL numpy ms | ByzFL torch ms | speed-up vs faster ByzFL |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for dim in [int(d) for d in args.dims.split(",")]:
    x = np.random.default_rng(dim).uniform(-1, 1, size=(N, dim)).astype(np.float32)
    xt = torch.from_numpy(x.copy())
    ours = {name: make() for name, make, _ in RULES}
    # The same rule in Rust alone, for the kernel-only timing.
    kernels = {}
    for name, _, _ in RULES:
        cfg = json.dumps(ours[name].config())
        kernels[name] = (_core.PreAggregator(cfg) if isinstance(ours[name], byzadam.PreAggregator)
                         else _core.Pipeline(cfg))
    t_call = {n: [] for n, _, _ in RULES}
    t_kernel = {n: [] for n, _, _ in RULES}
    t_np = {n: [] for n, _, _ in RULES}
    t_torch = {n: [] for n, _, _ in RULES}
    slow = set()
    # Phase 1, byzadam alone: ByzFL's runs (their allocations, torch's spinning OpenMP
    # threads) would otherwise take the cores and the caches from the next byzadam call.
    # The overhead is the median of call / kernel over back-to-back pairs, so the machine's
    # drift (it is shared) cancels within each pair.
    ratio = {n: [] for n, _, _ in RULES}
    for name, _, _ in RULES:
        rule, kernel = ours[name], kernels[name]
        rule(x)
        for _ in range(max(args.repeats, args.pairs)):
            if hasattr(rule, "reset"):
                rule.reset()
            c = timed(lambda: rule(x))
            k = kernel.time_kernel(x, 1)[0]
            t_call[name].append(c)
            t_kernel[name].append(k)
            ratio[name].append(c / k)
    # Phase 2, ByzFL, each backend in its steady state; the input copies it gets (it may
    # write to them) are made outside the timer.
    for name, _, theirs in RULES:
        for backend, data, times in [("numpy", x, t_np), ("torch", xt, t_torch)]:
            inp = data.copy() if backend == "numpy" else data.clone()
            first = timed(lambda: theirs()(inp))
            if first > args.byzfl_budget:
                slow.add(name)
                times[name].append(first)
                continue
            for _ in range(args.repeats):
                a = theirs()
                inp = data.copy() if backend == "numpy" else data.clone()
                times[name].append(timed(lambda: a(inp)))
    for name, _, _ in RULES:
        call = statistics.median(t_call[name]) * 1e3
        kern = statistics.median(t_kernel[name]) * 1e3
        tn = statistics.median(t_np[name]) * 1e3
        tt = statistics.median(t_torch[name]) * 1e3
        mark = " (1 run)" if name in slow else ""
        fx = fixed[name] * 1e6
        print(f"| {dim} | {name} | {call:.2f} | {kern:.2f} | {fx:.1f} ({fx / 10 / kern:.2f} %) | "
              f"{100 * (statistics.median(ratio[name]) - 1):+.1f} % | "
              f"{tn:.1f}{mark} | {tt:.1f}{mark} | {min(tn, tt) / call:.1f}× |", flush=True)
