"""A Flower federation on this machine: a SuperLink and N SuperNodes on loopback, TLS and
SuperNode authentication on, running byzadam's Flower App; for trying the networked mode on
one machine, for the loopback tests and for the round-time benchmark.

``python -m byzadam.flower.local --nodes 15 --work DIR [--config run.toml] [--set K=V …]``
makes the CA, the SuperLink's certificate and the nodes' keys (:mod:`byzadam.flower.certs`),
starts ``flower-superlink`` (TLS, ``--enable-supernode-auth``, no runtime dependency
installation, an in-memory database), registers each node's public key, starts one
``flower-supernode`` per worker (``partition-id=I``, its own port, its state under
``DIR/nodes``), runs ``flwr run`` and stops every process it started, also on an error or a
Ctrl-C. The run's ``metrics.jsonl`` and ``server.ckpt`` land in ``DIR/out``. The commands it
runs are the recipe of docs/flower.md, one terminal each on several hosts.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from . import certs

#: The Flower App (its pyproject.toml names byzadam's components), installed with byzadam.
APP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundle")


#: Ports :func:`free_port` has handed out in this process (never twice).
_HANDED_OUT: "set[int]" = set()


def _ephemeral_low() -> Optional[int]:
    """The first port of the range the kernel gives outgoing connections (Linux), or None."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and that this process has not
    handed out before. Where the kernel says which ports it gives outgoing connections
    (Linux), one below them: a port from that range can be taken by any process's next
    connection between this pick and the server's bind (a SuperNode of the 15-node loopback
    test once failed to start so, ``address already in use``)."""
    low = _ephemeral_low()
    if low is not None and low > 11000:
        rng = random.SystemRandom()
        for _ in range(1000):
            port = rng.randrange(10000, low)
            if port in _HANDED_OUT:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def _bin(name: str) -> str:
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(here):
        return here
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: pip install 'byzadam[flower]'")
    return found


class LocalFederation:
    """A SuperLink and SuperNodes on 127.0.0.1, as a context manager that stops them all.

    ``node_config``: extra node-config entries by partition (``{3: {"fault": "garbage"}}``);
    ``unregistered``: partitions whose keys are not registered (those nodes are refused).
    """

    def __init__(self, work_dir: str, nodes: int, *, data_dir: Optional[str] = None,
                 insecure: bool = False, node_config: Optional[Mapping[int, Mapping[str, Any]]] = None,
                 unregistered: Sequence[int] = (), start_timeout: float = 60.0,
                 log: Any = None) -> None:
        if nodes < 1:
            raise ValueError("at least one node is needed")
        self.work = os.path.abspath(work_dir)
        self.nodes = nodes
        self.data_dir = data_dir or os.environ.get("BYZADAM_DATA_DIR")
        self.insecure = insecure
        self.node_config = {int(k): dict(v) for k, v in (node_config or {}).items()}
        self.unregistered = set(unregistered)
        self.start_timeout = start_timeout
        self.log = log if log is not None else sys.stderr
        self.port = free_port()
        self.procs: Dict[str, subprocess.Popen] = {}
        self.keys = os.path.join(self.work, "keys")
        self.home = os.path.join(self.work, "flwr-home")
        self.out_dir = os.path.join(self.work, "out")
        self.env = dict(os.environ)
        self.env.update({"FLWR_HOME": self.home, "FLWR_TELEMETRY_ENABLED": "0",
                         "FLWR_DISABLE_UPDATE_CHECK": "1",
                         "PATH": os.path.dirname(sys.executable) + os.pathsep
                         + self.env.get("PATH", "")})
        if self.data_dir:
            self.env["BYZADAM_DATA_DIR"] = os.path.abspath(self.data_dir)

    # --- processes ----------------------------------------------------------------------

    def _say(self, msg: str) -> None:
        print(f"[byzadam.flower.local] {msg}", file=self.log, flush=True)

    def _spawn(self, name: str, argv: List[str]) -> subprocess.Popen:
        logf = open(os.path.join(self.work, "logs", f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env=self.env,
                             cwd=self.work, start_new_session=True)
        logf.close()
        self.procs[name] = p
        return p

    def _stop(self, name: str, sig: int = signal.SIGTERM, wait: float = 10.0) -> None:
        p = self.procs.pop(name, None)
        if p is None:
            return
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
        # Whatever the process started (its SuperExec, ClientApps) shares its group.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self._say(f"{name} (pid {p.pid}) did not exit")
        # Its group's other members (SuperExec, ServerApp, ClientApps) are killed with it;
        # wait (bounded) until the kernel has them all gone.
        end = time.monotonic() + max(wait, 10.0)
        while time.monotonic() < end:
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        self._say(f"{name}'s process group {p.pid} still exists after SIGKILL")

    def log_of(self, name: str) -> str:
        """What process ``name`` (``superlink``, ``node-3``) printed."""
        try:
            with open(os.path.join(self.work, "logs", f"{name}.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _flwr(self, args: List[str], timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run([_bin("flwr")] + args, env=self.env, cwd=self.work,
                              capture_output=True, text=True, timeout=timeout)

    # --- the federation -----------------------------------------------------------------

    def __enter__(self) -> "LocalFederation":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Keys, the SuperLink, the registrations and every SuperNode."""
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        os.makedirs(self.home, exist_ok=True)
        if not self.insecure:
            certs.make(self.keys, self.nodes)
        with open(os.path.join(self.home, "config.toml"), "w") as f:
            f.write("[superlink]\ndefault = \"local\"\n\n[superlink.local]\n"
                    f"address = \"127.0.0.1:{self.port}\"\n")
            if self.insecure:
                f.write("insecure = true\n")
            else:
                f.write(f"root-certificates = \"{os.path.join(self.keys, 'ca.crt')}\"\n")
        argv = [_bin("flower-superlink"), "--port", str(self.port),
                "--disable-runtime-dependency-installation", "--database", ":flwr-in-memory:"]
        if self.insecure:
            self._say("--insecure: no TLS and no node authentication; for a trusted loopback only")
            argv.append("--insecure")
        else:
            argv += ["--ssl-ca-certfile", os.path.join(self.keys, "ca.crt"),
                     "--ssl-certfile", os.path.join(self.keys, "server.pem"),
                     "--ssl-keyfile", os.path.join(self.keys, "server.key"),
                     "--enable-supernode-auth"]
        self._spawn("superlink", argv)
        self._wait_for_port()
        if not self.insecure:
            for i in range(self.nodes):
                if i not in self.unregistered:
                    self.register(i)
        for i in range(self.nodes):
            self.start_node(i)

    def _wait_for_port(self) -> None:
        end = time.monotonic() + self.start_timeout
        while time.monotonic() < end:
            if self.procs["superlink"].poll() is not None:
                raise RuntimeError("the SuperLink exited at start:\n" + self.log_of("superlink"))
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"the SuperLink did not listen on port {self.port} within "
                           f"{self.start_timeout:.0f} s:\n" + self.log_of("superlink"))

    def register(self, i: int) -> None:
        """``flwr supernode register`` node ``i``'s public key (retried while the SuperLink
        starts)."""
        end = time.monotonic() + self.start_timeout
        while True:
            r = self._flwr(["supernode", "register", os.path.join(self.keys, f"node_{i}.pub"),
                            "local"], timeout=self.start_timeout)
            if r.returncode == 0:
                return
            if time.monotonic() >= end:
                raise RuntimeError(f"flwr supernode register node_{i}.pub failed:\n"
                                   f"{r.stdout}\n{r.stderr}")
            time.sleep(0.5)

    def start_node(self, i: int) -> subprocess.Popen:
        """Starts (or restarts) the SuperNode of partition ``i``."""
        config = {"partition-id": i, "state-dir": os.path.join(self.work, "nodes")}
        config.update(self.node_config.get(i, {}))
        if self.data_dir and "data-dir" not in config:
            config["data-dir"] = os.path.abspath(self.data_dir)
        argv = [_bin("flower-supernode"), "--superlink", f"127.0.0.1:{self.port}",
                "--port", str(free_port()),
                "--node-config", " ".join(f"{k}={_toml_value(v)}" for k, v in config.items())]
        if self.insecure:
            argv.append("--insecure")
        else:
            argv += ["--root-certificates", os.path.join(self.keys, "ca.crt"),
                     "--auth-supernode-private-key", os.path.join(self.keys, f"node_{i}")]
        return self._spawn(f"node-{i}", argv)

    def restart_node(self, i: int, timeout: float = 180.0, settle: float = 15.0
                     ) -> subprocess.Popen:
        """Starts the SuperNode of partition ``i`` again after a crash, retrying while the
        SuperLink still holds the dead one as online (it refuses a second activation of the
        same key, exit code 305, until its heartbeat check marks the old one offline, up to
        about a minute): done when a start survives ``settle`` seconds."""
        end = time.monotonic() + timeout
        while True:
            p = self.start_node(i)
            up = time.monotonic() + settle
            while time.monotonic() < up and p.poll() is None:
                time.sleep(0.5)
            if p.poll() is None:
                return p
            self._stop(f"node-{i}", signal.SIGKILL, wait=5.0)  # and what it started
            if time.monotonic() >= end:
                raise TimeoutError(f"node {i} could not rejoin within {timeout:.0f} s:\n"
                                   + self.log_of(f"node-{i}")[-3000:])
            time.sleep(5.0)

    def stop_node(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Stops the SuperNode of partition ``i`` (SIGKILL: as a crash would)."""
        self._stop(f"node-{i}", sig)

    def run(self, run_config: Mapping[str, Any], timeout: float = 1800.0,
            app_dir: str = APP_DIR) -> subprocess.CompletedProcess:
        """``flwr run`` the app with ``run_config`` (Flower run-config keys: see
        :mod:`byzadam.flower.app`; ``out-dir`` defaults to ``DIR/out``), streaming its log
        into ``DIR/logs/run.log``; returns when the run ends."""
        rc = {"out-dir": self.out_dir}
        rc.update(run_config)
        path = os.path.join(self.work, "run-config.toml")
        with open(path, "w") as f:
            for k, v in rc.items():
                f.write(f"{json.dumps(k)} = {_toml_value(v)}\n")
        with open(os.path.join(self.work, "logs", "run.log"), "ab") as logf:
            p = subprocess.Popen([_bin("flwr"), "run", app_dir, "local", "--stream",
                                  "--run-config", path], stdout=logf, stderr=subprocess.STDOUT,
                                 env=self.env, cwd=self.work, start_new_session=True)
            self.procs["run"] = p
            try:
                rc_ = p.wait(timeout=timeout)
            finally:
                self._stop("run", wait=5.0)
        return subprocess.CompletedProcess(p.args, rc_, self.log_of("run"), "")

    def stop(self) -> None:
        """Stops every process this federation started (nodes first)."""
        for name in sorted(self.procs, key=lambda n: n == "superlink"):
            self._stop(name, signal.SIGTERM, wait=5.0)


def main(argv: Sequence[str] = ()) -> int:
    p = argparse.ArgumentParser(prog="python -m byzadam.flower.local",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=None,
                   help="SuperNodes to start (default: the config's workers)")
    p.add_argument("--work", required=True, help="a folder for keys, logs, state and output")
    p.add_argument("--config", default="", help="a byzadam run config (TOML)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a run-config override, as byzadam run --set takes it (repeatable)")
    p.add_argument("--data-dir", default=None, help="the datasets' folder (else BYZADAM_DATA_DIR)")
    p.add_argument("--round-timeout", type=float, default=300.0, help="seconds per round")
    p.add_argument("--store", default="", help="a results store that receives the run")
    p.add_argument("--insecure", action="store_true",
                   help="no TLS, no node authentication (a trusted loopback only)")
    a = p.parse_args(list(argv) or None)
    from ..round import resolve
    cfg = resolve(os.path.abspath(a.config) if a.config else None, set=a.set)
    nodes = a.nodes if a.nodes is not None else int(cfg["workers"])
    run_config: Dict[str, Any] = {"set": "; ".join(a.set), "round-timeout": a.round_timeout}
    if a.config:
        run_config["config"] = os.path.abspath(a.config)
    if a.store:
        run_config["store"] = os.path.abspath(a.store)
    if a.data_dir:
        run_config["data-dir"] = os.path.abspath(a.data_dir)
    with LocalFederation(a.work, nodes, data_dir=a.data_dir, insecure=a.insecure) as fed:
        fed._say(f"SuperLink on 127.0.0.1:{fed.port}, {nodes} SuperNodes; logs in "
                 f"{os.path.join(fed.work, 'logs')}")
        r = fed.run(run_config)
        print(r.stdout)
        fed._say(f"metrics: {os.path.join(fed.out_dir, 'metrics.jsonl')}")
        return int(r.returncode)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
