"""A three-node RabbitMQ cluster of the test's own on this machine, behind a local HAProxy
(docs/operations.md, Running against a RabbitMQ cluster).

The nodes are `alch1@localhost` … `alch3@localhost`, never the system node `rabbit@localhost` on
5672: each has its own node name, AMQP and distribution ports, config file, data and log dirs
under the test's directory, and an Erlang cookie of its own, so it cannot reach the system node
even by mistake. `/etc/rabbitmq/rabbitmq-env.conf` (which pins the system node's name and port)
is not read: `RABBITMQ_CONF_ENV_FILE` points at an empty file. The nodes run as the current user
through the server's own start script, not Debian's wrapper (which switches to the `rabbitmq`
user and writes to the system node's startup log).

Services reach the cluster through HAProxy on 127.0.0.1:5690 in TCP mode; it is installed with
`apt-get install -y haproxy` when missing (as root). Every start is undone on the way out,
whatever happened: the balancer and each node stopped, leftovers killed by their own process
group, the nodes' data and the cookie removed (their logs stay in the test's directory)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import aio_pika
import pytest

from tests.e2e.cluster import port_is_free
from tests.servers import in_ci

SERVER_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
"""Debian's real scripts; /usr/sbin holds a wrapper that runs them as the `rabbitmq` user."""
NODE_NAMES = ("alch1", "alch2", "alch3")
FIRST_AMQP_PORT = 5681
FIRST_DIST_PORT = 25681
BALANCER_PORT = 5690
COOKIE = "alchemiser-chaos-cluster-not-the-system-cookie"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
CTL_TIMEOUT_S = 120.0
HEALTH_CHECK_INTERVAL_MS = 500
ERL_ARGS = "+S 1:1 +A 4 -kernel inet_dist_use_interface {127,0,0,1}"
"""One scheduler per node (the machine has two cores for three nodes and four services); the
distribution listens on loopback only, as the system node's does."""
NODE_CONFIG = """\
listeners.tcp.default = 127.0.0.1:{amqp_port}
vm_memory_high_watermark.absolute = 512MiB
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
"""
BALANCER_CONFIG = """\
global
    maxconn 512

defaults
    mode tcp
    timeout connect 2s
    # Longer than AMQP's heartbeat (60 s), so an idle connection is never cut by the balancer.
    timeout client 3h
    timeout server 3h
    # A connection refused by a dead node is retried on another one.
    retries 3
    option redispatch

frontend amqp
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance leastconn
    option tcp-check
    default-server inter {interval}ms fall 2 rise 2 on-marked-down shutdown-sessions
{servers}
"""


def require_server_scripts() -> tuple[Path, Path]:
    """rabbitmq-server and rabbitmqctl without Debian's user-switching wrapper; skipped with the
    reason (CI: failed) when RabbitMQ is not installed."""
    server, ctl = SERVER_SCRIPTS / "rabbitmq-server", SERVER_SCRIPTS / "rabbitmqctl"
    if not server.exists() or not ctl.exists():
        reason = (
            f"RabbitMQ's scripts are not in {SERVER_SCRIPTS} (apt-get install rabbitmq-server): "
            "this test runs a three-node cluster of its own"
        )
        unavailable(reason)
    return server, ctl


def require_haproxy() -> str:
    """HAProxy from Debian, installed when missing and this process may install packages."""
    found = shutil.which("haproxy")
    if found is not None:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get") is not None:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "haproxy"]
        if subprocess.run(install, env=environment, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=environment, capture_output=True)
            subprocess.run(install, env=environment, capture_output=True)
        found = shutil.which("haproxy")
    if found is None:
        unavailable(
            "haproxy is not installed (apt-get install -y haproxy; this test installs it itself "
            "when it runs as root): the services reach the cluster through it"
        )
    return found


def unavailable(reason: str) -> NoReturn:
    """Skip the test with the reason; under CI=true, fail it (CI must run it)."""
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of a node's process group (erl_child_setup, a hung VM)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@dataclass(frozen=True)
class Replicas:
    """Where a quorum queue lives: its leader, its members, and the members that are up."""

    leader: str
    members: list[str]
    online: list[str]


@dataclass
class Node:
    name: str
    amqp_port: int
    dist_port: int
    base: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    @property
    def pid_file(self) -> Path:
        return self.base / "node.pid"

    def environment(self, home: Path) -> dict[str, str]:
        """The node's variables for its server and for rabbitmqctl talking to it."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "data"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def write_files(self) -> None:
        for folder in (self.base, self.base / "data", self.base / "log"):
            folder.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "rabbitmq.conf").write_text(NODE_CONFIG.format(amqp_port=self.amqp_port))
        (self.base / "advanced.config").write_text("[].\n")
        (self.base / "enabled_plugins").write_text("[].\n")

    def os_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None


@dataclass
class RabbitCluster:
    """Start with `async with RabbitCluster(directory) as rabbit:`; `rabbit.url` is the balancer."""

    work_dir: Path
    nodes: list[Node] = field(default_factory=list)
    balancer: subprocess.Popen[bytes] | None = None
    server_script: Path = Path()
    ctl_script: Path = Path()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{BALANCER_PORT}/"

    def node(self, nodename: str) -> Node:
        return next(node for node in self.nodes if node.nodename == nodename)

    @property
    def home(self) -> Path:
        return self.work_dir / "home"

    async def __aenter__(self) -> RabbitCluster:
        self.server_script, self.ctl_script = require_server_scripts()
        haproxy = require_haproxy()
        self.nodes = [
            Node(name, FIRST_AMQP_PORT + i, FIRST_DIST_PORT + i, self.work_dir / name)
            for i, name in enumerate(NODE_NAMES)
        ]
        taken = [
            port
            for port in [BALANCER_PORT, *(n.amqp_port for n in self.nodes)]
            + [n.dist_port for n in self.nodes]
            if not port_is_free(port)
        ]
        if taken:
            raise AssertionError(
                f"ports {taken} on 127.0.0.1 are in use: a cluster of an earlier run may still "
                "be up (`ss -ltnp` names the processes holding them); stop it and run again"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(COOKIE)
        cookie.chmod(0o400)
        try:
            for node in self.nodes:
                node.write_files()
                self.start_node(node)
            for node in self.nodes:
                await self.wait_started(node)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                await self.ctl(node, "stop_app")
                await self.ctl(node, "join_cluster", first.nodename)
                await self.ctl(node, "start_app")
            await self.wait_running(len(self.nodes))
            self.start_balancer(haproxy)
            await self.wait_balancer()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.balancer is not None:
            self.balancer.terminate()
            try:
                self.balancer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.balancer.kill()
                self.balancer.wait()
            self.balancer = None
        for node in self.nodes:
            await self.stop_node(node)
        shutil.rmtree(self.work_dir / "home", ignore_errors=True)
        for node in self.nodes:
            shutil.rmtree(node.base / "data", ignore_errors=True)

    def start_node(self, node: Node) -> None:
        """The node in the foreground of a process group of its own, its output in its dir."""
        log = (node.base / "server.out").open("ab")
        node.process = subprocess.Popen(
            [str(self.server_script)],
            env=node.environment(self.home),
            cwd=node.base,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def stop_node(self, node: Node) -> None:
        """`rabbitmqctl stop`; what is left of the node's process group then gets SIGKILL."""
        process, node.process = node.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                await self.ctl(node, "stop", timeout_s=STOP_TIMEOUT_S)
                await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
            except (AssertionError, TimeoutError, subprocess.TimeoutExpired):
                pass
        end_group(process)

    def kill_node(self, node: Node) -> None:
        """SIGKILL the node's Erlang VM, as a crash or an OOM kill would."""
        pid = node.os_pid()
        if pid is None:
            raise AssertionError(f"{node.nodename} wrote no pid to {node.pid_file}")
        os.kill(pid, signal.SIGKILL)

    async def restart_node(self, node: Node) -> None:
        """Start a killed node again on its own data: it rejoins the cluster by itself."""
        if node.process is not None:
            await asyncio.to_thread(node.process.wait, STOP_TIMEOUT_S)
            end_group(node.process)
        node.pid_file.unlink(missing_ok=True)
        self.start_node(node)
        await self.wait_started(node)

    async def wait_started(self, node: Node) -> None:
        """Until the node has written its pid file and its application runs (`rabbitmqctl wait`:
        `await_startup` fails while the node is not yet registered with epmd)."""
        await self.ctl(node, "wait", str(node.pid_file), "--timeout", str(int(START_TIMEOUT_S)))

    async def ctl(self, node: Node, *args: str, timeout_s: float = CTL_TIMEOUT_S) -> str:
        """rabbitmqctl against one of the cluster's nodes (never the system node)."""
        process = await asyncio.create_subprocess_exec(
            str(self.ctl_script),
            "-n",
            node.nodename,
            *args,
            env=node.environment(self.home),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            output, errors = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(
                f"rabbitmqctl -n {node.nodename} {' '.join(args)} ran over {timeout_s} s"
            ) from None
        if process.returncode != 0:
            raise AssertionError(
                f"rabbitmqctl -n {node.nodename} {' '.join(args)} exited {process.returncode}: "
                f"{(output + errors).decode()[-2000:]}"
            )
        return output.decode()

    async def running_nodes(self, asking: Node | None = None) -> list[str]:
        """The nodes `asking` (the first live node when None) sees running in the cluster."""
        candidates = [asking] if asking is not None else self.nodes
        for node in candidates:
            if asking is None and (node.process is None or node.process.poll() is not None):
                continue
            try:
                status = json.loads(await self.ctl(node, "cluster_status", "--formatter", "json"))
            except AssertionError:
                continue
            return sorted(status["running_nodes"])
        return []

    async def wait_running(self, count: int, asking: Node | None = None) -> float:
        """Seconds until `count` nodes are running in the cluster."""
        started = time.monotonic()
        while True:
            running = await self.running_nodes(asking)
            if len(running) == count:
                return time.monotonic() - started
            if time.monotonic() - started > START_TIMEOUT_S:
                raise AssertionError(
                    f"{count} nodes not running after {START_TIMEOUT_S} s: {running}"
                )
            await asyncio.sleep(0.5)

    async def queue_replicas(self, queues: Sequence[str]) -> dict[str, Replicas]:
        """Each quorum queue's replicas, as a live node of the cluster reports them."""
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            rows = json.loads(
                await self.ctl(
                    node,
                    "list_queues",
                    "name",
                    "leader",
                    "members",
                    "online",
                    "--formatter",
                    "json",
                )
            )
            return {
                row["name"]: Replicas(row["leader"], sorted(row["members"]), sorted(row["online"]))
                for row in rows
                if row["name"] in queues
            }
        raise AssertionError("no node of the cluster is running")

    def start_balancer(self, haproxy: str) -> None:
        servers = "\n".join(
            f"    server {node.name} 127.0.0.1:{node.amqp_port} check" for node in self.nodes
        )
        config = self.work_dir / "haproxy.cfg"
        config.write_text(
            BALANCER_CONFIG.format(
                port=BALANCER_PORT, interval=HEALTH_CHECK_INTERVAL_MS, servers=servers
            )
        )
        log = (self.work_dir / "haproxy.out").open("ab")
        self.balancer = subprocess.Popen(
            [haproxy, "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def wait_balancer(self) -> None:
        """Until the balancer accepts connections, then one AMQP connection through it."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while port_is_free(BALANCER_PORT):
            if self.balancer is not None and self.balancer.poll() is not None:
                output = (self.work_dir / "haproxy.out").read_text()[-2000:]
                raise AssertionError(f"haproxy exited: {output}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"haproxy does not listen on {BALANCER_PORT}")
            await asyncio.sleep(0.1)
        connection = await aio_pika.connect(self.url, timeout=10)
        await connection.close()
