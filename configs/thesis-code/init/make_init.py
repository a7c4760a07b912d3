"""Writes the thesis's code's initial MNIST CNN weights as a flat .npy for the `init` run option.

The thesis's code (`main.py`, commit dd4fad3) calls `torch.manual_seed(123)` and then builds
`model.py`'s `CnnMist`, whose `__init__` creates conv1 (1→20, 5×5), conv2 (20→20, 5×5), fc1
(320→500) and fc2 (500→10) in that order, each with PyTorch's default initialisation; every
worker starts from that model. `byzadam.torch.models.mnist_cnn()` creates the same four layers
in the same order (its ReLU and pooling layers draw no random numbers), so built right after
the same seed it holds the same weights, and its flat `parameters()` vector is laid out as the
built-in engine's. Run from the repository root:

    python3 configs/thesis-code/init/make_init.py     # writes configs/thesis-code/init/mnist-cnn-torch-seed-123.npy

It prints the file's SHA-256; a grid that names the file pins it (docs/config.md, `init`).
"""
import hashlib
import pathlib

import numpy as np
import torch

import byzadam.torch as bt

OUT = pathlib.Path(__file__).resolve().parent / "mnist-cnn-torch-seed-123.npy"

torch.manual_seed(123)
model = bt.models.mnist_cnn()
flat = bt.models.flat(model).detach().numpy().astype(np.float32)
assert flat.size == 176_050, flat.size
np.save(OUT, flat)
print(f"{OUT}: {flat.size} parameters, torch {torch.__version__}, "
      f"SHA-256 {hashlib.sha256(OUT.read_bytes()).hexdigest()}")
