"""A distributed group's set-up, its ranks' health, and the follower ranks' process (docs/distributed.md).

`runtime --stdio --distributed HOSTFILE`: this process is rank 0. It reads the hostfile (mlx.launch's
format), starts the other ranks (here for 127.0.0.1/localhost, over ssh otherwise) with MLX_RANK and
the ring's MLX_HOSTFILE, and forms the group with `mx.distributed.init`. A runtime started by
`mlx.launch` (MLX_RANK set) finds its rank in the environment instead: rank 0 serves the protocol,
the others follow.

Each follower also keeps a TCP connection to rank 0 (the control channel): a hello with its host
and pid, then a heartbeat every HEARTBEAT_S. That is how rank 0 knows which rank was lost: a closed
connection is a rank that exited, silence past the timeout a rank that stopped answering (then rank
0 shuts its ring sockets, so the collective waiting on that rank fails instead of hanging). A
follower whose connection to rank 0 closes exits: shutting rank 0 down ends every rank.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import select
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime import faults

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.5
DEFAULT_TIMEOUT_S = 10.0  # a rank silent this long is lost
FORM_TIMEOUT_S = 120.0  # every rank connected and the group formed, or the start fails
DEFAULT_PORT = 32323  # mlx.launch's first ring port
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


class GroupError(Exception):
    """The group cannot be formed: the hostfile, a rank that does not start or connect."""


@dataclass(frozen=True)
class RankHost:
    rank: int
    ssh: str  # where the rank is started ("" or localhost: here)
    ip: str  # the address the ring uses
    port: int
    more_ports: tuple[int, ...] = ()  # further ring connections (mlx.launch --connections-per-ip, more IPs)

    @property
    def local(self) -> bool:
        return self.ssh in LOCAL_HOSTS


@dataclass(frozen=True)
class GroupSpec:
    backend: str
    hosts: tuple[RankHost, ...]
    control: tuple[str, int]  # rank 0's control channel
    envs: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.hosts)

    def ring_hostfile(self) -> str:
        """The ring backend's MLX_HOSTFILE: each rank's "ip:port" list."""
        return json.dumps([[f"{h.ip}:{h.port}"] for h in self.hosts])

    def ring_ports(self) -> set[int]:
        return {port for h in self.hosts for port in (h.port, *h.more_ports)}


def read_hostfile(path: str, control_port: int = 0) -> GroupSpec:
    """mlx.launch's hostfile: a list of {"ssh", "ips"} or {"backend", "envs", "hosts": [...]};
    ours may add "port" (the first ring port, default 32323; each rank takes the next one)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise GroupError(f"cannot read the hostfile {path}: {exc}") from None
    body = data if isinstance(data, dict) else {"hosts": data}
    entries = body.get("hosts")
    if not isinstance(entries, list) or len(entries) < 2:
        raise GroupError(f"{path}: 'hosts' must list at least two ranks")
    backend = body.get("backend") or "ring"
    if backend != "ring":
        raise GroupError(f"{path}: --distributed starts ring groups; start a {backend} group with mlx.launch")
    port = int(body.get("port", DEFAULT_PORT))
    hosts = []
    for rank, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("ips"):
            raise GroupError(f"{path}: host {rank} needs an 'ips' list (the ring connects by address)")
        hosts.append(RankHost(rank, str(entry.get("ssh", "")), str(entry["ips"][0]), port + rank))
    control = (hosts[0].ip, control_port or port + len(hosts))
    return GroupSpec(backend, tuple(hosts), control, tuple(body.get("envs", [])))


def launched_spec() -> GroupSpec | None:
    """The group mlx.launch (or mpirun) started this process in, if any, from the environment."""
    rank = os.environ.get("MLX_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK")
    if rank is None:
        return None
    backend = os.environ.get("RUNTIME_DISTRIBUTED_BACKEND", "any")
    control = os.environ.get("RUNTIME_DISTRIBUTED_CONTROL", "")
    hosts: list[RankHost] = []
    hostfile = os.environ.get("MLX_HOSTFILE")
    if hostfile and Path(hostfile).is_file():
        ring = json.loads(Path(hostfile).read_text())
        for index, addresses in enumerate(ring):
            ip, _, port = addresses[0].rpartition(":")
            extra = tuple(int(a.rpartition(":")[2]) for a in addresses[1:])
            hosts.append(RankHost(index, "", ip, int(port), extra))
    if control:
        ip, _, port = control.rpartition(":")
        address = (ip, int(port))
    elif hosts:
        address = (hosts[0].ip, max(h.port for h in hosts) + 1)
    else:
        address = ("", 0)  # no control channel: a lost rank is still seen, not which one
    return GroupSpec(backend, tuple(hosts), address)


def launched_rank() -> int | None:
    rank = os.environ.get("MLX_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK")
    return None if rank is None else int(rank)


def loopback_hostfile(directory: Path, ranks: int = 2) -> Path:
    """A hostfile of `ranks` ranks on 127.0.0.1 (tests, the bench): ports free now, below the
    ephemeral range, so no outgoing connection of this machine takes one before a rank listens."""
    chooser = random.Random()
    for _ in range(100):
        first = chooser.randrange(20000, 32000 - ranks)
        try:
            for port in range(first, first + ranks + 1):  # the ranks, then rank 0's control channel
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        hostfile = directory / "hosts.json"
        hosts = [{"ssh": "localhost", "ips": ["127.0.0.1"]}] * ranks
        hostfile.write_text(json.dumps({"port": first, "hosts": hosts}))
        return hostfile
    raise GroupError("no free loopback ports for a group")


# --- rank 0: starting the others ---------------------------------------------------------------
def start_followers(spec: GroupSpec, argv: list[str]) -> list[subprocess.Popen[bytes]]:
    """Start ranks 1.. with this process's own command line (less --distributed): here for local
    hosts, over ssh for the others (the same python and working directory there). Their limits
    and engine settings come from rank 0 once the group has formed (`form_group`)."""
    ring = _hostfile_copy(spec.ring_hostfile())
    control = f"{spec.control[0]}:{spec.control[1]}"
    children = []
    for host in spec.hosts[1:]:
        env = {
            "MLX_RANK": str(host.rank),
            "MLX_HOSTFILE": ring,
            "RUNTIME_DISTRIBUTED_CONTROL": control,
            "RUNTIME_DISTRIBUTED_BACKEND": spec.backend,
        }
        for pair in spec.envs:
            key, _, value = pair.partition("=")
            env[key] = value
        command = [sys.executable, "-m", "runtime", *argv]
        if host.local:
            children.append(
                subprocess.Popen(
                    command,
                    env={**os.environ, **env},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=None,  # a follower's logs go where rank 0's go
                )
            )
        else:
            env["MLX_HOSTFILE"] = "$f"
            exports = " ".join(f"{k}={shlex.quote(v) if v != '$f' else v}" for k, v in env.items())
            script = (
                f"f=$(mktemp); echo {shlex.quote(spec.ring_hostfile())} > $f; cd {shlex.quote(os.getcwd())}; "
                f"export {exports}; exec {shlex.join(command)}"
            )
            children.append(
                subprocess.Popen(
                    ["ssh", "-o", "BatchMode=yes", host.ssh, script],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )
            )
    os.environ.update({"MLX_RANK": "0", "MLX_HOSTFILE": ring})
    return children


def _hostfile_copy(content: str) -> str:
    handle, path = tempfile.mkstemp(prefix="runtime-ring-", suffix=".json")
    with os.fdopen(handle, "w") as out:
        out.write(content)
    return path


# --- rank 0: the ranks' health -----------------------------------------------------------------
@dataclass
class RankState:
    rank: int
    host: str
    pid: int | None = None
    last_seen: float = 0.0
    lost: str | None = None  # why, once lost
    lost_at: float = 0.0


@dataclass
class GroupHealth:
    """Rank 0's view of the other ranks, from the control channel (see the module docstring)."""

    spec: GroupSpec
    timeout_s: float
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ending: bool = False  # rank 0 ended the group: ranks going away now are no loss
    connections: list[socket.socket] = field(default_factory=list)
    on_loss: list[Any] = field(default_factory=list)  # called (on a thread of their own) once a rank is lost
    ranks: dict[int, RankState] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)
    _server: socket.socket | None = None

    def listen(self) -> None:
        if not self.spec.control[1]:
            return
        server = socket.create_server(self.spec.control, reuse_port=False)
        server.settimeout(0.5)
        self._server = server

    def wait_for_ranks(self, timeout_s: float) -> None:
        """Every other rank's hello, or GroupError (a rank that exited, or none in time)."""
        if self._server is None:
            return
        deadline = time.monotonic() + timeout_s
        connections: dict[socket.socket, bytes] = {}
        while len(self.ranks) < self.spec.size - 1:
            for child in self.children:
                if child.poll() is not None:
                    raise GroupError(f"a rank exited while the group formed (exit code {child.returncode})")
            if time.monotonic() > deadline:
                missing = sorted(set(range(1, self.spec.size)) - set(self.ranks))
                raise GroupError(f"ranks {missing} did not connect within {timeout_s:.0f} s")
            with contextlib.suppress(TimeoutError):
                connection, _ = self._server.accept()
                connection.settimeout(5.0)
                connections[connection] = b""
            for connection in list(connections):
                hello = _read_hello(connection)
                if hello is not None:
                    del connections[connection]
                    rank = int(hello["rank"])
                    self.ranks[rank] = RankState(rank, hello.get("host", "?"), hello.get("pid"), time.monotonic())
                    self.connections.append(connection)
                    threading.Thread(
                        target=self._watch, args=(rank, connection), name=f"rank-{rank}", daemon=True
                    ).start()
        threading.Thread(target=self._watch_silence, name="group-health", daemon=True).start()

    def _watch(self, rank: int, connection: socket.socket) -> None:
        """Heartbeats in; a closed connection is a lost rank (its last words, if any, say why)."""
        connection.settimeout(None)
        reason = "the process exited"
        with connection:
            while True:
                try:
                    data = connection.recv(4096)
                except OSError as exc:
                    reason = f"the connection broke ({exc})"
                    break
                if not data:
                    break
                self.ranks[rank].last_seen = time.monotonic()
                words = [line for line in data.split(b"\n") if line and line != b"."]
                if words:
                    reason = words[-1].decode(errors="replace")
        self._lose(rank, reason)

    def abandon(self) -> None:
        """The group is lost: end it for every rank still in it (a follower exits when its control
        connection closes) and fail any collective still waiting on the ring."""
        from runtime.engine.lockstep import sever

        self.ending = True
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        sever(self.spec.ring_ports())

    def _watch_silence(self) -> None:
        last_tick = time.monotonic()
        while True:
            time.sleep(HEARTBEAT_S)
            now = time.monotonic()
            if now - last_tick > self.timeout_s:  # this process itself was stopped: nobody was heard
                for state in self.ranks.values():
                    state.last_seen = max(state.last_seen, now)
            last_tick = now
            for state in list(self.ranks.values()):
                if state.lost is None and not self.ending and now - state.last_seen > self.timeout_s:
                    self._lose(state.rank, f"stopped answering for {now - state.last_seen:.1f} s")
                    # The engine may be waiting on it inside a collective: fail that wait now.
                    from runtime.engine.lockstep import sever

                    severed = sever(self.spec.ring_ports())
                    log.warning("rank %d stopped answering: %d ring sockets shut down", state.rank, severed)

    def _lose(self, rank: int, reason: str) -> None:
        first = False
        with self.changed:
            state = self.ranks[rank]
            if state.lost is None and not self.ending:
                first = not self._lost_ranks()
                state.lost, state.lost_at = reason, time.monotonic()
                log.error("rank %d (%s) lost: %s", rank, state.host, reason)
            self.changed.notify_all()
        if first:
            for listener in self.on_loss:
                threading.Thread(target=listener, name="group-lost", daemon=True).start()

    def diagnose(self, failure: BaseException, wait_s: float = 3.0) -> faults.GroupLost:
        """What a failed collective means: which rank was lost and why (waiting briefly for the
        control channel to tell, since the ring may notice first)."""
        deadline = time.monotonic() + wait_s
        with self.changed:
            while not self._lost_ranks() and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())
            lost = self._lost_ranks()
        if not lost:
            return faults.GroupLost(
                f"the distributed group failed: {failure}", rank=None, host=None, reason=str(failure)
            )
        state = min(lost, key=lambda s: s.lost_at)  # the first to go; others may be its casualties
        return faults.GroupLost(
            f"rank {state.rank} ({state.host}) of the distributed group was lost: {state.lost}",
            rank=state.rank,
            host=state.host,
            reason=state.lost,
        )

    def _lost_ranks(self) -> list[RankState]:
        return [s for s in sorted(self.ranks.values(), key=lambda s: s.rank) if s.lost is not None]

    def stop_children(self, grace_s: float = 3.0) -> None:
        deadline = time.monotonic() + grace_s
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, deadline - time.monotonic()))
            if child.poll() is None:
                child.kill()
                child.wait(2.0)


def _read_hello(connection: socket.socket) -> dict[str, Any] | None:
    try:
        connection.setblocking(False)
        ready, _, _ = select.select([connection], [], [], 0.05)
        if not ready:
            return None
        connection.settimeout(5.0)  # a hello cut short must not hold the group's formation
        line = connection.makefile("rb").readline()
        return dict(json.loads(line)) if line else None
    except (OSError, ValueError):
        return None


@dataclass
class Group:
    """What the app and the methods see of the group (`Services.group`)."""

    spec: GroupSpec
    mx_group: Any
    health: GroupHealth
    formed_s: float
    lost: faults.GroupLost | None = None

    def describe(self) -> dict[str, Any]:
        """runtime/info: the group's shape."""
        return {
            "backend": self.spec.backend,
            "world_size": self.mx_group.size(),
            "rank": self.mx_group.rank(),
            "hosts": [{"rank": h.rank, "host": h.ssh or h.ip, "address": f"{h.ip}:{h.port}"} for h in self.spec.hosts],
            "formed_s": round(self.formed_s, 3),
        }

    def state(self) -> dict[str, Any]:
        """runtime/state: each rank's health, and the loss if there was one."""
        now = time.monotonic()
        ranks = [{"rank": 0, "host": self._host(0), "pid": os.getpid(), "alive": True, "last_seen_ms": 0}]
        for state in sorted(self.health.ranks.values(), key=lambda s: s.rank):
            ranks.append(
                {
                    "rank": state.rank,
                    "host": state.host,
                    "pid": state.pid,
                    "alive": state.lost is None,
                    "last_seen_ms": round((now - state.last_seen) * 1000),
                    **({"lost": state.lost} if state.lost else {}),
                }
            )
        lost = self.loss()
        return {
            "state": "lost" if lost else "ok",
            "world_size": self.mx_group.size(),
            "ranks": ranks,
            **({"lost": {"rank": lost.details.get("rank"), "reason": lost.message}} if lost else {}),
        }

    def set_lost(self, lost: faults.GroupLost) -> None:
        """A collective failed (rank 0's engine saw it): the group is over for every rank."""
        if self.lost is None:
            self.lost = lost
        self.health.abandon()

    def loss(self) -> faults.GroupLost | None:
        """The group's loss, once a collective failed or the control channel saw a rank go."""
        if self.lost is None and self.health._lost_ranks():
            self.lost = self.health.diagnose(RuntimeError("a rank was lost"), wait_s=0)
        return self.lost

    def _host(self, rank: int) -> str:
        host = self.spec.hosts[rank] if rank < len(self.spec.hosts) else None
        return (host.ssh or host.ip) if host else socket.gethostname()


# --- ranks 1..: the control channel's other end ------------------------------------------------
def connect_control(address: tuple[str, int], rank: int, timeout_s: float) -> socket.socket | None:
    """Say hello to rank 0 and keep its heartbeat going; this process exits when rank 0 goes."""
    if not address[1]:
        return None
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection = socket.create_connection(address, timeout=2.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise GroupError(f"rank 0's control channel {address[0]}:{address[1]} did not answer") from None
            time.sleep(0.2)
    hello = {"rank": rank, "host": socket.gethostname(), "pid": os.getpid()}
    connection.sendall(json.dumps(hello).encode() + b"\n")
    threading.Thread(target=_beat, args=(connection,), name="heartbeat", daemon=True).start()
    return connection


def _beat(connection: socket.socket) -> None:
    connection.settimeout(None)
    watcher = threading.Thread(target=_exit_when_closed, args=(connection,), name="rank0-watch", daemon=True)
    watcher.start()
    while True:
        try:
            connection.sendall(b".\n")
        except OSError:
            os._exit(0)
        time.sleep(HEARTBEAT_S)


def _exit_when_closed(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while connection.recv(1024):
            pass
    log.info("rank 0 is gone: this rank exits")
    os._exit(0)


def last_words(connection: socket.socket | None, text: str) -> None:
    """Tell rank 0 why this rank stops (it names the reason in the error it reports)."""
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.sendall(text.replace("\n", " ").encode() + b"\n")


# --- rank 0: forming the group -----------------------------------------------------------------
def form_group(hostfile: str | None, timeout_s: float, argv: list[str], settings: dict[str, Any]) -> Group:
    """Rank 0: start the other ranks (with a hostfile) or find them (mlx.launch), form the group
    with mx.distributed.init, wait for every rank's hello, then hand every rank `settings` (its
    limits and engine settings: ranks that stepped streams differently would fall out of step);
    GroupError if any of it fails."""
    from runtime.engine.lockstep import Collective, init_group

    spec = read_hostfile(hostfile) if hostfile else launched_spec()
    if spec is None:
        raise GroupError("no group: give --distributed HOSTFILE, or start the runtime with mlx.launch")
    health = GroupHealth(spec, timeout_s)
    try:
        health.listen()
    except OSError as exc:
        raise GroupError(f"cannot listen on {spec.control[0]}:{spec.control[1]} for the ranks: {exc}") from None
    started = time.monotonic()
    if hostfile:
        health.children = start_followers(spec, _without_distributed(argv))
    try:
        mx_group = init_group(spec.backend, FORM_TIMEOUT_S, give_up=lambda: _exited(health.children))
        health.wait_for_ranks(FORM_TIMEOUT_S)
        Collective(mx_group).broadcast(json.dumps(settings).encode())
    except Exception as exc:
        health.stop_children(grace_s=0.0)
        raise GroupError(f"the group did not form: {exc}") from None
    log.info("rank 0 of %d: the group formed in %.1f s", mx_group.size(), time.monotonic() - started)
    return Group(spec, mx_group, health, time.monotonic() - started)


def _exited(children: list[subprocess.Popen[bytes]]) -> str | None:
    for child in children:
        if child.poll() is not None:
            return f"a rank exited with code {child.returncode}"
    return None


def _without_distributed(argv: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--distributed", "--distributed-timeout"):
            skip = True
        elif not arg.startswith(("--distributed=", "--distributed-timeout=")):
            kept.append(arg)
    return kept


def adopt_settings(limits: Any, given: dict[str, Any]) -> Any:
    """A follower's limits: rank 0's (JSON lists back into the tuples Limits holds)."""
    from dataclasses import replace

    fields = {
        k: tuple(v) if isinstance(getattr(limits, k, None), tuple) and isinstance(v, list) else v
        for k, v in given.items()
    }
    return replace(limits, **fields)
