"""byzadam on Flower: the round over a real network, a server and workers on different
machines (the thesis's Figure 2.1), with Flower 1.42 as the transport (``pip install
'byzadam[flower]'``).

- :class:`ByzadamStrategy`: the server half of the round as a Flower Message-API strategy.
  Replies become rows in worker (partition) order; byzadam's pre-aggregators and rule, the
  server step of SGD/RESAM/DRA/MRA, ξ/λ and evaluation are :class:`byzadam.Server` and
  :class:`byzadam.Engine`'s, so a run gives ``byzadam run``'s numbers bit for bit. Every
  reply is validated (keys, dtype, length, finite loss, its partition); a bad reply counts as
  that worker's missing reply and is recorded, never a crash. Nothing is weighted by a
  claimed sample count.
- :data:`byzadam.flower.app.client_app`: the worker half. Its shard is byzadam's partition
  ``partition-id`` (node config); its optimizer state and sampler survive between rounds (in
  the node's ``context.state``, and on disk under ``state-dir`` when the node config names
  one, so a restarted SuperNode rejoins with its state); its message is computed by the
  built-in engine.
- :data:`byzadam.flower.app.server_app`: the ServerApp that runs the strategy with the run
  config's keys (those of ``byzadam run``).
- :mod:`byzadam.flower.certs`: a local CA, the SuperLink's certificate and the SuperNodes'
  authentication keys; :mod:`byzadam.flower.local`: a SuperLink and N SuperNodes on this
  machine, TLS and node authentication on, one command.

Threat model. A Byzantine node (``byzantine`` of the run config, by partition) replies
through the same protocol. By default (``attack_at="server"``) the config's attack forges the
Byzantine rows on the server, as in the simulator: the only place for attacks that need the
other workers' messages (ALIE, Little, mimic, the optimal attacks), a research hook since no
real node sees them. With ``attack_at="node"`` each Byzantine node forges its own message
(blind attacks, label flip, sign flip and Empire on its own message) and the server takes
the rows as sent (docs/flower.md).
"""
try:
    import flwr  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "byzadam.flower needs Flower 1.42: pip install 'byzadam[flower]' (or pip install "
        "'flwr>=1.42,<1.43')") from e

from .strategy import ByzadamStrategy, RoundLog

__all__ = ["ByzadamStrategy", "RoundLog"]
