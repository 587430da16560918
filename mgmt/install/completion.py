"""``zeek-mgmt completion bash|zsh``: print the shell code that completes ``zeek-mgmt``.

Completion is argcomplete's: the shell code calls ``zeek-mgmt`` itself with the command
line in its environment, and :func:`mgmt.cli.main` answers with the parser of the command
being completed (only that command's module is imported). Install it once::

    zeek-mgmt completion bash > /etc/bash_completion.d/zeek-mgmt     # or ~/.bashrc: eval
    zeek-mgmt completion zsh > "${fpath[1]}/_zeek-mgmt"               # then compinit

or, equivalently, argcomplete's own ``register-python-argcomplete zeek-mgmt``.
"""

from __future__ import annotations

import argparse
import sys

SHELLS = ("bash", "zsh")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shell to print completion code for."""
    parser.add_argument("shell", choices=SHELLS, help="the shell that will load the code")
    parser.epilog = (
        "bash: zeek-mgmt completion bash > /etc/bash_completion.d/zeek-mgmt (or "
        'eval "$(zeek-mgmt completion bash)" in ~/.bashrc); zsh: zeek-mgmt completion zsh '
        "> ~/.zfunc/_zeek-mgmt with ~/.zfunc on $fpath before compinit"
    )


def shell_code(shell: str) -> str:
    """The completion code for ``shell`` (argcomplete's, for the program ``zeek-mgmt``)."""
    from argcomplete import shellcode

    return shellcode(["zeek-mgmt"], shell=shell)


def run(args: argparse.Namespace) -> int:
    """Print the code."""
    sys.stdout.write(shell_code(args.shell))
    return 0
