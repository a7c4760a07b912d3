"""Pre-aggregators: ``n`` vectors in, ``output_len(n)`` vectors out, applied before a rule.

Called on the vectors as ByzFL's are; the result (a matrix) has the input's type, dtype and
device (a list in gives an ``n' × d`` array or tensor out, as ByzFL's do).
"""
from __future__ import annotations

import json
from typing import Any, Optional

from . import _core
from ._convert import Copyable, as_matrix, canonical, check_finite, check_number, check_params, exclusive, subclasses

_KIND = "preaggregators"

__all__ = ["PreAggregator", "NearestNeighborMixing", "Bucketing", "StaticClipping",
           "AdaptiveRobustClipping", "NNM", "Clipping", "ARC", "preaggregator"]


class PreAggregator(Copyable):
    """A pre-aggregator from byzadam's registry by name and parameters, e.g.
    ``PreAggregator("nnm", f=5)``. ``seed`` seeds randomised ones (bucketing) as
    ``byzadam aggregate --seed`` does."""

    #: The canonical name in byzadam's registry.
    name: str = ""

    def __init__(self, name: Optional[str] = None, seed: int = 0, **params: Any) -> None:
        if name is not None:
            self.name = canonical("preaggregators", name, "pre-aggregator")
        self._params = check_params(_KIND, self.name, {k: v for k, v in params.items() if v is not None})
        self._seed = check_number(self.name, "seed", seed, integer=True, minimum=0)
        self._core = _core.PreAggregator(json.dumps(self.config()), self._seed)

    def __call__(self, vectors: Any) -> Any:
        """The transformed vectors (``output_len(n) × d``), of the input's type."""
        x, back = as_matrix(vectors)
        with exclusive(f"this {self.name} instance"):
            return back(self._core.apply(x))

    def output_len(self, n: int) -> int:
        """How many vectors come out for ``n`` in."""
        return self._core.output_len(check_number(self.name, "n", n, integer=True, minimum=0))

    def config(self) -> dict:
        """The pre-aggregator as an entry of a run config's ``preaggregators`` list."""
        return {"name": self.name, **self._params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


class NearestNeighborMixing(PreAggregator):
    """Nearest-neighbour mixing, NNM (Allouah et al. 2023): each vector replaced by the mean
    of its ``n − f`` nearest neighbours (itself included). ByzFL: ``NNM(f)``, same definition
    (ties between equidistant neighbours go to the lower index here)."""

    name = "nearest_neighbor_mixing"

    def __init__(self, f: int = 0, segments: Optional[list] = None) -> None:
        """``segments``: lengths of consecutive coordinate ranges summing to ``d``; the
        distance is then the sum of their L2 distances and a vector is its own neighbour only
        by its distance (NaN last), as the thesis's code's ``nnm`` does."""
        from .aggregators import _segments
        super().__init__(f=check_number(self.name, "f", f, integer=True, minimum=0),
                         segments=_segments(self.name, segments))


class Bucketing(PreAggregator):
    """Bucketing (Karimireddy et al. 2022): a random permutation, then the means of buckets
    of ``s`` consecutive vectors (``⌈n/s⌉`` out). ByzFL: ``Bucketing(s)``, same definition; the
    permutation here comes from a seeded ChaCha20 stream (``seed``), ByzFL's from NumPy's
    global generator, so the buckets differ."""

    name = "bucketing"

    def __init__(self, s: int = 1, seed: int = 0) -> None:
        super().__init__(s=check_number(self.name, "s", s, integer=True, minimum=0), seed=seed)


class StaticClipping(PreAggregator):
    """Static clipping: every vector scaled to L2 norm at most ``c``; a vector whose norm is
    not finite becomes 0. ByzFL: ``Clipping(c)``, same definition for finite vectors."""

    name = "static_clipping"

    def __init__(self, c: float = 2.0) -> None:
        super().__init__(c=check_number(self.name, "c", c))


class AdaptiveRobustClipping(PreAggregator):
    """Adaptive robust clipping, ARC (Allouah et al. 2024): the largest vectors (how many
    depends on ``f`` and ``n``) clipped to the norm of the largest one kept. ByzFL: ``ARC(f)``,
    same definition."""

    name = "adaptive_robust_clipping"

    def __init__(self, f: int = 0) -> None:
        super().__init__(f=check_number(self.name, "f", f, integer=True, minimum=0))


NNM = NearestNeighborMixing
Clipping = StaticClipping
ARC = AdaptiveRobustClipping

#: Canonical registry name → class.
#: The class of every registry entry, by canonical name (every subclass that names one).
CLASSES = {c.name: c for c in subclasses(PreAggregator) if c.name}


def preaggregator(name: str, **params: Any) -> PreAggregator:
    """A pre-aggregator by any registry name or alias (``"nnm"``, ``"arc"``, ``"NNM"``, …)."""
    if name in globals() and isinstance(globals()[name], type) and issubclass(globals()[name], PreAggregator):
        return globals()[name](**params)
    return CLASSES[canonical("preaggregators", name, "pre-aggregator")](**params)
