"""``zeek-mgmt check``: this agent's nodes of a configuration in Zeek's parse-only mode.

Rules / theory of operation
---------------------------
zeekctl's ``check`` runs every node's scripts with ``zeek -a`` before anything is
installed. Here each of this agent's nodes of the configuration gets exactly the command
line, environment and scripts it would run with (:class:`~mgmt.agent.nodes.NodeSetup`,
the same code a deploy uses), plus ``-a`` (and no metrics port: :func:`check_argv`);
only the layout directory (the generated ``cluster-layout.zeek`` and friends) and the
working directory are a fresh temporary directory under the agent's work directory, so
that nothing a running node uses is touched. As many nodes are checked at a time as
there are CPUs; each run is bounded by a time limit.

A node passes when ``zeek -a`` exits 0. Otherwise its result carries Zeek's own output
(``error in <file>, line N: ...``). A node that cannot even get a command line (see
:mod:`mgmt.core.launchable`) fails with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from mgmt.agent import layout
from mgmt.agent.nodes import NodeSetup
from mgmt.broker import extevents as xev
from mgmt.broker.records import Configuration, Result
from mgmt.core.peertext import peer_text
from mgmt.settings.model import AgentSettings
from mgmt.supervisor.backend import CommandRunner

log = logging.getLogger("mgmt.agent")

#: The most output of one ``zeek -a`` kept (its end).
OUTPUT_LIMIT = 8192
#: Zeek code added to a check: even in parse-only mode Zeek opens its metrics port,
#: which the running node of the same name holds.
CHECK_CODE = "redef Telemetry::metrics_port = 0/unknown;"


def check_argv(argv: tuple[str, ...]) -> tuple[str, ...]:
    """A node's command line in parse-only mode: ``-a`` first, :data:`CHECK_CODE` added
    to its ``-e`` code (Zeek takes one), or as one."""
    args = list(argv[1:])
    if "-e" in args[:-1]:
        at = args.index("-e") + 1
        args[at] = f"{args[at]} {CHECK_CODE}"
    else:
        args += ["-e", CHECK_CODE]
    return (argv[0], "-a", *args)


@dataclass(frozen=True, eq=False)
class ConfigCheck:
    """Checks configurations for one agent (see the module docstring).

    Args:
        settings: the agent's settings.
        base_env: the agent's environment (as for :class:`NodeSetup`).
        runner: runs the ``zeek -a`` commands.
        management: the Management settings in effect, for the layout.
        time_limit: seconds one node's check may take.
    """

    settings: AgentSettings
    base_env: Mapping[str, str]
    runner: CommandRunner
    management: Callable[[], layout.ManagementSettings]
    _: KW_ONLY
    time_limit: float

    async def check(self, reqid: str, config: Configuration) -> tuple[Result, ...]:
        """One Result per node of this agent in ``config`` (none if it has none here)."""
        name = self.settings.name
        if not config.nodes_of(name):
            return ()
        self.settings.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="check-", dir=self.settings.work_dir))
        try:
            setup = NodeSetup(self.settings, self.base_env)
            setup.layout_dir = tmp / "layout"
            setup.layout_dir.mkdir()
            specs = setup.prepare(config, self.management())
            slots = asyncio.Semaphore(os.cpu_count() or 1)

            async def one(argv: tuple[str, ...], env: Mapping[str, str], node: str) -> Result:
                cwd = tmp / node
                cwd.mkdir()
                async with slots:
                    res = await self.runner.run_command(
                        check_argv(argv),
                        time_limit=self.time_limit,
                        output_limit=OUTPUT_LIMIT,
                        env=env,
                        cwd=str(cwd),
                    )
                if res.status == 0:
                    return xev.payload_result(reqid, {"check": "ok"}, instance=name, node=node)
                why = res.output or (
                    f"zeek -a did not finish within {self.time_limit:g} s"
                    if res.timed_out
                    else f"zeek -a exited with status {res.status}"
                )
                log.info("check of node %s failed: %s", peer_text(node), peer_text(why, 300))
                return Result(reqid, False, instance=name, node=node, error=why)

            results = list(await asyncio.gather(*(one(s.argv, s.env, s.name) for s in specs)))
            results += [
                Result(reqid, False, instance=name, node=node, error=why)
                for node, why in sorted(setup.unlaunched.items())
            ]
            return tuple(sorted(results, key=lambda r: r.node or ""))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
