"""``zeek-mgmt`` client commands: zeek-client 1.5.0's commands, plus four extras.

Every zeek-client command keeps its name, arguments, stdout bytes and exit codes
(wire spec §7): ``deploy``, ``deploy-config``, ``get-config``, ``get-id-value``,
``get-instances``, ``get-nodes``, ``monitor``, ``restart``, ``stage-config``,
``test-timeout``. zeek-client's global options are accepted after each command name:
``-c/--configfile``, ``--controller HOST:PORT``, ``--set SECTION.KEY=VAL``, ``-q`` and
``-v``, e.g. ``zeek-mgmt get-nodes --controller 127.0.0.1:2149``. Settings and their
precedence are zeek-client's (:mod:`client.config`).

Extras:

* ``client-settings`` -- zeek-client's ``show-settings`` (same output). In ``zeek-mgmt``
  that name is the former name of ``daemon-settings`` (the daemons' settings).
* ``get-versions`` -- the versions of the controller, of each connected agent and of the
  Zeek it runs, as JSON keyed by name (the ``get_version`` extension request; README,
  "API"). Exit 1 if any of them failed to answer.
* ``df [--json]`` -- zeekctl's ``df``: free space on every connected agent's state, spool
  and archive file systems (the ``get_disk_usage`` extension request, issue 13).
* ``status`` -- a table of every node: instance, node, role, state, pid, port, metrics
  port, restarts, uptime and last exit. The last three are not in the controller's v1
  API: they come from the ``get_node_info`` extension request, and show ``-`` where it
  is not answered (nothing is guessed). Exit 0 when every row is RUNNING and no instance
  reported an error; 1 otherwise (also when the controller cannot be reached).
* ``diag [NODES]``, ``top [--watch]``, ``netstats [NODES]`` -- the observation
  extension requests rendered by :mod:`client.observe`.
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
import asyncio
import logging
import os
import socket
import ssl as ssl_module
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TextIO, TypeVar

from client import extrender, observe, render
from client.api import ControllerClient, ControllerRefused, new_request_id
from client.clusterconfig import parse_cluster_config
from client.config import CONFIG_FILE_ENV, CONFIG_SETTINGS_ENV, ClientSettings
from client.render import Rendered
from mgmt.broker import events as ev
from mgmt.broker.extevents import ExtensionResult
from mgmt.broker.records import Configuration
from mgmt.exceptions import ConfigError, HandshakeError, RequestTimeout, SessionClosedError

log = logging.getLogger("mgmt.client")


@dataclass(frozen=True, slots=True)
class Command:
    """One ``zeek-mgmt`` subcommand, as :mod:`mgmt.cli` expects it."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------------------
# Settings, logging, output


class _LowerCaseFormatter(logging.Formatter):
    """``error: message`` -- zeek-client writes level names in lower case."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)
        record.levelname = record.levelname.lower()
        return super().format(record)


class _ClientHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we install, so repeated runs in one process replace it."""


def configure_logging(verbosity: int, *, rich: bool, quiet: bool) -> None:
    """Send the client's diagnostics to stderr like zeek-client (§9.1): verbosity 0
    errors, 1 +warnings, 2 +info, 3 +debug, 4 +WebSocket frame trace; ``quiet``: none."""
    loggers = (log, logging.getLogger("mgmt.transport"))
    for logger in loggers:
        for handler in [h for h in logger.handlers if isinstance(h, _ClientHandler)]:
            logger.removeHandler(handler)
        logger.propagate = False
    if quiet:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        return
    handler = _ClientHandler(sys.stderr)
    if rich:
        handler.setFormatter(
            _LowerCaseFormatter("%(asctime)s %(levelname)-8s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    else:
        handler.setFormatter(_LowerCaseFormatter("%(levelname)s: %(message)s"))
    level = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}.get(verbosity, logging.DEBUG)
    log.setLevel(level if verbosity >= 0 else logging.ERROR)
    log.addHandler(handler)
    transport = logging.getLogger("mgmt.transport")
    transport.setLevel(logging.DEBUG if verbosity >= 4 else logging.ERROR)
    transport.addHandler(handler)


@dataclass(frozen=True, slots=True)
class Context:
    """What every command gets: the effective settings and the command's arguments."""

    settings: ClientSettings
    args: argparse.Namespace

    @property
    def pretty(self) -> bool:
        """``client.pretty_json``."""
        return self.settings.pretty_json

    @property
    def quiet(self) -> bool:
        """``-q`` was given."""
        return bool(getattr(self.args, "quiet", False))


def emit(rendered: Rendered, out: TextIO | None = None) -> int:
    """Log a rendering's diagnostics, write its text, return its exit code."""
    for diag in rendered.diagnostics:
        log.log(diag.level, "%s", diag.message)
    if rendered.text is not None:
        stream = sys.stdout if out is None else out
        stream.write(rendered.text)
        stream.flush()
    return rendered.exit_code


def _load_settings(args: argparse.Namespace) -> ClientSettings:
    return ClientSettings.load(
        env=os.environ,
        config_file=args.configfile,
        sets=args.set,
        controller=args.controller,
        verbose=args.verbose,
    )


def _main(args: argparse.Namespace, body: Callable[[Context], Coroutine[Any, Any, int]]) -> int:
    misplaced = [item for item in args.set if daemon_setting(item)]
    if misplaced:
        configure_logging(0, rich=False, quiet=False)
        log.error(
            "--set %s: not a client setting; daemon settings go to zeek-mgmt run, "
            "controller or agent (see zeek-mgmt daemon-settings), client settings are "
            "listed by zeek-mgmt client-settings",
            misplaced[0],
        )
        return 1
    try:
        settings = _load_settings(args)
        verbosity = settings.verbosity
        rich = settings.rich_logging
    except ConfigError as exc:
        configure_logging(0, rich=False, quiet=args.quiet)
        log.error("%s", exc)
        return 1
    configure_logging(verbosity, rich=rich, quiet=args.quiet)
    for problem in settings.problems:
        log.error("%s", problem)
    ctx = Context(settings, args)
    try:
        return asyncio.run(body(ctx))
    except KeyboardInterrupt:
        return 0
    except ConfigError as exc:
        log.error("%s", exc)
        return 1


# --------------------------------------------------------------------------------------
# Connecting


def tls_context(settings: ClientSettings) -> ssl_module.SSLContext | None:
    """The TLS context for ``ssl.enable = true`` (zeek-client's choices, §1.9), else
    ``None``.

    Without ``ssl.certificate`` the server is not verified (Broker's default mode); with
    it, the client presents its certificate and verifies the server against
    ``ssl.cafile``/``ssl.capath``.

    Raises:
        ConfigError: a configured file is missing or unusable.
    """
    tls = settings.tls()
    if not tls.enable:
        return None
    for path, what in (
        (tls.certificate, "SSL certificate file"),
        (tls.keyfile, "SSL private key file"),
        (tls.cafile, "SSL trusted CAs file"),
    ):
        if path and not os.path.isfile(path):
            raise ConfigError(f'{what} "{path}" not found')
    if tls.capath and not os.path.isdir(tls.capath):
        raise ConfigError(f'SSL trusted CAs path "{tls.capath}" not found')
    ctx = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_CLIENT)
    try:
        if not tls.certificate:
            ctx.check_hostname = False
            ctx.verify_mode = ssl_module.CERT_NONE
            # Anonymous ECDH for TLS <= 1.2 as Broker does; TLS 1.3 is unaffected. Where
            # OpenSSL lacks the suite (zeek-client then fails), keep the defaults.
            for ciphers in ("AECDH-AES256-SHA@SECLEVEL=0", "AECDH-AES256-SHA"):
                try:
                    ctx.set_ciphers(ciphers)
                    break
                except ssl_module.SSLError:
                    continue
        else:
            ctx.set_ciphers("HIGH:!aNULL:!MD5")
            ctx.load_cert_chain(tls.certificate, tls.keyfile or None, tls.passphrase or None)
            if tls.cafile or tls.capath:
                ctx.load_verify_locations(cafile=tls.cafile or None, capath=tls.capath or None)
    except (ssl_module.SSLError, OSError) as exc:
        raise ConfigError(str(exc)) from exc
    return ctx


def make_client(settings: ClientSettings) -> ControllerClient:
    """A :class:`ControllerClient` from the settings.

    Raises:
        ConfigError: ``cannot configure connection to H:P: ...`` (zeek-client's message).
    """
    host = settings.controller_host
    port = settings.controller_port
    if settings.tls().legacy_disable:
        log.warning(
            "The ssl.disable setting is deprecated and ignored. "
            "Controller connections now default to plaintext. "
            "Use ssl.enabled to enable encryption. "
            "See 'zeek-client show-settings' for details."
        )
    try:
        ctx = tls_context(settings)
        return ControllerClient(
            host,
            port,
            ssl=ctx,
            timeout=settings.request_timeout,
            peering_attempts=settings.peering_attempts,
            retry_delay=settings.peering_retry_delay,
        )
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"cannot configure connection to {host}:{port}: {exc}") from exc


async def _connected(ctx: Context) -> ControllerClient | None:
    """A peered client, or ``None`` after logging why not."""
    try:
        client = make_client(ctx.settings)
    except ConfigError as exc:
        log.error("%s", exc)
        return None
    try:
        await client.connect()
    except ControllerRefused as exc:
        log.error("%s (is zeek-mgmt controller running? see --controller)", exc)
        return None
    except HandshakeError as exc:
        log.error("%s", exc)
        return None
    return client


async def _with_client(ctx: Context, session: Callable[[ControllerClient], Awaitable[int]]) -> int:
    """Connect, run ``session`` on the client and close it; 1 when it cannot connect."""
    client = await _connected(ctx)
    if client is None:
        return 1
    async with client:
        return await session(client)


_NO_RESPONSE = (RequestTimeout, SessionClosedError)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class _JsonRenderer(Protocol[T_contra]):
    """A ``render.render_*`` function for a zeek-client command's JSON output."""

    def __call__(self, answer: T_contra, /, *, pretty: bool) -> Rendered: ...


def _no_response(exc: Exception) -> int:
    log.error("no response received: %s", exc)
    return 1


async def _request(
    ctx: Context,
    call: Callable[[ControllerClient], Awaitable[T]],
    show: Callable[[T], Rendered],
    *,
    filename: str | None = None,
) -> int:
    """Connect, make one request, render its answer to stdout (or to ``filename``, ``-``
    meaning stdout); 1 (with zeek-client's error line) when the controller cannot be
    reached or does not answer."""

    async def one(client: ControllerClient) -> int:
        try:
            answer = await call(client)
        except _NO_RESPONSE as exc:
            return _no_response(exc)
        return _emit_to(show(answer), filename)

    return await _with_client(ctx, one)


async def _request_json(
    ctx: Context,
    call: Callable[[ControllerClient], Awaitable[T]],
    show: _JsonRenderer[T],
) -> int:
    """:func:`_request` with a renderer that prints JSON, pretty as the user asked."""
    return await _request(ctx, call, lambda answer: show(answer, pretty=ctx.pretty))


# --------------------------------------------------------------------------------------
# Arguments


class _DaemonFlag(argparse.Action):
    """A daemon flag given to a client command: refuse it, saying what to use instead
    (argparse would take ``--config`` for an abbreviation of ``--configfile``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            f"{option_string} names the daemons' TOML settings file (zeek-mgmt run, "
            "controller, agent); client commands read a zeek-client config file: "
            "-c/--configfile FILE"
        )


#: Sections that exist only in the daemon settings. (zeek-client's ``controller`` section
#: has only host and port; the daemons' has the rest.)
DAEMON_SECTIONS = ("common", "agent")


def daemon_setting(item: str) -> bool:
    """Whether a ``--set`` item given to a client command names a daemon setting."""
    ident = item.partition("=")[0]
    section, _, key = ident.partition(".")
    if section in DAEMON_SECTIONS:
        return True
    return section == "controller" and key not in ("host", "port")


def add_global_arguments(parser: argparse.ArgumentParser) -> None:
    """zeek-client's global options, accepted after every client command."""
    group = parser.add_argument_group(
        "zeek-client options (client settings; see zeek-mgmt client-settings)"
    )
    group.add_argument(
        "-c",
        "--configfile",
        metavar="FILE",
        default=None,
        help=f"path to a zeek-client config file (default: ${CONFIG_FILE_ENV}, else none)",
    )
    group.add_argument("--config", nargs="?", action=_DaemonFlag, help=argparse.SUPPRESS)
    group.add_argument(
        "--controller",
        metavar="HOST:PORT",
        help="address and port of the controller's client port, either of which may be "
        "omitted (default: 127.0.0.1:2149)",
    )
    group.add_argument(
        "--set",
        metavar="SECTION.KEY=VAL",
        action="append",
        default=[],
        help="adjust a client setting (sections client, controller, ssl; see "
        f"client-settings); repeatable; also ${CONFIG_SETTINGS_ENV}",
    )
    quiet = group.add_mutually_exclusive_group()
    quiet.add_argument(
        "--quiet", "-q", action="store_true", help="suppress informational output to stderr"
    )
    quiet.add_argument(
        "--verbose",
        "-v",
        action="count",
        help="increase informational output to stderr; repeat for more (e.g. -vvv)",
    )


def _config_file_argument(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    parser.add_argument(
        "config",
        metavar="FILE",
        nargs="?" if optional else None,
        help='cluster configuration file, "-" for stdin'
        + (" (default: the staged configuration)" if optional else ""),
    )
    parser.add_argument(
        "--allow-unknown-keys",
        action="store_true",
        help="ignore node keys zeek-mgmt does not know (with a warning, as zeek-client) "
        "instead of failing",
    )


def _nothing(parser: argparse.ArgumentParser) -> None:
    return None


def _command(
    extra: Callable[[argparse.ArgumentParser], None],
    body: Callable[[Context], Coroutine[Any, Any, int]],
) -> Command:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        extra(parser)
        add_global_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        return _main(args, body)

    return Command(add_arguments, run)


# --------------------------------------------------------------------------------------
# Cluster configuration files


def load_cluster_config(path: str | None, *, unknown_keys_ok: bool = False) -> Configuration | None:
    """Read and parse a cluster configuration (``-`` is stdin), logging diagnostics like
    zeek-client; ``None`` when it cannot be sent. zeekctl's worker keys are applied
    (:mod:`client.workers`); unknown keys are an error unless ``unknown_keys_ok``."""
    if not path:
        log.error("please provide a cluster configuration file.")
        return None
    try:
        if path == "-":
            text, source = sys.stdin.read(), "<stdin>"
        else:
            with open(path, encoding="utf-8") as fh:
                text, source = fh.read(), path
    except OSError as exc:
        # zeek-client says "please provide a cluster configuration file." for a file that
        # does not exist (or is a directory); say what is wrong with which path.
        log.error("cannot read %s: %s", path, exc.strerror or exc)
        return None
    except UnicodeDecodeError as exc:
        log.error("cannot read %s: not UTF-8 text (%s)", path, exc.reason)
        return None
    parsed = parse_cluster_config(
        text,
        hostname=socket.gethostname() or "localhost",
        config_id=str(uuid.uuid1()),
        source=source,
        zeekctl_keys=True,
        unknown_keys_ok=unknown_keys_ok,
    )
    for diag in parsed.diagnostics:
        log.log(diag.level, "%s", diag.message)
    if parsed.config is None:
        log.error("configuration has errors, not sending")
    return parsed.config


# --------------------------------------------------------------------------------------
# zeek-client commands


async def _deploy(ctx: Context) -> int:
    return await _with_client(ctx, lambda client: _deploy_on(ctx, client))


async def _deploy_on(ctx: Context, client: ControllerClient) -> int:
    try:
        results = await client.deploy()
    except _NO_RESPONSE as exc:
        return _no_response(exc)
    return emit(render.render_deploy(results, pretty=ctx.pretty))


async def _stage_on(ctx: Context, client: ControllerClient, config: Configuration) -> Rendered:
    try:
        results = await client.stage_configuration(config)
    except _NO_RESPONSE as exc:
        _no_response(exc)
        return Rendered(None, 1)
    return render.render_stage(results, pretty=ctx.pretty)


async def _with_config(
    ctx: Context, session: Callable[[ControllerClient, Configuration], Awaitable[int]]
) -> int:
    """:func:`_with_client` for the cluster configuration file named on the command line,
    read before connecting; 1 when it cannot be read."""
    config = load_cluster_config(ctx.args.config, unknown_keys_ok=ctx.args.allow_unknown_keys)
    if config is None:
        return 1
    return await _with_client(ctx, lambda client: session(client, config))


async def _stage_config(ctx: Context) -> int:
    async def stage(client: ControllerClient, config: Configuration) -> int:
        return emit(await _stage_on(ctx, client, config))

    return await _with_config(ctx, stage)


def _deploy_config_arguments(parser: argparse.ArgumentParser) -> None:
    _config_file_argument(parser)
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
            checked = await _check_on(ctx, client, config)
            if checked.exit_code != 0:
                log.error("check failed, not deploying")
                return emit(checked)
        staged = await _stage_on(ctx, client, config)
        if staged.exit_code != 0:
            return emit(staged)
        code = await _deploy_on(ctx, client)
        if code != 0 or not ctx.args.wait:
            return code
        return await wait_until_running(
            client,
            config,
            limit=ctx.args.wait_timeout,
            interval=ctx.args.wait_interval,
            progress=None if ctx.quiet else sys.stderr,
        )

    return await _with_config(ctx, deploy)


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
        except _NO_RESPONSE as exc:
            return _no_response(exc)
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
    return await _request(
        ctx,
        lambda c: c.request(
            ev.GetConfigurationRequest(new_request_id(), ctx.args.deployed),
            ev.GetConfigurationResponse,
        ),
        lambda resp: render.render_get_config(resp, as_json=ctx.args.as_json, pretty=ctx.pretty),
        filename=ctx.args.filename,
    )


def _emit_to(rendered: Rendered, filename: str | None) -> int:
    if rendered.text is None or not filename or filename == "-":
        return emit(rendered)
    try:
        with open(filename, "w", encoding="utf-8") as fh:
            return emit(rendered, fh)
    except OSError as exc:
        log.error("cannot write %s: %s", filename, exc)
        return 1


def _get_id_value_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "id", metavar="IDENTIFIER", help="name of the Zeek script identifier to retrieve"
    )
    _add_nodes_argument(
        parser, "name(s) of Zeek cluster nodes to query; when omitted, queries all nodes"
    )


def _add_nodes_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The optional NODES list (empty: all nodes) that several commands take."""
    parser.add_argument("nodes", metavar="NODES", nargs="*", default=[], help=help)


async def _get_id_value(ctx: Context) -> int:
    return await _request_json(
        ctx, lambda c: c.get_id_value(ctx.args.id, ctx.args.nodes), render.render_get_id_value
    )


async def _get_instances(ctx: Context) -> int:
    return await _request_json(
        ctx,
        lambda c: c.request(ev.GetInstancesRequest(new_request_id()), ev.GetInstancesResponse),
        render.render_get_instances,
    )


async def _get_nodes(ctx: Context) -> int:
    return await _request_json(ctx, lambda c: c.get_nodes(), render.render_get_nodes)


async def _monitor(ctx: Context) -> int:
    return await _with_client(ctx, _monitor_on)


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


def _nodes_argument(parser: argparse.ArgumentParser) -> None:
    _add_nodes_argument(
        parser, "name(s) of Zeek cluster nodes to restart; when omitted, restarts all nodes"
    )


async def _restart(ctx: Context) -> int:
    return await _request_json(ctx, lambda c: c.restart(ctx.args.nodes), render.render_restart)


def _some_nodes_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "nodes", metavar="NODES", nargs="*", default=[], help="node names (default: all nodes)"
    )


async def _stop(ctx: Context) -> int:
    return await _request(
        ctx,
        lambda c: c.stop_nodes(ctx.args.nodes),
        lambda r: extrender.render_extension(r, pretty=ctx.pretty),
    )


async def _start(ctx: Context) -> int:
    return await _request(
        ctx,
        lambda c: c.start_nodes(ctx.args.nodes),
        lambda r: extrender.render_extension(r, pretty=ctx.pretty),
    )


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    _config_file_argument(parser, optional=True)


async def _check(ctx: Context) -> int:
    config: Configuration | None = None
    if ctx.args.config:
        config = load_cluster_config(ctx.args.config, unknown_keys_ok=ctx.args.allow_unknown_keys)
        if config is None:
            return 1

    async def check(client: ControllerClient) -> int:
        return emit(await _check_on(ctx, client, config))

    return await _with_client(ctx, check)


async def _check_on(
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
    except _NO_RESPONSE as exc:
        return Rendered(None, _no_response(exc))
    return extrender.render_extension(results, pretty=ctx.pretty)


def _test_timeout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--with-state", action="store_true", help="make the request stateful in the controller"
    )


async def _test_timeout(ctx: Context) -> int:
    return await _request_json(
        ctx, lambda c: c.test_timeout(ctx.args.with_state), render.render_test_timeout
    )


async def _get_versions(ctx: Context) -> int:
    return await _request_json(ctx, lambda c: c.get_versions(), extrender.render_extension)


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

    return await _request(ctx, lambda c: c.get_disk_usage(), show)


async def _client_settings(ctx: Context) -> int:
    sys.stdout.write(ctx.settings.render())
    sys.stdout.flush()
    return 0


async def _status(ctx: Context) -> int:
    async def both(c: ControllerClient) -> tuple[Any, tuple[ExtensionResult, ...]]:
        nodes = await c.get_nodes()
        try:
            infos = await c.get_node_info()
        except RequestTimeout:  # a controller without the extension: "-" instead
            log.debug("no get_node_info response: RESTARTS, UPTIME, LAST EXIT unknown")
            infos = ()
        return nodes, infos

    return await _request(
        ctx,
        both,
        lambda r: extrender.render_status(r[0], lambda rows: observe.with_node_info(rows, r[1])),
    )


# -- observation (issue 12): diag, top, netstats


def _observe_nodes_argument(parser: argparse.ArgumentParser) -> None:
    _add_nodes_argument(parser, "cluster nodes (default: all)")


async def _diag(ctx: Context) -> int:
    return await _request(ctx, lambda c: c.diag(ctx.args.nodes), observe.render_diag)


async def _netstats(ctx: Context) -> int:
    return await _request(ctx, lambda c: c.netstats(ctx.args.nodes), observe.render_netstats)


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
        return await _request(ctx, lambda c: c.top(), observe.render_top)
    return await _with_client(ctx, lambda client: _top_watch(client, ctx.args.delay))


async def _top_watch(client: ControllerClient, delay: float) -> int:
    """``top --watch``: redraw every ``delay`` seconds until interrupted."""
    while True:
        try:
            answer = await client.top()
        except _NO_RESPONSE as exc:
            return _no_response(exc)
        title = f"zeek-mgmt top - {time.strftime('%H:%M:%S')} (every {delay:g} s)"
        sys.stdout.write(f"{CLEAR_SCREEN}{title}\n")
        emit(observe.render_top(answer))
        await asyncio.sleep(max(0.1, delay))


# The commands, by the attribute names mgmt.cli looks up (client.COMMANDS).
deploy = _command(_nothing, _deploy)
deploy_config = _command(_deploy_config_arguments, _deploy_config)
get_config = _command(_get_config_arguments, _get_config)
get_id_value = _command(_get_id_value_arguments, _get_id_value)
get_instances = _command(_nothing, _get_instances)
get_nodes = _command(_nothing, _get_nodes)
monitor = _command(_nothing, _monitor)
restart = _command(_nodes_argument, _restart)
stage_config = _command(_config_file_argument, _stage_config)
test_timeout = _command(_test_timeout_arguments, _test_timeout)
status = _command(_nothing, _status)
diag = _command(_observe_nodes_argument, _diag)
top = _command(_top_arguments, _top)
netstats = _command(_observe_nodes_argument, _netstats)
get_versions = _command(_nothing, _get_versions)
df = _command(_df_arguments, _df)
client_settings = _command(_nothing, _client_settings)
check = _command(_check_arguments, _check)
stop = _command(_some_nodes_argument, _stop)
start = _command(_some_nodes_argument, _start)
