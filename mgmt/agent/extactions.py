"""The agent service's answers to extension requests that need I/O.

The pure state machine records such a request and emits
:class:`~mgmt.agent.state.RunExtension` (rows without ``answer`` in
:mod:`mgmt.agent.extensions`); the service runs :meth:`ExtensionActions.answer` as a task
it owns and reports the results with
:meth:`~mgmt.agent.state.AgentState.extension_done`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, assert_never

from mgmt.agent import observe
from mgmt.agent.extensions import ExtensionRequest
from mgmt.agent.housekeeping import file_systems
from mgmt.agent.supervised import SupervisedNodes
from mgmt.broker import extevents as xev
from mgmt.broker.records import Configuration, Result
from mgmt.core.peertext import peer_text
from mgmt.core.version import ProcessFacts
from mgmt.daemon.procstats import ProcessSampler
from mgmt.supervisor.backend import run_command
from mgmt.supervisor.node import NodeInfo

log = logging.getLogger("mgmt.agent")

#: Dispatches an action to nodes: (reqid, action, names) -> one Result per node.
AskNodes = Callable[[str, tuple[str, ...], Iterable[str]], Awaitable[list[Result]]]

#: ``zeek --version`` prints ``<argv0> version <version>`` (stderr, merged with it, may
#: add warnings around that line).
_ZEEK_VERSION = re.compile(r" version (\S+)[ \t]*$", re.MULTILINE)
#: How much of ``zeek --version``'s output is kept (it is one line).
_VERSION_OUTPUT_BYTES = 4096


class ExtensionActions:
    """What the agent does for extension requests it cannot answer from its state.

    Args:
        facts: this agent's process (role, name, pid, start time, versions).
        zeek: returns the Zeek binary the nodes run (a path, or a name on PATH).
        timeout: seconds a helper program (``zeek --version``) may take; ``None``:
            no limit.
        nodes: the supervisor's node snapshots now (observation requests).
        ask: dispatches an action to nodes over their node channels (netstats).
        disk_dirs: the directories ``get_disk_usage`` reports on, by setting name.
        supervised: returns the agent's supervised nodes (``None`` before they exist).
        settle_within: seconds ``stop``/``start`` wait for their nodes to settle.
        check: runs ``zeek-mgmt check`` of a configuration (:mod:`mgmt.agent.configcheck`).
    """

    def __init__(
        self,
        facts: ProcessFacts,
        zeek: Callable[[], str],
        *,
        timeout: float | None = 10.0,
        nodes: Callable[[], list[NodeInfo]] = list,
        ask: AskNodes | None = None,
        disk_dirs: Mapping[str, Path] | None = None,
        supervised: Callable[[], SupervisedNodes | None] = lambda: None,
        settle_within: float = 10.0,
        check: Callable[[str, Configuration], Awaitable[tuple[Result, ...]]] | None = None,
    ) -> None:
        self.facts = facts
        self._zeek = zeek
        self._timeout = timeout
        self._nodes = nodes
        self._sampler = ProcessSampler()
        self._ask = ask
        self._disk_dirs = dict(disk_dirs or {})
        self._supervised = supervised
        self._settle_within = settle_within
        self._check = check
        #: ``zeek --version`` by binary, once it answered.
        self._zeek_versions: dict[str, str] = {}

    async def answer(self, event: ExtensionRequest) -> tuple[Result, ...]:
        """The results for one extension request.

        Cancellation: safe; a helper program still running is killed.
        """
        match event:
            case xev.AgentGetVersionRequest(reqid=reqid):
                payload = self.facts.version_payload(await self.zeek_version())
                return (xev.payload_result(reqid, payload, instance=self.facts.name),)
            case xev.AgentGetNodeInfoRequest(reqid=reqid):
                return await self._per_node(reqid, None, observe.node_info)
            case xev.AgentDiagRequest(reqid=reqid, nodes=nodes):
                return await self._per_node(reqid, nodes, observe.diag)
            case xev.AgentTopRequest(reqid=reqid):
                return (self.top(reqid),)
            case xev.AgentNetstatsRequest(reqid=reqid, nodes=nodes):
                return await self.netstats(reqid, nodes)
            case xev.AgentGetDiskUsageRequest(reqid=reqid):
                found = await asyncio.to_thread(file_systems, self._disk_dirs)
                payload = {"filesystems": [fs.payload() for fs in found]}
                return (xev.payload_result(reqid, payload, instance=self.facts.name),)
            case xev.AgentStopNodesRequest(reqid=reqid, nodes=names):
                return await self.stop_or_start(reqid, names, stop=True)
            case xev.AgentStartNodesRequest(reqid=reqid, nodes=names):
                return await self.stop_or_start(reqid, names, stop=False)
            case xev.AgentCheckRequest(reqid=reqid, config=config):
                if self._check is None:
                    return (Result(reqid, False, instance=self.facts.name, error="no checker"),)
                return await self._check(reqid, config)
            case _:
                assert_never(event)

    async def _per_node(
        self,
        reqid: str,
        names: Collection[str] | None,
        payload: Callable[[NodeInfo, float], dict[str, Any]],
    ) -> tuple[Result, ...]:
        """One Result per node (those of ``names``, all when it is empty or ``None``),
        its payload built in a worker thread (it reads files)."""
        infos = [i for i in self._nodes() if not names or i.name in names]

        def build() -> tuple[Result, ...]:
            now = observe.now()
            return tuple(
                xev.payload_result(reqid, payload(i, now), instance=self.facts.name, node=i.name)
                for i in infos
            )

        return await asyncio.to_thread(build)

    async def netstats(self, reqid: str, names: Collection[str]) -> tuple[Result, ...]:
        """``get_net_stats()`` of each node with an interface (of ``names``; all when
        empty), over the node channels; one Result per node."""
        infos = [i for i in self._nodes() if (not names or i.name in names)]
        by_name: dict[str, NodeInfo] = {i.name: i for i in infos if observe.interface(i)}
        if self._ask is None or not by_name:
            return ()
        results = await self._ask(reqid, ("get_net_stats",), by_name)
        return tuple(
            observe.netstats_result(reqid, self.facts.name, r, by_name.get(r.node or ""))
            for r in results
        )

    def top(self, reqid: str) -> Result:
        """The ``top`` Result of this agent: itself and its nodes' processes."""
        entries = observe.top_entries(self._sampler, self.facts.role, self.facts.pid, self._nodes())
        payload = {"now": observe.now(), "processes": entries}
        return xev.payload_result(reqid, payload, instance=self.facts.name)

    async def stop_or_start(
        self, reqid: str, names: Iterable[str], *, stop: bool
    ) -> tuple[Result, ...]:
        """``zeek-mgmt stop``/``start``: one Result per affected node of this agent,
        payload ``{"state": <its state afterwards>}``."""
        nodes = self._supervised()
        if nodes is None:
            return (Result(reqid, False, instance=self.facts.name, error="agent is starting"),)
        states = await nodes.stop_or_start(names, stop=stop, within=self._settle_within)
        log.info("%s nodes %s", "stopped" if stop else "started", peer_text(sorted(states)))
        return tuple(
            xev.payload_result(reqid, {"state": state.name}, instance=self.facts.name, node=name)
            for name, state in sorted(states.items())
        )

    async def zeek_version(self) -> str | None:
        """The version of the nodes' Zeek (``zeek --version``), cached once known;
        ``None`` when it cannot be run or does not say."""
        zeek = self._zeek()
        known = self._zeek_versions.get(zeek)
        if known is not None:
            return known
        result = await run_command(
            (zeek, "--version"), time_limit=self._timeout, output_limit=_VERSION_OUTPUT_BYTES
        )
        if result.timed_out:
            log.warning("%s --version did not answer within %s s", zeek, self._timeout)
            return None
        first = result.output.splitlines()[:1]
        if result.status != 0 or not first:
            log.debug("%s --version: exit %s, output %s", zeek, result.status, peer_text(first))
            return None
        match = _ZEEK_VERSION.search(result.output)
        version = match.group(1) if match else first[0][:100]
        self._zeek_versions[zeek] = version
        return version
