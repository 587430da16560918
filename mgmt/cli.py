"""The ``zeek-mgmt`` command line: one entry point, one subcommand per module.

Each subcommand lives in its own module that exposes two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

A registration may also name an attribute, ``module:attribute``, for packages that keep
several commands in one module (the client: ``client.cli:get_nodes``, each attribute having
``add_arguments``/``run``).

Modules are imported lazily, only when their subcommand runs, so ``--help`` stays fast
and a daemon does not pay for the client's imports (and vice versa).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from client import COMMANDS as CLIENT_COMMANDS
from client import command_target
from mgmt import __version__

#: name -> (module, one-line help). Order is the order shown by ``--help``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {}


def _register(name: str, module: str, help_text: str) -> None:
    SUBCOMMANDS[name] = (module, help_text)


_register("controller", "mgmt.controller.main", "run the controller daemon")
_register("agent", "mgmt.agent.main", "run the agent daemon")
_register(
    "run", "mgmt.daemon.run", "run controller and agent together (the quickstart, like zeek -j)"
)
_register("archive", "mgmt.archive.cli", "archive rotated logs (zeek-archiver compatible)")
_register(
    "show-settings", "mgmt.settings.show", "print the effective settings and where each came from"
)
# zeek-client's commands (same options, output and exit codes) and the client's extras.
for _name, _help in CLIENT_COMMANDS:
    _register(_name, command_target(_name), _help)


def _load(target: str) -> Any:
    """Import ``module`` or ``module:attribute``."""
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    return getattr(obj, attr) if attr else obj


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with one sub-parser per registered subcommand.

    Args:
        only: import and add the arguments of this subcommand only (the one that will
            run); the others keep their name and help. ``None``: all of them.
    """
    parser = argparse.ArgumentParser(
        prog="zeek-mgmt",
        description="Zeek cluster management: controller, agent and supervisor daemons "
        "speaking the Management framework's Broker WebSocket API.",
    )
    parser.add_argument("--version", action="version", version=f"zeek-mgmt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if only is not None and name != only:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zeek-mgmt``; returns the process exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Only the chosen subcommand's module is imported (the first non-option word; the
    # top level has no options taking a value).
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in SUBCOMMANDS else None)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", False):
        print(f"zeek-mgmt: error: '{args.command}' is not available in this build", file=sys.stderr)
        return 2
    module = _load(args._module)
    result: int = module.run(args)
    return result
