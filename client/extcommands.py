"""zeek-mgmt's own client commands (not in zeek-client), over the extension requests
of the controller's API (README, "API"); the runtime is :mod:`client.cli`'s, so options,
settings, errors and exit codes behave as in zeek-client's commands.

* ``status`` -- a table of every node: instance, node, role, state, pid, port, metrics
  port, restarts, uptime and last exit. The last three are not in the controller's v1
  API: they come from the ``get_node_info`` extension request, and show ``-`` where it
  is not answered (nothing is guessed). Exit 0 when every row is RUNNING and no instance
  reported an error; 1 otherwise (also when the controller cannot be reached).
* ``diag [NODES]``, ``top [--watch]``, ``netstats [NODES]`` -- the observation
  extension requests rendered by :mod:`client.observe`.
* ``get-versions`` -- the versions of the controller, of each connected agent and of the
  Zeek it runs, as JSON keyed by name (the ``get_version`` extension request). Exit 1 if
  any of them failed to answer.
* ``df [--json]`` -- zeekctl's ``df``: free space on every connected agent's state, spool
  and archive file systems (the ``get_disk_usage`` extension request, issue 13).
* ``check [FILE]``, ``stop [NODES]``, ``start [NODES]`` -- zeekctl's (issue 11).

Also the two steps ``deploy-config`` (:mod:`client.commands`) adds to zeek-client's:
:func:`check_on` for ``--check`` and :func:`wait_until_running` for ``--wait``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import Any, TextIO

from client import cli, extrender, observe
from client.api import ControllerClient
from client.cli import Context
from client.render import Rendered
from mgmt.broker.extevents import ExtensionResult
from mgmt.broker.records import Configuration
from mgmt.exceptions import RequestTimeout

log = logging.getLogger("mgmt.client")

# --------------------------------------------------------------------------------------
# status, get-versions, df


async def _status(ctx: Context) -> int:
    async def both(c: ControllerClient) -> tuple[Any, tuple[ExtensionResult, ...]]:
        nodes = await c.get_nodes()
        try:
            infos = await c.get_node_info()
        except RequestTimeout:  # a controller without the extension: "-" instead
            log.debug("no get_node_info response: RESTARTS, UPTIME, LAST EXIT unknown")
            infos = ()
        return nodes, infos

    return await cli.request(
        ctx,
        both,
        lambda r: extrender.render_status(r[0], lambda rows: observe.with_node_info(rows, r[1])),
    )


async def _get_versions(ctx: Context) -> int:
    return await cli.request_json(ctx, lambda c: c.get_versions(), extrender.render_extension)


def _df_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the agents' answers as JSON (README, API: get_disk_usage)",
    )


async def _df(ctx: Context) -> int:
    def show(results: tuple[ExtensionResult, ...]) -> Rendered:
        if ctx.args.json:
            return extrender.render_extension(results, pretty=ctx.pretty)
        return extrender.render_df(results)

    return await cli.request(ctx, lambda c: c.get_disk_usage(), show)


# --------------------------------------------------------------------------------------
# check, stop, start; deploy-config --check and --wait


def _some_nodes_argument(parser: argparse.ArgumentParser) -> None:
    cli.nodes_argument(parser, "node names (default: all nodes)")


async def _stop(ctx: Context) -> int:
    return await cli.request_json(
        ctx, lambda c: c.stop_nodes(ctx.args.nodes), extrender.render_extension
    )


async def _start(ctx: Context) -> int:
    return await cli.request_json(
        ctx, lambda c: c.start_nodes(ctx.args.nodes), extrender.render_extension
    )


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    cli.config_file_argument(parser, optional=True)


async def _check(ctx: Context) -> int:
    config: Configuration | None = None
    if ctx.args.config:
        config = cli.load_cluster_config(
            ctx.args.config, unknown_keys_ok=ctx.args.allow_unknown_keys
        )
        if config is None:
            return 1

    async def check(client: ControllerClient) -> int:
        return cli.emit(await check_on(ctx, client, config))

    return await cli.with_client(ctx, check)


async def check_on(
    ctx: Context, client: ControllerClient, config: Configuration | None
) -> Rendered:
    """``check`` of ``config`` (``None``: the staged configuration)."""
    try:
        if config is None:
            staged = await client.get_configuration(deployed=False)
            if not staged.success or staged.data is None:
                log.error("%s", staged.error or "no staged configuration available")
                return Rendered(None, 1)
            config = Configuration.from_value(staged.data)
        results = await client.check(config)
    except cli.NO_RESPONSE as exc:
        return Rendered(None, cli.no_response(exc))
    return extrender.render_extension(results, pretty=ctx.pretty)


async def wait_until_running(
    client: ControllerClient,
    config: Configuration,
    *,
    limit: float,
    interval: float,
    progress: TextIO | None,
) -> int:
    """Poll get-nodes until the configuration's nodes run (0), or fail or ``limit``
    seconds pass (1). Writes a line per node state change to ``progress``.
    """
    wanted = {n.name: n.instance for n in config.nodes}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    states: dict[str, str] = {}
    while True:
        try:
            results = await client.get_nodes()
        except cli.NO_RESPONSE as exc:
            return cli.no_response(exc)
        step = extrender.wait_progress(wanted, states, results)
        states = dict(step.states)
        if progress is not None:
            for line in step.lines:
                progress.write(line + "\n")
            progress.flush()
        if step.failed:
            log.error("nodes failed: %s", ", ".join(step.failed))
            return 1
        if step.done:
            return 0
        if loop.time() >= deadline:
            waiting = [n for n, s in states.items() if s != "RUNNING"]
            log.error("timed out after %gs waiting for nodes to run: %s", limit, ", ".join(waiting))
            return 1
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))


# --------------------------------------------------------------------------------------
# observation (issue 12): diag, top, netstats


def _observe_nodes_argument(parser: argparse.ArgumentParser) -> None:
    cli.nodes_argument(parser, "cluster nodes (default: all)")


async def _diag(ctx: Context) -> int:
    return await cli.request(ctx, lambda c: c.diag(ctx.args.nodes), observe.render_diag)


async def _netstats(ctx: Context) -> int:
    return await cli.request(ctx, lambda c: c.netstats(ctx.args.nodes), observe.render_netstats)


def _top_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-w", "--watch", action="store_true", help="refresh in place until interrupted, as top"
    )
    parser.add_argument(
        "-d",
        "--delay",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between refreshes with --watch (default: 2)",
    )


#: Moves the cursor home and clears the screen (what top and watch do between frames).
CLEAR_SCREEN = "\x1b[H\x1b[2J"


async def _top(ctx: Context) -> int:
    if not ctx.args.watch:
        return await cli.request(ctx, lambda c: c.top(), observe.render_top)
    return await cli.with_client(ctx, lambda client: _top_watch(client, ctx.args.delay))


async def _top_watch(client: ControllerClient, delay: float) -> int:
    """``top --watch``: redraw every ``delay`` seconds until interrupted."""
    while True:
        try:
            answer = await client.top()
        except cli.NO_RESPONSE as exc:
            return cli.no_response(exc)
        title = f"zeek-mgmt top - {time.strftime('%H:%M:%S')} (every {delay:g} s)"
        sys.stdout.write(f"{CLEAR_SCREEN}{title}\n")
        cli.emit(observe.render_top(answer))
        await asyncio.sleep(max(0.1, delay))


# The commands, by the attribute names mgmt.cli looks up (client.command_target).
status = cli.command(cli.no_arguments, _status)
diag = cli.command(_observe_nodes_argument, _diag)
top = cli.command(_top_arguments, _top)
netstats = cli.command(_observe_nodes_argument, _netstats)
get_versions = cli.command(cli.no_arguments, _get_versions)
df = cli.command(_df_arguments, _df)
check = cli.command(_check_arguments, _check)
stop = cli.command(_some_nodes_argument, _stop)
start = cli.command(_some_nodes_argument, _start)
