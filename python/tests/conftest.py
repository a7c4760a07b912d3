"""Fixtures of the Python tests, which run against the *installed* wheel (``.ci/run`` builds it,
installs it into a fresh virtual environment and runs ``pytest python/tests`` from outside the
source tree's ``python/`` folder, so ``import byzadam`` is the wheel's).

- ``cli``: the Rust command the bindings are compared with, ``$BYZADAM_CLI`` or the
  workspace's ``target/{release,debug}/byzadam``; missing is a failure, never a skip.
- ``data_dir``: ``$BYZADAM_DATA_DIR`` or the project's ``../shared/data``; a test that needs
  MNIST fails, saying so, when it is not there.
"""
import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("BYZADAM_CLI")
    candidates = [pathlib.Path(path)] if path else [
        REPO / "target" / "release" / "byzadam", REPO / "target" / "debug" / "byzadam"]
    for c in candidates:
        if c.is_file():
            return str(c)
    pytest.fail(f"the byzadam CLI is not built (looked for {', '.join(map(str, candidates))}); "
                "run `cargo build -p byzadam` or set BYZADAM_CLI")


@pytest.fixture(scope="session")
def data_dir():
    d = os.environ.get("BYZADAM_DATA_DIR") or str(REPO.parent / "shared" / "data")
    if not (pathlib.Path(d) / "mnist").is_dir():
        pytest.fail(f"MNIST is not in {d}/mnist: set BYZADAM_DATA_DIR to the data directory")
    return d


def run_cli(cli, *args, cwd=None):
    r = subprocess.run([cli, *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise AssertionError(f"byzadam {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r.stdout


def engine_messages(server, workers):
    """One round of the built-in engine's ``workers`` at the server's parameters, as
    docs/python.md's loop runs it: every worker's messages (``messages × workers × dim``,
    rows in worker order; a Byzantine worker's row left zero when the attack ignores it)
    and losses."""
    n, dim, k = server.workers, server.dim, server.messages
    messages = np.zeros((k, n, dim), dtype=np.float32)
    losses = np.zeros(n, dtype=np.float32)
    params = server.params
    for w in workers:
        if w.byzantine and not server.needs_byzantine_messages:
            continue
        losses[w.index], sent = w.step(params)
        for j, m in enumerate(sent):
            messages[j, w.index] = m
    return messages, losses


@pytest.fixture
def rng():
    return np.random.default_rng(20261201)


def pytest_report_header(config):
    import byzadam

    return f"byzadam {byzadam.__version__} from {byzadam.__file__}"
