"""``byzadam.torch``: any PyTorch model, on CPU or GPU, through byzadam's round.

The gradients come from PyTorch on the device you choose; everything after them (gradient
policy, the optimizer's worker step, Byzantine forgeries, pre-aggregation, the rule, the
server step) is the round's Rust halves (:class:`byzadam.Server`, :class:`byzadam.Worker`),
so a number from this backend means what it means in ``byzadam run``::

    import byzadam.torch as bt
    sim = bt.Simulation(model=MyNet(), train=train_ds, test=test_ds, device="cuda",
                        config={"optimizer": {"name": "dra"},
                                "aggregator": {"name": "trimmed_mean", "f": 5},
                                "attack": {"name": "little"}, "workers": 15, "byzantine": 5,
                                "rounds": 1500, "batch": 50})
    summary = sim.run()
    print(summary.final_accuracy)

:func:`grid` runs a grid of such runs into the results store ``byzadam grid`` writes.
:mod:`byzadam.torch.models` holds the built-in engine's networks as torch modules, their
flat parameters laid out as the engine's.
"""
from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised where torch is absent
    raise ImportError("byzadam.torch needs PyTorch: pip install torch") from e

from . import models
from .grid import grid
from .simulation import Simulation, Summary

__all__ = ["Simulation", "Summary", "grid", "models"]
