"""The simulator from Python: ``run`` (one training run), ``grid`` (a grid file into a
results store) and ``Store`` (reading one)."""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core

__all__ = ["run", "grid", "Store", "Result"]


def _toml_str(s: str, key: str) -> str:
    """``s`` as a TOML basic string: quotes, backslashes and every control character escaped,
    so no key or value can end its string and start another setting."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\u{c:04x}")
        elif 0xD800 <= c <= 0xDFFF:
            raise ValueError(f"config key {key}: {s!r} holds a lone surrogate, which is not text")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(k: Any, where: str) -> str:
    if not isinstance(k, str):
        raise TypeError(f"config key {where}: keys must be strings, got {k!r}")
    return _toml_str(k, where)


def _toml_value(v: Any, key: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v, key)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x, key) for x in v) + "]"
    if isinstance(v, dict):
        # None is "absent" (an optional key at its default), as in a resolved config's JSON.
        return "{" + ", ".join(f"{_toml_key(k, key)} = {_toml_value(x, f'{key}.{k}')}"
                               for k, x in v.items() if x is not None) + "}"
    if v is None:
        if key == "attack":
            return '"none"'
        raise TypeError(f"config key {key}: None has no TOML form (leave the key out)")
    if hasattr(v, "config"):  # a byzadam aggregator, pre-aggregator, attack or optimizer
        return _toml_value(v.config(), key)
    raise TypeError(f"config key {key}: cannot write a {type(v).__name__} as TOML")


def _to_toml(config: dict) -> str:
    # Keys quoted like strings: {"rounds = 1\nworkers": 3} is one (unknown) key, never two.
    return "\n".join(f"{_toml_key(k, repr(k))} = {_toml_value(v, str(k))}" for k, v in config.items()
                     if v is not None or k == "attack") + "\n"


def _text(config: Union[None, dict, str, os.PathLike]) -> Tuple[Optional[str], str]:
    if config is None:
        return None, "the quickstart config"
    if isinstance(config, dict):
        return _to_toml(config), "the config dict"
    if isinstance(config, os.PathLike) or (isinstance(config, str) and "=" not in config
                                           and (config.endswith(".toml") or os.path.exists(config))):
        path = os.fspath(config)
        try:
            with open(path, encoding="utf-8") as f:
                return f.read(), path
        except OSError as e:
            raise _core.ByzadamError(f"reading {path}: {e.strerror}") from None
    if isinstance(config, str):
        return config, "the config string"
    raise TypeError(f"config must be a dict, a TOML string or a path, got {type(config).__name__}")


def _progress(total: int, desc: str, show: Optional[bool]):
    """A tqdm bar (the notebook one in Jupyter) when tqdm is installed, else a line on stderr."""
    if show is False:
        return None
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="round")
    except ImportError:
        class Line:
            def __init__(self) -> None:
                self.n = 0

            def update(self, k: int) -> None:
                self.n += k
                sys.stderr.write(f"\r{desc}: round {self.n}/{total}")
                sys.stderr.flush()

            def set_postfix_str(self, s: str) -> None:
                pass

            def close(self) -> None:
                sys.stderr.write("\n")

        return Line()


@dataclass
class Result:
    """One run's outcome: ``config`` (the resolved run config, defaults filled in),
    ``metrics`` (one dict per round, as ``metrics.jsonl``), ``summary`` (as ``summary.json``)
    and per-round NumPy arrays."""

    config: Dict[str, Any]
    metrics: List[Dict[str, Any]]
    summary: Dict[str, Any]
    rounds: np.ndarray = field(repr=False)
    train_loss: np.ndarray = field(repr=False)
    xi_norm: np.ndarray = field(repr=False)
    eval_rounds: np.ndarray = field(repr=False)
    accuracy: np.ndarray = field(repr=False)

    @property
    def final_accuracy(self) -> float:
        """Test accuracy at the last evaluation."""
        return self.summary["final_accuracy"]

    def to_pandas(self):
        """The per-round metrics as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        rows = []
        for m in self.metrics:
            e = m.get("eval") or {}
            rows.append({k: v for k, v in m.items() if k != "eval"} |
                        {"accuracy": e.get("accuracy"), "test_loss": e.get("loss")})
        return pd.DataFrame(rows)


def run(config: Union[None, dict, str, os.PathLike] = None, *, set: Sequence[str] = (),
        data_dir: Optional[str] = None, threads: Optional[int] = None,
        progress: Optional[bool] = None) -> Result:
    """One training run, exactly as ``byzadam run`` runs it (same keys, defaults, validation,
    data, seeds and numbers; ``docs/config.md``), without writing a results directory.

    ``config``: a dict (``{"rounds": 20, "aggregator": {"name": "median"}}``), a TOML string,
    a path to a TOML file, or ``None`` for the quickstart; each top-level key replaces the
    default's. ``set``: ``byzadam run --set`` overrides (``"aggregator.f=3"``). ``threads``:
    threads of this run (default: every core). A progress bar shows unless
    ``progress=False``; Ctrl-C stops the run between rounds and raises ``KeyboardInterrupt``.
    """
    text, name = _text(config)
    cfg = json.loads(_core.resolve_config(text, name, list(set)))
    bar = _progress(cfg["rounds"], "byzadam run", progress)
    last = {"acc": None}

    def on_round(m: dict) -> None:
        if bar is None:
            return
        if m.get("eval"):
            last["acc"] = m["eval"]["accuracy"]
        bar.update(1)
        if last["acc"] is not None:
            bar.set_postfix_str(f"test accuracy {last['acc']:.4f}")

    try:
        config_json, metrics, summary = _core.run(text, name, list(set), data_dir, threads, on_round)
    finally:
        if bar is not None:
            bar.close()
    summary = json.loads(summary)
    if "synthetic_fallback" in summary:
        import warnings

        warnings.warn(f"MNIST is not available ({summary['synthetic_fallback']}); the quickstart "
                      "ran on byzadam's synthetic digits instead", stacklevel=2)
    evals = [(m["round"], m["eval"]["accuracy"]) for m in metrics if m.get("eval")]
    return Result(
        config=json.loads(config_json), metrics=metrics, summary=summary,
        rounds=np.array([m["round"] for m in metrics], dtype=np.int64),
        train_loss=np.array([m["train_loss"] for m in metrics], dtype=np.float64),
        xi_norm=np.array([m["xi_norm"] for m in metrics], dtype=np.float64),
        eval_rounds=np.array([r for r, _ in evals], dtype=np.int64),
        accuracy=np.array([a for _, a in evals], dtype=np.float64),
    )


def grid(path: Union[str, os.PathLike], store: Optional[Union[str, os.PathLike]] = None, *,
         data_dir: Optional[str] = None, jobs: Optional[int] = None,
         threads: Optional[int] = None, checkpoint_every: int = 60,
         progress: Optional[bool] = None) -> "Store":
    """Runs a grid file into a results store as ``byzadam grid`` does: runs already in the
    store are skipped, runs in flight are checkpointed, so an interrupted grid (Ctrl-C raises
    ``KeyboardInterrupt`` after checkpointing) resumes when called again. ``store`` defaults
    to ``results/<grid name>.db``. Returns the store."""
    state = {"bar": None, "done": 0}

    def on_progress(done: int, total: int) -> None:
        if progress is False:
            return
        if state["bar"] is None:
            state["bar"] = _progress(total, "byzadam grid", progress)
        state["bar"].update(done - state["done"])
        state["done"] = done

    try:
        report, where = _core.grid(os.fspath(path), None if store is None else os.fspath(store), data_dir,
                            jobs, threads, checkpoint_every, on_progress)
    finally:
        if state["bar"] is not None:
            state["bar"].close()
    if progress is not False:
        print(report, end="", file=sys.stderr)
    return Store(where)


class Store:
    """A results store (the SQLite file ``byzadam grid`` writes), read-only from Python."""

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self._core = _core.Store(os.fspath(path))

    @property
    def path(self) -> str:
        """The file."""
        return self._core.path

    def runs(self, grid: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every finished run (or grid ``grid``'s): dicts with ``id``, ``config``, ``summary``
        and ``backend`` (``"builtin"``, or ``"torch:<model>@<fingerprint>"`` for a run of
        :func:`byzadam.torch.grid`)."""
        return [json.loads(r) for r in self._core.runs(grid)]

    def grids(self) -> List[Tuple[str, int, int]]:
        """``(name, runs, finished)`` per grid."""
        return self._core.grids()

    def curve(self, run_id: str) -> np.ndarray:
        """Run ``run_id``'s test accuracy: an ``evaluations × 2`` array of (round, accuracy)."""
        return np.array(self._core.curve(run_id), dtype=np.float64).reshape(-1, 2)

    def results_versions(self) -> List[Tuple[int, int]]:
        """``(results version, runs)``: more than one means numbers from builds that differ."""
        return self._core.results_versions()

    def to_pandas(self, grid: Optional[str] = None):
        """One row per run: its id, labels and summary (needs pandas)."""
        import pandas as pd

        rows = []
        for r in self.runs(grid):
            c = r["config"]
            rows.append({"id": r["id"], "backend": r["backend"], "optimizer": c["optimizer"]["name"],
                         "aggregator": c["aggregator"]["name"],
                         "attack": (c.get("attack") or {}).get("name", "none") if isinstance(c.get("attack"), dict) else c.get("attack"),
                         "seed": c["seed"], **r["summary"]})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"Store({self.path!r})"
