#!/usr/bin/env bash
# The torch backend on a GPU machine (issue 23), a few minutes: the torch tests with CUDA
# (CUDA gradients against CPU ones included), then the CIFAR-10 CNN's round on CUDA and on
# CPU with the thesis's CIFAR-10 setting (15 workers, 5 Byzantine, batch 32, DRA, trimmed
# mean, Little), per-round milliseconds and the share of a round spent copying the n × d
# messages to the host. Needs a venv with the byzadam wheel, torch (CUDA build), pytest.
#
#   BYZADAM_DATA_DIR=../shared/data PY=/path/to/venv/bin/python benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0))'
"$PY" -m pytest -q -p no:cacheprovider python/tests/test_torch.py
"$PY" - <<'PYEOF'
import statistics, time
import torch
import byzadam, byzadam.torch as bt

cfg = byzadam.resolve({"dataset": "cifar10", "model": {"name": "cifar10_cnn"}, "workers": 15,
                       "byzantine": 5, "batch": 32, "rounds": 1500, "eval_every": 1500,
                       "optimizer": {"name": "dra"}, "aggregator": {"name": "trimmed_mean", "f": 5},
                       "attack": {"name": "little"}})
cifar = byzadam.data.load("cifar10")
start = byzadam.Server(cfg).params
for device in ["cuda", "cpu"]:
    sim = bt.Simulation(bt.models.cifar10_cnn(), cifar, config=cfg, params=start, device=device)
    sim.step()  # warm-up
    rounds = 20 if device == "cuda" else 3
    ts, copy = [], []
    for _ in range(rounds):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        sim.step()
        if device == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    g = torch.zeros(cfg["workers"], sim.dim, device=device)
    t = time.perf_counter()
    for _ in range(5):
        g.cpu()
    copy_ms = (time.perf_counter() - t) / 5 * 1e3
    m = statistics.median(ts) * 1e3
    print(f"{device}: {m:.1f} ms per round ({sim.gradient_path}), host copy of the messages "
          f"{copy_ms:.1f} ms ({copy_ms / m:.0%}); 140 runs × 1,500 rounds: "
          f"{140 * 1500 * m / 3.6e6:.1f} hours")
PYEOF
