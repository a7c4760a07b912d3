"""The optimizers' two halves on flat vectors, for your own loop or a federated framework.

The worker half turns a gradient into what the worker sends; the server half steps the
parameters with the aggregated messages. The same Rust code the simulator runs::

    opt = byzadam.optim.DRA(lr=1e-3)
    worker = opt.worker(dim)              # one per worker: its moments
    server = opt.server(params)           # the parameters (float32, updated in place)
    msgs = worker.message(grad)           # [q]  (MRA: [m̂, v̂])
    server.step([rule(stacked q's)])      # θ ← θ − α_t F(q…)

All vectors are float32 (NumPy; torch tensors and float64 arrays are converted).
"""
from __future__ import annotations

import json
from typing import Any, List, Optional, Sequence, Union

import numpy as np

from . import _core
from ._convert import Copyable, check_number, exclusive

__all__ = ["Optimizer", "SGD", "RESAM", "DRA", "MRA", "Worker", "Server", "Schedule"]

Schedule = Union[float, dict]


def _vector(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype.kind != "f":
        raise TypeError(f"{what} has dtype {a.dtype}: pass a floating-point vector")
    if a.ndim != 1:
        raise ValueError(f"{what} has shape {a.shape}: pass a 1-D vector")
    return np.ascontiguousarray(a, dtype=np.float32)


def _lr(lr: Schedule) -> dict:
    if isinstance(lr, dict):
        return lr
    return {"name": "constant", "value": check_number("optimizer", "lr", lr)}


class Optimizer:
    """An optimizer from its run-config table, e.g. ``Optimizer({"name": "dra", "lr": 1e-3})``
    (``lr`` a number or a schedule table such as ``{"name": "inverse_step", "initial": 0.75,
    "every": 50}``)."""

    def __init__(self, config: dict) -> None:
        cfg = dict(config)
        if "lr" in cfg:
            cfg["lr"] = _lr(cfg["lr"])
        self._core = _core.Optimizer(json.dumps(cfg))

    @property
    def name(self) -> str:
        """``sgd``, ``resam``, ``dra`` or ``mra``."""
        return self._core.name

    @property
    def messages(self) -> int:
        """Vectors a worker sends per round (2 for MRA)."""
        return self._core.messages

    def config(self) -> dict:
        """The run-config table, defaults filled in."""
        return json.loads(self._core.config)

    def lr(self, t: int) -> float:
        """The learning rate at round ``t ≥ 1``."""
        return self._core.lr(check_number(self.name, "t", t, integer=True, minimum=1))

    def worker(self, dim: int) -> "Worker":
        """A worker's half: fresh moments for ``dim`` parameters."""
        return Worker(self, check_number(self.name, "dim", dim, integer=True, minimum=1))

    def server(self, params: Any) -> "Server":
        """The server's half over (a float32 copy of) ``params``."""
        return Server(self, params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


class Worker(Copyable):
    """One worker's optimizer state; :meth:`message` is its half of a round."""

    def __init__(self, optimizer: Optimizer, dim: int) -> None:
        self.optimizer = optimizer
        self._state = optimizer._core.worker_state(dim)

    def message(self, gradient: Any) -> List[np.ndarray]:
        """Updates the moments with ``gradient`` and returns what the worker sends."""
        with exclusive("this Worker"):
            return self.optimizer._core.worker_message(self._state, _vector(gradient, "the gradient"))

    @property
    def m(self) -> np.ndarray:
        """First moment (RESAM's momentum, Adam's m); empty for SGD."""
        return self._state.m

    @property
    def v(self) -> np.ndarray:
        """Second moment; empty unless DRA or MRA."""
        return self._state.v

    @property
    def t(self) -> int:
        """Steps taken."""
        return self._state.t


class Server(Copyable):
    """The server's half: the parameters and the round count."""

    def __init__(self, optimizer: Optimizer, params: Any) -> None:
        self.optimizer = optimizer
        self.params = _vector(params, "params").copy()
        self.t = 0

    def step(self, aggregated: Sequence[Any]) -> np.ndarray:
        """One round: ``aggregated`` holds one aggregated vector per message; returns the
        updated parameters."""
        if not isinstance(aggregated, (list, tuple)):
            aggregated = [aggregated]
        vecs = [_vector(a, f"aggregated vector {i}") for i, a in enumerate(aggregated)]
        with exclusive("this Server"):
            self.optimizer._core.server_step(self.t + 1, self.params, vecs)
        self.t += 1
        return self.params


class SGD(Optimizer):
    """Workers send gradients; ``θ ← θ − α_t F(g…)``."""

    def __init__(self, lr: Schedule = 0.75) -> None:
        super().__init__({"name": "sgd", "lr": lr})


class RESAM(Optimizer):
    """Workers send momentum ``m ← β m + (1 − β) g`` (m₀ = 0); ``θ ← θ − α_t F(m…)``."""

    def __init__(self, lr: Schedule = 0.75, beta: float = 0.99) -> None:
        super().__init__({"name": "resam", "lr": lr, "beta": check_number("resam", "beta", beta)})


class DRA(Optimizer):
    """Descent-direction Resilient Adam (thesis Algorithm 19): workers send ``m̂ / (√v̂ + ε)``."""

    def __init__(self, lr: Schedule = 0.001, beta1: float = 0.99, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        super().__init__({"name": "dra", "lr": lr, "beta1": check_number("dra", "beta1", beta1),
                          "beta2": check_number("dra", "beta2", beta2),
                          "eps": check_number("dra", "eps", eps)})


class MRA(Optimizer):
    """Moment Resilient Adam (thesis Algorithm 20): workers send ``m̂`` and ``v̂``; the server
    steps ``θ − α_t m* / √(v* + ε)``. ``guard``: ``None``, ``"clamp_second_moment"`` or
    ``"adam_bound"`` (docs/config.md)."""

    def __init__(self, lr: Schedule = 0.001, beta1: float = 0.99, beta2: float = 0.999,
                 eps: float = 1e-8, guard: Optional[str] = None) -> None:
        cfg = {"name": "mra", "lr": lr, "beta1": check_number("mra", "beta1", beta1),
               "beta2": check_number("mra", "beta2", beta2), "eps": check_number("mra", "eps", eps)}
        if guard is not None:
            cfg["guard"] = guard
        super().__init__(cfg)
