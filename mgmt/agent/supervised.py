"""The agent's view of its supervisor: node snapshots, running processes, restarts.

:class:`SupervisedNodes` wraps the :class:`~mgmt.supervisor.service.SupervisorService`
with what the agent needs of it, in the agent's terms: :class:`~mgmt.agent.state.NodeView`
snapshots for the state machine (:meth:`SupervisedNodes.views`), the RUNNING processes for
the node channels (:meth:`SupervisedNodes.running`), and restarts with their outcome
(:meth:`SupervisedNodes.restart`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Iterable, Mapping

from mgmt.agent.nodechannel import NodeProcess, relay_for
from mgmt.agent.state import NodeView
from mgmt.broker.records import NodeOutputs, State
from mgmt.core.peertext import peer_text
from mgmt.supervisor.node import NodeInfo
from mgmt.supervisor.policy import NodeSpec, ProcessState
from mgmt.supervisor.service import SupervisorService
from mgmt.typing import NodeName

log = logging.getLogger("mgmt.agent")

STATE_MAP = {
    ProcessState.PENDING: State.PENDING,
    ProcessState.RUNNING: State.RUNNING,
    ProcessState.STOPPING: State.RUNNING,
    ProcessState.STOPPED: State.STOPPED,
    ProcessState.CRASHED: State.CRASHED,
    ProcessState.FAILED: State.FAILED,
}


class SupervisedNodes:
    """The agent's nodes as its supervisor runs them.

    Args:
        supervisor: the supervisor (started by the caller).
    """

    def __init__(self, supervisor: SupervisorService) -> None:
        self.supervisor = supervisor

    def deploy(self, specs: list[NodeSpec], *, keep_unchanged: bool) -> None:
        """Make the supervisor run exactly these nodes (see its ``deploy``)."""
        self.supervisor.deploy(specs, keep_unchanged=keep_unchanged)

    @property
    def persist_error(self) -> str | None:
        """Why the supervisor's node table cannot be written, if it cannot."""
        return self.supervisor.persist_error

    def running_count(self) -> int:
        """How many nodes are RUNNING."""
        return sum(1 for i in self.supervisor.status() if i.state is ProcessState.RUNNING)

    def views(self, unlaunched: Mapping[str, str]) -> list[NodeView]:
        """The supervisor's nodes as the state machine sees them, then the ``unlaunched``
        nodes (name -> reason), FAILED with the reason as stderr.

        NodeOutputs, as Zeek reports them in a failed deploy (behaviour §5.8): a PENDING
        node has those of its previous, crashed run in this deployment, if any (kept in
        memory by the supervisor: no file is read for the many PENDING snapshots of a
        deploy); a node that is not running (CRASHED, FAILED, STOPPED) has the tails of
        its files, or those of the crashed run if a revival already emptied them. Never
        output from an earlier deployment (Q10).
        """
        sup = self.supervisor
        views = []
        for info in sup.status():
            state = STATE_MAP.get(info.state, State.UNKNOWN)
            outputs = None
            if state is not State.RUNNING:
                crashed = sup.exit_outputs(info.name)
                if state is State.PENDING:
                    out, err = crashed or ("", "")
                else:
                    out, err = sup.outputs(info.name)
                    if not out and not err:
                        out, err = crashed or ("", "")
                if info.reason and info.reason not in err:
                    err = f"{err}\n{info.reason}" if err else info.reason
                if out or err or state is not State.PENDING:
                    outputs = NodeOutputs(out, err)
            views.append(NodeView(info.name, state, info.pid, outputs))
        views += [
            NodeView(name, State.FAILED, None, NodeOutputs("", reason))
            for name, reason in sorted(unlaunched.items())
        ]
        return views

    def running(
        self,
        ports: Mapping[str, int],
        relayed: Collection[str] = (),
        current: Mapping[str, NodeProcess] | None = None,
    ) -> dict[str, NodeProcess | None]:
        """The RUNNING node processes that have a node channel port, for the channels.

        A ``relayed`` node (no WebSocket server of its own, see
        :func:`mgmt.agent.nodes.relayed_nodes`) is reached through another RUNNING node's
        port, chosen by :func:`~mgmt.agent.nodechannel.relay_for` (``current`` are the
        channels' processes now, so that a relay in use is kept); without such a node
        it is ``None``.
        A node being stopped (it got SIGTERM; still RUNNING to the controller) is not
        among them: its channel is closed cleanly instead of dialing a terminating node.
        """
        up = sorted(
            (i for i in self.supervisor.status() if i.state is ProcessState.RUNNING),
            key=lambda i: i.name,
        )
        out: dict[str, NodeProcess | None] = {
            i.name: NodeProcess(ports[i.name], i.pid) for i in up if i.name in ports
        }
        relays = [p for p in out.values() if p is not None]
        for i in up:
            if i.name in relayed:
                kept = (current or {}).get(i.name)
                out[i.name] = relay_for(i.pid, relays, kept)
        return out

    def restart(self, names: Iterable[str]) -> dict[NodeName, int | None] | None:
        """Restart these nodes now.

        Returns:
            Their pids before the restart, for :meth:`restart_outcome`; ``None`` if the
            supervisor refused (logged): then no node was restarted.
        """
        names = tuple(names)
        before = {i.name: i.pid for i in self.supervisor.status() if i.name in names}
        try:
            self.supervisor.restart(names)
        except Exception as exc:
            log.error("restart of %s failed: %s", peer_text(names), exc)
            return None
        return before

    async def restart_outcome(
        self, before: Mapping[NodeName, int | None], within: float
    ) -> dict[str, bool]:
        """Per node of a :meth:`restart`: whether it runs a new process (PENDING or
        RUNNING), waiting at most ``within`` seconds for every node to get one (or to
        fail to start)."""

        def respawned(infos: list[NodeInfo]) -> bool:
            return all(
                i.state is ProcessState.FAILED
                or (
                    i.pid is not None
                    and i.pid != before[i.name]
                    and i.state in (ProcessState.PENDING, ProcessState.RUNNING)
                )
                for i in infos
                if i.name in before
            )

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.supervisor.wait_for(respawned)
        infos = {i.name: i for i in self.supervisor.status() if i.name in before}
        return {
            name: name in infos
            and infos[name].state is not ProcessState.FAILED
            and infos[name].pid != before[name]
            for name in before
        }

    async def stop_or_start(
        self, names: Iterable[str], *, stop: bool, within: float
    ) -> dict[str, State]:
        """``zeek-mgmt stop``/``start`` of this agent's nodes among ``names`` (all when
        empty): stop them and keep them stopped (see the supervisor's ``stop`` with
        ``hold``), or start them. Waits at most ``within`` seconds for each to settle
        (STOPPED; RUNNING or FAILED).

        Returns:
            Each affected node's state afterwards, by name.
        """
        wanted = set(names)
        mine = [i.name for i in self.supervisor.status() if not wanted or i.name in wanted]
        if not mine:
            return {}
        if stop:
            self.supervisor.stop(mine, hold=True)
        else:
            self.supervisor.start_nodes(mine)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.supervisor.wait_for(
                    lambda infos: all(
                        i.state in (ProcessState.STOPPED, ProcessState.RUNNING, ProcessState.FAILED)
                        for i in infos
                        if i.name in mine
                    )
                )
        return {
            i.name: STATE_MAP.get(i.state, State.UNKNOWN)
            for i in self.supervisor.status()
            if i.name in mine
        }
