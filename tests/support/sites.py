"""Sites: throw-away installations for end-to-end tests (real daemons, the real
``zeek-client``, the zeek test double).

A :class:`Site` lives under a temporary directory:

* ``zeek-prefix/bin/zeek`` is the test double (tests/zeekdouble), first on ``PATH``;
* ``state/`` and ``spool/`` are the management state and spool directories;
* ``record/`` is the double's ``ZEEK_DOUBLE_RECORD`` directory;
* free loopback ports for the controller (client and agent ports), the agent and the
  nodes' channels, passed to the daemons in Zeek's environment variables.

Daemons (``python -m mgmt run|controller|agent``, :class:`~tests.support.daemons.Daemon`)
carry a marker variable (``ZEEK_MGMT_E2E_SITE``) that every node inherits.
:meth:`Site.close` stops them (SIGTERM, then SIGKILL), kills anything still carrying the
marker, and reports what it had to kill, so a test that leaves a process behind fails.
:func:`mgmt_run` is a site running ``zeek-mgmt run``.

Waiting is polling with a deadline (:func:`~tests.support.waiting.wait_until`): a site's
state is only seen through zeek-client and the OS.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.support.cli import RUN_TIMEOUT, Run, cli_env, run_cmd_sync, zeek_client_argv
from tests.support.daemons import Daemon, daemon_env
from tests.support.ports import free_port_block, free_ports, port_open
from tests.support.reference import CONFIGS
from tests.support.waiting import MS, wait_until
from tests.zeekdouble.fixture import install_zeek_double

MARKER = "ZEEK_MGMT_E2E_SITE"
#: Upper bound for one wait on a site (daemons, zeek-client runs, several nodes).
TIMEOUT = 20_000 * MS


#: The cluster of Zeek's Quickstart (manager, logger, two workers on ``lo``): the
#: reference captures' cluster.cfg.
QUICKSTART_CFG = (CONFIGS / "cluster.cfg").read_text()


def on_instance(cfg: str, instance: str) -> str:
    """The cluster configuration ``cfg`` with every node on ``instance`` (declared in
    ``[instances]``)."""
    lines = ["[instances]", instance, ""]
    for line in cfg.splitlines():
        lines.append(line)
        if line.startswith("["):
            lines.append(f"instance = {instance}")
    return "\n".join(lines) + "\n"


@dataclass
class Site:
    """One isolated installation under ``root`` (see the module docstring)."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    daemons: list[Daemon] = field(default_factory=list)
    ws_port: int = 0
    controller_port: int = 0
    agent_port: int = 0
    marker: str = ""

    @classmethod
    def create(cls, root: Path, **env: str) -> Site:
        """Lay out the directories, install the double, choose free ports."""
        site = cls(root)
        site.marker = uuid.uuid4().hex
        install_zeek_double(site.bin_dir)
        for d in (site.state_dir, site.spool_dir, site.record_dir, site.cfg_dir):
            d.mkdir(parents=True, exist_ok=True)
        site.ws_port, site.controller_port, site.agent_port = free_ports(3)
        base = daemon_env(
            **{
                "PATH": f"{site.bin_dir}:{os.environ.get('PATH', os.defpath)}",
                "ZEEK_CONTROLLER_PORT": str(site.controller_port),
                "ZEEK_CONTROLLER_WEBSOCKET_PORT": str(site.ws_port),
                "ZEEK_CONTROLLER_ADDR": "127.0.0.1",
                "ZEEK_CONTROLLER_WEBSOCKET_ADDR": "127.0.0.1",
                "ZEEK_AGENT_PORT": str(site.agent_port),
                "ZEEK_AGENT_ADDR": "127.0.0.1",
                "ZEEK_MANAGEMENT_STATE_DIR": str(site.state_dir),
                "ZEEK_MANAGEMENT_SPOOL_DIR": str(site.spool_dir),
                "ZEEK_MGMT_CONFIG": str(site.root / "no-settings.toml"),
                "ZEEK_MGMT_NODE_WEBSOCKET_START_PORT": str(free_port_block(16)),
                "ZEEK_DOUBLE_RECORD": str(site.record_dir),
                MARKER: site.marker,
            }
        )
        (site.root / "no-settings.toml").write_text("")
        base.update(env)
        site.env = base
        return site

    # -- layout --------------------------------------------------------------------------

    def __post_init__(self) -> None:
        #: Holds the double ``zeek`` (first on PATH).
        self.bin_dir = self.root / "zeek-prefix" / "bin"
        #: ZEEK_MANAGEMENT_STATE_DIR and ZEEK_MANAGEMENT_SPOOL_DIR.
        self.state_dir, self.spool_dir = self.root / "state", self.root / "spool"
        #: ZEEK_DOUBLE_RECORD.
        self.record_dir = self.root / "record"
        #: Where cluster configurations for zeek-client are written.
        self.cfg_dir = self.root / "cfg"

    def node_dir(self, name: str) -> Path:
        """``<state>/nodes/<name>``."""
        return self.state_dir / "nodes" / name

    def record(self, node: str) -> dict[str, Any]:
        """The double's latest record of ``node``."""
        return json.loads((self.record_dir / f"{node}.json").read_text())  # type: ignore[no-any-return]

    def launches(self, node: str) -> list[dict[str, Any]]:
        """The double's first record of every launch of ``node``."""
        path = self.record_dir / f"{node}.launches.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def write_cfg(self, text: str, name: str = "cluster.cfg") -> Path:
        """Write a cluster configuration file for zeek-client."""
        path = self.cfg_dir / name
        path.write_text(text)
        return path

    # -- processes -----------------------------------------------------------------------

    def start(
        self,
        role: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> Daemon:
        """Start ``python -m mgmt <role> <args>`` here (its output in ``<name>-<n>.log``)."""
        log = self.root / f"{name or role}-{len(self.daemons)}.log"
        daemon = Daemon(role, args, log, {**self.env, **(env or {})}, cwd=self.root, name=name)
        self.daemons.append(daemon)
        return daemon

    def start_agents(self, *names: str) -> dict[str, Path]:
        """Start agents of their own (name, port, state and spool dir under
        ``<root>/state-<name>``) and wait until the controller lists them; their state
        directories by name."""
        dirs = {name: self.root / f"state-{name}" for name in names}
        for (name, state), port in zip(dirs.items(), free_ports(len(names)), strict=True):
            env = {
                "ZEEK_AGENT_NAME": name,
                "ZEEK_AGENT_PORT": str(port),
                "ZEEK_MANAGEMENT_STATE_DIR": str(state),
                "ZEEK_MANAGEMENT_SPOOL_DIR": str(state / "spool"),
            }
            self.start("agent", env=env, name=name)
        self.wait_agents(*names)
        return dirs

    def stop_daemons(self) -> None:
        """Stop every daemon started here, the last first (SIGTERM, SIGKILL at the
        deadline)."""
        for daemon in reversed(self.daemons):
            daemon.stop()

    def client(
        self, *args: str, port: int | None = None, timeout: float = RUN_TIMEOUT, check: bool = False
    ) -> Run:
        """Run the real ``zeek-client --controller 127.0.0.1:<ws port> <args>``."""
        result = run_cmd_sync(
            self.client_argv(*args, port=port),
            env=self.client_env(),
            cwd=self.cfg_dir,
            timeout=timeout,
        )
        if check and result.code != 0:
            raise AssertionError(f"zeek-client failed: {result}\n{self.daemon_logs()}")
        return result

    def client_argv(self, *args: str, port: int | None = None) -> list[str]:
        """The command line of :meth:`client` (run it in :attr:`cfg_dir`)."""
        return zeek_client_argv(port or self.ws_port, *args, attempts=20)

    def client_env(self) -> dict[str, str]:
        """The environment of :meth:`client`: no ZEEK_* settings, no zeek-client.cfg."""
        return cli_env({k: v for k, v in self.env.items() if not k.startswith("ZEEK_")})

    def deploy_config(self, text: str, name: str = "cluster.cfg") -> Run:
        """``zeek-client deploy-config`` of the configuration ``text``."""
        self.write_cfg(text, name)
        return self.client("deploy-config", name)

    def get_nodes(self) -> dict[str, dict[str, Any]]:
        """``get-nodes`` as ``{instance: {node: row}}`` (asserting success)."""
        out = self.client("get-nodes", check=True).json()
        assert out["errors"] == [], out
        return out["results"]  # type: ignore[no-any-return]

    def nodes_of(self, instance: str) -> dict[str, dict[str, Any]]:
        """get-nodes rows of one instance; empty if the instance did not answer (e.g. no
        agent connected right now)."""
        res = self.client("get-nodes")
        if res.code != 0:
            return {}
        return res.json()["results"].get(instance, {})  # type: ignore[no-any-return]

    def wait_agents(self, *names: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Wait until ``get-instances`` lists every named agent; return its output."""

        def listed() -> dict[str, Any] | None:
            res = self.client("get-instances", timeout=timeout)
            if res.code != 0:
                return None
            out: dict[str, Any] = res.json()
            return out if all(n in out for n in names) else None

        wait_until(lambda: port_open(self.ws_port), "controller port", timeout=timeout)
        return wait_until(listed, f"agents {names} listed", timeout=timeout, interval=100 * MS)

    def wait_states(
        self,
        instance: str,
        want: Mapping[str, str | Iterable[str]],
        timeout: float = TIMEOUT,
    ) -> dict[str, dict[str, Any]]:
        """Poll get-nodes until each node's state is (one of) the wanted value(s)."""
        wanted = {k: {v} if isinstance(v, str) else set(v) for k, v in want.items()}

        def ok() -> dict[str, dict[str, Any]] | None:
            rows = self.nodes_of(instance)
            if all(rows.get(n, {}).get("state") in s for n, s in wanted.items()):
                return rows
            return None

        return wait_until(ok, f"states {want}", timeout=timeout, interval=100 * MS)

    def daemon_logs(self) -> str:
        """The output of every daemon started here (for assertion messages)."""
        return "\n".join(f"--- {d.name} (pid {d.pid}) ---\n{d.log()}" for d in self.daemons)

    def site_processes(self) -> list[psutil.Process]:
        """Every live process (not zombie) carrying this site's marker variable."""
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if proc.environ().get(MARKER) == self.marker:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def zeek_processes(self) -> dict[str, list[psutil.Process]]:
        """This site's processes named ``zeek*``, by kernel name."""
        out: dict[str, list[psutil.Process]] = {}
        for proc in self.site_processes():
            with contextlib.suppress(psutil.Error):
                name = proc.name()
                if name.startswith("zeek"):
                    out.setdefault(name, []).append(proc)
        return out

    def close(self) -> list[str]:
        """Stop every daemon, then kill whatever is left with the marker.

        Returns:
            Descriptions of processes that were still alive after the daemons stopped
            (an empty list after a clean shutdown).
        """
        self.stop_daemons()
        leftovers = []
        for proc in self.site_processes():
            with contextlib.suppress(psutil.Error):
                leftovers.append(f"pid {proc.pid} {proc.name()} {proc.cmdline()}")
                proc.kill()
        for proc in self.site_processes():
            with contextlib.suppress(psutil.Error):
                proc.wait(TIMEOUT)
        return leftovers


def node_rows(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The cluster-node rows of a get-nodes instance (without agent/controller)."""
    return {k: v for k, v in rows.items() if v.get("cluster_role")}


def pids(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, int | None]:
    """Node name -> pid of the cluster-node rows (``None`` while a node has no process)."""
    return {k: v.get("pid") for k, v in node_rows(rows).items()}


def comm(pid: int) -> str:
    """``/proc/<pid>/comm``: the kernel's name of a process."""
    return Path(f"/proc/{pid}/comm").read_text().strip()


@contextlib.contextmanager
def site(root: Path, **env: str) -> Iterator[Site]:
    """A :class:`Site` that is closed on exit; fails if processes had to be killed."""
    s = Site.create(root, **env)
    failed = False
    try:
        yield s
    except BaseException:
        failed = True
        raise
    finally:
        leftovers = s.close()
        if leftovers and not failed:
            raise AssertionError(f"processes left behind: {leftovers}\n{s.daemon_logs()}")


@contextlib.contextmanager
def mgmt_run(
    root: Path,
    *,
    agent: str = "agent-test",
    settings: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    log_level: str = "debug",
) -> Iterator[Site]:
    """A :func:`site` running ``zeek-mgmt run`` (controller ``controller-test``, agent
    ``agent``), yielded once the agent is listed.

    Args:
        settings: more ``--set`` entries, e.g. ``agent.archive_interval=1``.
        env: more environment for the daemons (and so for the nodes).
    """
    flags = ["--log-level", log_level]
    for entry in ("controller.name=controller-test", f"agent.name={agent}", "agent.stop_grace=5"):
        flags += ["--set", entry]
    for entry in settings:
        flags += ["--set", entry]
    with site(root, **(env or {})) as s:
        s.start("run", *flags)
        s.wait_agents(agent)
        yield s


CONTROLLER_NAME = f"controller-{socket.gethostname() or 'localhost'}"


def proc_name(name: str) -> str:
    """The kernel name (``comm``) of a process named ``name`` (15 bytes at most)."""
    return name[:15]


def deploy(s: Site, cfg_text: str, *, expect_rc: int = 0, name: str = "cluster.cfg") -> Any:
    """``zeek-client deploy-config`` of ``cfg_text``; checks the exit code, returns the JSON."""
    res = s.deploy_config(cfg_text, name)
    assert res.code == expect_rc, f"{res}\n{s.daemon_logs()}"
    return res.json()


def one_process_per_node(s: Site, nodes: Iterable[str]) -> dict[str, int]:
    """Assert exactly one live ``zeek.<node>`` process per node; return name -> pid."""
    procs = s.zeek_processes()
    out = {}
    for node in nodes:
        found = procs.get(proc_name(f"zeek.{node}"), [])
        assert len(found) == 1, f"{node}: {found}"
        out[node] = found[0].pid
    return out
