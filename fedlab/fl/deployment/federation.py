"""Flower's Deployment Engine on one machine: a SuperLink and N SuperNodes on loopback, then `flwr run`.

    with LocalFederation(n_nodes=2, tls=False) as fed:
        out = fed.run(APP_DIR, cfg.to_dict(), timeout=900)
        assert out["status"] == "finished:completed"

Institutions run a node, not a simulation: each SuperNode is its own process with its own partition
id (``--node-config "partition-id=i num-partitions=N"``), so it only ever loads its own client's
data; the SuperLink coordinates; ``flwr run`` submits the same ServerApp/ClientApp that the notebooks
simulate. Everything is bounded in time and stopped by PID, even on failure:

  * free loopback ports: one for the SuperLink (Control, Fleet and ServerAppIo share one HTTP port
    in Flower 1.41) and one per SuperNode;
  * a private FLWR_HOME (config.toml with one named SuperLink connection), working folder and logs;
  * runtime dependency installation disabled (``--disable-runtime-dependency-installation`` on the
    SuperLink and FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 everywhere): nothing is pip/uv
    installed at run time, the installed environment is used;
  * ``flwr run APP CONN --run-config overrides.toml --format json`` returns a run id; the status is
    polled with ``flwr list`` until it is ``finished:*`` (the exit code of ``flwr run`` only says
    that the run was submitted);
  * ``stop()``: SuperNodes (SIGTERM to their process groups, then SIGKILL), then the SuperLink, then
    a sweep that SIGKILLs any process still carrying this federation's private environment marker.
  * ``tls=True``: a self-signed CA and server certificate for 127.0.0.1 are generated; the SuperLink
    serves TLS and the SuperNodes and the CLI verify it.
  * ``auth=True`` (with TLS): SuperNode authentication as a production federation runs it. The
    SuperLink starts with ``--enable-supernode-auth``; one P-384 key pair per SuperNode is generated
    (:mod:`.node_auth`), each public key registered with ``flwr supernode register``, and each node
    started with ``--auth-supernode-private-key``: a node whose key was not registered is refused.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from fedlab import paths
from fedlab.errors import FedlabError

from .node_auth import NodeKey, make_node_key
from .tls import make_tls

BIN = Path(sys.executable).parent  # flower-superlink etc. live next to the interpreter
APP_DIR = paths.DEPLOY_APP_DIR
MARKER = "FEDLAB_LOCAL_FEDERATION"  # env var inherited by every descendant process


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _pids_with_marker(tag: str) -> list[int]:
    """PIDs of live processes whose environment holds MARKER=tag (this federation's descendants)."""
    needle = f"{MARKER}={tag}".encode()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle in (d / "environ").read_bytes().split(b"\0"):
                state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    out.append(int(d.name))
        except OSError:
            continue
    return out


class FederationError(FedlabError):
    """The local federation could not start, or a run did not finish."""


# ----------------------------------------------------------------------------------------------
# the federation
# ----------------------------------------------------------------------------------------------
class LocalFederation:
    """One SuperLink + N SuperNodes on 127.0.0.1, each in its own process group/session."""

    def __init__(
        self,
        n_nodes: int = 2,
        *,
        tls: bool = False,
        auth: bool = False,
        workdir: str | Path | None = None,
        node_configs: list[str] | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 90.0,
    ):
        if auth and not tls:
            raise FederationError(
                "SuperNode authentication needs TLS (Flower signs node requests over an encrypted "
                "connection only). Fix: add --tls to --auth."
            )
        self.n = n_nodes
        self.tls, self.auth = tls, auth
        base = Path(workdir) if workdir else None
        if base:
            base.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="fed-", dir=base))
        self.flwr_home, self.logs, self.cwd = self.dir / "flwr_home", self.dir / "logs", self.dir / "cwd"
        for p in (self.flwr_home, self.logs, self.cwd):
            p.mkdir(parents=True, exist_ok=True)
        self.node_configs = node_configs or [f"partition-id={i} num-partitions={n_nodes}" for i in range(n_nodes)]
        self.start_timeout = start_timeout
        self.tag = uuid.uuid4().hex
        self.conn = f"fed{self.tag[:8]}"
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.env.update(
            {
                # the SuperLink starts `flower-superexec` and friends by name: they live beside python
                "PATH": f"{BIN}{os.pathsep}{self.env.get('PATH', '')}",
                "FLWR_HOME": str(self.flwr_home),
                "FLWR_TELEMETRY_ENABLED": "0",
                "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
                MARKER: self.tag,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.pop("FLWR_INTERNAL_GRPC_CONTROL_API", None)
        self.env.pop("FLWR_INTERNAL_GRPC_FLEET_API", None)
        self.superlink: subprocess.Popen | None = None
        self.nodes: list[subprocess.Popen | None] = []
        self.port: int | None = None
        self.node_ports: list[int] = []
        self.certs: dict[str, Path] | None = None
        self.node_keys: list[NodeKey] = []  # with auth: node i's key pair, registered with the SuperLink
        self.registered: list[int] = []  # the node ids the SuperLink gave the registered keys
        self.timings: dict[str, float] = {}

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> LocalFederation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.logs / log_name, "ab")
        try:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # own process group + session
            )
        finally:
            log.close()

    def _tls_args_server(self) -> list[str]:
        if not self.tls:
            return ["--insecure"]
        c = self.certs
        return ["--ssl-ca-certfile", str(c["ca"]), "--ssl-certfile", str(c["cert"]), "--ssl-keyfile", str(c["key"])]

    def _tls_args_client(self) -> list[str]:
        return ["--root-certificates", str(self.certs["ca"])] if self.tls else ["--insecure"]

    def _health(self, port: int) -> bool:
        scheme = "https" if (self.tls and port == self.port) else "http"
        ctx = ssl.create_default_context(cafile=str(self.certs["ca"])) if scheme == "https" else None
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/health", timeout=2, context=ctx) as r:
                return r.status == 200
        except Exception:
            return False

    def _wait(self, cond, what: str, deadline: float, procs=(), logs=()) -> None:
        while not cond():
            for p, log in zip(procs, logs):
                if p.poll() is not None:
                    raise FederationError(
                        f"{what}: process {p.pid} exited with {p.returncode}.\n{_tail(self.logs / log)}"
                    )
            if time.monotonic() > deadline:
                raise FederationError(
                    f"{what}: not ready within {self.start_timeout:.0f} s.\n"
                    + "\n".join(_tail(self.logs / log) for log in logs)
                )
            time.sleep(0.25)

    def start(self) -> None:
        t0 = time.monotonic()
        deadline = t0 + self.start_timeout
        if self.tls:
            self.certs = make_tls(self.dir / "certs")
        for attempt in range(3):  # a free port can be taken between choosing and binding it
            self.port, *self.node_ports = free_ports(1 + self.n)
            self.superlink = self._spawn(
                [
                    str(BIN / "flower-superlink"),
                    *self._tls_args_server(),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--disable-runtime-dependency-installation",
                    *(["--enable-supernode-auth"] if self.auth else []),
                ],
                "superlink.log",
            )
            try:
                self._wait(lambda: self._health(self.port), "SuperLink", deadline, [self.superlink], ["superlink.log"])
                break
            except FederationError:
                if self.superlink.poll() is None or attempt == 2:
                    raise
                self.superlink.wait()
        self.timings["superlink_ready_s"] = round(time.monotonic() - t0, 2)
        self._write_connection()
        if self.auth:
            self.node_keys = [make_node_key(self.dir / "node-keys", f"supernode{i}") for i in range(self.n)]
            self.registered = [self.register(k) for k in self.node_keys]
            self.timings["nodes_registered_s"] = round(time.monotonic() - t0, 2)
        for i in range(self.n):
            self.nodes.append(self.start_node(i))
        self._wait(
            lambda: all(self._health(p) for p in self.node_ports),
            "SuperNodes",
            deadline,
            self.nodes,
            [f"supernode{i}.log" for i in range(self.n)],
        )
        self._wait(
            lambda: self.online_nodes() >= self.n,
            "SuperNode registration",
            deadline,
            self.nodes,
            [f"supernode{i}.log" for i in range(self.n)],
        )
        self.timings["federation_ready_s"] = round(time.monotonic() - t0, 2)

    def start_node(self, i: int, *, key: NodeKey | None = None, port: int | None = None) -> subprocess.Popen:
        """Start SuperNode ``i`` (with auth: with its registered key, or ``key``; ``port``: another node's)."""
        key = key or (self.node_keys[i] if self.auth else None)
        return self._spawn(
            [
                str(BIN / "flower-supernode"),
                *self._tls_args_client(),
                "--superlink",
                f"127.0.0.1:{self.port}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port or self.node_ports[i]),
                "--node-config",
                self.node_configs[i],
                *(["--auth-supernode-private-key", str(key.private)] if key else []),
            ],
            f"supernode{i}.log" if port is None else f"supernode{i}-{port}.log",
        )

    def register(self, key: NodeKey) -> int:
        """Register a SuperNode's public key with the SuperLink (``flwr supernode register``); its node id."""
        out = self._json("supernode", "register", str(key.public), self.conn)
        return int(out["node-id"])

    def _write_connection(self) -> None:
        lines = [
            "[superlink]",
            f'default = "{self.conn}"',
            "",
            f"[superlink.{self.conn}]",
            f'address = "127.0.0.1:{self.port}"',
        ]
        lines.append(f"root-certificates = {_toml_str(str(self.certs['ca']))}" if self.tls else "insecure = true")
        (self.flwr_home / "config.toml").write_text("\n".join(lines) + "\n")

    # -- flwr CLI ----------------------------------------------------------------------------------
    def flwr(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run a `flwr` CLI command against this federation (in its own session, bounded)."""
        p = subprocess.Popen(
            [str(BIN / "flwr"), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            text=True,
        )
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            raise FederationError(f"`flwr {' '.join(args)}` timed out after {timeout} s") from exc
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def _json(self, *args: str, timeout: float = 60.0) -> dict:
        r = self.flwr(*args, "--format", "json", timeout=timeout)
        try:
            return json.loads(r.stdout[r.stdout.index("{") :])
        except ValueError as exc:
            raise FederationError(
                f"`flwr {' '.join(args)}` rc={r.returncode}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
            ) from exc

    def online_nodes(self) -> int:
        try:
            d = self._json("supernode", "list", self.conn, timeout=20)
        except FederationError:
            return 0
        return sum(1 for n in d.get("nodes", []) if n.get("status") == "online")

    def submit(
        self,
        app_dir: str | Path,
        run_config: dict | str,
        checkpoint_dir: str | Path | None = None,
        extra: dict | None = None,
    ) -> int:
        """Start a run; returns its run id. run_config: a fedlab RunConfig dict (or its JSON)."""
        text = run_config if isinstance(run_config, str) else json.dumps(run_config)
        over = {"run-config": text, **(extra or {})}
        if checkpoint_dir is not None:
            over["checkpoint-dir"] = str(checkpoint_dir)
        path = self.dir / f"overrides-{uuid.uuid4().hex[:8]}.toml"  # must end with .toml
        path.write_text("".join(f"{k} = {_toml_str(str(v))}\n" for k, v in over.items()))
        d = self._json("run", str(Path(app_dir).resolve()), self.conn, "--run-config", str(path))
        if not d.get("success"):
            raise FederationError(f"flwr run failed: {d}")
        return int(d["run-id"])

    def status(self, run_id: int) -> dict:
        return self._json("list", self.conn, "--run-id", str(run_id), timeout=30)["runs"][0]

    def logs_of(self, run_id: int) -> str:
        r = self.flwr("log", str(run_id), self.conn, "--show", timeout=60)
        return r.stdout

    def wait(self, run_id: int, timeout: float, poll: float = 2.0, on_poll=None) -> dict:
        """Poll until the run is ``finished:*``; ``on_poll(self, run_id)`` is called at every poll."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(run_id)
            if st["status"].startswith("finished"):
                return st
            if on_poll is not None:
                on_poll(self, run_id)
            if time.monotonic() > deadline:
                self.flwr("stop", str(run_id), self.conn, timeout=30)
                raise FederationError(
                    f"run {run_id} still {st['status']} after {timeout:.0f} s; stopped it.\n"
                    + self.logs_of(run_id)[-3000:]
                )
            time.sleep(poll)

    def run(
        self,
        app_dir,
        run_config,
        *,
        timeout: float = 1800.0,
        checkpoint_dir=None,
        poll: float = 2.0,
        extra: dict | None = None,
        on_poll=None,
    ) -> dict:
        """Submit, wait for the end, return {run_id, status, details, elapsed, wall_s, log}."""
        t0 = time.monotonic()
        if checkpoint_dir is None:  # never let fedlab fall back to Path("") == cwd
            checkpoint_dir = self.dir / "ckpt" / uuid.uuid4().hex[:8]
        rid = self.submit(app_dir, run_config, checkpoint_dir, extra)
        t_sub = time.monotonic() - t0
        st = self.wait(rid, timeout, poll, on_poll)
        return {
            "run_id": rid,
            "status": st["status"],
            "details": st.get("status-details"),
            "elapsed": st.get("elapsed"),
            "submit_s": round(t_sub, 2),
            "wall_s": round(time.monotonic() - t0, 2),
            "log": self.logs_of(rid),
        }

    # -- faults / shutdown ----------------------------------------------------------------------------
    def kill_node(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Kill SuperNode i's whole process group (node + its SuperExec + ClientApp) and reap it."""
        p = self.nodes[i]
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            p.wait(10)

    def stop(self, grace: float = 5.0) -> list[int]:
        """Stop everything: SuperNodes, then SuperLink, then sweep leftovers by marker. Returns
        the PIDs the sweep had to SIGKILL (should be empty)."""

        def term_group(p: subprocess.Popen | None) -> None:
            if p is not None and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

        def reap(p: subprocess.Popen | None, t: float) -> None:
            if p is None:
                return
            try:
                p.wait(t)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)

        for p in self.nodes:
            term_group(p)
        for p in self.nodes:
            reap(p, grace)
        term_group(self.superlink)
        reap(self.superlink, grace)
        # flower-superexec (SuperLink side) runs in its own session, flwr-serverapp under it; they
        # exit by themselves once their parent is gone (0.2 s polling), but make sure.
        killed = []
        deadline = time.monotonic() + grace
        while _pids_with_marker(self.tag) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in _pids_with_marker(self.tag):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        return killed
