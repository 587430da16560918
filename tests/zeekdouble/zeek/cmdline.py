"""Zeek's command line (``src/Options.cc``): ``getopt_long`` parsing and ``--help``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from . import ZEEK_VERSION

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

#: The packet sources, one of them once: option -> (its Options field, the other
#: source's field, Zeek's error for the option given twice, for both sources given).
_SOURCES = {
    "i": (
        "interface",
        "readfile",
        "ERROR: Only a single interface option (-i) is allowed.",
        "ERROR: Using -i is not allow when reading a pcap file.",
    ),
    "r": (
        "readfile",
        "interface",
        "ERROR: Only a single readfile option (-r) is allowed.",
        "Using -r is not allowed when reading a live interface.",
    ),
}


def _apply_option(opts: Options, key: str, value: str | None, argv0: str) -> None:
    help_hint = f"Try '{argv0} --help' for more information."
    if key in _SOURCES:
        own, other, twice, both = _SOURCES[key]
        if getattr(opts, own) is not None:
            raise UsageError(twice, help_hint)
        if getattr(opts, other) is not None:
            raise UsageError(both, help_hint)
        setattr(opts, own, value)
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
