"""How much subnormal floats cost the built-in (Rust) engine, which computes with them: an
experiment for issue 25, not a setting byzadam offers.

1. ``gradients``: trains the thesis's MNIST setting of ``benchmarks/byzfl_baseline.py`` (RESAM
   lr 0.75 β 0.99, trimmed mean, ALIE; real MNIST) with ``byzadam.Server``/``Engine`` and
   every 10 rounds times the ten honest gradients (``Worker.gradient``) at the current
   parameters (median of 3); then, at the slowest parameters, with subnormals kept and
   flushed.
2. ``runs``: whole 300-round runs of the thesis's homogeneous-MNIST grid (trimmed mean; each
   optimizer × no attack and Little), in fresh processes, with subnormals kept and flushed.

Flushing uses ``torch.set_flush_denormal(True)``, which sets the x86 MXCSR's FTZ and DAZ bits
for the calling thread and the threads it creates afterwards (the engine's pool included).
Rust treats a changed floating-point mode as undefined behaviour, which is why this is an
experiment here and not something the engine does.

    BYZADAM_DATA_DIR=../shared/data python benchmarks/subnormals_engine.py gradients
    BYZADAM_DATA_DIR=../shared/data python benchmarks/subnormals_engine.py runs
"""
import os
import statistics
import subprocess
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"

import numpy as np
import torch

if len(sys.argv) > 2 and sys.argv[2] == "--flush":
    assert torch.set_flush_denormal(True), "this CPU cannot flush subnormals"

import byzadam  # noqa: E402  (after the flush: the engine's pool inherits it)

GRID_BASE = {"dataset": "mnist", "model": {"name": "mnist_cnn"},
             "partition": {"name": "homogeneous"}, "workers": 15, "byzantine": 5, "batch": 25,
             "rounds": 300, "eval_every": 25, "gradient": {"l2": 1e-4, "clip": 2.0}, "seed": 0,
             "data_seed": 0, "aggregator": {"name": "trimmed_mean", "f": 5}}
OPTIMIZERS = [
    {"name": "sgd", "lr": {"name": "constant", "value": 0.75}},
    {"name": "resam", "lr": {"name": "constant", "value": 0.75}, "beta": 0.99},
    {"name": "dra", "lr": {"name": "constant", "value": 0.001}, "beta1": 0.99, "beta2": 0.999,
     "eps": 1e-8},
    {"name": "mra", "lr": {"name": "constant", "value": 0.001}, "beta1": 0.99, "beta2": 0.999,
     "eps": 1e-8}]


def ms(f, repeats=3):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def gradients():
    cfg = byzadam.resolve({
        "dataset": "mnist", "workers": 15, "byzantine": 5, "batch": 25, "rounds": 100000,
        "eval_every": 100000, "optimizer": OPTIMIZERS[1],
        "aggregator": {"name": "trimmed_mean", "f": 5}, "attack": {"name": "a_little_is_enough"}})
    server, engine = byzadam.Server(cfg), byzadam.Engine(cfg)
    workers = engine.workers()
    n, dim = server.workers, server.dim
    messages = [np.zeros((n, dim), np.float32) for _ in range(server.messages)]

    def step():
        losses = np.zeros(n, np.float32)
        params = server.params
        for w in workers:
            if w.byzantine and not server.needs_byzantine_messages:
                continue
            losses[w.index], sent = w.step(params)
            for j, m in enumerate(sent):
                messages[j][w.index] = m
        server.step(messages, losses)

    honest = [w for w in workers if not w.byzantine]
    worst, worst_params = 0.0, None
    print("| rounds trained | ten gradients (ms) |\n| ---: | ---: |")
    for r in range(10, 201, 10):
        for _ in range(10):
            step()
        p = server.params.copy()
        t = ms(lambda: [w.gradient(p) for w in honest])
        print(f"| {r} | {t:.1f} |", flush=True)
        if t > worst:
            worst, worst_params = t, p
    g = np.asarray(honest[0].gradient(worst_params)[1])
    tiny = np.finfo(np.float32).tiny
    sub = int(((g != 0) & (np.abs(g) < tiny)).sum())
    kept = ms(lambda: [w.gradient(worst_params) for w in honest], 5)
    torch.set_flush_denormal(True)
    flushed = ms(lambda: [w.gradient(worst_params) for w in honest], 5)
    torch.set_flush_denormal(False)
    print(f"\nat the slowest parameters ({sub} subnormal values in worker 0's gradient): "
          f"kept {kept:.1f} ms, flushed {flushed:.1f} ms")


def runs():
    print("| optimizer | attack | kept (s) | flushed (s) | accuracy kept | accuracy flushed |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for o in OPTIMIZERS:
        for attack in ["none", {"name": "little"}]:
            out = {}
            for mode in ("--keep", "--flush"):
                r = subprocess.run([sys.executable, __file__, "one", mode, repr((o, attack))],
                                   capture_output=True, text=True, check=True)
                out[mode] = r.stdout.split()
            a = attack if attack == "none" else attack["name"]
            print(f"| {o['name']} | {a} | {out['--keep'][0]} | {out['--flush'][0]} | "
                  f"{out['--keep'][1]} | {out['--flush'][1]} |", flush=True)


def one():
    import ast
    o, attack = ast.literal_eval(sys.argv[3])
    t = time.time()
    r = byzadam.run({**GRID_BASE, "optimizer": o, "attack": attack}, progress=False)
    print(f"{time.time() - t:.1f} {r.summary['final_accuracy']:.4f}")


if __name__ == "__main__":
    {"gradients": gradients, "runs": runs, "one": one}[sys.argv[1]]()
