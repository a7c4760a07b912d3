"""byzadam's CPU engine against PyTorch on the same work, interleaved: `--sets` times, run
`byzadam bench-engine` (and any `--also` builds of byzadam, e.g. an older commit, or the same
build with other arguments, e.g. `--im2col`) and then
`benchmarks/pytorch_round.py` for each model, one after the other, so that machine noise hits
every engine alike; print each set and the medians over the sets with their ratios.

    /tmp/bzenv/bin/python benchmarks/engine_vs_pytorch.py --byzadam target/release/byzadam \
        --sets 3 --repeats 5 --threads 1

Run it with a Python that has torch (see BENCHMARKS.md); byzadam builds are run with
RAYON_NUM_THREADS set to --threads.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

p = argparse.ArgumentParser()
p.add_argument("--byzadam", default="target/release/byzadam", help="the build to measure")
p.add_argument("--also", action="append", default=[],
               help="more byzadam builds or settings: LABEL=PATH [ARGS...], e.g. 'im2col=target/release/byzadam --im2col'")
p.add_argument("--sets", type=int, default=3)
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--models", default="mnist,cifar10")
args = p.parse_args()

here = os.path.dirname(os.path.abspath(__file__))
builds = [("byzadam", args.byzadam)] + [tuple(a.split("=", 1)) for a in args.also]
models = args.models.split(",")
env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
# results[(engine, model)] = list of (round ms, eval img/s), one per set
results = {}


def byzadam(label, command):
    path, *extra = command.split()
    out = subprocess.run([path, "bench-engine", "--repeats", str(args.repeats), "--models", ",".join(models)] + extra,
                         env=env, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\| (\w+) \| \d+ \| ([\d.]+) \| ([\d.]+) \|", line)
        if m:
            results.setdefault((label, m.group(1)), []).append((float(m.group(2)), float(m.group(3))))
            print(f"  {label} {m.group(1)}: round {m.group(2)} ms, eval {m.group(3)} img/s", flush=True)


def pytorch(model):
    out = subprocess.run([sys.executable, os.path.join(here, "pytorch_round.py"), "--model",
                          "mnist" if model == "mnist" else "cifar", "--repeats", str(args.repeats),
                          "--threads", str(args.threads)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"median ([\d.]+) ms; eval ([\d.]+) img/s", out)
    results.setdefault(("pytorch", model), []).append((float(m.group(1)), float(m.group(2))))
    print(f"  pytorch {model}: round {m.group(1)} ms, eval {m.group(2)} img/s", flush=True)


import torch  # noqa: E402  (only for the version)

for s in range(args.sets):
    print(f"set {s + 1} of {args.sets}", flush=True)
    for label, path in builds:
        byzadam(label, path)
    for model in models:
        pytorch(model)

print(f"\nmedians over {args.sets} sets, {args.threads} thread(s), PyTorch {torch.__version__}\n")
print("| model | engine | round ms | vs PyTorch | eval img/s | vs PyTorch |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for model in models:
    pt_round = statistics.median(r for r, _ in results[("pytorch", model)])
    pt_eval = statistics.median(e for _, e in results[("pytorch", model)])
    for label, _ in builds + [("pytorch", None)]:
        rows = results[(label, model)]
        r = statistics.median(x for x, _ in rows)
        e = statistics.median(y for _, y in rows)
        print(f"| {model} | {label} | {r:.1f} | {r / pt_round:.2f} | {e:.0f} | {e / pt_eval:.2f} |")
