"""The Flower App's components: ``server_app`` and ``client_app`` (named in the app's
``pyproject.toml``, ``[tool.flwr.app.components]``).

The ServerApp reads the run config (``flwr run … --run-config '…'``):

- ``config``: a TOML run config on the server's host (``byzadam run``'s format); empty for
  ``byzadam run``'s defaults;
- ``set``: overrides, ``;``-separated, as ``byzadam run --set`` takes them
  (``"attack.name=gaussian; aggregator.f=4"``);
- the common keys of ``byzadam run`` themselves (``rounds``, ``workers``, ``byzantine``,
  ``dataset``, ``seed``, ``optimizer.name``, ``aggregator.name``, ``attack.name`` …): an
  empty string leaves the key as the config has it; a new ``….name`` starts that table
  from the named entry's defaults (``attack.name = "gaussian"`` drops Little's ``unbiased``);
- ``round-timeout``, ``connect-timeout`` (seconds), ``data-dir`` (the server's data), and
  ``out-dir`` (metrics.jsonl and the per-round checkpoint) and ``store`` (a results store
  that receives the run), both empty for none; ``attack-at``: ``server`` (default) or
  ``node`` (the Byzantine nodes forge their own messages); ``torch-model``:
  ``"package.module:factory"`` for a PyTorch model the nodes compute with (empty: the
  built-in engine).
"""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Tuple

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from . import client
from .strategy import ByzadamStrategy

#: Run-config keys that are the strategy's, not the run's.
STRATEGY_KEYS = ("config", "set", "round-timeout", "connect-timeout", "data-dir", "out-dir",
                 "store", "attack-at", "torch-model")


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def from_run_config(rc: Dict[str, Any]) -> Tuple[Any, List[str], Dict[str, Any]]:
    """``(config, set, strategy options)`` from a Flower run config."""
    overrides: List[str] = []
    tables: List[str] = []
    for key, value in sorted(rc.items()):
        if key in STRATEGY_KEYS or value == "" or value is None:
            continue
        table, _, field = key.partition(".")
        if field == "name":
            # A new rule, attack or optimizer starts from its own defaults, not from the
            # fields of the one it replaces; its other keys (aggregator.f) then apply.
            tables.append(f"{table}={{name={json.dumps(str(value))}}}")
        else:
            overrides.append(f"{key}={_toml(value)}")
    overrides = tables + overrides
    extra = str(rc.get("set", "") or "")
    overrides += [s.strip() for s in extra.split(";") if s.strip()]
    path = str(rc.get("config", "") or "")
    options: Dict[str, Any] = {
        "round_timeout": float(rc.get("round-timeout", 300.0)),
        "connect_timeout": float(rc.get("connect-timeout", 300.0)),
    }
    for key, name in (("data-dir", "data_dir"), ("out-dir", "out_dir"), ("store", "store"),
                      ("attack-at", "attack_at"), ("torch-model", "torch_model")):
        if rc.get(key):
            options[name] = str(rc[key])
    return (path or None), overrides, options


server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """Runs the run config's rounds with :class:`ByzadamStrategy`."""
    logging.getLogger("byzadam.flower").setLevel(logging.INFO)
    if not logging.getLogger("byzadam.flower").handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("byzadam: %(message)s"))
        logging.getLogger("byzadam.flower").addHandler(h)
    config, overrides, options = from_run_config(dict(context.run_config))
    strategy = ByzadamStrategy(config, set=overrides, **options)
    strategy.start(grid)


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    """The worker half (:func:`byzadam.flower.client.train`)."""
    return client.train(msg, context)
