"""The agent's node specs and layout: what the supervisor runs for a configuration.

For a configuration, :meth:`NodeSetup.prepare` writes ``cluster-layout.zeek``, the
Management settings script and the management node script into
``<state>/nodes/<agent>/layout`` (atomically: a crashed node may be revived, and read
them, while they are rewritten), creates the log queue, and builds one
:class:`~mgmt.supervisor.policy.NodeSpec` per local node (:func:`mgmt.agent.layout.launch_plan`).
A node that cannot have a spec (a value no process can take, a layout or spool directory
that cannot be written) is not handed to the supervisor: it is in
:attr:`NodeSetup.unlaunched` with the reason, which the agent reports as the node's
stderr of a FAILED node. Nothing here raises for a bad configuration.

Nodes inherit the agent's environment minus what changes from one agent start to the
next (systemd's notification variables, ...), which would make adopted nodes look
outdated; the framework's port variables are given in Zeek's form (``NNNN/tcp``).

Each node also gets a loopback port for its node channel (:func:`node_websocket_ports`),
except the nodes that bind ZeroMQ's log endpoint (:func:`relayed_nodes`): Zeek 8.2's
WebSocket server cannot start there, so their channel goes through another node's.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from mgmt.agent import layout
from mgmt.broker.records import ClusterRole, Configuration
from mgmt.core import launchable, startorder
from mgmt.core.curve import CurveKeys
from mgmt.core.launchable import quote
from mgmt.core.peertext import peer_text
from mgmt.exceptions import StateStoreError
from mgmt.persist import curvekeys
from mgmt.persist.statefile import write_atomic
from mgmt.settings.model import AgentSettings
from mgmt.supervisor.policy import NodeSpec
from mgmt.typing import NodeName

log = logging.getLogger("mgmt.agent")

#: Variables of the agent's own environment that must not reach nodes: they change from
#: one agent start to the next and would make adopted nodes look outdated.
_VOLATILE_ENV = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "ZEEK_MGMT_CONTROLLER_PID",
    # Set by zeek-mgmt run for its children (the pid of that run).
    "ZEEK_MGMT_RUN_PARENT",
)

#: Port variables of Zeek's framework that nodes see in Zeek's form (``NNNN/tcp``).
_PORT_ENV = ("ZEEK_CONTROLLER_PORT", "ZEEK_CONTROLLER_WEBSOCKET_PORT", "ZEEK_AGENT_PORT")

#: The files in the layout directory, each written atomically.
LAYOUT_FILES = (
    layout.LAYOUT_FILE,
    layout.SETTINGS_FILE,
    layout.BACKEND_FILE,
    f"{layout.NODE_SCRIPT}.zeek",
)


def node_base_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment nodes inherit from the agent's ``env`` (see the module docstring)."""
    out = dict(env)
    for key in _VOLATILE_ENV:
        out.pop(key, None)
    for key in _PORT_ENV:
        # We accept a bare number; Zeek's management scripts, which nodes load
        # (zeek-mgmt-settings.zeek), to_port() it at parse time and fail without /tcp.
        if out.get(key, "").isdigit():
            out[key] += "/tcp"
    return out


def relayed_nodes(config: Configuration, backend: str) -> frozenset[str]:
    """The nodes whose node channel must go through another node's WebSocket server.

    On ZeroMQ, a logger (or a manager that is the logger) binds the log endpoint, and
    Zeek 8.2's WebSocket server gives each client a ZeroMQ backend of its own, which
    binds it again and fails ("Failed to bind pull socket ... Address already in use";
    README, "Zeek compatibility"): the client is never served. Such a node does not
    listen; it subscribes to its node topic, which another node's WebSocket server
    reaches through the ZeroMQ proxy.
    """
    if backend != "zeromq":
        return frozenset()
    loggers = {n.name for n in config.nodes if n.role is ClusterRole.LOGGER}
    if not loggers:
        loggers = {n.name for n in config.nodes if n.role is ClusterRole.MANAGER}
    return frozenset(loggers)


def node_websocket_ports(
    config: Configuration, instance: str, start: int, backend: str = "broker"
) -> dict[str, int]:
    """Loopback ports for the node channels of ``instance``'s nodes, from ``start`` up,
    skipping every port the deployment uses (the ZeroMQ proxy's included); the
    :func:`relayed_nodes` get none.

    Ports are numbered over the nodes of *every* instance (sorted by instance, then name),
    so several agents on one host running the same configuration never pick the same
    port, and the numbering is the same after an agent restart (adoption).
    """
    used = {i.listen_port.number for i in config.instances if i.listen_port is not None}
    for node in config.nodes:
        for port in (node.p, node.metrics_port):
            if port is not None:
                used.add(port.number)
    proxy = layout.zeromq_proxy(config) if backend == "zeromq" else None
    if proxy is not None:
        used.update((proxy.xpub_port, proxy.xsub_port))
    relayed = relayed_nodes(config, backend)
    ports: dict[str, int] = {}
    candidate = start
    for node in sorted(config.nodes, key=lambda n: (n.instance, n.name)):
        if node.name in relayed:
            continue
        while candidate in used:
            candidate += 1
        if node.instance == instance:
            ports[node.name] = candidate
        used.add(candidate)
        candidate += 1
    return ports


class NodeSetup:
    """Turns configurations into node specs for one agent (see the module docstring).

    Args:
        settings: the agent's settings (name, directories, zeek, node scripts and args).
        base_env: the agent's environment (volatile entries are dropped here).
    """

    def __init__(self, settings: AgentSettings, base_env: Mapping[str, str]) -> None:
        self.settings = settings
        self.base_env = node_base_env(base_env)
        self.layout_dir = settings.work_dir / "layout"
        #: The node channel port of each local node of the last configuration.
        self.ports: dict[str, int] = {}
        #: Local nodes of the last configuration reached through another node's channel.
        self.relayed: frozenset[str] = frozenset()
        #: Local nodes of the last configuration that have no spec, and why.
        self.unlaunched: dict[str, str] = {}
        #: The ZeroMQ CURVE keys the controller sent last (kept in the work directory).
        self.curve_file = settings.work_dir / curvekeys.FILE_NAME
        self.curve_keys: CurveKeys | None = None
        try:
            self.curve_keys = curvekeys.load(self.curve_file)
        except StateStoreError as exc:
            log.warning("ignoring the saved ZeroMQ CURVE keys: %s", exc)

    def receive_curve_keys(self, text: str) -> None:
        """Take the CURVE keys a controller sent (JSON), keeping them on disk for nodes
        revived or adopted later. Bad keys are refused with a warning; never raises."""
        try:
            keys = CurveKeys.from_json(text)
        except ValueError as exc:
            log.warning("ignoring ZeroMQ CURVE keys from the controller: %s", exc)
            return
        if keys == self.curve_keys:
            return
        self.curve_keys = keys
        try:
            curvekeys.save(self.curve_file, keys)
        except StateStoreError as exc:
            log.warning("cannot keep the ZeroMQ CURVE keys: %s", exc)

    def zeek(self) -> str:
        """The zeek executable the nodes run.

        A bare name (``zeek``) is looked up on the nodes' PATH, so that Zeek's default
        script path can be derived from the real install prefix.
        """
        zeek = self.settings.zeek or "zeek"
        return shutil.which(zeek, path=self.base_env.get("PATH")) or zeek

    def has_management_scripts(self) -> bool:
        """Whether every one of Zeek's Management config scripts is on the nodes' path."""
        dirs = [
            Path(d)
            for d in layout.node_zeekpath(self.zeek(), self.base_env).split(":")
            if os.path.isabs(d)
        ]
        return all(
            any((d / f"{s}.zeek").is_file() or (d / s / "__load__.zeek").is_file() for d in dirs)
            for s in layout.MANAGEMENT_SCRIPTS
        )

    def prepare(
        self, config: Configuration, management: layout.ManagementSettings
    ) -> list[NodeSpec]:
        """Write the layout for ``config`` and return the specs of our nodes; the nodes
        that cannot be launched are in :attr:`unlaunched` afterwards. Never raises.

        Args:
            config: the configuration to run.
            management: the Management settings in effect, for the nodes.
        """
        self.unlaunched = {}
        mine = sorted({n.name for n in config.nodes_of(self.settings.name)})
        try:
            if mine:
                self._write_layout(config, management)
                (self.settings.spool_dir / "log-queue").mkdir(parents=True, exist_ok=True)
            return self._specs(config)
        except (OSError, StateStoreError) as exc:
            # The nodes cannot start: report each one FAILED with the reason instead of
            # leaving it PENDING forever.
            if isinstance(exc, StateStoreError):
                reason = f"cannot prepare node: {exc.path}: {exc.reason}"
            else:
                reason = f"cannot prepare node: {exc.filename or ''}: {exc.strerror or exc}"
            log.error("cannot prepare nodes of configuration %s: %s", peer_text(config.id), reason)
            self.unlaunched = dict.fromkeys(mine, reason)
        except Exception as exc:  # a bug: still no reason to stop the agent
            log.exception("cannot prepare nodes of configuration %s", peer_text(config.id))
            self.unlaunched = dict.fromkeys(mine, f"cannot prepare node: {exc}")
        return []

    def _write_layout(self, config: Configuration, management: layout.ManagementSettings) -> None:
        backend = self.settings.cluster_backend
        if backend == "zeromq" and self.curve_keys is None and layout.uses_curve(config):
            log.warning(
                "ZeroMQ cluster on several hosts without CURVE keys from the controller: "
                "its traffic is not encrypted"
            )
        script = importlib.resources.files("mgmt").joinpath("scripts/zeek-mgmt-node.zeek")
        settings = layout.settings_text(
            management, management_scripts=self.has_management_scripts()
        )
        texts = (
            layout.layout_text(config).encode(),
            settings.encode(),
            layout.backend_text(config, backend, self.curve_keys).encode(),
            script.read_bytes(),
        )
        for name, data in zip(LAYOUT_FILES, texts, strict=True):
            write_atomic(self.layout_dir / name, data)

    def _specs(self, config: Configuration) -> list[NodeSpec]:
        """Launch specs of our nodes; a node that cannot have one goes to ``unlaunched``.

        Nodes are checked with :func:`mgmt.core.launchable.problems` (a deployment that
        fails it is refused on receipt, but a saved configuration is resumed as it is), and
        any error while building one node's spec fails that node only.
        """
        cfg = self.settings
        backend = cfg.cluster_backend
        self.ports = node_websocket_ports(config, cfg.name, cfg.node_websocket_start_port, backend)
        self.relayed = relayed_nodes(config, backend) & {n.name for n in config.nodes_of(cfg.name)}
        zeek = self.zeek()
        problems: dict[str, str] = {}
        for problem in launchable.problems(config):
            if problem.node is not None:
                problems.setdefault(problem.node, problem.text)
        specs: list[NodeSpec] = []
        for node in sorted(config.nodes_of(cfg.name), key=lambda n: n.name):
            if node.name in problems:  # names used twice included: one process per name
                log.error("node %s not launched: %s", quote(node.name), problems[node.name])
                self.unlaunched[node.name] = problems[node.name]
                continue
            try:
                plan = layout.launch_plan(
                    node,
                    zeek=zeek,
                    layout_dir=self.layout_dir,
                    nodes_dir=cfg.state_dir / "nodes",
                    base_env=self.base_env,
                    node_scripts=cfg.node_scripts,
                    node_args=cfg.node_args,
                    extra_env={
                        "ZEEK_MGMT_NODE_WEBSOCKET_PORT": str(self.ports.get(node.name, "")),
                        "ZEEK_MANAGEMENT_SPOOL_DIR": str(cfg.spool_dir),
                    },
                    backend=backend,
                )
                specs.append(
                    NodeSpec(
                        NodeName(plan.name),
                        plan.argv,
                        plan.env,
                        str(plan.cwd),
                        plan.cpu_affinity,
                        role=startorder.role_name(node.role),
                    )
                )
            except Exception as exc:  # one node's bad value must not stop the others
                log.exception("node %s: cannot build the launch plan", quote(node.name))
                self.unlaunched[node.name] = f"cannot prepare node: {exc}"
        return specs
