"""Seconds per round of byzadam's networked mode on a loopback Flower deployment (a
SuperLink and N SuperNodes on this machine, TLS and SuperNode authentication on) against the
simulator's round for the same config, measured in the same run, and where the difference
goes.

For each ``--nodes`` N: workers = N, byzantine = N // 3 (at least 2: Little needs two),
the trimmed mean with f = byzantine, Little, DRA, the MNIST CNN, batch 25 (byzadam run's
defaults otherwise), ``--rounds`` rounds. Printed per N (medians over the rounds after the
first):

- ``round``: from sending the round's messages to the new parameters (``wait`` +
  ``server``);
- ``wait``: sending until the last reply;
- ``node``: a node's own time inside the ClientApp function (data, gradient, message), mean
  over nodes: its ``import byzadam`` and Flower's start of a fresh ``flwr-clientapp``
  process per message are *not* in it;
- ``server``: the strategy's aggregation, step and evaluation;
- ``simulator``: ``byzadam.run`` of the same config, per round, one process, every core;
- ``total``: from starting the SuperLink to every process stopped (keys, start-up, the
  rounds, tear-down).

    BYZADAM_DATA_DIR=../shared/data python benchmarks/flower_rounds.py --nodes 5 15 30 --rounds 4

Report with the CPU model (``lscpu``) and the command, as BENCHMARKS.md does.
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import byzadam
from byzadam.flower.local import LocalFederation


def config(n: int, rounds: int):
    b = max(2, n // 3)
    return ["dataset=mnist", f"workers={n}", f"byzantine={b}", f"aggregator.f={b}",
            f"rounds={rounds}", f"eval_every={rounds}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[5, 15, 30])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--work", default=None, help="a scratch folder (default: a temporary one)")
    a = p.parse_args()
    data_dir = os.environ.get("BYZADAM_DATA_DIR")
    print("| nodes | round (s) | wait (s) | node's own (s) | server (s) | simulator round (s) "
          "| ratio | total (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in a.nodes:
        sets = config(n, a.rounds)
        started = time.perf_counter()
        res = byzadam.run(None, set=sets, progress=False)
        sim = (time.perf_counter() - started) / a.rounds
        with tempfile.TemporaryDirectory(dir=a.work) as work:
            t0 = time.perf_counter()
            with LocalFederation(work, n, data_dir=data_dir) as fed:
                r = fed.run({"set": "; ".join(sets), "round-timeout": 600.0,
                             "data-dir": data_dir or ""}, timeout=3600)
                if r.returncode != 0:
                    raise SystemExit(f"the run failed:\n{r.stdout[-3000:]}")
                with open(os.path.join(fed.out_dir, "metrics.jsonl")) as f:
                    hist = [json.loads(line) for line in f]
            total = time.perf_counter() - t0
        assert [h["metrics"]["train_loss"] for h in hist] == \
            [m["train_loss"] for m in res.metrics], "not the simulator's numbers"
        later = hist[1:] or hist
        wait = statistics.median(h["wait_seconds"] for h in later)
        server = statistics.median(h["seconds"] for h in later)
        node = statistics.median(h["node_seconds"][0] for h in later)
        rnd = wait + server
        print(f"| {n} | {rnd:.1f} | {wait:.1f} | {node:.2f} | {server:.2f} | {sim:.3f} "
              f"| {rnd / sim:.0f}× | {total:.0f} |", flush=True)


if __name__ == "__main__":
    main()
