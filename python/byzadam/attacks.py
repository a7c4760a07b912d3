"""Attacks: what the Byzantine workers send.

Two ways to call one:

- ByzFL's: ``attack(honest_vectors)`` returns the one vector every Byzantine worker sends
  (for the attacks that need only the honest vectors);
- byzadam's: ``attack.forge(byzantine, honest=..., own=..., server=...)`` returns the
  ``byzantine × d`` forged vectors, from what the attack's threat model sees: the thesis's
  attacks (``Little``, ``Empire``, ``SignFlip`` with ``base="own"``) start from the Byzantine
  workers' *own* genuine vectors; the adaptive ones probe the server's rule.

Results have the input's type, dtype and device.
"""
from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from . import _core
from ._convert import Copyable, as_matrix, canonical, check_finite, check_number, check_params, exclusive, subclasses

_KIND = "attacks"
from .aggregators import Aggregator, Average, _compat
from .preaggregators import PreAggregator, StaticClipping

__all__ = [
    "Attack", "SignFlip", "Empire", "Little", "ALittleIsEnough", "PositiveInfinity",
    "NegativeInfinity", "NotANumber", "Gaussian", "Mimic", "OptimalAlie", "OptimalEmpire",
    "LabelFlip", "SignFlipping", "InnerProductManipulation", "Optimal_ALittleIsEnough",
    "Optimal_InnerProductManipulation", "Inf", "attack",
]


def pipeline(agg: Aggregator, pre: Sequence[PreAggregator] = ()) -> "_core.Pipeline":
    """The server's pipeline of a rule and its pre-aggregators, for adaptive attacks."""
    if not isinstance(agg, Aggregator):
        raise TypeError(f"agg must be a byzadam aggregator (e.g. byzadam.TrMean(f=5)), got {agg!r}")
    for p in pre:
        if not isinstance(p, PreAggregator):
            raise TypeError(f"pre_agg_list must hold byzadam pre-aggregators, got {p!r}")
    return _core.Pipeline(json.dumps(agg.config()), [json.dumps(p.config()) for p in pre])


class Attack(Copyable):
    """An attack from byzadam's registry by name and parameters, e.g. ``Attack("alie", z=1.5)``.
    ``seed`` seeds randomised attacks (Gaussian) and the adaptive attacks' probes."""

    #: The canonical name in byzadam's registry.
    name: str = ""

    def __init__(self, name: Optional[str] = None, seed: int = 0, **params: Any) -> None:
        if name is not None:
            self.name = canonical("attacks", name, "attack")
        self._params = check_params(_KIND, self.name, {k: v for k, v in params.items() if v is not None})
        self._seed = check_number(self.name, "seed", seed, integer=True, minimum=0)
        self._core = _core.Attack(json.dumps(self.config()), self._seed)
        self._server = None

    @property
    def threat_model(self) -> str:
        """What the attack sees: ``blind``, ``own_genuine``, ``omniscient``, ``adaptive`` or
        ``data_poisoning``."""
        return self._core.threat_model

    def config(self) -> dict:
        """The attack as a run config's ``attack`` table."""
        return {"name": self.name, **self._params}

    def forge(self, byzantine: int, honest: Any = None, own: Any = None,
              server: Any = None, n: Optional[int] = None, dim: Optional[int] = None) -> Any:
        """The ``byzantine`` forged vectors (a ``byzantine × d`` matrix of the input's type).

        ``honest``: the honest vectors; ``own``: the Byzantine workers' genuine vectors
        (``byzantine`` rows); ``server``: the server's rule (an aggregator, or a pair
        ``(aggregator, [pre-aggregators])``) for adaptive attacks; ``n``: all workers
        (default: honest rows + ``byzantine``); ``dim`` for blind attacks given no vectors.
        """
        byzantine = check_number(self.name, "byzantine", byzantine, integer=True, minimum=1)
        back = None
        h = o = None
        if honest is not None:
            h, back = as_matrix(honest)
        if own is not None:
            o, back_own = as_matrix(own)
            back = back or back_own
        if server is not None:
            if isinstance(server, tuple):
                server = pipeline(server[0], server[1])
            elif isinstance(server, Aggregator):
                server = pipeline(server)
        elif self._server is not None:
            server = self._server
        n = None if n is None else check_number(self.name, "n", n, integer=True, minimum=1)
        dim = None if dim is None else check_number(self.name, "dim", dim, integer=True, minimum=1)
        with exclusive(f"this {self.name} attack"):
            out = self._core.forge(byzantine, h, o, server, n, dim)
        return back(out) if back is not None else out

    def __call__(self, honest_vectors: Any) -> Any:
        """ByzFL's convention: the one vector the Byzantine workers send, from the honest
        vectors."""
        if self.threat_model in ("own_genuine", "data_poisoning"):
            raise _core.ByzadamError(
                f"attack {self.name} starts from the Byzantine workers' own genuine vectors: "
                f"call forge(byzantine, own=...) instead")
        x, back = as_matrix(honest_vectors)
        # ByzFL's adaptive attacks probe the server with f copies of the forged vector.
        f = getattr(self, "_f", 1)
        with exclusive(f"this {self.name} attack"):
            return back(self._core.forge(f, x, None, self._server, x.shape[0] + f, None)[0])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


class SignFlip(Attack):
    """Sign flip: each Byzantine worker sends its own genuine vector negated (``base="own"``,
    the thesis's Algorithm 18) or the negated mean of the honest vectors
    (``base="honest_mean"``, ByzFL's ``SignFlipping``)."""

    name = "sign_flip"

    def __init__(self, base: str = "own") -> None:
        super().__init__(base=base)


class Empire(Attack):
    """Empire, the inner-product manipulation (Xie et al. 2020): ``−epsilon`` times the
    Byzantine worker's own genuine vector (``base="own"``, the thesis's) or the honest mean
    (``base="honest_mean"``, ByzFL's ``InnerProductManipulation(tau=epsilon)``)."""

    name = "empire"

    def __init__(self, epsilon: float = 0.9, base: str = "own") -> None:
        super().__init__(epsilon=check_number(self.name, "epsilon", epsilon), base=base)


class Little(Attack):
    """The thesis's Little: each Byzantine worker sends its own genuine vector minus the
    coordinate-wise standard deviation of the Byzantine group's genuine vectors (sample std
    when ``unbiased``). Not in ByzFL (its ``ALittleIsEnough`` is Baruch et al.'s attack on
    the honest vectors)."""

    name = "little"

    def __init__(self, unbiased: bool = True) -> None:
        if not isinstance(unbiased, bool):
            raise TypeError(f"little: unbiased must be True or False, got {unbiased!r}")
        super().__init__(unbiased=unbiased)


class ALittleIsEnough(Attack):
    """A little is enough (Baruch et al. 2019): ``μ − z·σ`` of the honest vectors (sample
    std), with the paper's ``z`` computed from ``n`` and the number of Byzantine workers when
    ``z`` is not given.

    ByzFL's ``ALittleIsEnough(tau=1.5)`` sends ``μ + τ·σ``: ``tau`` is accepted here and means
    ``z = −tau``; with ``byzfl_compat=True`` the default is ByzFL's ``tau = 1.5``."""

    name = "a_little_is_enough"

    def __init__(self, z: Optional[float] = None, tau: Optional[float] = None,
                 byzfl_compat: Optional[bool] = None) -> None:
        if tau is None and z is None and _compat(byzfl_compat):
            tau = 1.5
        if tau is not None:
            if z is not None:
                raise ValueError("a_little_is_enough: give z (byzadam) or tau (ByzFL, z = -tau), not both")
            z = -check_number(self.name, "tau", tau)
        super().__init__(z=check_number(self.name, "z", z, allow_none=True))


class PositiveInfinity(Attack):
    """Every coordinate ``+∞``. ByzFL: ``Inf``."""

    name = "positive_infinity"

    def __init__(self) -> None:
        super().__init__()


class NegativeInfinity(Attack):
    """Every coordinate ``−∞``."""

    name = "negative_infinity"

    def __init__(self) -> None:
        super().__init__()


class NotANumber(Attack):
    """Every coordinate NaN."""

    name = "nan"

    def __init__(self) -> None:
        super().__init__()


class Gaussian(Attack):
    """Gaussian noise ``N(mean, std²)`` per coordinate, from a seeded ChaCha20 stream. ByzFL:
    ``Gaussian(mu, sigma)`` (accepted names), same distribution, other random numbers."""

    name = "gaussian"

    def __init__(self, mean: Optional[float] = None, std: Optional[float] = None,
                 mu: Optional[float] = None, sigma: Optional[float] = None, seed: int = 0) -> None:
        mean = mu if mean is None else mean
        std = sigma if std is None else std
        super().__init__(seed=seed, mean=check_number(self.name, "mean", mean, allow_none=True),
                         std=check_number(self.name, "std", std, allow_none=True))


class Mimic(Attack):
    """Mimic (Karimireddy et al. 2022): every Byzantine worker sends honest vector
    ``target``. ByzFL: ``Mimic(epsilon)``, the same (``epsilon`` accepted as the index)."""

    name = "mimic"

    def __init__(self, target: Optional[int] = None, epsilon: Optional[int] = None) -> None:
        target = epsilon if target is None else target
        super().__init__(target=check_number(self.name, "target", target, integer=True,
                                             minimum=0, allow_none=True))


class _Adaptive(Attack):
    def __init__(self, agg: Optional[Aggregator], pre_agg_list: Optional[Sequence[PreAggregator]],
                 f: int, evals: int, start: float, delta: float, ratio: float, seed: int) -> None:
        super().__init__(seed=seed,
                         evals=check_number(self.name, "evals", evals, integer=True, minimum=0),
                         start=check_number(self.name, "start", start),
                         delta=check_number(self.name, "delta", delta),
                         ratio=check_number(self.name, "ratio", ratio))
        self._f = check_number(self.name, "f", f, integer=True, minimum=1)
        agg = Average() if agg is None else agg
        pre = [StaticClipping()] if pre_agg_list is None else list(pre_agg_list)
        self._server = pipeline(agg, pre)


class OptimalAlie(_Adaptive):
    """Optimal ALIE: ``μ − z·σ`` with ``z`` found by a line search (``evals`` evaluations from
    ``start`` with step ``delta`` shrinking by ``ratio``) maximising the distance between the
    server's output and the honest mean. ``agg``/``pre_agg_list``: the server's rule (ByzFL's
    defaults: ``Average()`` after ``Clipping()``); ``f``: Byzantine workers assumed when called
    ByzFL-style. ByzFL: ``Optimal_ALittleIsEnough``, which searches ``τ`` in ``μ + τσ``."""

    name = "optimal_alie"

    def __init__(self, agg: Optional[Aggregator] = None, pre_agg_list: Optional[Sequence[PreAggregator]] = None,
                 f: int = 1, evals: int = 20, start: float = 0.0, delta: float = 10.0,
                 ratio: float = 0.8, seed: int = 0) -> None:
        super().__init__(agg, pre_agg_list, f, evals, start, delta, ratio, seed)


class OptimalEmpire(_Adaptive):
    """Optimal Empire: ``−ε · mean(honest)`` with ``ε`` found by the same line search as
    :class:`OptimalAlie`. ByzFL: ``Optimal_InnerProductManipulation``, same definition."""

    name = "optimal_empire"

    def __init__(self, agg: Optional[Aggregator] = None, pre_agg_list: Optional[Sequence[PreAggregator]] = None,
                 f: int = 1, evals: int = 20, start: float = 0.0, delta: float = 10.0,
                 ratio: float = 0.8, seed: int = 0) -> None:
        super().__init__(agg, pre_agg_list, f, evals, start, delta, ratio, seed)


class LabelFlip(Attack):
    """Label flipping (data poisoning): the Byzantine workers train on labels ``classes − 1 −
    y`` and send what they compute. In the simulator; ``forge(own=...)`` returns ``own``."""

    name = "label_flip"

    def __init__(self, classes: int = 10) -> None:
        super().__init__(classes=check_number(self.name, "classes", classes, integer=True, minimum=0))


def SignFlipping() -> SignFlip:  # noqa: N802 - ByzFL's name
    """ByzFL's ``SignFlipping``: the negated mean of the honest vectors."""
    return SignFlip(base="honest_mean")


def InnerProductManipulation(tau: float = 2.0) -> Empire:  # noqa: N802 - ByzFL's name
    """ByzFL's ``InnerProductManipulation(tau)``: ``−tau`` times the honest mean."""
    return Empire(epsilon=tau, base="honest_mean")


Optimal_ALittleIsEnough = OptimalAlie
Optimal_InnerProductManipulation = OptimalEmpire
Inf = PositiveInfinity

#: Canonical registry name → class.
#: The class of every registry entry, by canonical name (every subclass that names one).
CLASSES = {c.name: c for c in subclasses(Attack) if c.name}


def attack(name: str, **params: Any) -> Attack:
    """An attack by any registry name or alias (``"alie"``, ``"ipm"``, ``"SignFlipping"``, …)."""
    g = globals()
    if name in g and callable(g[name]) and name[0].isupper():
        return g[name](**params)
    return CLASSES[canonical("attacks", name, "attack")](**params)
