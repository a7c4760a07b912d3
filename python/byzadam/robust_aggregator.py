"""ByzFL's ``RobustAggregator``: pre-aggregators then a rule, configured by dicts."""
from __future__ import annotations

import json
from typing import Any, List, Optional

from . import _core
from ._convert import Copyable, as_matrix, check_number, exclusive
from .aggregators import Aggregator, aggregator
from .preaggregators import PreAggregator, preaggregator

__all__ = ["RobustAggregator"]


def _build(kind: str, info: Any, make):
    if not isinstance(info, dict) or "name" not in info:
        raise TypeError(f"{kind} must be a dict {{'name': ..., 'parameters': {{...}}}}, got {info!r}")
    params = info.get("parameters", {}) or {}
    if not isinstance(params, dict):
        raise TypeError(f"{kind} {info['name']!r}: 'parameters' must be a dict, got {params!r}")
    try:
        return make(info["name"], **params)
    except TypeError as e:
        raise ValueError(f"{kind} {info['name']!r}: {e}") from None


class RobustAggregator(Copyable):
    """Pre-aggregators in order, then a robust rule: ByzFL's class, byzadam's kernels.

    ::

        agg = RobustAggregator({"name": "TrMean", "parameters": {"f": 5}},
                               pre_agg_list=[{"name": "NNM", "parameters": {"f": 5}}])
        out = agg.aggregate_vectors(vectors)   # or agg(vectors)

    Names are ByzFL's class names or byzadam's registry names and aliases (``"cwtm"``,
    ``"nnm"``). Unlike ByzFL, an unknown parameter is an error, not silently dropped. The
    whole pipeline runs in one Rust call (one conversion of the input); a stateful rule
    (centred clipping) keeps its state across calls. ``seed`` seeds bucketing's permutations
    (as ``byzadam aggregate --seed``).
    """

    def __init__(self, aggregator_info: dict, pre_agg_list: Optional[List[dict]] = None,
                 seed: int = 0) -> None:
        if pre_agg_list is None:
            pre_agg_list = []
        if not isinstance(pre_agg_list, (list, tuple)):
            raise TypeError(f"pre_agg_list must be a list of dicts, got {pre_agg_list!r}")
        self.aggregator: Aggregator = _build("aggregator", aggregator_info, aggregator)
        self.pre_agg_list: List[PreAggregator] = [
            _build("pre-aggregator", p, preaggregator) for p in pre_agg_list]
        seed = check_number("RobustAggregator", "seed", seed, integer=True, minimum=0)
        self._pipeline = _core.Pipeline(
            json.dumps(self.aggregator.config()),
            [json.dumps(p.config()) for p in self.pre_agg_list], seed)

    def aggregate_vectors(self, vectors: Any) -> Any:
        """The pre-aggregators, then the rule, on ``vectors``; the input's type comes back."""
        x, back = as_matrix(vectors)
        with exclusive("this RobustAggregator"):
            return back(self._pipeline.run(x))

    __call__ = aggregate_vectors

    def reset(self) -> None:
        """Forgets state carried across calls."""
        self._pipeline.reset()
        self.aggregator.reset()

    def __repr__(self) -> str:
        return f"RobustAggregator({self.aggregator!r}, pre_agg_list={self.pre_agg_list!r})"
