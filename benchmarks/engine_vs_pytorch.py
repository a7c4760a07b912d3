"""byzadam's CPU engine against PyTorch on the same work, interleaved: `--sets` times, run
`byzadam bench-engine` (and any `--also` builds of byzadam, e.g. an older commit, or the same
build with other arguments, e.g. `--im2col`) and then
`benchmarks/pytorch_round.py` for each model, one after the other, so that machine noise hits
every engine alike; print each set, the medians over the sets with their ratios, and each
set's own ratios to PyTorch with their median (steadier on a noisy machine).

    /tmp/bzenv/bin/python benchmarks/engine_vs_pytorch.py --byzadam target/release/byzadam \
        --sets 3 --repeats 5 --threads 1

With `--levels avx512,avx2,portable` every engine runs once per CPU level (byzadam with
`BYZADAM_CPU`, PyTorch with `ATEN_CPU_CAPABILITY` and `DNNL_MAX_CPU_ISA` set to the same
level), and each level gets its own table, its ratios to PyTorch at that level:

    /tmp/pyvenv/bin/python benchmarks/engine_vs_pytorch.py --levels avx512,avx2,portable \
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
p.add_argument("--levels", default="",
               help="CPU levels, comma-separated (avx512, avx2, portable); default: the machine's best, unrestricted")
args = p.parse_args()
# PyTorch restricted to the same level: ATen's kernels and oneDNN's ISA.
TORCH_LEVEL = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "DNNL_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"},
    "portable": {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "SSE41"},
}
levels = [l for l in args.levels.split(",") if l] or [None]
for l in levels:
    if l is not None and l not in TORCH_LEVEL:
        p.error(f"unknown level {l!r}: use avx512, avx2 or portable")

here = os.path.dirname(os.path.abspath(__file__))
builds = [("byzadam", args.byzadam)] + [tuple(a.split("=", 1)) for a in args.also]
models = args.models.split(",")
env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
# results[(engine, model)] = list of (round ms, eval img/s), one per set
results = {}


def byzadam(label, command, level):
    path, *extra = command.split()
    e = dict(env, BYZADAM_CPU=level) if level else env
    out = subprocess.run([path, "bench-engine", "--repeats", str(args.repeats), "--models", ",".join(models)] + extra,
                         env=e, capture_output=True, text=True, check=True).stdout
    label = f"{label}@{level}" if level else label
    for line in out.splitlines():
        m = re.match(r"\| (\w+) \| \d+ \| ([\d.]+) \| ([\d.]+) \|", line)
        if m:
            results.setdefault((label, m.group(1)), []).append((float(m.group(2)), float(m.group(3))))
            print(f"  {label} {m.group(1)}: round {m.group(2)} ms, eval {m.group(3)} img/s", flush=True)


def pytorch(model, level):
    e = dict(os.environ, **TORCH_LEVEL[level]) if level else None
    out = subprocess.run([sys.executable, os.path.join(here, "pytorch_round.py"), "--model",
                          "mnist" if model == "mnist" else "cifar", "--repeats", str(args.repeats),
                          "--threads", str(args.threads)], env=e, capture_output=True, text=True, check=True).stdout
    m = re.search(r"median ([\d.]+) ms; eval ([\d.]+) img/s", out)
    label = f"pytorch@{level}" if level else "pytorch"
    results.setdefault((label, model), []).append((float(m.group(1)), float(m.group(2))))
    print(f"  {label} {model}: round {m.group(1)} ms, eval {m.group(2)} img/s", flush=True)


import torch  # noqa: E402  (only for the version)

for s in range(args.sets):
    print(f"set {s + 1} of {args.sets}", flush=True)
    for level in levels:
        for label, path in builds:
            byzadam(label, path, level)
        for model in models:
            pytorch(model, level)

print(f"\nmedians over {args.sets} sets, {args.threads} thread(s), PyTorch {torch.__version__}")
for level in levels:
    at = f"@{level}" if level else ""
    print(f"\nlevel: {level or 'the machine best'}\n")
    print("| model | engine | round ms | vs PyTorch | eval img/s | vs PyTorch |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for model in models:
        pt_round = statistics.median(r for r, _ in results[(f"pytorch{at}", model)])
        pt_eval = statistics.median(e for _, e in results[(f"pytorch{at}", model)])
        for label, _ in builds + [("pytorch", None)]:
            label = f"{label}{at}"
            rows = results[(label, model)]
            r = statistics.median(x for x, _ in rows)
            e = statistics.median(y for _, y in rows)
            print(f"| {model} | {label} | {r:.1f} | {r / pt_round:.2f} | {e:.0f} | {e / pt_eval:.2f} |")
    # Each set's own ratio (the engines of one set ran minutes apart, PyTorch's sets apart):
    # on a noisy machine their median is steadier than the ratio of the medians above.
    print()
    for model in models:
        pt = results[(f"pytorch{at}", model)]
        for label, _ in builds:
            rows = results[(f"{label}{at}", model)]
            rounds = [x / p for (x, _), (p, _) in zip(rows, pt)]
            evals = [y / q for (_, y), (_, q) in zip(rows, pt)]
            print(f"{model} {label}{at}, each set's ratio to PyTorch: round "
                  f"{', '.join(f'{v:.3f}' for v in rounds)} (median {statistics.median(rounds):.3f}); "
                  f"evaluation {', '.join(f'{v:.2f}' for v in evals)} (median {statistics.median(evals):.2f})")
