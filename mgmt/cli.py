"""The ``zeek-mgmt`` command line: one entry point, one subcommand per module.

Each subcommand lives in its own module that exposes two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

A registration may also name an attribute, ``module:attribute``, for packages that keep
several commands in one module (the client: ``client.commands:get_nodes``, each attribute having
``add_arguments``/``run``).

Modules are imported lazily, only when their subcommand runs (or its ``--help`` is asked
for, or it is being completed), so ``zeek-mgmt --help`` imports none of them and stays
fast, and a daemon does not pay for the client's imports (and vice versa).

Two families of commands share the program and must not be mistaken for each other:

* **daemons** (``run``, ``controller``, ``agent``, ``daemon-settings``) read the *daemon
  settings*: the TOML settings file (``--settings-file``), Zeek's environment variables and
  flags such as ``--set agent.zeek=...``;
* **client commands** are zeek-client's, with zeek-client's options (``-c/--configfile``
  for a zeek-client config file, ``--controller``, ``--set ssl.enable=true``) and *client
  settings* (``client-settings``).

``zeek-mgmt --help`` lists them in separate groups, and each command's help titles its
options accordingly. Old names stay accepted without being shown: ``show-settings``
(now ``daemon-settings``, since zeek-client's ``show-settings`` shows client settings) and
the daemons' ``--config`` (now ``--settings-file``).

A mistyped command or option gets a "did you mean" (argparse in Python 3.11 has no
``suggest_on_error``). Shell completion (bash, zsh) is argcomplete's; see
:mod:`mgmt.install.completion`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from client import COMMANDS as CLIENT_COMMANDS
from client import command_target
from mgmt import __version__, deferred

# Before any command imports websockets (see mgmt.deferred).
deferred.defer()

#: name -> (module, one-line help). Order is the order shown by ``--help``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {}
#: name -> family (a key of :data:`FAMILIES`).
FAMILY: dict[str, str] = {}
#: Families of commands: key -> the heading ``zeek-mgmt --help`` shows above them.
FAMILIES: dict[str, str] = {
    "daemon": "daemons (daemon settings: the TOML settings file, Zeek's environment "
    "variables and flags; see daemon-settings)",
    "client": "client commands (zeek-client's commands and options: -c/--configfile, "
    "--controller, --set; see client-settings)",
    "tool": "tools",
}
#: Former names that still work but are not listed: alias -> command.
ALIASES: dict[str, str] = {"show-settings": "daemon-settings"}


def _register(name: str, module: str, help_text: str, family: str) -> None:
    SUBCOMMANDS[name] = (module, help_text)
    FAMILY[name] = family


_register(
    "run",
    "mgmt.daemon.run",
    "run controller and agent together (the quickstart, like zeek -j)",
    "daemon",
)
_register("controller", "mgmt.controller.main", "run the controller daemon", "daemon")
_register("agent", "mgmt.agent.main", "run the agent daemon", "daemon")
_register(
    "daemon-settings",
    "mgmt.settings.show",
    "print the daemons' effective settings and where each came from",
    "daemon",
)
# zeek-client's commands (same options, output and exit codes) and the client's extras.
for _name, _help in CLIENT_COMMANDS:
    _register(_name, command_target(_name), _help, "client")
_register("archive", "mgmt.archive.cli", "archive rotated logs (zeek-archiver compatible)", "tool")
_register("systemd", "mgmt.install.systemd", "install systemd units for this installation", "tool")
_register("completion", "mgmt.install.completion", "print a bash or zsh completion script", "tool")
_register("man", "mgmt.install.manpage", "write the zeek-mgmt(1) man page", "tool")


def _load(target: str) -> Any:
    """Import ``module`` or ``module:attribute``."""
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    return getattr(obj, attr) if attr else obj


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidates, or ``""``."""
    import difflib  # only for a mistyped word: not with every command

    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if not close:
        return ""
    quoted = [f"'{c}'" for c in close]
    either = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" (did you mean {either}?)"


_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<word>[^']*)' \(choose from (?P<choices>.*)\)$")


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" on invalid choices."""

    def error(self, message: str) -> NoReturn:
        match = _INVALID_CHOICE.search(message)
        if match is not None:
            choices = re.findall(r"'([^']*)'", match["choices"])
            message += did_you_mean(match["word"], choices)
        super().error(message)


def _overview() -> str:
    """The command list of ``zeek-mgmt --help``, grouped by family."""
    width = max(len(name) for name in SUBCOMMANDS) + 2
    blocks = []
    for family, heading in FAMILIES.items():
        lines = [f"{heading}:"]
        lines += [
            f"  {name:<{width}}{help_text}"
            for name, (_, help_text) in SUBCOMMANDS.items()
            if FAMILY[name] == family
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def build_parser(only: str | None = None, *, load_all: bool = False) -> Parser:
    """Build the top-level parser with one sub-parser per registered subcommand.

    Args:
        only: import and add the arguments of this subcommand only (the one that will
            run, or be completed); the others keep their name and help.
        load_all: add the arguments of every subcommand (the man page).
    """
    parser = Parser(
        prog="zeek-mgmt",
        usage="%(prog)s [-h] [--version] COMMAND [ARGS...]",
        description="Zeek cluster management: the controller and agent daemons of Zeek's "
        "Management framework, and zeek-client's commands.\n\n" + _overview(),
        epilog="'zeek-mgmt COMMAND --help' shows the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"zeek-mgmt {__version__}")
    # Listed by _overview() instead, in groups; argparse would print one flat list.
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", help=argparse.SUPPRESS, prog="zeek-mgmt"
    )
    names = [*SUBCOMMANDS, *ALIASES]
    for name in names:
        command = ALIASES.get(name, name)
        module_name, help_text = SUBCOMMANDS[command]
        p = sub.add_parser(
            name,
            help=help_text if name == command else argparse.SUPPRESS,
            description=help_text,
        )
        p.set_defaults(_module=module_name, command=command)
        if not load_all and (only is None or ALIASES.get(only, only) != command):
            continue
        try:
            module = _load(module_name)
        except ModuleNotFoundError as exc:
            # The module, or a package above it (mgmt.controller for mgmt.controller.main).
            base = module_name.partition(":")[0]
            if exc.name is None or not f"{base}.".startswith(f"{exc.name}."):
                raise
            # Not built yet: keep the name visible, fail clearly when used.
            p.set_defaults(_missing=True)
            continue
        module.add_arguments(p)
    return parser


def _first_word(words: Sequence[str]) -> str | None:
    """The subcommand: the first word that is not an option (the top level has no options
    taking a value)."""
    return next((w for w in words if not w.startswith("-")), None)


def _known(word: str | None) -> str | None:
    return word if word in SUBCOMMANDS or word in ALIASES else None


def _complete() -> None:
    """Answer a shell completion request (argcomplete's protocol; exits)."""
    import argcomplete

    line = os.environ.get("COMP_LINE", "")
    point = int(os.environ.get("COMP_POINT", len(line)))
    words = line[:point].split()[1:]
    # Only a finished word (followed by a space) is a chosen command.
    if words and not line[:point].endswith(" "):
        words = words[:-1]
    argcomplete.autocomplete(build_parser(_known(_first_word(words))), exclude=list(ALIASES))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zeek-mgmt``; returns the process exit status."""
    if argv is None and "_ARGCOMPLETE" in os.environ:
        _complete()
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = _first_word(args_list)
    if chosen is not None and _known(chosen) is None:
        print(
            f"zeek-mgmt: error: unknown command '{chosen}'"
            f"{did_you_mean(chosen, list(SUBCOMMANDS))}; 'zeek-mgmt --help' lists them",
            file=sys.stderr,
        )
        return 2
    if chosen == "run" and argv is None:
        # run forks its daemons, which start with its command line: make room for their
        # titles now, before the imports a re-execution (if needed) would repeat.
        from mgmt.daemon.procname import RUN_TITLE_ROOM, make_title_room

        make_title_room(RUN_TITLE_ROOM + len(" ".join(args_list[1:]).encode()))
    # Only the chosen subcommand's module is imported.
    parser = build_parser(chosen)
    args, extras = parser.parse_known_args(args_list)
    if extras:
        sub = _subparser(parser, chosen)
        options = [o for a in sub._actions for o in a.option_strings if a.help != argparse.SUPPRESS]
        hints = "".join(did_you_mean(e, options) for e in extras if e.startswith("-"))
        sub.error(f"unrecognized arguments: {' '.join(extras)}{hints}")
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", False):
        print(f"zeek-mgmt: error: '{args.command}' is not available in this build", file=sys.stderr)
        return 2
    module = _load(args._module)
    result: int = module.run(args)
    return result


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser:
    """The sub-parser of command ``name`` (the top-level parser if there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            found: argparse.ArgumentParser = action.choices[name]
            return found
    return parser
