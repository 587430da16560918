#!/usr/bin/env python3
"""A test double for the ``zeek`` executable (pretends to be Zeek 8.2.2).

zeek-mgmt's agent starts cluster nodes exactly as it would start real Zeek
(behaviour.md §8): ``CLUSTER_NODE=<name>``, ``ZEEKPATH`` with the layout
directory first, cwd ``<state>/nodes/<name>``, and a command line such as::

    zeek [-i <iface>] -U .status [-C] policy/frameworks/cluster/backend/broker \\
        [scripts...] [name=value...]

This program honours that interface and fails the way Zeek fails, so the agent
cannot tell it from the real thing. Everything it prints, and the order in
which it prints it, follows Zeek 8.2.2's sources (``src/zeek-setup.cc``,
``src/Options.cc``, ``src/Reporter.cc``, ``src/scan.l``, ``src/RunState.cc``,
``scripts/base/frameworks/cluster/{__load__,main}.zeek``).

Startup, in Zeek's order
------------------------
1. Command line (``getopt_long`` semantics, options may follow scripts).
   ``-v/--version`` prints ``<argv0> version 8.2.2`` and exits 0; ``-h/--help``
   prints the usage and exits 0. An unknown long option prints
   ``ERROR: Unrecognized option --x`` and an unknown short option (glibc quirk
   kept) ``ERROR: Option -x requires an argument.``, then
   ``Try '<argv0> --help' for more information.``; exit 1. No status file yet.
2. ``-U FILE``: ``INITIALIZING [main]`` (each write truncates and rewrites).
3. Script parsing. With ``CLUSTER_NODE`` set (non-empty), the cluster
   framework loads ``cluster-layout`` from ``ZEEKPATH``; when it is missing:
   ``fatal error in <share>/base/frameworks/cluster/__load__.zeek, line 36:
   can't find cluster-layout``. The layout is parsed (the subset of Zeek
   written by zeekctl and by the agent, behaviour.md §8.2); a syntax error
   prints ``error in <file>, line <n>: syntax error, at or near "<tok>"``.
   Then every script on the command line must resolve on ``ZEEKPATH``
   (``<dir>/<s>.zeek``, ``<dir>/<s>``, or ``<dir>/<s>/__load__.zeek``),
   otherwise ``fatal error: can't find <s>``. ``@load`` lines inside scripts
   that exist on disk are followed recursively (a missing one is
   ``fatal error in <file>, line <n>: can't find <x>``). Zeek's own scripts
   (``base/...``, ``policy/...``, ``frameworks/...``, ``protocols/...``,
   ``misc/...``, ``tuning/...``, ``local``, ...) are pretended to exist,
   except unknown cluster backends under ``.../cluster/backend/``.
4. ``-r FILE`` / ``-i IFACE``: a missing trace is
   ``fatal error: problem with trace file F (unable to open F: No such file or
   directory)``; an interface that is not in ``/sys/class/net`` (``any`` is
   accepted, as with libpcap) is ``fatal error: problem with interface I
   (pcap_error: No such device exists (pcap_activate))``; a good one prints
   ``listening on I``. (No capability check: real Zeek would also need
   CAP_NET_RAW.)
5. ``zeek_init``: a ``CLUSTER_NODE`` that is not in ``Cluster::nodes`` gives
   ``error in <share>/base/frameworks/cluster/main.zeek, line 421: '<n>' is
   not a valid node in the Cluster::nodes configuration``; a node without a
   cluster backend script gives the ``Cluster::backend is
   Cluster::CLUSTER_BACKEND_NONE`` fatal error; any error then ends in
   ``fatal error: errors occurred while initializing``.
6. ``RUNNING [run_loop]`` when there is something to run (a cluster node, an
   interface, a trace, or ``exit_only_after_terminate``); otherwise Zeek
   terminates right after initialisation (exit 0). With no script, option,
   interface or trace at all, Zeek first reads a script from stdin (as here).

Every fatal error writes ``TERMINATED [fatal_error]`` to the status file and
exits 1; script errors (syntax) exit 1 leaving ``TERMINATED [atexit]``.

Signals
-------
Until the run loop starts, SIGTERM/SIGINT have their default action (the
process dies by the signal, as Zeek does while it parses scripts). In the run
loop, SIGTERM/SIGINT write ``TERMINATING [sig_handler]``, print ``received
termination signal`` to stderr and shut down cleanly through
``TERMINATING [received termination signal]``, ``[done_with_network]``,
``[delete_run]``, ``[terminate_zeek]`` to ``TERMINATED [atexit]``; exit 0.
SIGHUP only writes ``TERMINATING [sig_handler]`` and keeps running (Zeek's
quirk).

Test knobs (environment variables; none of them changes the interface)
----------------------------------------------------------------------
``ZEEK_DOUBLE_START_DELAY``
    Seconds spent "parsing scripts" (status ``INITIALIZING``) before the
    checks of step 3 run. Default 0.
``ZEEK_DOUBLE_CRASH_AFTER``
    Seconds after ``RUNNING`` after which the node crashes: it prints
    ``ZEEK_DOUBLE_CRASH_MESSAGE`` to stderr (default ``fatal error: simulated
    crash (ZEEK_DOUBLE_CRASH_AFTER)``), writes ``TERMINATED [fatal_error]`` and
    exits with ``ZEEK_DOUBLE_EXIT_CODE`` (default 1). Unset: never crashes.
``ZEEK_DOUBLE_CRASH_SIGNAL``
    With ``ZEEK_DOUBLE_CRASH_AFTER``: die by this signal instead (name such as
    ``SEGV``/``SIGABRT`` or a number), leaving the status file at ``RUNNING``
    like a real crash.
``ZEEK_DOUBLE_EXIT_CODE``
    Exit code of the simulated crash. Default 1.
``ZEEK_DOUBLE_IGNORE_SIGTERM``
    ``1``: a hung shutdown. SIGTERM still writes ``TERMINATING [sig_handler]``
    (Zeek's handler runs) but the process never exits; only SIGKILL (or SIGINT)
    ends it.
``ZEEK_DOUBLE_STDOUT_LINES`` / ``ZEEK_DOUBLE_STDERR_LINES``
    Print N lines (``zeek-double stdout line <i>`` / ``... stderr line <i>``)
    to stdout / stderr once running (then the record gets ``printed: true``).
    Default 0. As in Zeek, stdout on a file is fully buffered (it reaches the
    file at exit) unless the management node script made it line-buffered.
``ZEEK_DOUBLE_BLOCK_IN_INIT``
    A line of text: plays a ``zeek_init`` handler that prints it on stdout and
    then loops forever in script code. The status stays ``INITIALIZING``
    (record phase ``blocked_in_zeek_init``); SIGTERM/SIGINT/SIGHUP only write
    ``TERMINATING [sig_handler]`` (Zeek's handlers are installed before
    ``zeek_init``, but the loop never checks their flag): only SIGKILL ends it.
``ZEEK_DOUBLE_RECORD``
    A directory. The double writes ``<CLUSTER_NODE or pid>.json`` there
    (atomically, at start, when running, on each signal and at exit) with its
    argv, executable, cwd, pid, ppid, ``CLUSTER_NODE``, ``ZEEKPATH``, the whole
    environment, parsed options, resolved scripts, the parsed layout, the
    phase, received signals and the exit code; and appends the first record of
    every launch to ``<name>.launches.jsonl``.
``ZEEK_DOUBLE_PREFIX``
    The pretend install prefix used in messages (``<prefix>/share/zeek/...``).
    Default: the parent of the directory holding the executable.
``ZEEK_DOUBLE_STRICT_ZEEKPATH``
    ``1``: Zeek's own scripts only resolve through ``<prefix>/share/zeek``,
    ``<prefix>/share/zeek/policy`` and ``<prefix>/share/zeek/site`` entries on
    ``ZEEKPATH`` (real Zeek cannot even find ``base/init-bare.zeek`` without
    them); an unset ``ZEEKPATH`` is Zeek's default path under the prefix.
    Default: they always resolve, and an unset ``ZEEKPATH`` means ``.``.

``ZEEK_DOUBLE_ROTATE_INTERVAL``
    Seconds; plays ``redef Log::default_rotation_interval``. Default: the role
    scripts' value, 1 hr on the logging node and 24 hrs elsewhere.
``ZEEK_DOUBLE_LOGS``
    Comma-separated log paths the logging node writes. Default ``conn,dns``.
``ZEEK_DOUBLE_IDS``
    A JSON object of extra globals for get_id_value (``null``: declared but
    without a value, answered ``no ID value``).
``ZEEK_DOUBLE_DROP_DISPATCHES``
    The number of first ``node_dispatch_request`` events the node never sees, as
    ZeroMQ's proxy drops what is published before a subscription reached it.

The management node script (``zeek-mgmt-node``)
------------------------------------------------
When a script file named ``zeek-mgmt-node.zeek`` is loaded (zeek-mgmt's agent
loads ``mgmt/scripts/zeek-mgmt-node.zeek`` last), the double does what that
script makes Zeek 8.2.2 do:

* Output: stdout and stderr become line-buffered (the script's ``set_buf``), so
  each line reaches its file at once.
* Management settings: where the ``zeek-mgmt-settings.zeek`` it loads itself
  loads ``policy/frameworks/management/agent/config``, ``get_id_value`` knows
  a few of the framework's constants and every ``redef <id> = <constant>;`` of
  that file (strings, bools, ports, intervals, enums, record constructors).

* Node channel: before ``RUNNING`` (in ``zeek_init``) it listens on
  ``127.0.0.1:$ZEEK_MGMT_NODE_WEBSOCKET_PORT`` with Zeek's Broker WebSocket JSON
  v1 protocol (handshake -> ack, data messages, prefix subscriptions), is
  subscribed to ``zeek/management/node/<node>``, and answers
  ``Management::Node::API::node_dispatch_request(reqid, action, nodes)`` for
  itself (silent when ``nodes`` names others) with
  ``node_dispatch_response(reqid, Result)`` on
  ``zeek/management/node/<node>/response``, with Zeek's error strings and a
  small table of globals (``Cluster::node``, ``LogAscii::use_json``,
  ``Log::all_streams`` shortened, ``Log::default_rotation_interval``, ...).
  A port in use prints a warning and the node runs on without the channel.
* Logs and rotation, on the logging node only (the logger, or the manager
  when ``Cluster::manager_is_logger``): ``ZEEK_DOUBLE_LOGS`` files in the
  cwd, each with a ``.shadow.<path>.log``; every rotation interval (aligned to
  multiples of it) and at clean shutdown they move to
  ``$ZEEK_MANAGEMENT_SPOOL_DIR/log-queue/<path>__<open>__<close>__.log``
  (``%Y-%m-%d-%H-%M-%S``, local time; ``log_suffix=<node>__`` is added when
  there are several loggers). Leftovers of a crashed run are rotated at
  start-up (open = the shadow's ctime, close = the log's mtime).

The double is self-contained: it has its own tiny Broker JSON codec rather
than importing ``mgmt.broker``, so that a codec bug cannot hide on both sides
of the wire. It needs the ``websockets`` package only for the node channel
(from the interpreter's site-packages; ``-I`` keeps those).

Not implemented (yet): plugins (``X::Y`` arguments), supervisor mode (``-j``),
``-I``/``-N``/``-X``, Broker peering between nodes. Unsupported but valid
input is reported with a ``zeek-double:`` prefix so it is never mistaken for
a Zeek error. Python >= 3.11.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

ZEEK_VERSION = "8.2.2"

#: Location of ``@load cluster-layout`` in Zeek 8.2.2.
CLUSTER_LOAD_SCRIPT = "base/frameworks/cluster/__load__.zeek"
CLUSTER_LOAD_LINE = 36
#: Location of the "not a valid node" check and the backend check in Zeek 8.2.2.
CLUSTER_MAIN_SCRIPT = "base/frameworks/cluster/main.zeek"
CLUSTER_INVALID_NODE_LINE = 421
CLUSTER_BACKEND_LINE = 426

#: Top-level directories of Zeek's own scripts under share/zeek (besides policy/).
BUILTIN_ROOTS = frozenset({"base", "builtin-plugins"})
#: Top-level directories under share/zeek/policy (also on ZEEKPATH by default).
POLICY_ROOTS = frozenset(
    {"frameworks", "protocols", "misc", "tuning", "integration", "files", "zeekygen"}
)
#: Cluster backends shipped with Zeek 8.2.2.
KNOWN_BACKENDS = frozenset({"broker", "zeromq"})
#: Scripts that select a cluster backend (directly or via the management framework;
#: the management framework's declaration-only scripts ``types`` and ``*/api`` do not).
BACKEND_SCRIPT = re.compile(
    r"^(?:policy/)?frameworks/(?:cluster/backend/[^/]+|management(?!/(?:types|[a-z]+/api)$))"
    r"(?:/|$)"
)

NODE_TYPES = ("NONE", "CONTROL", "LOGGER", "MANAGER", "PROXY", "WORKER")
DEFAULT_CRASH_MESSAGE = "fatal error: simulated crash (ZEEK_DOUBLE_CRASH_AFTER)"


# --------------------------------------------------------------------------------------
# Exit paths
# --------------------------------------------------------------------------------------


class ZeekExit(Exception):
    """Leave the program with ``code`` (messages have already been printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class StatusFile:
    """Zeek's ``-U`` process status file (``util::detail::set_processing_status``)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.last: str | None = None

    def set(self, status: str, reason: str) -> None:
        """Create/truncate the file and write ``<status> [<reason>]``."""
        self.last = f"{status} [{reason}]"
        if self.path is None:
            return
        data = f"{status} [{reason}]\n".encode()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o777)
        except OSError as exc:
            _stderr(f"Failed to open process status file '{self.path}': {exc.errno} [{status}]")
            return
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _stdout(line: str) -> None:
    # No flush: like C's stdout on a file, fully buffered, unless the management node
    # script made it line-buffered (ZeekDouble.parse_scripts).
    sys.stdout.write(line + "\n")


@dataclass(frozen=True, slots=True)
class Location:
    """A script location as Zeek's reporter prints it."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}"


class Reporter:
    """Zeek's reporter: ``error``/``fatal error`` lines on stderr, error count."""

    def __init__(self, status: StatusFile, recorder: Recorder) -> None:
        self.status = status
        self.recorder = recorder
        self.errors = 0

    def error(self, msg: str, loc: Location | None = None) -> None:
        self.errors += 1
        _stderr(f"error in {loc}: {msg}" if loc else f"error: {msg}")

    def fatal(self, msg: str, loc: Location | None = None) -> NoReturn:
        """``Reporter::FatalError``: print, ``TERMINATED [fatal_error]``, ``_exit(1)``."""
        _stderr(f"fatal error in {loc}: {msg}" if loc else f"fatal error: {msg}")
        self.status.set("TERMINATED", "fatal_error")
        sys.stdout.flush()
        self.recorder.finish(1, "fatal_error")
        os._exit(1)

    def info(self, msg: str) -> None:
        _stderr(msg)

    def unsupported(self, what: str) -> NoReturn:
        """Valid for Zeek, but beyond this double: say so plainly and exit 1."""
        _stderr(f"zeek-double: unsupported: {what}")
        self.recorder.finish(1, "unsupported")
        raise ZeekExit(1)


# --------------------------------------------------------------------------------------
# Command line (src/Options.cc)
# --------------------------------------------------------------------------------------

#: Short options; True = takes an argument, None = optional argument ("j::").
SHORT_OPTS: dict[str, bool | None] = {
    **{c: True for c in "BcEefGHIinOoprsTtUwX0"},
    **{c: False for c in "CDFMNPQSWabdhmuvV"},
    "j": None,
}
#: Long option -> (canonical key, argument: True/False/None=optional).
LONG_OPTS: dict[str, tuple[str, bool | None]] = {
    "parse-only": ("a", False),
    "bare-mode": ("b", False),
    "capture-unprocessed": ("c", True),
    "debug-script": ("d", False),
    "exec": ("e", True),
    "filter": ("f", True),
    "help": ("h", False),
    "iface": ("i", True),
    "zeekygen": ("X", True),
    "prefix": ("p", True),
    "readfile": ("r", True),
    "rulefile": ("s", True),
    "tracefile": ("t", True),
    "writefile": ("w", True),
    "usage-issues": ("u", False),
    "version": ("v", False),
    "build-info": ("V", False),
    "no-checksums": ("C", False),
    "force-dns": ("F", False),
    "deterministic": ("D", False),
    "event-trace": ("E", True),
    "load-seeds": ("G", True),
    "save-seeds": ("H", True),
    "print-plugins": ("N", False),
    "optimize": ("O", True),
    "optimize-funcs": ("o", True),
    "optimize-files": ("0", True),
    "prime-dns": ("P", False),
    "time": ("Q", False),
    "debug-rules": ("S", False),
    "re-level": ("T", True),
    "watchdog": ("W", False),
    "print-id": ("I", True),
    "no-optimize-funcs": ("no-optimize-funcs", True),
    "no-optimize-files": ("no-optimize-files", True),
    "status-file": ("U", True),
    "debug": ("B", True),
    "profile-scripts": ("profile-scripts", None),
    "profile-script-call-stacks": ("profile-script-call-stacks", None),
    "no-unused-warnings": ("no-unused-warnings", False),
    "pseudo-realtime": ("pseudo-realtime", None),
    "jobs": ("j", None),
    "test": ("test", False),
}


class UsageError(Exception):
    """A command-line error; ``lines`` go to stderr, then exit 1."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.lines = lines


@dataclass
class Options:
    """The parts of Zeek's ``Options`` the double uses (everything is recorded)."""

    interface: str | None = None
    readfile: str | None = None
    status_file: str | None = None
    bare_mode: bool = False
    parse_only: bool = False
    ignore_checksums: bool = False
    print_version: bool = False
    print_usage: bool = False
    supervisor_mode: bool = False
    exec_code: str | None = None
    prefixes: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    script_options: list[str] = field(default_factory=list)
    script_args: list[str] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    other: list[tuple[str, str | None]] = field(default_factory=list)


def parse_cmdline(argv0: str, args: Sequence[str]) -> Options:
    """Parse Zeek's command line like ``parse_cmdline`` with glibc ``getopt_long``."""
    opts = Options()
    args = list(args)
    # Zeek: an argument ending in "--" ends the options; the next one is a script
    # and the rest are script arguments (for "#!/usr/bin/env zeek --" scripts).
    for i, arg in enumerate(args):
        if arg.endswith("--"):
            rest = args[i + 1 :]
            args = args[:i]
            if rest:
                opts.scripts.append(rest[0])
                opts.script_args.extend(rest[1:])
            break

    help_hint = f"Try '{argv0} --help' for more information."
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--") and len(arg) > 2:
            name, eq, inline = arg[2:].partition("=")
            key_arg = _match_long(name)
            if key_arg is None:
                raise UsageError(f"ERROR: Unrecognized option {arg}", help_hint)
            key, takes = key_arg
            value: str | None = None
            if takes is True:
                if eq:
                    value = inline
                elif i < len(args):
                    value = args[i]
                    i += 1
                else:
                    raise UsageError(f"ERROR: Option {arg} requires an argument.", help_hint)
            elif takes is None:
                value = inline if eq else None
            elif eq:
                raise UsageError(f"ERROR: Option {arg} requires an argument.", help_hint)
            _apply_option(opts, key, value, argv0)
        elif arg.startswith("-") and len(arg) > 1:
            pos = 1
            while pos < len(arg):
                c = arg[pos]
                pos += 1
                if c not in SHORT_OPTS:
                    # glibc leaves optopt set for unknown short options, so Zeek
                    # prints its "requires an argument" message for them.
                    raise UsageError(f"ERROR: Option {arg} requires an argument.", help_hint)
                takes = SHORT_OPTS[c]
                value = None
                if takes is True:
                    if pos < len(arg):
                        value = arg[pos:]
                    elif i < len(args):
                        value = args[i]
                        i += 1
                    else:
                        raise UsageError(f"ERROR: Option {arg} requires an argument.", help_hint)
                    pos = len(arg)
                elif takes is None:
                    value = arg[pos:] or None
                    pos = len(arg)
                _apply_option(opts, c, value, argv0)
        elif arg == "--":
            positional.extend(args[i:])
            break
        else:
            positional.append(arg)

    for arg in positional:
        if "=" in arg:
            opts.script_options.append(arg)
        elif "::" in arg:
            opts.plugins.append(arg)
        else:
            opts.scripts.append(arg)
    return opts


def _match_long(name: str) -> tuple[str, bool | None] | None:
    if name in LONG_OPTS:
        return LONG_OPTS[name]
    matches = [v for k, v in LONG_OPTS.items() if k.startswith(name)]
    return matches[0] if name and len({m[0] for m in matches}) == 1 else None


#: Options without a value, and the Options field each one sets.
_SWITCHES = {
    "a": "parse_only",
    "b": "bare_mode",
    "C": "ignore_checksums",
    "h": "print_usage",
    "j": "supervisor_mode",
    "v": "print_version",
}


def _apply_option(opts: Options, key: str, value: str | None, argv0: str) -> None:
    help_hint = f"Try '{argv0} --help' for more information."
    if key == "i":
        if opts.interface is not None:
            raise UsageError("ERROR: Only a single interface option (-i) is allowed.", help_hint)
        if opts.readfile is not None:
            raise UsageError("ERROR: Using -i is not allow when reading a pcap file.", help_hint)
        opts.interface = value
    elif key == "r":
        if opts.readfile is not None:
            raise UsageError("ERROR: Only a single readfile option (-r) is allowed.", help_hint)
        if opts.interface is not None:
            raise UsageError("Using -r is not allowed when reading a live interface.", help_hint)
        opts.readfile = value
    elif key in _SWITCHES:
        setattr(opts, _SWITCHES[key], True)
    elif key == "U":
        opts.status_file = value
    elif key == "e":
        opts.exec_code = value
    elif key == "p":
        assert value is not None
        opts.prefixes.append(value)
    elif key == "test":
        raise UsageError("ERROR: --test only allowed as first argument.", help_hint)
    else:
        opts.other.append((key, value))


def usage(argv0: str, zeekpath: str) -> str:
    """An abridged ``zeek --help`` (same first lines as Zeek's ``usage()``)."""
    return "\n".join(
        [
            f"zeek version {ZEEK_VERSION}",
            f"usage: {argv0} [options] [file ...]",
            f"usage: {argv0} --test [doctest-options] -- [options] [file ...]",
            "    <file>                          | Zeek script file, or read stdin (-)",
            "    -a|--parse-only                 | exit immediately after parsing scripts",
            "    -b|--bare-mode                  | don't load scripts from the base/ directory",
            "    -e|--exec <zeek code>           | augment loaded scripts by given code",
            "    -h|--help                       | command line help",
            "    -i|--iface <interface>          | read from given interface (only one allowed)",
            "    -p|--prefix <prefix>            | add given prefix to Zeek script file resolution",
            "    -r|--readfile <readfile>        | read from given tcpdump file (only one allowed, "
            "pass '-' as the filename to read from stdin)",
            "    -v|--version                    | print version and exit",
            "    -C|--no-checksums               | ignore checksums",
            "    -U|--status-file <file>         | Record process status in file",
            f"    $ZEEKPATH                       | file search path ({zeekpath})",
        ]
    )


# --------------------------------------------------------------------------------------
# cluster-layout.zeek (the subset written by zeekctl and by the agent)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Port:
    """A Zeek ``port`` value."""

    number: int
    proto: str

    def __str__(self) -> str:
        return f"{self.number}/{self.proto}"


@dataclass(frozen=True, slots=True)
class Addr:
    """A Zeek ``addr`` value."""

    value: str


@dataclass(frozen=True, slots=True)
class EnumRef:
    """An identifier used as a value (``Cluster::MANAGER``, ``T``, ...)."""

    name: str


@dataclass(frozen=True, slots=True)
class RecordCtor:
    """``[$a=x, $b=y]``."""

    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ListCtor:
    """``[x, y]`` (vector/index list) or ``{x, y}`` (set) or ``{[k] = v}`` (table)."""

    kind: str
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """One ``Cluster::Node`` entry of the layout."""

    node_type: str
    ip: str
    zone_id: str = ""
    p: str = "0/unknown"
    manager: str | None = None
    metrics_port: str | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """The cluster layout as Zeek would see it after loading ``cluster-layout``."""

    file: str
    manager_is_logger: bool
    nodes: dict[str, ClusterNode]
    other_redefs: tuple[str, ...] = ()


class ZeekScriptError(Exception):
    """A Zeek parse/semantic error at ``line`` with Zeek's message text."""

    def __init__(self, line: int, msg: str) -> None:
        super().__init__(msg)
        self.line = line
        self.msg = msg


class Unsupported(Exception):
    """Valid Zeek the double does not understand."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ID STRING PORT ADDR NUMBER PUNCT KEYWORD DIRECTIVE
    text: str
    line: int
    value: Any = None


_TOKEN_RE = re.compile(
    r"""
    (?P<NL>\n)
  | (?P<WS>[ \t\r\f]+)
  | (?P<COMMENT>\#[^\n]*)
  | (?P<DIRECTIVE>@[A-Za-z_-]+)
  | (?P<STRING>"(?:[^"\\\n]|\\.)*")
  | (?P<PORT>\d+/(?:tcp|udp|icmp|unknown)\b)
  | (?P<ADDR6>\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\])
  | (?P<ADDR4>\d+\.\d+\.\d+\.\d+(?![\d.]))
  | (?P<NUMBER>\d+(?:\.\d+)?)
  | (?P<ID>[A-Za-z_][A-Za-z_0-9]*(?:::[A-Za-z_][A-Za-z_0-9]*)*)
  | (?P<PUNCT>\+=|-=|[{}\[\]();,=$-])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> Iterator[Token]:
    """Split a Zeek script into tokens, with Zeek's lexer errors."""
    line = 1
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ZeekScriptError(line, f"unrecognized character: '{text[pos]}'")
        kind = m.lastgroup
        tok = m.group()
        pos = m.end()
        if kind == "NL":
            line += 1
        elif kind in ("WS", "COMMENT"):
            continue
        elif kind == "STRING":
            value = _unescape(tok[1:-1])
            yield Token("STRING", tok, line, value)
        elif kind == "PORT":
            num, proto = tok.split("/")
            if int(num) > 65535:
                raise ZeekScriptError(line, f"bad port number - {tok}")
            yield Token("PORT", tok, line, Port(int(num), proto))
        elif kind in ("ADDR4", "ADDR6"):
            raw = tok[1:-1] if kind == "ADDR6" else tok
            try:
                addr = ipaddress.ip_address(raw)
            except ValueError:
                raise ZeekScriptError(line, f"bad IP address: {tok}") from None
            if kind == "ADDR4" and addr.version != 4:
                raise ZeekScriptError(line, f"bad IP address: {tok}")
            yield Token("ADDR", tok, line, Addr(str(addr)))
        elif kind == "NUMBER":
            yield Token("NUMBER", tok, line, float(tok) if "." in tok else int(tok))
        elif kind == "ID":
            yield Token("KEYWORD" if tok in ("redef", "module") else "ID", tok, line, tok)
        else:
            assert kind is not None
            yield Token(kind, tok, line, tok)


def _unescape(s: str) -> str:
    out: list[str] = []
    i = 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            nxt = s[i + 1]
            if nxt == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", s[i + 2 : i + 4]):
                out.append(chr(int(s[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append(simple.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class LayoutParser:
    """A recursive-descent parser for ``redef <id> (=|+=) <expr>;`` statements."""

    def __init__(self, text: str) -> None:
        self.tokens = list(tokenize(text))
        self.pos = 0
        self.last_line = 1

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise ZeekScriptError(self.last_line, "syntax error, at end of file")
        self.pos += 1
        self.last_line = tok.line
        return tok

    def expect(self, text: str) -> Token:
        tok = self.next()
        if tok.text != text:
            raise self.syntax_error(tok)
        return tok

    @staticmethod
    def syntax_error(tok: Token) -> ZeekScriptError:
        return ZeekScriptError(tok.line, f'syntax error, at or near "{tok.text}"')

    def statements(self) -> Iterator[tuple[int, str, str, Any]]:
        """Yield ``(line, identifier, operator, value)`` for each redef."""
        while (tok := self.peek()) is not None:
            if tok.kind == "DIRECTIVE":
                raise Unsupported(f"{tok.text} in cluster-layout (line {tok.line})")
            if tok.kind == "PUNCT" and tok.text == ";":
                self.next()
                continue
            if tok.text != "redef":
                if tok.kind in ("ID", "KEYWORD"):
                    raise Unsupported(f"statement {tok.text!r} in cluster-layout (line {tok.line})")
                raise self.syntax_error(self.next())
            self.next()
            ident = self.next()
            if ident.kind != "ID":
                raise self.syntax_error(ident)
            op = self.next()
            if op.text not in ("=", "+=", "-="):
                raise self.syntax_error(op)
            value = self.expr()
            self.expect(";")
            yield ident.line, ident.text, op.text, value

    def expr(self) -> Any:
        tok = self.next()
        if tok.kind in ("STRING", "PORT", "ADDR", "NUMBER"):
            return tok.value
        if tok.kind == "ID":
            if (nxt := self.peek()) is not None and nxt.text == "(":
                raise Unsupported(f"function call {tok.text}(...) (line {tok.line})")
            return EnumRef(tok.text)
        if tok.text == "-":
            val = self.expr()
            if not isinstance(val, int | float):
                raise self.syntax_error(tok)
            return -val
        if tok.text == "[":
            return self.bracket()
        if tok.text == "{":
            return self.brace()
        raise self.syntax_error(tok)

    def bracket(self) -> Any:
        """After ``[``: a record constructor (``$f=v``) or a list."""
        if (tok := self.peek()) is not None and tok.text == "$":
            fields: list[tuple[str, Any]] = []
            while True:
                self.expect("$")
                name = self.next()
                if name.kind != "ID":
                    raise self.syntax_error(name)
                self.expect("=")
                fields.append((name.text, self.expr()))
                sep = self.next()
                if sep.text == "]":
                    return RecordCtor(tuple(fields))
                if sep.text != ",":
                    raise self.syntax_error(sep)
                if (tok := self.peek()) is not None and tok.text == "]":
                    self.next()
                    return RecordCtor(tuple(fields))
        return ListCtor("list", tuple(self._items("]")))

    def brace(self) -> ListCtor:
        """After ``{``: a table (``[k] = v`` items) or a set."""
        items = self._items("}", allow_assign=True)
        kind = "table" if items and all(isinstance(i, tuple) for i in items) else "set"
        if any(isinstance(i, tuple) for i in items) and kind != "table":
            raise ZeekScriptError(self.last_line, "inconsistent types in table constructor")
        return ListCtor(kind, tuple(items))

    def _items(self, close: str, allow_assign: bool = False) -> list[Any]:
        items: list[Any] = []
        while True:
            tok = self.peek()
            if tok is not None and tok.text == close:
                self.next()
                return items
            item = self.expr()
            if allow_assign and (tok := self.peek()) is not None and tok.text == "=":
                self.next()
                item = (item, self.expr())
            items.append(item)
            sep = self.next()
            if sep.text == close:
                return items
            if sep.text != ",":
                raise self.syntax_error(sep)


def parse_layout(text: str, file: str) -> Layout:
    """Evaluate a ``cluster-layout.zeek``; raises ZeekScriptError or Unsupported."""
    parser = LayoutParser(text)
    manager_is_logger = True
    nodes: dict[str, ClusterNode] = {}
    other: list[str] = []
    for line, ident, op, value in parser.statements():
        if ident == "Cluster::manager_is_logger":
            if op != "=" or not (isinstance(value, EnumRef) and value.name in ("T", "F")):
                raise ZeekScriptError(line, "type clash in assignment (Cluster::manager_is_logger)")
            manager_is_logger = value.name == "T"
        elif ident == "Cluster::nodes":
            if not (isinstance(value, ListCtor) and value.kind in ("table", "set")):
                raise ZeekScriptError(line, "type clash in assignment (Cluster::nodes)")
            if value.kind == "set" and value.items:
                raise ZeekScriptError(line, "type clash in assignment (Cluster::nodes)")
            if op == "=":
                nodes = {}
            for item in value.items:
                key, rec = item
                if isinstance(key, ListCtor) and len(key.items) == 1:
                    key = key.items[0]
                if not isinstance(key, str):
                    raise ZeekScriptError(line, "type clash in table index (Cluster::nodes)")
                if op == "-=":
                    nodes.pop(key, None)
                else:
                    nodes[key] = _cluster_node(rec, line)
        else:
            other.append(ident)
    return Layout(file, manager_is_logger, nodes, tuple(other))


def _cluster_node(rec: Any, line: int) -> ClusterNode:
    if not isinstance(rec, RecordCtor):
        raise ZeekScriptError(line, "type clash in table assignment (Cluster::Node)")
    fields: dict[str, Any] = {}
    for name, val in rec.fields:
        fields[name] = val
    known = {"node_type", "ip", "zone_id", "p", "manager", "id", "metrics_port"}
    for name in fields:
        if name not in known:
            raise ZeekScriptError(line, f"invalid field name in record coercion ($${name})")
    for required in ("node_type", "ip"):
        if required not in fields:
            raise ZeekScriptError(line, f"required field missing (Cluster::Node${required})")
    nt = fields["node_type"]
    if not isinstance(nt, EnumRef):
        raise ZeekScriptError(line, 'type clash for field "node_type" (enum)')
    short = nt.name.removeprefix("Cluster::")
    if short not in NODE_TYPES or not nt.name.startswith("Cluster::"):
        raise ZeekScriptError(line, f"unknown identifier {nt.name}")
    if not isinstance(fields["ip"], Addr):
        raise ZeekScriptError(line, 'type clash for field "ip" (addr)')
    for pf in ("p", "metrics_port"):
        if pf in fields and not isinstance(fields[pf], Port):
            raise ZeekScriptError(line, f'type clash for field "{pf}" (port)')
    for sf in ("zone_id", "manager", "id"):
        if sf in fields and not isinstance(fields[sf], str):
            raise ZeekScriptError(line, f'type clash for field "{sf}" (string)')
    return ClusterNode(
        node_type=short,
        ip=fields["ip"].value,
        zone_id=fields.get("zone_id", ""),
        p=str(fields.get("p", "0/unknown")),
        manager=fields.get("manager"),
        metrics_port=str(fields["metrics_port"]) if "metrics_port" in fields else None,
    )


# --------------------------------------------------------------------------------------
# Script resolution (util::find_script_file, scan.l load_files)
# --------------------------------------------------------------------------------------

_LOAD_RE = re.compile(r"^\s*@load\s+(\S+)")


@dataclass(frozen=True, slots=True)
class Resolved:
    """A script found by name: a real file, or one of Zeek's own (pretended)."""

    name: str
    path: str
    builtin: bool


class ScriptResolver:
    """Finds scripts on ZEEKPATH the way Zeek does (``.zeek`` first, packages)."""

    def __init__(self, zeekpath: str, share: str, strict: bool) -> None:
        self.zeekpath = zeekpath
        self.dirs = zeekpath.split(":")
        self.share = share
        self.strict = strict

    def builtin_dirs(self) -> dict[str, str]:
        return {
            self.share: "",
            f"{self.share}/policy": "policy/",
            f"{self.share}/site": "site/",
        }

    def find(self, name: str, relative_to: str | None = None) -> Resolved | str | None:
        """Return the resolution, a directory lacking ``__load__.zeek`` (str), or None.

        ``relative_to`` is the directory for names starting with ``.``.
        """
        name = name.rstrip("/")
        if name.startswith(("/", "~")):
            base = os.path.expanduser(name)
            return self._try(name, [base + ".zeek", base])
        if name.startswith(".") and relative_to is not None:
            base = os.path.join(relative_to, name)
            return self._try(name, [base + ".zeek", base])
        for d in self.dirs:
            base = os.path.join(d, name) if d else name
            found = self._try(name, [base + ".zeek", base])
            if found is not None:
                return found
            prefix = self.builtin_dirs().get(os.path.normpath(d) if d else "")
            if prefix is not None and (rel := _canonical_builtin(prefix + name)) is not None:
                return Resolved(name, f"{self.share}/{rel}", True)
        if not self.strict:
            for prefix in ("", "policy/", "site/"):
                if (rel := _canonical_builtin(prefix + name)) is not None:
                    return Resolved(name, f"{self.share}/{rel}", True)
        return None

    @staticmethod
    def _try(name: str, candidates: list[str]) -> Resolved | str | None:
        for cand in candidates:
            if os.access(cand, os.R_OK):
                if os.path.isdir(cand):
                    loader = os.path.join(cand, "__load__.zeek")
                    if not os.access(loader, os.R_OK):
                        return os.path.normpath(cand)
                    return Resolved(name, os.path.normpath(loader), False)
                return Resolved(name, os.path.normpath(cand), False)
        return None


def _canonical_builtin(rel: str) -> str | None:
    """Map a path relative to share/zeek to one of Zeek's scripts, or None."""
    rel = rel.removesuffix(".zeek")
    parts = rel.split("/")
    if rel == "site/local":
        return "site/local.zeek"
    if parts[0] in BUILTIN_ROOTS and len(parts) >= 2:
        return rel + ".zeek"
    if parts[0] != "policy" or len(parts) < 3 or parts[1] not in POLICY_ROOTS:
        return None
    if parts[1:4] == ["frameworks", "cluster", "backend"] and (
        len(parts) < 5 or parts[4] not in KNOWN_BACKENDS
    ):
        return None
    return rel + ".zeek"


def scan_loads(path: str) -> list[tuple[int, str]]:
    """``@load`` lines of a script on disk: ``(line, target)``."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        m = _LOAD_RE.match(line)
        if m:
            out.append((n, m.group(1)))
    return out


# --------------------------------------------------------------------------------------
# Knobs and the record file
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Knobs:
    """Test knobs from ``ZEEK_DOUBLE_*`` variables (see the module docstring)."""

    start_delay: float = 0.0
    crash_after: float | None = None
    crash_signal: int | None = None
    crash_message: str = DEFAULT_CRASH_MESSAGE
    exit_code: int = 1
    ignore_sigterm: bool = False
    stdout_lines: int = 0
    stderr_lines: int = 0
    record_dir: str | None = None
    prefix: str | None = None
    strict_zeekpath: bool = False
    rotate_interval: float | None = None
    log_paths: tuple[str, ...] = ("conn", "dns")
    ids: dict[str, Any] = field(default_factory=dict)
    block_in_init: str | None = None
    drop_dispatches: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Knobs:
        def num(key: str, default: float | None) -> float | None:
            raw = env.get(key, "")
            return float(raw) if raw.strip() else default

        sig_raw = env.get("ZEEK_DOUBLE_CRASH_SIGNAL", "").strip()
        crash_signal: int | None = None
        if sig_raw:
            if sig_raw.isdigit():
                crash_signal = int(sig_raw)
            else:
                name = sig_raw.upper()
                crash_signal = int(
                    getattr(signal, name if name.startswith("SIG") else "SIG" + name)
                )
        return cls(
            start_delay=num("ZEEK_DOUBLE_START_DELAY", 0.0) or 0.0,
            crash_after=num("ZEEK_DOUBLE_CRASH_AFTER", None),
            crash_signal=crash_signal,
            crash_message=env.get("ZEEK_DOUBLE_CRASH_MESSAGE") or DEFAULT_CRASH_MESSAGE,
            exit_code=int(num("ZEEK_DOUBLE_EXIT_CODE", 1) or 0),
            ignore_sigterm=env.get("ZEEK_DOUBLE_IGNORE_SIGTERM", "") not in ("", "0"),
            stdout_lines=int(num("ZEEK_DOUBLE_STDOUT_LINES", 0) or 0),
            stderr_lines=int(num("ZEEK_DOUBLE_STDERR_LINES", 0) or 0),
            record_dir=env.get("ZEEK_DOUBLE_RECORD") or None,
            prefix=env.get("ZEEK_DOUBLE_PREFIX") or None,
            strict_zeekpath=env.get("ZEEK_DOUBLE_STRICT_ZEEKPATH", "") not in ("", "0"),
            rotate_interval=num("ZEEK_DOUBLE_ROTATE_INTERVAL", None),
            log_paths=tuple(
                p.strip() for p in env.get("ZEEK_DOUBLE_LOGS", "conn,dns").split(",") if p.strip()
            ),
            ids=json.loads(env["ZEEK_DOUBLE_IDS"]) if env.get("ZEEK_DOUBLE_IDS") else {},
            block_in_init=env.get("ZEEK_DOUBLE_BLOCK_IN_INIT") or None,
            drop_dispatches=int(num("ZEEK_DOUBLE_DROP_DISPATCHES", 0) or 0),
        )


class Recorder:
    """Writes ``<record_dir>/<name>.json`` so tests can see how the double was run."""

    def __init__(self, record_dir: str | None, name: str) -> None:
        self.dir = record_dir
        self.name = name
        self.data: dict[str, Any] = {}
        self._launched = False

    def update(self, **items: Any) -> None:
        self.data.update(items)
        self.write()

    def write(self) -> None:
        if self.dir is None:
            return
        try:
            os.makedirs(self.dir, exist_ok=True)
            final = os.path.join(self.dir, f"{self.name}.json")
            tmp = f"{final}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.data, f, indent=2, sort_keys=True, default=str)
            os.replace(tmp, final)
            if not self._launched:
                self._launched = True
                with open(os.path.join(self.dir, f"{self.name}.launches.jsonl"), "a") as f:
                    f.write(json.dumps(self.data, sort_keys=True, default=str) + "\n")
        except OSError as exc:
            _stderr(f"zeek-double: cannot write record file in {self.dir}: {exc}")

    def finish(self, code: int, how: str) -> None:
        self.update(phase="terminated", exit_code=code, exit_reason=how, ended_at=time.time())


# --------------------------------------------------------------------------------------
# The management node script's services: node channel and log rotation
# --------------------------------------------------------------------------------------

#: The script zeek-mgmt's agent loads last on every node (mgmt/scripts/zeek-mgmt-node.zeek).
MGMT_NODE_SCRIPT = "zeek-mgmt-node.zeek"
#: The settings it loads, generated by the agent (Management:: redefs).
MGMT_SETTINGS_SCRIPT = "zeek-mgmt-settings.zeek"
#: Zeek's script declaring Management::Agent:: (and, through its loads, the rest).
MGMT_CONFIG_SCRIPT = "policy/frameworks/management/agent/config"
#: Some Management:: constants as Zeek 8.2.2's config scripts define them (to_json).
MGMT_DEFAULTS: dict[str, Any] = {
    "Management::default_address": "0.0.0.0",
    "Management::connect_retry": "1.0 sec",
    "Management::Controller::topic": "zeek/management/controller",
    "Management::Controller::default_port": {"port": 2150, "proto": "tcp"},
    "Management::Controller::default_port_websocket": {"port": 2149, "proto": "tcp"},
    "Management::Agent::topic_prefix": "zeek/management/agent",
    "Management::Agent::default_port": {"port": 2151, "proto": "tcp"},
    "Management::Node::node_topic": "zeek/management/node",
}
_REDEF_RE = re.compile(r"^redef\s+([A-Za-z_][\w:]*)\s*=\s*(.+?);\s*$", re.M)
_PORT_LITERAL = re.compile(r"^(\d+)/(tcp|udp|icmp|unknown)$")
_INTERVAL_LITERAL = re.compile(r"^(\d+(?:\.\d*)?)\s*secs?$")
_STRING_LITERAL = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
_RECORD_LITERAL = re.compile(r"^[A-Za-z_][\w:]*\((.*)\)$")


def zeek_literal_json(expr: str) -> Any:
    """``to_json`` of a Zeek constant as the agent writes them in redefs (strings, bools,
    ports, intervals in seconds, enum names, record constructors of those); ``None``
    for anything else."""
    expr = expr.strip()
    if expr in ("T", "F"):
        return expr == "T"
    if m := _STRING_LITERAL.match(expr):
        return re.sub(
            r"\\(x[0-9a-fA-F]{2}|.)",
            lambda e: chr(int(e.group(1)[1:], 16)) if e.group(1)[0] == "x" else e.group(1),
            m.group(1),
        )
    if m := _PORT_LITERAL.match(expr):
        return {"port": int(m.group(1)), "proto": m.group(2)}
    if m := _INTERVAL_LITERAL.match(expr):
        return zeek_interval_str(float(m.group(1)))
    if m := _RECORD_LITERAL.match(expr):
        fields = {}
        for part in re.findall(r'\$(\w+)=("(?:[^"\\]|\\.)*"|[^,]+)', m.group(1)):
            fields[part[0]] = zeek_literal_json(part[1])
        return fields
    if re.fullmatch(r"[A-Za-z_][\w:]*::[A-Z_]+", expr):
        return expr  # an enum value
    return None


NODE_TOPIC_PREFIX = "zeek/management/node/"
DISPATCH_REQUEST = "Management::Node::API::node_dispatch_request"
DISPATCH_RESPONSE = "Management::Node::API::node_dispatch_response"
ROTATION_DATE_FORMAT = "%Y-%m-%d-%H-%M-%S"


def zeek_double_str(value: float) -> str:
    """``ODesc::Add(double)``: 6 significant digits, ``.0`` appended to integral values."""
    text = f"{value:.6g}"
    if value == round(value) and "e" not in text and "." not in text:
        text += ".0"
    return text


def zeek_interval_str(seconds: float) -> str:
    """An interval as Zeek describes it (``IntervalVal::ValDescribe``): ``1.0 hr``."""
    if seconds == 0:
        return "0 secs"
    units = (
        (86400.0, "day"),
        (3600.0, "hr"),
        (60.0, "min"),
        (1.0, "sec"),
        (1e-3, "msec"),
        (1e-6, "usec"),
    )
    parts: list[str] = []
    v = seconds
    for i, (unit, word) in enumerate(units):
        if i == len(units) - 1:
            num = v / unit
            if abs(num) < 1e-6:
                if not parts:
                    parts.append("0 secs")
                break
        else:
            if not (v >= unit or v <= -unit):
                continue
            num = float(int(v / unit))
            v -= num * unit
        plural = "" if abs(abs(num) - 1) < 1e-6 else "s"
        parts.append(f"{zeek_double_str(num)} {word}{plural}")
    return " ".join(parts)


def _stream_info(module: str, path: str, ev: str | None) -> dict[str, Any]:
    """One ``Log::Stream`` as ``to_json`` renders it (fields as in Zeek 8.2.2)."""
    info: dict[str, Any] = {
        "columns": None,
        "event_groups": [],
        "max_delay_interval": "200.0 msecs",
        "max_delay_queue_size": 1000,
        "max_field_container_elements": 100,
        "max_field_string_bytes": 4096,
        "max_total_container_elements": 500,
        "max_total_string_bytes": 256000,
        "path": path,
        "policy": f"{module}::log_policy: Log::PolicyHook",
    }
    if ev is not None:
        info["ev"] = ev
    return info


def all_streams() -> dict[str, Any]:
    """A shortened ``Log::all_streams`` (the real one has ~50 streams)."""
    return {
        "Broker::LOG": _stream_info("Broker", "broker", None),
        "Cluster::LOG": _stream_info("Cluster", "cluster", None),
        "Conn::LOG": _stream_info("Conn", "conn", "Conn::log_conn: event(rec:Conn::Info)"),
        "DNS::LOG": _stream_info("DNS", "dns", "DNS::log_dns: event(rec:DNS::Info)"),
        "Reporter::LOG": _stream_info("Reporter", "reporter", None),
        "Weird::LOG": _stream_info("Weird", "weird", "Weird::log_weird: event(rec:Weird::Info)"),
    }


NO_VALUE = object()


class BrokerJSONError(Exception):
    """A message the double's tiny Broker JSON decoder cannot use."""


def _bj(value: Any) -> dict[str, Any]:
    """Encode a Python value as Broker JSON (the few types the node channel needs)."""
    if value is None:
        return {"@data-type": "none", "data": {}}
    if isinstance(value, bool):
        return {"@data-type": "boolean", "data": value}
    if isinstance(value, int):
        return {"@data-type": "count", "data": value}
    if isinstance(value, str):
        return {"@data-type": "string", "data": value}
    if isinstance(value, list | tuple):
        return {"@data-type": "vector", "data": [_bj(v) for v in value]}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _unbj(obj: Any, want: str) -> Any:
    if not isinstance(obj, dict) or obj.get("@data-type") != want or "data" not in obj:
        raise BrokerJSONError(f"expected {want}")
    return obj["data"]


def zeek_event_message(topic: str, name: str, args: list[Any], ts: float) -> str:
    """A data message carrying a Zeek event, with network-timestamp metadata as Zeek 8
    sends it (wire-protocol.md §3.1)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}"
    meta = {
        "@data-type": "vector",
        "data": [
            {
                "@data-type": "vector",
                "data": [
                    {"@data-type": "count", "data": 1},
                    {"@data-type": "timestamp", "data": stamp},
                ],
            }
        ],
    }
    inner = {
        "@data-type": "vector",
        "data": [_bj(name), {"@data-type": "vector", "data": args}, meta],
    }
    event = {"@data-type": "vector", "data": [_bj(1), _bj(1), inner]}
    return json.dumps({"type": "data-message", "topic": topic, **event})


def parse_zeek_event(msg: Any) -> tuple[str, str, list[Any]]:
    """``(topic, event name, Broker JSON args)`` of a data message carrying an event."""
    if not isinstance(msg, dict) or not isinstance(msg.get("topic"), str):
        raise BrokerJSONError("not a data message")
    outer = _unbj(msg, "vector")
    if len(outer) < 3 or _unbj(outer[0], "count") != 1 or _unbj(outer[1], "count") != 1:
        raise BrokerJSONError("not an event")
    inner = _unbj(outer[2], "vector")
    if len(inner) < 2:
        raise BrokerJSONError("malformed event")
    return msg["topic"], _unbj(inner[0], "string"), _unbj(inner[1], "vector")


class NodeChannel:
    """What ``zeek-mgmt-node.zeek`` sets up on Zeek >= 7.2: ``Cluster::listen_websocket``
    on 127.0.0.1:<port> (Zeek's Broker JSON v1 protocol: handshake, ack, data messages),
    a subscription to ``zeek/management/node/<node>``, and the dispatch handler.

    Subscriptions are plain string prefixes, as in Zeek. A response goes to every
    client whose subscriptions match its topic.
    """

    def __init__(self, node: str, port: int, values: dict[str, Any], drop: int = 0) -> None:
        self.node = node
        self.port = port
        self.values = values
        #: Dispatch requests still to be lost (``ZEEK_DOUBLE_DROP_DISPATCHES``).
        self.drop = drop
        self.endpoint = f"{uuid.uuid4()}-websocket"
        self.clients: dict[Any, list[str]] = {}
        self._count = 0

    async def start(self) -> Any:
        from websockets.asyncio.server import serve  # the interpreter's site-packages

        return await serve(
            self._handle, "127.0.0.1", self.port, compression=None, ping_interval=5.0
        )

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            first = await ws.recv()
            try:
                subs = json.loads(first)
            except ValueError:
                await ws.send(_error("failed to decode JSON object"))
                return
            if not isinstance(subs, list):
                await ws.send(_error("subscriptions not an array"))
                return
            if not all(isinstance(s, str) for s in subs):
                await ws.send(_error("individual subscription not a string"))
                return
            name = f"{self.endpoint}-{self._count}"
            self._count += 1
            await ws.send(json.dumps({"type": "ack", "endpoint": name, "version": ZEEK_VERSION}))
            self.clients[ws] = list(subs)
            async for frame in ws:
                await self._receive(ws, frame)
        except ConnectionClosed:
            pass
        finally:
            self.clients.pop(ws, None)

    async def _receive(self, ws: Any, frame: str | bytes) -> None:
        try:
            msg = json.loads(frame)
        except ValueError:
            await ws.send(_error("failed to decode JSON object"))
            return
        try:
            topic, name, args = parse_zeek_event(msg)
        except BrokerJSONError:
            return  # Zeek logs a reporter warning and drops it
        # The node only sees what it subscribed to (Cluster::subscribe in zeek_init).
        if not topic.startswith(NODE_TOPIC_PREFIX + self.node):
            return
        if name != DISPATCH_REQUEST:
            return  # no handler
        if self.drop > 0:
            self.drop -= 1
            return  # lost on the way, as in ZeroMQ's proxy before the subscription arrived
        try:
            reqid = _unbj(args[0], "string")
            action = [_unbj(a, "string") for a in _unbj(args[1], "vector")]
            nodes = [_unbj(n, "string") for n in _unbj(args[2], "set")] if len(args) > 2 else []
        except (BrokerJSONError, IndexError):
            return  # Zeek: type mismatch, the event is not raised
        result = self.dispatch(reqid, action, nodes)
        if result is None:
            return
        topic = f"{NODE_TOPIC_PREFIX}{self.node}/response"
        text = zeek_event_message(topic, DISPATCH_RESPONSE, [_bj(reqid), _bj(result)], time.time())
        for client, subs in list(self.clients.items()):
            if any(topic.startswith(s) for s in subs):
                with contextlib.suppress(Exception):
                    await client.send(text)

    def dispatch(self, reqid: str, action: list[str], nodes: list[str]) -> list[Any] | None:
        """The node's ``node_dispatch_request`` handler (behaviour.md §7): a
        ``Management::Result`` as a list in field order, or None to stay silent."""
        if nodes and self.node not in nodes:
            return None
        success, data, error = True, None, None
        if not action:
            success, error = False, "no dispatch arguments provided"
        elif action[0] == "get_net_stats":
            # zeek-mgmt-node.zeek's netstats dispatch; the double captures nothing
            stats = {"pkts_recvd": 0, "pkts_dropped": 0, "pkts_link": 0, "bytes_recvd": 0}
            data = json.dumps({**stats, "network_time": time.time()}, separators=(",", ":"))
        elif action[0] != "get_id_value":
            success, error = False, f"dispatch {action[0]} unknown"
        elif len(action) < 2:
            success, error = False, "get_id_value expects name of global identifier"
        elif action[1] not in self.values:
            success, error = False, "unknown id"
        elif self.values[action[1]] is NO_VALUE:
            success, error = False, "no ID value"
        else:
            data = json.dumps(self.values[action[1]], separators=(",", ":"))
        return [reqid, success, None, data, error, self.node]


def _error(context: str) -> str:
    return json.dumps({"type": "error", "code": "deserialization_failed", "context": context})


class LogRotator:
    """The logging node's ASCII logs, rotated as the management node script sets up:
    into ``<spool>/log-queue`` as ``<path>__<open>__<close>__[<meta>__].log``, every
    ``interval`` seconds (aligned to multiples of it), at clean shutdown, and, for
    leftovers of a crashed run (``.shadow.<path>.log`` files), at start-up.
    """

    def __init__(
        self, cwd: str, queue: str, interval: float, paths: Sequence[str], suffix: str | None
    ) -> None:
        self.cwd = cwd
        self.queue = queue
        self.interval = interval
        self.paths = tuple(paths)
        self.suffix = suffix
        self.opened: dict[str, float] = {}

    def _file(self, path: str) -> str:
        return os.path.join(self.cwd, f"{path}.log")

    def _shadow(self, path: str) -> str:
        return os.path.join(self.cwd, f".shadow.{path}.log")

    def _target(self, path: str, open_ts: float, close_ts: float) -> str:
        base = "__".join(
            [
                path,
                time.strftime(ROTATION_DATE_FORMAT, time.localtime(open_ts)),
                time.strftime(ROTATION_DATE_FORMAT, time.localtime(close_ts)),
                "",
            ]
        )
        if self.suffix:
            base += f"log_suffix={self.suffix}__"
        return os.path.join(self.queue, base + ".log")

    def _move(self, src: str, dst: str) -> None:
        os.makedirs(self.queue, exist_ok=True)
        try:
            os.replace(src, dst)
        except OSError:
            shutil.move(src, dst)

    def rotate_leftovers(self) -> None:
        """LogAscii leftover rotation: open time = the shadow's ctime, close = mtime."""
        for path in sorted(os.listdir(self.cwd)):
            if not (path.startswith(".shadow.") and path.endswith(".log")):
                continue
            name = path[len(".shadow.") : -len(".log")]
            shadow = os.path.join(self.cwd, path)
            log = self._file(name)
            if os.path.exists(log):
                open_ts = os.stat(shadow).st_ctime
                close_ts = os.stat(log).st_mtime
                self._move(log, self._target(name, open_ts, close_ts))
            os.unlink(shadow)

    def open_all(self, now: float) -> None:
        for path in self.paths:
            with open(self._shadow(path), "w") as f:
                f.write(".log\n\n")
            stamp = time.strftime(ROTATION_DATE_FORMAT, time.localtime(now))
            with open(self._file(path), "w") as f:
                f.write(
                    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n"
                    f"#unset_field\t-\n#path\t{path}\n#open\t{stamp}\n"
                    "#fields\tts\tmessage\n#types\ttime\tstring\n"
                )
            self.opened[path] = now
            self.write(path, now, "opened")

    def write(self, path: str, now: float, message: str) -> None:
        with open(self._file(path), "a") as f:
            f.write(f"{now:.6f}\tzeek-double {message}\n")

    def rotate_all(self, now: float) -> list[str]:
        """Close, move into the queue, forget the shadow. Returns the new queue files."""
        out = []
        for path, open_ts in list(self.opened.items()):
            stamp = time.strftime(ROTATION_DATE_FORMAT, time.localtime(now))
            with open(self._file(path), "a") as f:
                f.write(f"#close\t{stamp}\n")
            target = self._target(path, open_ts, now)
            self._move(self._file(path), target)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._shadow(path))
            out.append(target)
        self.opened.clear()
        return out

    async def run(self) -> None:
        """Rotate at every multiple of the interval, then reopen."""
        while True:
            now = time.time()
            boundary = (math.floor(now / self.interval) + 1) * self.interval
            await asyncio.sleep(boundary - now)
            self.rotate_all(boundary)
            self.open_all(boundary)


# --------------------------------------------------------------------------------------
# The process
# --------------------------------------------------------------------------------------


class ZeekDouble:
    """One pretend Zeek process: initialise, run, shut down."""

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self.argv0 = argv[0] if argv else "zeek"
        self.args = list(argv[1:])
        self.env = env
        self.knobs = Knobs.from_env(env)
        self.node = env.get("CLUSTER_NODE", "")
        exe_dir = os.path.dirname(os.path.realpath(self.argv0))
        prefix = self.knobs.prefix or os.path.dirname(exe_dir)
        self.share = f"{prefix}/share/zeek"
        default_path = (
            f".:{self.share}:{self.share}/policy:{self.share}/site:{self.share}/builtin-plugins"
            if self.knobs.strict_zeekpath
            else "."
        )
        self.zeekpath = env["ZEEKPATH"] if "ZEEKPATH" in env else default_path
        self.recorder = Recorder(self.knobs.record_dir, self.node or str(os.getpid()))
        self.status = StatusFile(None)
        self.reporter = Reporter(self.status, self.recorder)
        self.options = Options()
        self.layout: Layout | None = None
        self.loaded: list[Resolved] = []
        self.signals: list[str] = []
        self.cluster_loaded = False
        self.channel: NodeChannel | None = None
        self._stop: asyncio.Event | None = None

    # -- entry ---------------------------------------------------------------------------

    def main(self) -> int:
        try:
            return self._main()
        except ZeekExit as exc:
            return exc.code

    def _main(self) -> int:
        try:
            self.options = parse_cmdline(self.argv0, self.args)
        except UsageError as exc:
            for line in exc.lines:
                _stderr(line)
            return 1
        opts = self.options
        if opts.print_version:
            _stdout(f"{self.argv0} version {ZEEK_VERSION}")
            return 0
        if opts.supervisor_mode:
            self.reporter.unsupported("supervisor mode (-j)")

        self.status.path = opts.status_file
        self.recorder.update(
            argv=[self.argv0, *self.args],
            executable=self.argv0,
            cwd=os.getcwd(),
            pid=os.getpid(),
            ppid=os.getppid(),
            cluster_node=self.env.get("CLUSTER_NODE"),
            zeekpath=self.env.get("ZEEKPATH"),
            env=dict(self.env),
            options=asdict(opts),
            phase="initializing",
            started_at=time.time(),
            signals=[],
        )
        self.status.set("INITIALIZING", "main")
        if opts.print_usage:
            _stdout(usage(self.argv0, self.zeekpath))
            return self._exit(0, "usage")

        if self.knobs.start_delay > 0:
            time.sleep(self.knobs.start_delay)
        self.parse_scripts()
        if self.mgmt_script_loaded:
            # The script's global initializers: set_buf(open("-"), F) and the same for
            # stderr, i.e. line-buffered output as under Zeek's Supervisor.
            sys.stdout.reconfigure(line_buffering=True)
            sys.stderr.reconfigure(line_buffering=True)
        if opts.parse_only:
            return self._exit(0, "parse_only")
        self.init_run()
        runs = self.zeek_init()
        self.recorder.update(
            phase="running" if runs else "initialized",
            layout=_layout_json(self.layout),
            scripts=[asdict(r) for r in self.loaded],
        )
        if not runs:
            self.status.set("TERMINATING", "terminate_zeek")
            return self._exit(0, "nothing_to_run")
        return asyncio.run(self.run_loop())

    def _exit(self, code: int, how: str) -> int:
        """A normal ``exit()``: Zeek's atexit handler writes ``TERMINATED [atexit]``."""
        self.status.set("TERMINATED", "atexit")
        self.recorder.finish(code, how)
        return code

    # -- parsing -------------------------------------------------------------------------

    def parse_scripts(self) -> None:
        """Zeek's yyparse phase: base scripts (cluster layout), then the command line."""
        opts = self.options
        resolver = ScriptResolver(self.zeekpath, self.share, self.knobs.strict_zeekpath)
        if self.knobs.strict_zeekpath and resolver.find("base/init-bare") is None:
            self.reporter.fatal("can't find base/init-bare.zeek")

        # Zeek loads the cluster framework with base/init-default (or, in bare
        # mode, through a script that needs it).
        self.cluster_loaded = not opts.bare_mode or any(
            "frameworks/cluster" in s or "frameworks/management" in s for s in opts.scripts
        )
        if self.node and self.cluster_loaded:
            self.load_layout(resolver)

        if not (
            opts.scripts
            or opts.script_options
            or opts.interface
            or opts.readfile
            or opts.exec_code
            or opts.plugins
        ):
            if sys.stdin is not None:
                sys.stdin.buffer.read()  # Zeek reads a script from stdin ("-")
        if opts.plugins:
            self.reporter.unsupported(f"plugin arguments {' '.join(opts.plugins)}")

        seen: set[str] = set()
        for script in opts.scripts:
            self.load(resolver, script, None, seen)
        if opts.exec_code:
            for line, target in _loads_in(opts.exec_code):
                self.load(resolver, target, Location("<command line>", line), seen)
        if self.reporter.errors:
            raise ZeekExit(self._exit(1, "script_errors"))

    def load_layout(self, resolver: ScriptResolver) -> None:
        where = Location(f"{self.share}/{CLUSTER_LOAD_SCRIPT}", CLUSTER_LOAD_LINE)
        found = resolver.find("cluster-layout")
        if found is None or isinstance(found, str) or found.builtin:
            self.reporter.fatal("can't find cluster-layout", where)
        try:
            text = Path(found.path).read_text(errors="replace")
            self.layout = parse_layout(text, found.path)
        except ZeekScriptError as exc:
            self.reporter.error(exc.msg, Location(found.path, exc.line))
            raise ZeekExit(self._exit(1, "script_errors")) from None
        except Unsupported as exc:
            self.reporter.unsupported(f"{exc} in {found.path}")
        except OSError:
            self.reporter.fatal(f"can't open {found.path}", where)
        self.loaded.append(found)

    def load(
        self, resolver: ScriptResolver, name: str, loc: Location | None, seen: set[str]
    ) -> None:
        relative_to = os.path.dirname(loc.file) if loc and loc.file.startswith("/") else os.getcwd()
        found = resolver.find(name, relative_to)
        if found is None:
            self.reporter.fatal(f"can't find {name}", loc)
        if isinstance(found, str):
            self.reporter.error(
                f"Failed to open package '{found}': missing '__load__.zeek' file", loc
            )
            self.reporter.fatal(f"can't open {found}/__load__.zeek", loc)
        if found.path in seen:
            return
        seen.add(found.path)
        self.loaded.append(found)
        if not found.builtin:
            for line, target in scan_loads(found.path):
                self.load(resolver, target, Location(found.path, line), seen)

    # -- init_run / zeek_init ------------------------------------------------------------

    def init_run(self) -> None:
        """Open the packet source (``run_state::detail::init_run``)."""
        opts = self.options
        if opts.readfile is not None:
            path = opts.readfile
            if path != "-" and not os.access(path, os.R_OK):
                self.reporter.fatal(
                    f"problem with trace file {path} "
                    f"(unable to open {path}: No such file or directory)"
                )
        elif opts.interface is not None:
            prefix, _, name = opts.interface.rpartition("::")
            if prefix and prefix not in ("pcap", "af_packet"):
                self.reporter.fatal(
                    f"type of packet source '{prefix}' not recognized, or mode not supported"
                )
            if not _interface_exists(name):
                self.reporter.fatal(
                    f"problem with interface {opts.interface} "
                    "(pcap_error: No such device exists (pcap_activate))"
                )
            self.reporter.info(f"listening on {name}")

    def backend_selected(self) -> bool:
        if any(BACKEND_SCRIPT.match(_builtin_rel(r, self.share)) for r in self.loaded if r.builtin):
            return True
        texts = [self.options.exec_code or "", *self.options.script_options]
        return any("Cluster::backend" in t for t in texts)

    def zeek_init(self) -> bool:
        """Cluster checks of ``zeek_init``; returns whether the run loop runs."""
        main = f"{self.share}/{CLUSTER_MAIN_SCRIPT}"
        known = self.layout is not None and self.node in self.layout.nodes
        if self.node and self.cluster_loaded and not known:
            self.reporter.error(
                f"'{self.node}' is not a valid node in the Cluster::nodes configuration",
                Location(main, CLUSTER_INVALID_NODE_LINE),
            )
        if self.node and self.cluster_loaded and not self.backend_selected():
            self.reporter.fatal(
                f"Cluster::node set to '{self.node}', but Cluster::backend is "
                "Cluster::CLUSTER_BACKEND_NONE - please select a cluster backend to use.",
                Location(main, CLUSTER_BACKEND_LINE),
            )
        if self.reporter.errors and "ZEEK_ALLOW_INIT_ERRORS" not in self.env:
            self.reporter.fatal("errors occurred while initializing")
        if self.knobs.block_in_init is not None:
            self.block_in_init(self.knobs.block_in_init)
        texts = [self.options.exec_code or "", *self.options.script_options]
        forever = any("exit_only_after_terminate" in t for t in texts)
        cluster = bool(self.node) and self.cluster_loaded  # the backend is an I/O source
        return cluster or bool(self.options.interface or self.options.readfile or forever)

    def block_in_init(self, line: str) -> NoReturn:
        """A zeek_init handler that prints ``line`` and then loops forever in script
        code: the status stays ``INITIALIZING``; Zeek's signal handlers (installed before
        zeek_init) write ``TERMINATING [sig_handler]`` but the loop never looks at the
        flag they set, so only SIGKILL ends the process."""

        def handler(signo: int, frame: object) -> None:
            self.signals.append(signal.Signals(signo).name)
            self.status.set("TERMINATING", "sig_handler")
            self.recorder.update(signals=list(self.signals))

        for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signo, handler)
        _stdout(line)
        self.recorder.update(phase="blocked_in_zeek_init")
        while True:
            time.sleep(3600)

    # -- run loop ------------------------------------------------------------------------

    async def run_loop(self) -> int:
        """The main loop. Future node-channel/rotation tasks belong in ``tasks``."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(signo, self._on_signal, signo)
        # What zeek_init does for the management node script, before the run loop.
        server = await self.start_node_channel()
        rotator = self.start_logs()
        self.status.set("RUNNING", "run_loop")
        for i in range(1, self.knobs.stdout_lines + 1):
            _stdout(f"zeek-double stdout line {i}")
        for i in range(1, self.knobs.stderr_lines + 1):
            _stderr(f"zeek-double stderr line {i}")
        if self.knobs.stdout_lines or self.knobs.stderr_lines:
            self.recorder.update(printed=True)
        if self.knobs.crash_after is not None:
            loop.call_later(self.knobs.crash_after, self._crash)
        if self.options.readfile is not None:
            self._stop.set()  # the double's traces are empty: done with the input at once
        async with asyncio.TaskGroup() as group:
            services = self.start_services(group, rotator)
            await self._stop.wait()
            for task in services:
                task.cancel()
        if server is not None:
            # Zeek drops its WebSocket clients when it terminates; no closing handshake.
            server.close(close_connections=False)
            for ws in list(self.channel.clients if self.channel else ()):
                ws.transport.abort()
        for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signo)
        if self.options.interface is not None and self.signals:
            # get_final_stats() (src/RunState.cc); the double sees no packets, so Zeek's
            # network time is 0 and the message has no timestamp prefix.
            self.reporter.info(
                f"0 packets received on interface {self.options.interface}, "
                "0 (0.00%) dropped, 0 (0.00%) not processed"
            )
        if rotator is not None and rotator.interval > 0:
            rotator.rotate_all(time.time())  # Zeek rotates open logs when it terminates
        return self.shutdown()

    def start_services(
        self, group: asyncio.TaskGroup, rotator: LogRotator | None
    ) -> list[asyncio.Task[None]]:
        """Start the node's long-running services; cancelled when the loop stops."""
        tasks = []
        if rotator is not None and rotator.interval > 0:
            tasks.append(group.create_task(rotator.run()))
        return tasks

    # -- the management node script ------------------------------------------------------

    @property
    def mgmt_script_loaded(self) -> bool:
        """Whether zeek-mgmt's node script is loaded (it sets up channel and rotation)."""
        return any(
            not r.builtin and os.path.basename(r.path) == MGMT_NODE_SCRIPT for r in self.loaded
        )

    def node_type(self) -> str | None:
        if self.layout is None or self.node not in self.layout.nodes:
            return None
        return self.layout.nodes[self.node].node_type

    def is_logging_node(self) -> bool:
        """Loggers, and the manager when it is also the logger, write logs locally."""
        kind = self.node_type()
        assert self.layout is not None or kind is None
        return kind == "LOGGER" or (
            kind == "MANAGER" and self.layout is not None and self.layout.manager_is_logger
        )

    def rotation_interval(self) -> float:
        """``Log::default_rotation_interval``: the role scripts' value (logger 1 hr, other
        cluster nodes 24 hrs) unless ``ZEEK_DOUBLE_ROTATE_INTERVAL`` plays a redef."""
        if self.knobs.rotate_interval is not None:
            return self.knobs.rotate_interval
        return 3600.0 if self.is_logging_node() else 86400.0

    def rotation_dir(self) -> str:
        spool = self.env.get("ZEEK_MANAGEMENT_SPOOL_DIR", "")
        return "log-queue" if spool == "" else spool + "/log-queue"

    def global_values(self) -> dict[str, Any]:
        """The globals ``get_id_value`` knows (``NO_VALUE``: declared without a value)."""
        values: dict[str, Any] = {
            "Cluster::node": self.node,
            "Cluster::manager_is_logger": bool(self.layout and self.layout.manager_is_logger),
            "LogAscii::use_json": False,
            "LogAscii::enable_leftover_log_rotation": True,
            "Log::all_streams": all_streams(),
            "Log::default_rotation_interval": zeek_interval_str(self.rotation_interval()),
            "Log::default_rotation_dir": self.rotation_dir(),
            "Log::default_rotation_postprocessor_cmd": "",
            "Version::number": 80202,
        }
        values.update(self.management_values())
        for key, value in self.knobs.ids.items():
            values[key] = NO_VALUE if value is None else value
        return values

    def management_values(self) -> dict[str, Any]:
        """``Management::`` globals: where a loaded ``zeek-mgmt-settings.zeek`` loads
        Zeek's management config scripts, their defaults (a few) and its redefs."""
        settings = [
            r.path
            for r in self.loaded
            if not r.builtin and os.path.basename(r.path) == MGMT_SETTINGS_SCRIPT
        ]
        if not settings:
            return {}
        text = Path(settings[-1]).read_text(errors="replace")
        if not any(target == MGMT_CONFIG_SCRIPT for _, target in _loads_in(text)):
            return {}
        values = dict(MGMT_DEFAULTS)
        for m in _REDEF_RE.finditer(text):
            value = zeek_literal_json(m.group(2))
            if value is not None:
                values[m.group(1)] = value
        return values

    async def start_node_channel(self) -> Any:
        """The script's ``zeek_init``: listen on 127.0.0.1:$ZEEK_MGMT_NODE_WEBSOCKET_PORT."""
        raw = self.env.get("ZEEK_MGMT_NODE_WEBSOCKET_PORT", "")
        if not (self.mgmt_script_loaded and self.node and raw):
            return None
        try:
            port = int(raw)
        except ValueError:
            port = 0  # Zeek's to_count() error yields 0
        channel = self.channel = NodeChannel(
            self.node, port, self.global_values(), self.knobs.drop_dispatches
        )
        try:
            return await channel.start()
        except OSError as exc:
            _stderr(
                f"warning: zeek-mgmt: cannot listen on 127.0.0.1:{port}/tcp; "
                f"get-id-value is unavailable ({exc.strerror})"
            )
            return None

    def start_logs(self) -> LogRotator | None:
        """Leftover rotation and the first log files, on the logging node."""
        if not (self.mgmt_script_loaded and self.is_logging_node()):
            return None
        assert self.layout is not None
        loggers = sum(1 for n in self.layout.nodes.values() if n.node_type == "LOGGER")
        rotator = LogRotator(
            os.getcwd(),
            os.path.join(os.getcwd(), self.rotation_dir()),
            self.rotation_interval(),
            self.knobs.log_paths,
            self.node if loggers > 1 else None,
        )
        if rotator.interval > 0:
            rotator.rotate_leftovers()
        rotator.open_all(time.time())
        return rotator

    def _on_signal(self, signo: int) -> None:
        """``sig_handler``: status first, then stop on SIGTERM/SIGINT."""
        name = signal.Signals(signo).name
        self.signals.append(name)
        self.status.set("TERMINATING", "sig_handler")
        self.recorder.update(signals=list(self.signals))
        if signo == signal.SIGTERM and self.knobs.ignore_sigterm:
            return
        if signo in (signal.SIGTERM, signal.SIGINT) and self._stop is not None:
            if not self._stop.is_set():
                self.reporter.info("received termination signal")
            self._stop.set()

    def shutdown(self) -> int:
        """``zeek_terminate_loop`` / ``cleanup``: the TERMINATING steps, then exit 0."""
        if self.signals:
            self.status.set("TERMINATING", "received termination signal")
        self.status.set("TERMINATING", "done_with_network")
        self.status.set("TERMINATING", "delete_run")
        self.status.set("TERMINATING", "terminate_zeek")
        return self._exit(0, "signal" if self.signals else "done")

    def _crash(self) -> None:
        _stderr(self.knobs.crash_message)
        sys.stdout.flush()
        if self.knobs.crash_signal is not None:
            self.recorder.finish(-self.knobs.crash_signal, "crash_signal")
            signal.signal(self.knobs.crash_signal, signal.SIG_DFL)
            os.kill(os.getpid(), self.knobs.crash_signal)
            time.sleep(1)  # a blocked/ignored signal: fall through to a plain exit
        self.status.set("TERMINATED", "fatal_error")
        self.recorder.finish(self.knobs.exit_code, "crash")
        os._exit(self.knobs.exit_code)


def _loads_in(code: str) -> list[tuple[int, str]]:
    return [
        (n, m.group(1))
        for n, line in enumerate(code.splitlines(), 1)
        if (m := _LOAD_RE.match(line))
    ]


def _builtin_rel(r: Resolved, share: str) -> str:
    return r.path.removeprefix(share + "/").removesuffix(".zeek")


def _interface_exists(name: str) -> bool:
    if name == "any":
        return True
    if not name or "/" in name or name in (".", ".."):
        return False
    return os.path.exists(f"/sys/class/net/{name}")


def _layout_json(layout: Layout | None) -> dict[str, Any] | None:
    if layout is None:
        return None
    return {
        "file": layout.file,
        "abspath": os.path.abspath(layout.file),
        "manager_is_logger": layout.manager_is_logger,
        "nodes": {k: asdict(v) for k, v in layout.nodes.items()},
        "other_redefs": list(layout.other_redefs),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the double; ``argv`` defaults to ``sys.argv``."""
    # Python turns SIGINT into KeyboardInterrupt; Zeek has the default action
    # until its handlers are installed.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return ZeekDouble(list(sys.argv if argv is None else argv), dict(os.environ)).main()


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
