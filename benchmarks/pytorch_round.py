"""PyTorch's time for the work `byzadam bench-model` times: one round of 15 workers' gradients
(forward + backward on a batch each) of the thesis's CNNs, and test-set evaluation throughput,
on one thread (as the issue asks) unless --threads says otherwise.

    /tmp/bzenv/bin/python benchmarks/pytorch_round.py --model mnist --batch 25 --repeats 5
"""
import argparse
import time

import numpy as np
import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--model", default="mnist")
p.add_argument("--batch", type=int, default=25)
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--threads", type=int, default=1)
args = p.parse_args()
torch.set_num_threads(args.threads)

if args.model == "mnist":
    model = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 20, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(320, 500), nn.ReLU(), nn.Linear(500, 10))
    shape = (1, 28, 28)
else:
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(64),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(128),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(128), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(8192, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))
    shape = (3, 32, 32)
x = torch.rand(args.batch, *shape) * 2 - 1
y = torch.arange(args.batch) % 10
loss_fn = nn.CrossEntropyLoss()


def round_():
    for _ in range(15):
        model.train()
        model.zero_grad()
        loss_fn(model(x), y).backward()


for _ in range(2):
    round_()
times = []
for _ in range(args.repeats):
    t = time.perf_counter()
    round_()
    times.append(time.perf_counter() - t)
n_eval = 10_000 if args.model == "mnist" else 1_000  # as `byzadam bench-engine`
xe = torch.rand(n_eval, *shape) * 2 - 1
model.eval()
with torch.no_grad():
    model(xe[:500])
    t = time.perf_counter()
    for i in range(0, n_eval, 500):
        model(xe[i:i + 500]).argmax(1)
    ev = n_eval / (time.perf_counter() - t)
print(f"pytorch {torch.__version__} {args.model} threads={args.threads}: round (15 x batch {args.batch}) "
      f"median {np.median(times) * 1e3:.1f} ms; eval {ev:.0f} img/s")
