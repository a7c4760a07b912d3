"""Reference losses, gradients and logits from PyTorch for byzadam-model's networks.

Parameters and inputs come from closed formulas both sides compute (no files of weights), so
only the results are stored:

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch numpy
    /tmp/refenv/bin/python crates/model/reference/make_reference.py > crates/model/reference/reference.json

theta[i] = 0.05 * sin(0.7 * i + 0.3) over the flat vector in PyTorch's parameters() order,
except batch-norm weights (1 + 0.1 * sin(i)) and biases (0.1 * cos(i)); pixel j of the batch
is sin(0.13 * j); the label of sample b is (3 * b + 1) % 10. Training mode (batch statistics;
dropout p = 0 so the reference is deterministic), mean cross-entropy.
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn

torch.set_default_dtype(torch.float32)


def mnist_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(320, 500), nn.ReLU(), nn.Linear(500, 10))


def cifar_cnn(p=0.0):
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(64),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(64),
        nn.MaxPool2d(2), nn.Dropout(p),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(128),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(128),
        nn.MaxPool2d(2), nn.Dropout(p),
        nn.Flatten(), nn.Linear(8192, 128), nn.ReLU(), nn.Dropout(p), nn.Linear(128, 10))


def set_params(model):
    offset = 0
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            n = p.numel()
            i = torch.arange(offset, offset + n, dtype=torch.float64)
            if isinstance(module, nn.BatchNorm2d):
                v = 1 + 0.1 * torch.sin(i) if name == "weight" else 0.1 * torch.cos(i)
            else:
                v = 0.05 * torch.sin(0.7 * i + 0.3)
            with torch.no_grad():
                p.copy_(v.reshape(p.shape).float())
            offset += n
    return offset


def case(name, model, shape, batch):
    d = set_params(model)
    j = torch.arange(batch * int(np.prod(shape)), dtype=torch.float64)
    x = torch.sin(0.13 * j).float().reshape(batch, *shape)
    y = torch.tensor([(3 * b + 1) % 10 for b in range(batch)])
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    model.zero_grad()
    loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()
    idx = sorted(set(np.linspace(0, d - 1, 97).astype(int).tolist()))
    model.eval()
    with torch.no_grad():
        logits = model(x).reshape(-1).double()
    return {
        "model": name, "params": d, "batch": batch,
        "loss": loss.item(), "grad_norm": grad.norm().item(), "grad_sum": grad.sum().item(),
        "grad_index": idx, "grad_value": grad[idx].tolist(),
        "eval_logits_after_one_train_pass": logits.tolist(),
    }


json.dump({
    "generated_by": "crates/model/reference/make_reference.py",
    "torch": torch.__version__,
    "cases": [case("mnist_cnn", mnist_cnn(), (1, 28, 28), 4), case("cifar10_cnn", cifar_cnn(), (3, 32, 32), 3)],
}, sys.stdout, indent=1)
