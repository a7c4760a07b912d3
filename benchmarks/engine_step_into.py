"""The built-in engine driven from Python, two ways, interleaved in one process: the
messages returned as new arrays by ``EngineWorker.step`` and copied into the server's message
arrays (a fresh pair of arrays each round), against ``EngineWorker.step_into`` writing them
straight into arrays kept between rounds (docs/python.md's loop). The thesis's MNIST setting
(the MNIST CNN, 15 workers of which 5 Byzantine, batch 25, RESAM lr 0.75 β 0.99, trimmed mean
f = 5, ALIE), one thread, real MNIST; medians over ``--sets`` sets of ``--rounds`` rounds.

    BYZADAM_DATA_DIR=../shared/data python benchmarks/engine_step_into.py --sets 7 --rounds 10

Report with the CPU model (``lscpu``) and the command, as BENCHMARKS.md does.
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import byzadam  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--sets", type=int, default=7)
p.add_argument("--rounds", type=int, default=10)
args = p.parse_args()

CFG = byzadam.resolve({
    "dataset": "mnist", "workers": 15, "byzantine": 5, "batch": 25, "rounds": 100000,
    "eval_every": 100000,
    "optimizer": {"name": "resam", "lr": {"name": "constant", "value": 0.75}, "beta": 0.99},
    "aggregator": {"name": "trimmed_mean", "f": 5}, "attack": {"name": "a_little_is_enough"}})


def engine(into: bool):
    server, eng = byzadam.Server(CFG), byzadam.Engine(CFG)
    workers = eng.workers()
    n, k, dim = server.workers, server.messages, server.dim
    kept = np.zeros((k, n, dim), np.float32)
    kept_losses = np.zeros(n, np.float32)

    def step():
        params = server.params
        if into:
            for w in workers:
                if w.byzantine and not server.needs_byzantine_messages:
                    continue
                kept_losses[w.index] = w.step_into(params, [m[w.index] for m in kept])
            server.step(list(kept), kept_losses)
            return
        messages = np.zeros((k, n, dim), np.float32)
        losses = np.zeros(n, np.float32)
        for w in workers:
            if w.byzantine and not server.needs_byzantine_messages:
                continue
            losses[w.index], sent = w.step(params)
            for j, m in enumerate(sent):
                messages[j, w.index] = m
        server.step(list(messages), losses)
    return step


engines = {"step (copied)": engine(False), "step_into": engine(True)}
times = {name: [] for name in engines}
for step in engines.values():  # warm-up
    step()
for _ in range(args.sets):
    for name, step in engines.items():
        t = time.perf_counter()
        for _ in range(args.rounds):
            step()
        times[name].append((time.perf_counter() - t) * 1e3 / args.rounds)
print("| messages by | ms per round, each set | median |")
print("| --- | --- | ---: |")
for name, ts in times.items():
    print(f"| {name} | {', '.join(f'{t:.1f}' for t in ts)} | {statistics.median(ts):.1f} |")
