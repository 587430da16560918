"""The runtime every ``zeek-mgmt`` client command shares (zeek-client's behaviour).

A command is an argument-adding function and a coroutine over a :class:`Context`, made
into a :class:`Command` by :func:`command` (the attributes :mod:`mgmt.cli` loads; see
:func:`client.command_target`). Around the coroutine this module does what zeek-client
does around each of its commands:

* zeek-client's global options after the command name (:func:`add_global_arguments`),
  refusing the daemons' ``--config`` and daemon settings in ``--set``, saying where they
  belong;
* the client settings (:mod:`client.config`) and zeek-client's stderr logging;
* connecting (:mod:`client.connect`), one request and its rendering to stdout
  (:func:`request`), the ``no response received`` error, exit codes;
* reading a cluster configuration file (:func:`load_cluster_config`).

The commands themselves: :mod:`client.commands` (zeek-client's) and
:mod:`client.extcommands` (zeek-mgmt's own).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TextIO, TypeVar

from client.api import ControllerClient, ControllerRefused
from client.clusterconfig import parse_cluster_config
from client.config import CONFIG_FILE_ENV, CONFIG_SETTINGS_ENV, ClientSettings
from client.connect import make_client
from client.render import Rendered
from mgmt.broker.records import Configuration
from mgmt.exceptions import ConfigError, HandshakeError, RequestTimeout, SessionClosedError

log = logging.getLogger("mgmt.client")

#: A command's body: what it does once settings are loaded and logging is set up.
Body = Callable[["Context"], Coroutine[Any, Any, int]]


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


def _run(args: argparse.Namespace, body: Body) -> int:
    """Load the settings, set up logging, run ``body``; its exit code."""
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


def emit_to(rendered: Rendered, filename: str | None) -> int:
    """:func:`emit` to ``filename`` (``None`` or ``-``: stdout); 1 if it cannot be written."""
    if rendered.text is None or not filename or filename == "-":
        return emit(rendered)
    try:
        with open(filename, "w", encoding="utf-8") as fh:
            return emit(rendered, fh)
    except OSError as exc:
        log.error("cannot write %s: %s", filename, exc)
        return 1


# --------------------------------------------------------------------------------------
# Connecting and requests


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


async def with_client(ctx: Context, session: Callable[[ControllerClient], Awaitable[int]]) -> int:
    """Connect, run ``session`` on the client and close it; 1 when it cannot connect."""
    client = await _connected(ctx)
    if client is None:
        return 1
    async with client:
        return await session(client)


async def with_config(
    ctx: Context, session: Callable[[ControllerClient, Configuration], Awaitable[int]]
) -> int:
    """:func:`with_client` for the cluster configuration file named on the command line,
    read before connecting; 1 when it cannot be read."""
    config = load_cluster_config(ctx.args.config, unknown_keys_ok=ctx.args.allow_unknown_keys)
    if config is None:
        return 1
    return await with_client(ctx, lambda client: session(client, config))


#: What a request raises when no answer comes (zeek-client: ``no response received``).
NO_RESPONSE = (RequestTimeout, SessionClosedError)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class JsonRenderer(Protocol[T_contra]):
    """A ``render.render_*`` function for a zeek-client command's JSON output."""

    def __call__(self, answer: T_contra, /, *, pretty: bool) -> Rendered: ...


def no_response(exc: Exception) -> int:
    """Log zeek-client's error for a request without answer; exit code 1."""
    log.error("no response received: %s", exc)
    return 1


async def request(
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
        except NO_RESPONSE as exc:
            return no_response(exc)
        return emit_to(show(answer), filename)

    return await with_client(ctx, one)


async def request_json(
    ctx: Context,
    call: Callable[[ControllerClient], Awaitable[T]],
    show: JsonRenderer[T],
) -> int:
    """:func:`request` with a renderer that prints JSON, pretty as the user asked."""
    return await request(ctx, call, lambda answer: show(answer, pretty=ctx.pretty))


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


def config_file_argument(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """The cluster configuration FILE (``-``: stdin) and ``--allow-unknown-keys``."""
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


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """For commands that take only zeek-client's global options."""
    return None


def command(extra: Callable[[argparse.ArgumentParser], None], body: Body) -> Command:
    """The :class:`Command` of a command's own arguments (``extra``; zeek-client's global
    options are added after them) and its ``body``."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        extra(parser)
        add_global_arguments(parser)

    def run(args: argparse.Namespace) -> int:
        return _run(args, body)

    return Command(add_arguments, run)


def nodes_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The optional NODES list (empty: all nodes) that several commands take."""
    parser.add_argument("nodes", metavar="NODES", nargs="*", default=[], help=help)


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
