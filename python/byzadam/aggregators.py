"""Aggregation rules: ``n`` vectors in, one out.

Each class takes its hyperparameters in the constructor (checked there: a ``ValueError`` that
names the parameter and the rule's requirement) and aggregates when called on the vectors, as
ByzFL's classes do::

    from byzadam import TrMean            # was: from byzfl import TrMean
    agg = TrMean(f=5)
    out = agg(vectors)                    # n × d numpy array, list of arrays, torch tensor(s)

Every rule runs byzadam's Rust kernel (float32, exact, deterministic, the GIL released). The
result has the input's type, dtype and device. Requirements on ``n`` (``n > 2f``) are checked
at each call, when ``n`` is known. Stateful rules (centred clipping) keep their state across
calls; ``reset()`` forgets it.

Where byzadam's definition differs from ByzFL 0.0.11's, the class says so; ``byzfl_compat=True``
(or ``byzadam.byzfl_compat = True`` for every instance made afterwards) gives ByzFL's numbers
where that is possible.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Optional

import numpy as np

from . import _core
from ._convert import Copyable, as_matrix, canonical, check_finite, check_number, check_params, exclusive, subclasses

_KIND = "aggregators"

__all__ = [
    "Aggregator", "Average", "TrimmedMean", "Median", "MeanAroundMedian",
    "MinimumDiameterAveraging", "LargestDistanceFilter", "Krum", "MultiKrum", "GeometricMedian", "CenteredClipping",
    "Bulyan", "Monna", "CovarianceFilter", "SmallestEigenvalueAveraging",
    "TrMean", "Meamed", "MDA", "MoNNA", "CAF", "SMEA", "aggregator",
]


def _compat(flag: Optional[bool]) -> bool:
    if flag is None:
        return bool(getattr(sys.modules["byzadam"], "byzfl_compat", False))
    if not isinstance(flag, bool):
        raise TypeError(f"byzfl_compat must be True, False or None, got {flag!r}")
    return flag


class Aggregator(Copyable):
    """An aggregation rule from byzadam's registry, by name and parameters (the keys of a run
    config's ``aggregator`` table, ``docs/config.md``)::

        Aggregator("trimmed_mean", f=5)(vectors)
    """

    #: The canonical name in byzadam's registry.
    name: str = ""

    def __init__(self, name: Optional[str] = None, **params: Any) -> None:
        if name is not None:
            self.name = canonical("aggregators", name, "aggregation rule")
        self._params = check_params(_KIND, self.name, {k: v for k, v in params.items() if v is not None})
        self._pipeline = _core.Pipeline(json.dumps({"name": self.name, **self._params}))

    @property
    def params(self) -> dict:
        """The parameters given (byzadam's names)."""
        return dict(self._params)

    def __call__(self, vectors: Any) -> Any:
        """Aggregates ``vectors`` (``n × d``) into one vector of the input's type."""
        x, back = as_matrix(vectors)
        with exclusive(f"this {self.name} instance"):
            return back(self._pipeline.run(x))

    def aggregate(self, vectors: Any) -> Any:
        """The same as calling the rule."""
        return self(vectors)

    def check(self, n: int) -> None:
        """Raises ``ByzadamError`` unless the rule can aggregate ``n`` vectors."""
        self._pipeline.check(check_number(self.name, "n", n, integer=True, minimum=0))

    def reset(self) -> None:
        """Forgets state carried across calls (centred clipping's centre)."""
        with exclusive(f"this {self.name} instance"):
            self._pipeline.reset()

    def config(self) -> dict:
        """The rule as a run config's ``aggregator`` table."""
        return {"name": self.name, **self._params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


def _f(rule: str, f: Any) -> int:
    return check_number(rule, "f", f, integer=True, minimum=0)


class Average(Aggregator):
    """The coordinate-wise mean (not robust). ByzFL: ``Average``, same definition."""

    name = "average"

    def __init__(self) -> None:
        super().__init__()


def _segments(rule: str, segments: Any) -> Optional[list]:
    if segments is None:
        return None
    try:
        out = [check_number(rule, "segments", s, integer=True, minimum=0) for s in segments]
    except TypeError:
        raise TypeError(f"{rule}: segments must be a list of lengths, got {segments!r}") from None
    return out or None


class TrimmedMean(Aggregator):
    """Coordinate-wise trimmed mean: per coordinate, drop the ``f`` smallest and ``f`` largest
    values and average the rest (Yin et al. 2018). Needs ``n > 2f``. Values are ordered by
    IEEE total order, so ±∞ and NaN from at most ``f`` workers are trimmed.
    ByzFL: ``TrMean(f)``, same definition.

    ``low`` and ``high`` drop different counts at the two ends (each defaults to ``f``; then
    ``n > low + high`` is needed). The thesis's code keeps ranks ``f + 1 … n − f − 1``:
    ``TrimmedMean(f, low=f + 1)``."""

    name = "trimmed_mean"

    def __init__(self, f: int = 0, low: Optional[int] = None, high: Optional[int] = None) -> None:
        super().__init__(
            f=_f("trimmed_mean", f),
            low=check_number(self.name, "low", low, integer=True, minimum=0, allow_none=True),
            high=check_number(self.name, "high", high, integer=True, minimum=0, allow_none=True))


class Median(Aggregator):
    """Coordinate-wise median (mean of the two middle values for even ``n``). ByzFL:
    ``Median``, same definition."""

    name = "median"

    def __init__(self) -> None:
        super().__init__()


class MeanAroundMedian(Aggregator):
    """Mean around the median: per coordinate, the mean of the ``n − f`` values closest to
    the median (Xie et al. 2018). Needs ``n > 2f``. ByzFL: ``Meamed(f)``, same definition."""

    name = "mean_around_median"

    def __init__(self, f: int = 0) -> None:
        super().__init__(f=_f("mean_around_median", f))


class MinimumDiameterAveraging(Aggregator):
    """Minimum diameter averaging: the mean of the ``n − f`` vectors whose subset has the
    smallest diameter (El Mhamdi et al. 2018). Needs ``n > 2f`` and ``C(n, f) ≤
    subset_budget``.

    Differs from ByzFL's ``MDA`` on ties: subsets of equal diameter (common, e.g. with
    repeated vectors) go to the smaller sum of squared pairwise distances here, to the first
    subset in ``itertools.combinations`` order in ByzFL. ``byzfl_compat=True`` breaks ties as
    ByzFL does (Rust's ``byzfl = true``)."""

    name = "minimum_diameter_averaging"

    def __init__(self, f: int = 0, subset_budget: Optional[int] = None,
                 byzfl_compat: Optional[bool] = None) -> None:
        self._byzfl = _compat(byzfl_compat)
        super().__init__(f=_f(self.name, f), subset_budget=check_number(
            self.name, "subset_budget", subset_budget, integer=True, minimum=0, allow_none=True),
            byzfl=True if self._byzfl else None)


class LargestDistanceFilter(Aggregator):
    """The thesis's code's "MDA" heuristic: each vector scored by its largest distance to any
    vector, the ``n − f`` lowest scores averaged. Needs ``n > f``. The distance is the L2
    distance, or with ``segments`` (lengths of consecutive coordinate ranges, e.g. a model's
    parameter tensors, summing to ``d``) the sum over segments of their L2 distances, as that
    code sums ``torch.norm`` over layers. NaN distances (``∞ − ∞``) sort last, as NumPy's
    ``argsort`` puts them. Not in ByzFL."""

    name = "largest_distance_filter"

    def __init__(self, f: int = 0, segments: Optional[list] = None) -> None:
        super().__init__(f=_f(self.name, f), segments=_segments(self.name, segments))


class Krum(Aggregator):
    """Krum: the vector with the smallest sum of squared distances to its ``n − f − 2``
    nearest neighbours (Blanchard et al. 2017). Needs ``n > 2f + 2``. Ties go to the smaller
    sum of squared distances to all others, then the lower index.

    Differs from ByzFL's ``Krum``: ByzFL scores with ``n − f − 1`` neighbours (and needs only
    ``n > 2f``). ``byzfl_compat=True`` scores as ByzFL does (Rust's ``byzfl = true``: the same
    choice as ByzFL's for finite inputs)."""

    name = "krum"

    def __init__(self, f: int = 0, byzfl_compat: Optional[bool] = None) -> None:
        self._byzfl = _compat(byzfl_compat)
        super().__init__(f=_f(self.name, f), byzfl=True if self._byzfl else None)


class MultiKrum(Krum):
    """Multi-Krum: the mean of the ``m`` vectors with the best Krum scores (default ``m = n −
    f``). Needs ``n > 2f + 2``.

    Differs from ByzFL's ``MultiKrum`` as Krum does (``n − f − 1`` neighbours there, ``m = n −
    f`` fixed); ``byzfl_compat=True`` scores as ByzFL does."""

    name = "multi_krum"

    def __init__(self, f: int = 0, m: Optional[int] = None,
                 byzfl_compat: Optional[bool] = None) -> None:
        self._byzfl = _compat(byzfl_compat)
        Aggregator.__init__(self, f=_f(self.name, f),
                            m=check_number(self.name, "m", m, integer=True, minimum=0, allow_none=True),
                            byzfl=True if self._byzfl else None)


class GeometricMedian(Aggregator):
    """Geometric median by smoothed Weiszfeld iterations (Pillutla et al. 2022): at most
    ``max_iterations`` steps, stopping when the objective improves by less than ``tolerance``
    (relative), with smoothing ``nu``.

    ByzFL's ``GeometricMedian(nu=0.1, T=3)`` runs exactly ``T`` steps: ``T`` is accepted here
    (it sets ``max_iterations = T`` and ``tolerance = 0``, ByzFL's algorithm). Defaults differ:
    byzadam ``nu = 1e-6``, 100 iterations, tolerance 1e-6; with ``byzfl_compat=True`` the
    defaults are ByzFL's (``nu = 0.1``, ``T = 3``)."""

    name = "geometric_median"

    def __init__(self, nu: Optional[float] = None, max_iterations: Optional[int] = None,
                 tolerance: Optional[float] = None, T: Optional[int] = None,
                 byzfl_compat: Optional[bool] = None) -> None:
        if _compat(byzfl_compat):
            nu = 0.1 if nu is None else nu
            T = 3 if T is None and max_iterations is None else T
        if T is not None:
            if max_iterations is not None:
                raise ValueError("geometric_median: give T (ByzFL's name) or max_iterations, not both")
            max_iterations = check_number(self.name, "T", T, integer=True, minimum=0)
            tolerance = 0.0 if tolerance is None else tolerance
        super().__init__(
            nu=check_number(self.name, "nu", nu, allow_none=True),
            max_iterations=check_number(self.name, "max_iterations", max_iterations, integer=True,
                                        minimum=0, allow_none=True),
            tolerance=check_number(self.name, "tolerance", tolerance, allow_none=True))


class CenteredClipping(Aggregator):
    """Centred clipping (Karimireddy et al. 2021): ``iterations`` steps ``v ← v + mean_i
    clip_tau(x_i − v)`` from the previous call's output (``center`` the first time, else 0).
    Stateful: one instance per message stream; ``reset()`` forgets the centre.

    ByzFL: ``CenteredClipping(m=None, L=1, tau=100.0)``, same definition and defaults; ``m``
    and ``L`` are accepted as ByzFL's names of ``center`` and ``iterations``."""

    name = "centered_clipping"

    def __init__(self, tau: Optional[float] = None, iterations: Optional[int] = None,
                 center: Any = None, m: Any = None, L: Optional[int] = None) -> None:
        if m is not None:
            if center is not None:
                raise ValueError("centered_clipping: give m (ByzFL's name) or center, not both")
            center = m
        if L is not None:
            if iterations is not None:
                raise ValueError("centered_clipping: give L (ByzFL's name) or iterations, not both")
            iterations = L
        if center is not None:
            c, _ = as_matrix([center] if not hasattr(center, "ndim") or center.ndim == 1 else center)
            center = [float(v) for v in c[0]]
        super().__init__(
            tau=check_number(self.name, "tau", tau, allow_none=True),
            iterations=check_number(self.name, "iterations", iterations, integer=True, minimum=0,
                                    allow_none=True),
            center=center)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items() if k != "center")
        return f"{type(self).__name__}({args})"


class Bulyan(Aggregator):
    """Bulyan (El Mhamdi et al. 2018): ``n − 2f`` vectors selected by repeated Krum, then a
    coordinate-wise trimmed mean of ``n − 4f`` around the median. Needs ``n ≥ 4f + 3``.
    Not in ByzFL."""

    name = "bulyan"

    def __init__(self, f: int = 0) -> None:
        super().__init__(f=_f(self.name, f))


class Monna(Aggregator):
    """MoNNA (Allouah et al. 2023): the mean of the ``n − f`` nearest neighbours of vector
    ``pivot`` (a trusted worker's). ByzFL: ``MoNNA(f, idx)``, same definition (``idx`` is
    accepted as ByzFL's name of ``pivot``)."""

    name = "monna"

    def __init__(self, f: int = 0, pivot: Optional[int] = None, idx: Optional[int] = None) -> None:
        if idx is not None:
            if pivot is not None:
                raise ValueError("monna: give idx (ByzFL's name) or pivot, not both")
            pivot = idx
        super().__init__(f=_f(self.name, f), pivot=check_number(
            self.name, "pivot", pivot, integer=True, minimum=0, allow_none=True))


class CovarianceFilter(Aggregator):
    """Covariance-bound agnostic filter, CAF (Allouah et al. 2025), with the exact top
    eigenvector of each weighted covariance. Needs ``n > 2f``.

    Differs from ByzFL's ``CAF``, which estimates the eigenvector with one power step from a
    random start (its output is random); there is no ByzFL-compatible mode."""

    name = "covariance_filter"

    def __init__(self, f: int = 0) -> None:
        super().__init__(f=_f(self.name, f))


class SmallestEigenvalueAveraging(Aggregator):
    """SMEA (Allouah et al. 2023): the mean of the ``n − f`` vectors whose covariance has the
    smallest largest eigenvalue, computed exactly. Needs ``n > 2f`` and ``C(n, f) ≤
    subset_budget``.

    Differs from ByzFL's ``SMEA``, which uses a random power step per subset (random output);
    there is no ByzFL-compatible mode."""

    name = "smallest_eigenvalue_averaging"

    def __init__(self, f: int = 0, subset_budget: Optional[int] = None) -> None:
        super().__init__(f=_f(self.name, f), subset_budget=check_number(
            self.name, "subset_budget", subset_budget, integer=True, minimum=0, allow_none=True))


# ByzFL's names.
TrMean = TrimmedMean
Meamed = MeanAroundMedian
MDA = MinimumDiameterAveraging
MoNNA = Monna
CAF = CovarianceFilter
SMEA = SmallestEigenvalueAveraging

#: Canonical registry name → class.
#: The class of every registry entry, by canonical name (every subclass that names one).
CLASSES = {c.name: c for c in subclasses(Aggregator) if c.name}


def aggregator(name: str, **params: Any) -> Aggregator:
    """A rule by any registry name or alias (``"cwtm"``, ``"mda"``, ``"TrMean"``, …)."""
    if name in globals() and isinstance(globals()[name], type) and issubclass(globals()[name], Aggregator):
        return globals()[name](**params)
    return CLASSES[canonical("aggregators", name, "aggregation rule")](**params)
