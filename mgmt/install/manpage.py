"""``zeek-mgmt man [-o FILE]``: the zeek-mgmt(1) man page, generated from the parser.

Every command, its usage, description and options come from :func:`mgmt.cli.build_parser`
(all commands loaded), so the page cannot drift from ``--help``. Install it with::

    zeek-mgmt man -o /usr/local/share/man/man1/zeek-mgmt.1     # then: man zeek-mgmt

The page is plain man(7) roff, deterministic (no date: the version names it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

from mgmt import __version__

_SECTIONS_AFTER = """\
.SH ENVIRONMENT
.TP
.B ZEEK_MGMT_CONFIG
the daemons' TOML settings file (beaten by \\fB\\-\\-settings\\-file\\fR; default
\\fI/etc/zeek\\-mgmt.toml\\fR if it exists)
.TP
.B ZEEK_CONTROLLER_*, ZEEK_AGENT_*, ZEEK_MANAGEMENT_STATE_DIR, ZEEK_MANAGEMENT_SPOOL_DIR
Zeek's Management framework variables, read by the daemons as Zeek reads them
(\\fBzeek\\-mgmt daemon\\-settings\\fR shows each value's source)
.TP
.B ZEEK_CLIENT_CONFIG_FILE, ZEEK_CLIENT_CONFIG_SETTINGS
zeek\\-client's config file and settings, read by the client commands
.SH FILES
.TP
.I /etc/zeek\\-mgmt.toml
daemon settings
.TP
.I <prefix>/var/lib, <prefix>/spool, <prefix>/logs
state (node directories in \\fInodes/<name>\\fR), log queue and archived logs, for the
prefix of the Zeek in use; without a Zeek \\fI/var/lib/zeek\\-mgmt\\fR (as root)
.SH EXIT STATUS
Daemons: 0 after SIGTERM or SIGINT, 78 after a start\\-up error a restart cannot fix, 1
otherwise. Client commands: zeek\\-client's (0 success, 1 failure). 2: a usage error.
.SH SEE ALSO
.BR zeek (8),
.BR zeek\\-client (1),
.BR systemd.service (5)
"""


def roff(text: str) -> str:
    """``text`` safe as roff running text: backslashes, hyphens, leading dots and quotes."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _option_label(action: argparse.Action) -> str:
    names = ", ".join(f"\\fB{roff(o)}\\fR" for o in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    if not action.option_strings:
        return f"\\fI{roff(str(metavar))}\\fR"
    return f"{names} \\fI{roff(str(metavar))}\\fR"


def _actions(parser: argparse.ArgumentParser) -> Iterator[tuple[str, list[argparse.Action]]]:
    """(group title, documented actions) per argument group, without subcommands."""
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.help != argparse.SUPPRESS
            and not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)
        ]
        if actions and group.title:
            yield group.title, actions


def _subparsers(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, sub-parser) of each listed subcommand, in order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                help_text = helps.get(name)
                if help_text is not None and help_text != argparse.SUPPRESS:
                    yield name, help_text, sub


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage lines, wrapped at 78 columns whatever the terminal (a stable page)."""
    formatter = argparse.HelpFormatter(prog=parser.prog, width=78)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    return formatter.format_help().strip()


def _command(name: str, parser: argparse.ArgumentParser) -> list[str]:
    out = [f'.SS "{roff(name)}"']
    out += [".nf", roff(_usage(parser)), ".fi"]
    if parser.description:
        out += [".PP", roff(parser.description)]
    formatter = argparse.HelpFormatter(prog=parser.prog, width=78)
    for title, actions in _actions(parser):
        out += [".PP", f"\\fI{roff(title)}\\fR:"]
        for action in actions:
            out += [".TP", _option_label(action)]
            out.append(roff(formatter._expand_help(action)) if action.help else "")
    if parser.epilog:
        out += [".PP", roff(parser.epilog)]
    for sub_name, _, sub in _subparsers(parser):
        out += _command(f"{name} {sub_name}", sub)
    return out


def render(parser: argparse.ArgumentParser) -> str:
    """The man page of ``parser`` (zeek-mgmt's, with every command loaded)."""
    from mgmt.cli import FAMILIES, FAMILY

    out = [
        f'.TH ZEEK\\-MGMT 1 "" "zeek\\-mgmt {__version__}" "User Commands"',
        ".SH NAME",
        "zeek\\-mgmt \\- Zeek cluster management: controller and agent daemons, "
        "zeek\\-client's commands",
        ".SH SYNOPSIS",
        ".B zeek\\-mgmt",
        ".I COMMAND",
        ".RI [ OPTIONS ]",
        ".SH DESCRIPTION",
        roff(
            "zeek-mgmt implements Zeek's Management framework: the controller and agent "
            "daemons that deploy, watch and restart a Zeek cluster. It speaks the framework's "
            "Broker WebSocket API, so zeek-client works against it, and it has zeek-client's "
            "commands built in. The daemons and the client commands have separate settings: "
            "daemon settings (a TOML file, Zeek's environment variables, flags; see "
            "daemon-settings) and client settings (zeek-client's; see client-settings)."
        ),
    ]
    commands = list(_subparsers(parser))
    for family, heading in FAMILIES.items():
        out += [f".SH {roff(heading.split(' (')[0].upper())}", roff(heading) + "."]
        for name, _, sub in commands:
            if FAMILY.get(name) == family:
                out += _command(f"zeek-mgmt {name}", sub)
    out.append(_SECTIONS_AFTER)
    return "\n".join(out) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``-o FILE``."""
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="-",
        help="write the page to FILE (e.g. /usr/local/share/man/man1/zeek-mgmt.1); default stdout",
    )


def run(args: argparse.Namespace) -> int:
    """Write the page."""
    from mgmt.cli import build_parser

    page = render(build_parser(load_all=True))
    if args.output == "-":
        sys.stdout.write(page)
        return 0
    try:
        directory = os.path.dirname(args.output)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(page)
    except OSError as exc:
        print(f"zeek-mgmt man: error: cannot write {args.output}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"wrote {args.output}")
    return 0
