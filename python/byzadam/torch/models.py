"""The built-in engine's networks as torch modules, their parameters in the engine's flat
order: ``torch.nn.utils.parameters_to_vector(model.parameters())`` of one of these is the
vector ``byzadam run`` trains for the same ``model`` table, so a flat vector means the same
network in both backends (``tests/test_torch.py`` checks their gradients agree)."""
from __future__ import annotations

from typing import Any, Dict, Sequence

import torch
from torch import nn

__all__ = ["mnist_cnn", "cifar10_cnn", "cifar10_cnn_thesis_code", "logistic_regression", "mlp",
           "from_config"]


def mnist_cnn() -> nn.Module:
    """The thesis's MNIST CNN: C(20, 5×5) – ReLU – MaxPool2 – C(20, 5×5) – ReLU – MaxPool2 –
    L(500) – ReLU – L(10), 176,050 parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(320, 500), nn.ReLU(), nn.Linear(500, 10))


def cifar10_cnn(dropout: float = 0.25) -> nn.Module:
    """The thesis's CIFAR-10 CNN: C(64) – ReLU – BN – C(64) – ReLU – BN – MaxPool2 – D –
    C(128) – ReLU – BN – C(128) – ReLU – BN – MaxPool2 – D – L(128) – ReLU – D – L(10), 3×3
    convolutions with padding 1, 1,310,922 parameters (batch norm: ε = 1e-5, momentum 0.1,
    as the engine's)."""
    def block(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(cout)]
    return nn.Sequential(
        *block(3, 64), *block(64, 64), nn.MaxPool2d(2), nn.Dropout(dropout),
        *block(64, 128), *block(128, 128), nn.MaxPool2d(2), nn.Dropout(dropout),
        nn.Flatten(), nn.Linear(128 * 8 * 8, 128), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(128, 10))


def cifar10_cnn_thesis_code(dropout: float = 0.25) -> nn.Module:
    """The thesis's code's CIFAR-10 CNN (its ``model.py``'s ``CnnCifar10``, as the engine's
    ``cifar10_cnn_thesis_code`` builds it), which differs from the text's in where dropout and
    batch norm sit: C(64) – ReLU – D – C(64) – ReLU – BN – MaxPool2 – D – C(128) – ReLU – BN –
    C(128) – ReLU – BN – MaxPool2 – D – L(128) – ReLU – D – L(10), 3×3 convolutions with
    padding 1, 1,310,794 parameters. Its batch norms keep no running statistics
    (``track_running_stats=False``: batch statistics in evaluation too)."""
    def bn(c: int) -> nn.Module:
        return nn.BatchNorm2d(c, track_running_stats=False)
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), bn(64), nn.MaxPool2d(2), nn.Dropout(dropout),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), bn(128),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), bn(128), nn.MaxPool2d(2),
        nn.Dropout(dropout),
        nn.Flatten(), nn.Linear(128 * 8 * 8, 128), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(128, 10))


def logistic_regression() -> nn.Module:
    """Multinomial logistic regression on 28×28 grey images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def mlp(hidden: Sequence[int]) -> nn.Module:
    """A multilayer perceptron on 28×28 grey images with ReLU hidden layers."""
    layers: list = [nn.Flatten()]
    fan_in = 784
    for h in hidden:
        layers += [nn.Linear(fan_in, int(h)), nn.ReLU()]
        fan_in = int(h)
    layers.append(nn.Linear(fan_in, 10))
    return nn.Sequential(*layers)


def from_config(model: Dict[str, Any]) -> nn.Module:
    """The module for a run config's ``model`` table (``{"name": "mnist_cnn"}``)."""
    name = model.get("name")
    if name == "mnist_cnn":
        return mnist_cnn()
    if name == "cifar10_cnn":
        return cifar10_cnn(float(model.get("dropout", 0.25)))
    if name == "cifar10_cnn_thesis_code":
        return cifar10_cnn_thesis_code(float(model.get("dropout", 0.25)))
    if name == "logistic_regression":
        return logistic_regression()
    if name == "mlp":
        return mlp(model["hidden"])
    raise ValueError(f"no torch module for model {name!r} (mnist_cnn, cifar10_cnn, "
                     "cifar10_cnn_thesis_code, logistic_regression, mlp)")


def flat(module: nn.Module) -> torch.Tensor:
    """The module's parameters as one flat vector, in ``parameters()`` order, each tensor's
    values in its logical (row-major) order whatever its memory format (``torch.nn.utils.
    parameters_to_vector`` refuses channels-last weights)."""
    return torch.cat([p.reshape(-1) for p in module.parameters()])
