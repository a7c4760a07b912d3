"""byzadam: Byzantine-resilient distributed training with a Rust core.

- Robust aggregation rules, pre-aggregators and attacks with ByzFL's call convention and
  byzadam's exact, fast kernels: ``byzadam.TrMean(f=5)(vectors)``,
  ``byzadam.RobustAggregator({"name": "TrMean", "parameters": {"f": 5}})``. A ByzFL user
  changes ``from byzfl import …`` to ``from byzadam import …``.
- The optimizers' worker and server halves: :mod:`byzadam.optim`.
- The simulator's data side: :mod:`byzadam.data`.
- The simulator: :func:`byzadam.run`, :func:`byzadam.grid`, :class:`byzadam.Store`.
- The round's two halves, for loops of your own: :class:`byzadam.Server`,
  :class:`byzadam.Worker`, :class:`byzadam.Engine` (:mod:`byzadam.round`).

``byzadam.byzfl_compat = True`` makes every rule made afterwards reproduce ByzFL 0.0.11's
numbers where byzadam's definition differs and ByzFL's is deterministic (Krum, Multi-Krum,
MDA's ties; ByzFL's defaults for the geometric median and ALIE). Errors from the Rust core are
:class:`ByzadamError` (a ``ValueError``) with its message.
"""
from . import _core
from ._core import AttackFailed, ByzadamError, RESULTS_VERSION, TooFewReplies, __version__, cpu_level
from .aggregators import *  # noqa: F401,F403
from .aggregators import __all__ as _aggregators
from .attacks import *  # noqa: F401,F403
from .attacks import __all__ as _attacks
from .preaggregators import *  # noqa: F401,F403
from .preaggregators import __all__ as _preaggregators
from .robust_aggregator import RobustAggregator
from .simulator import Result, Store, grid, run
from .round import Engine, Server, Worker, resolve
from . import data, optim

#: Reproduce ByzFL's numbers where the definitions differ (see the module docstring).
byzfl_compat = False


def registry(parameters: bool = False) -> dict:
    """Every name byzadam's registries accept: ``{"aggregators": [(name, [aliases])], …}``;
    with ``parameters=True`` every entry in full, as ``byzadam rules --json`` prints it:
    ``{"aggregators": [{"name", "aliases", "requirement", "params": [{"name", "kind",
    "default", "bound", "doc"}]}], …}``. The bounds are enforced in Rust, by the same check
    every config path runs."""
    if parameters:
        import json

        return json.loads(_core.registry_json())
    return _core.registry()


__all__ = (["AttackFailed", "ByzadamError", "TooFewReplies", "RESULTS_VERSION", "__version__", "cpu_level", "RobustAggregator", "Result",
            "Store", "grid", "run", "data", "optim", "Server", "Worker", "Engine", "resolve", "byzfl_compat", "registry"]
           + list(_aggregators) + list(_attacks) + list(_preaggregators))
