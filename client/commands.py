"""zeek-client 1.5.0's commands in ``zeek-mgmt`` (the runtime around them: :mod:`client.cli`).

Every zeek-client command keeps its name, arguments, stdout bytes and exit codes
(wire spec §7): ``deploy``, ``deploy-config``, ``get-config``, ``get-id-value``,
``get-instances``, ``get-nodes``, ``monitor``, ``restart``, ``stage-config``,
``test-timeout``. zeek-client's global options are accepted after each command name:
``-c/--configfile``, ``--controller HOST:PORT``, ``--set SECTION.KEY=VAL``, ``-q`` and
``-v``, e.g. ``zeek-mgmt get-nodes --controller 127.0.0.1:2149``. Settings and their
precedence are zeek-client's (:mod:`client.config`). ``client-settings`` is zeek-client's
``show-settings`` (same output); in ``zeek-mgmt`` that name is the former name of
``daemon-settings`` (the daemons' settings).

Additions (zeek-mgmt's own commands are in :mod:`client.extcommands`):

* ``deploy-config FILE --check`` -- first ``check`` the configuration; deploy only if
  every node passes;
* ``deploy-config FILE --wait [--wait-timeout S] [--wait-interval S]`` -- after the deploy
  response (printed as usual on stdout), poll ``get-nodes`` on the same connection and
  print one progress line per node state change on stderr (so stdout stays the deploy
  JSON), until every node of the deployed configuration is RUNNING (exit 0), any is
  FAILED or CRASHED (exit 1) or the wait timeout passes (exit 1). A failed deploy does
  not wait.

Deviations from zeek-client, all in error paths where its message does not say what to
do, it prints a Python traceback or it loops. The first three keep zeek-client's stdout
(nothing) and exit code (1); only the stderr line differs
(tests/client/test_client_parity.py):

* nothing listens on the controller's port: ``connection refused: no controller at
  H:P (is zeek-mgmt controller running? see --controller)``, at once (zeek-client retries
  for 10 s, then says ``websocket connection to H:P timed out in connect()``);
* plaintext against a TLS port, TLS against a plaintext port, or no client certificate
  for a mutual-TLS port: zeek-client's message with a hint appended, e.g. ``(is the
  controller's port TLS? then --set ssl.enable=true)``;
* a cluster file that cannot be read: ``cannot read <path>: No such file or directory``
  (zeek-client: ``please provide a cluster configuration file.``);
* names of the daemons' family, which zeek-client would misread or drop silently:
  ``--config`` (the daemons' settings file; argparse would take it for ``--configfile``)
  exits 2, and ``--set`` with a daemon setting (sections ``common`` and ``agent``, or
  ``controller`` keys other than ``host`` and ``port``) exits 1, each saying where it
  belongs;
* invalid cluster files (duplicate sections, host names in ``[instances]``, unbalanced
  quotes), bad settings values and unwritable ``-f`` files give an ``error:`` line and
  exit 1; ``monitor`` exits 1 when the controller closes the connection instead of
  printing the same error forever; malformed ``--set`` items are reported.
"""

from __future__ import annotations

import argparse
import logging
import sys

from client import cli, extcommands, render
from client.api import ControllerClient, new_request_id
from client.cli import Context
from client.render import Rendered
from mgmt.broker import events as ev
from mgmt.broker.records import Configuration
from mgmt.exceptions import RequestTimeout, SessionClosedError

log = logging.getLogger("mgmt.client")

# --------------------------------------------------------------------------------------
# deploy, stage-config, deploy-config


async def _deploy(ctx: Context) -> int:
    return await cli.with_client(ctx, lambda client: _deploy_on(ctx, client))


async def _deploy_on(ctx: Context, client: ControllerClient) -> int:
    try:
        results = await client.deploy()
    except cli.NO_RESPONSE as exc:
        return cli.no_response(exc)
    return cli.emit(render.render_deploy(results, pretty=ctx.pretty))


async def _stage_on(ctx: Context, client: ControllerClient, config: Configuration) -> Rendered:
    try:
        results = await client.stage_configuration(config)
    except cli.NO_RESPONSE as exc:
        cli.no_response(exc)
        return Rendered(None, 1)
    return render.render_stage(results, pretty=ctx.pretty)


async def _stage_config(ctx: Context) -> int:
    async def stage(client: ControllerClient, config: Configuration) -> int:
        return cli.emit(await _stage_on(ctx, client, config))

    return await cli.with_config(ctx, stage)


def _deploy_config_arguments(parser: argparse.ArgumentParser) -> None:
    cli.config_file_argument(parser)
    parser.add_argument(
        "--check",
        action="store_true",
        help="first run zeek-mgmt check on the configuration; deploy only if every node "
        "passes (zeek-mgmt extension)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="after deploying, wait until every node is RUNNING (progress on stderr); "
        "exit 1 if a node fails or the wait times out (zeek-mgmt extension)",
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up waiting after this long (default 60)",
    )
    parser.add_argument(
        "--wait-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="time between get-nodes polls while waiting (default 1)",
    )


async def _deploy_config(ctx: Context) -> int:
    async def deploy(client: ControllerClient, config: Configuration) -> int:
        if ctx.args.check:
            checked = await extcommands.check_on(ctx, client, config)
            if checked.exit_code != 0:
                log.error("check failed, not deploying")
                return cli.emit(checked)
        staged = await _stage_on(ctx, client, config)
        if staged.exit_code != 0:
            return cli.emit(staged)
        code = await _deploy_on(ctx, client)
        if code != 0 or not ctx.args.wait:
            return code
        return await extcommands.wait_until_running(
            client,
            config,
            limit=ctx.args.wait_timeout,
            interval=ctx.args.wait_interval,
            progress=None if ctx.quiet else sys.stderr,
        )

    return await cli.with_config(ctx, deploy)


# --------------------------------------------------------------------------------------
# Queries, restart, monitor


def _get_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--filename",
        "-f",
        metavar="FILE",
        default="-",
        help="output file for the configuration, default stdout",
    )
    parser.add_argument(
        "--as-json", action="store_true", help="report in JSON instead of INI-style config file"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--deployed",
        action="store_true",
        dest="deployed",
        default=False,
        help="return deployed configuration",
    )
    group.add_argument(
        "--staged",
        action="store_false",
        dest="deployed",
        help="return staged configuration (default)",
    )


async def _get_config(ctx: Context) -> int:
    return await cli.request(
        ctx,
        lambda c: c.request(
            ev.GetConfigurationRequest(new_request_id(), ctx.args.deployed),
            ev.GetConfigurationResponse,
        ),
        lambda resp: render.render_get_config(resp, as_json=ctx.args.as_json, pretty=ctx.pretty),
        filename=ctx.args.filename,
    )


def _get_id_value_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "id", metavar="IDENTIFIER", help="name of the Zeek script identifier to retrieve"
    )
    cli.nodes_argument(
        parser, "name(s) of Zeek cluster nodes to query; when omitted, queries all nodes"
    )


async def _get_id_value(ctx: Context) -> int:
    return await cli.request_json(
        ctx, lambda c: c.get_id_value(ctx.args.id, ctx.args.nodes), render.render_get_id_value
    )


async def _get_instances(ctx: Context) -> int:
    return await cli.request_json(
        ctx,
        lambda c: c.request(ev.GetInstancesRequest(new_request_id()), ev.GetInstancesResponse),
        render.render_get_instances,
    )


async def _get_nodes(ctx: Context) -> int:
    return await cli.request_json(ctx, lambda c: c.get_nodes(), render.render_get_nodes)


async def _monitor(ctx: Context) -> int:
    return await cli.with_client(ctx, _monitor_on)


async def _monitor_on(client: ControllerClient) -> int:
    while True:
        try:
            event = await client.receive()
        except RequestTimeout as exc:
            _print(f"no response received: {exc}")
            continue
        except SessionClosedError as exc:
            _print(f"no response received: {exc}")
            return 1
        line = render.monitor_line(event)
        if line is None:
            log.warning('received unexpected event "%s", skipping', ev.event_name(event))
            continue
        _print(line)


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _restart_arguments(parser: argparse.ArgumentParser) -> None:
    cli.nodes_argument(
        parser, "name(s) of Zeek cluster nodes to restart; when omitted, restarts all nodes"
    )


async def _restart(ctx: Context) -> int:
    return await cli.request_json(ctx, lambda c: c.restart(ctx.args.nodes), render.render_restart)


def _test_timeout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--with-state", action="store_true", help="make the request stateful in the controller"
    )


async def _test_timeout(ctx: Context) -> int:
    return await cli.request_json(
        ctx, lambda c: c.test_timeout(ctx.args.with_state), render.render_test_timeout
    )


async def _client_settings(ctx: Context) -> int:
    sys.stdout.write(ctx.settings.render())
    sys.stdout.flush()
    return 0


# The commands, by the attribute names mgmt.cli looks up (client.command_target).
deploy = cli.command(cli.no_arguments, _deploy)
deploy_config = cli.command(_deploy_config_arguments, _deploy_config)
get_config = cli.command(_get_config_arguments, _get_config)
get_id_value = cli.command(_get_id_value_arguments, _get_id_value)
get_instances = cli.command(cli.no_arguments, _get_instances)
get_nodes = cli.command(cli.no_arguments, _get_nodes)
monitor = cli.command(cli.no_arguments, _monitor)
restart = cli.command(_restart_arguments, _restart)
stage_config = cli.command(cli.config_file_argument, _stage_config)
test_timeout = cli.command(_test_timeout_arguments, _test_timeout)
client_settings = cli.command(cli.no_arguments, _client_settings)
