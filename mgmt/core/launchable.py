"""What an agent can launch: the rules for the names and values of a configuration.

Zeek's controller checks a configuration for conflicts (``config_validate``); it does not
check whether the values can become what the agent makes of them. Ours must: a node name
becomes a directory (``<state>/nodes/<name>``), a symlink (``<state>/nodes/.bin/zeek.<name>``)
and a process name; an instance name becomes the agent's directory and part of the nodes'
``ZEEKPATH``; ``interface`` and ``scripts`` become command-line arguments, ``env`` the
environment of a process; the configuration id is written into ``cluster-layout.zeek``.
Whatever the operating system refuses there (a NUL byte, ``=`` in a variable name, a
string that is not valid Unicode) must be refused here, before anything is staged or
launched, or one bad entry stops a whole agent.

:func:`problems` is the one check. The controller runs it when a configuration is staged
(and deployed); the agent runs it again when a deployment arrives, because its port may
be reached by others than our controller, and when it resumes a saved configuration.

Name rules (node and instance names):

* not empty, at most :data:`NAME_MAX_BYTES` bytes in UTF-8;
* no ``/`` or ``\\``, no control characters (NUL included), no whitespace;
* not starting with ``.`` (this covers ``.``, ``..``, and hidden names such as ``.bin``,
  the directory of the agent's ``zeek.<node>`` symlinks) nor with ``-``;
* instance names also contain no ``:`` (it separates the entries of ``ZEEKPATH``).

Why :data:`NAME_MAX_BYTES` is 128: a file name may have 255 bytes, and the longest one made
from a node name is the temporary symlink ``.zeek.<name>.<pid>.tmp`` (18 bytes more);
128 leaves room for that and for names derived later, and is longer than any name a
person types. The kernel's process name (``comm``) has 15 bytes only, so
``zeek.<name>`` is cut there: two long names with the same first ten characters show the
same name in ``ps``/``top``. That name is cosmetic (nothing looks processes up by it; the
agent tracks pids and start times), so it need not be unique.

Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from mgmt.broker.records import Configuration, Node
from mgmt.core import noderedefs
from mgmt.core.frozen import frozen

#: The longest node or instance name, in bytes of UTF-8 (see the module docstring).
NAME_MAX_BYTES = 128

#: How many characters of an offending value an error text quotes.
_QUOTE_MAX = 40


@frozen
class Problem:
    """One thing in a configuration that an agent cannot launch.

    Attributes:
        text: the error text for the operator, naming the node (if any) and the field.
        node: the node concerned, or ``None`` for an instance or the configuration.
    """

    text: str
    node: str | None = None


def shown(text: str) -> str:
    """``text`` made safe to show in an error text or a log line.

    Printable text stays as it is; text with control characters or invalid Unicode is
    escaped (``l\\x00o``); text longer than 40 characters is cut, with its length.
    """
    cut = text[:_QUOTE_MAX]
    body = cut if cut.isprintable() else ascii(cut)[1:-1]
    return body if len(text) <= _QUOTE_MAX else f"{body}... ({len(text)} characters)"


def quote(text: str) -> str:
    """``text`` in single quotes, as Zeek's error texts quote names, made safe to show
    (:func:`shown`): ``'worker-01'``, ``'l\\x00o'``, ``'wwww...' (200 characters)``."""
    cut = shown(text[:_QUOTE_MAX])
    return f"'{cut}'" if len(text) <= _QUOTE_MAX else f"'{cut}'... ({len(text)} characters)"


def _is_control(c: str) -> bool:
    return unicodedata.category(c) == "Cc"


def value_problem(text: str) -> str | None:
    """Why ``text`` cannot be passed to a process (argument or environment), or ``None``."""
    if "\x00" in text:
        return "contains a NUL byte"
    if any(unicodedata.category(c) == "Cs" for c in text):
        return "is not valid Unicode (it has a lone surrogate)"
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a node name (a directory and process name), or ``None``.

    The reason completes "it ...", e.g. ``starts with '.'``.
    """
    if name == "":
        return "is empty"
    bad = value_problem(name)
    if bad is not None:
        return bad
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if any(_is_control(c) for c in name):
        return "contains a control character"
    if any(c.isspace() for c in name):
        return "contains whitespace"
    if name.startswith("."):
        return "starts with '.'"
    if name.startswith("-"):
        return "starts with '-'"
    size = len(name.encode("utf-8"))
    if size > NAME_MAX_BYTES:
        return f"is longer than {NAME_MAX_BYTES} bytes ({size})"
    return None


def instance_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an instance (agent) name, or ``None``."""
    bad = name_problem(name)
    if bad is None and ":" in name:
        bad = "contains ':' (it would split the nodes' ZEEKPATH)"
    return bad


def node_problems(node: Node) -> list[Problem]:
    """What is wrong with one node's own fields (name, interface, scripts, env, options)."""
    found: list[Problem] = []
    who = quote(node.name)

    def add(text: str) -> None:
        found.append(Problem(text, node.name))

    bad = name_problem(node.name)
    if bad is not None:
        add(f"node name {who} is invalid: it {bad}")
    if node.interface is not None and (bad := value_problem(node.interface)) is not None:
        add(f"node {who} has an invalid interface {quote(node.interface)}: it {bad}")
    for script in node.scripts or ():
        bad = value_problem(script)
        if bad is None and script.startswith("-"):
            bad = "starts with '-' (Zeek would take it for an option)"
        if bad is not None:
            add(f"node {who} has an invalid script {quote(script)}: it {bad}")
    for key, value in node.env.items():
        bad = value_problem(key)
        if bad is None and key == "":
            bad = "is empty"
        if bad is None and "=" in key:
            bad = "contains '='"
        if bad is not None:
            add(f"node {who} has an invalid env variable name {quote(key)}: it {bad}")
        elif (bad := value_problem(value)) is not None:
            add(f"node {who} has an invalid value for env variable {quote(key)}: it {bad}")
        elif noderedefs.is_redef(key) and (bad := noderedefs.problem(key, value)) is not None:
            add(f"node {who} has an invalid redef in env variable {quote(key)}: {bad}")
    for option in node.options or ():
        bad = value_problem(option.name) or value_problem(option.value)
        if bad is not None:
            add(f"node {who} has an invalid option {quote(option.name)}: it {bad}")
    return found


def problems(config: Configuration) -> list[Problem]:
    """Everything in ``config`` that an agent could not launch, sorted by text.

    Covers the configuration id, every instance name, every node (:func:`node_problems`),
    and node names used twice (one process per name: Zeek's text,
    ``multiple nodes named '<name>'``). Empty when the configuration can be launched.
    """
    found: list[Problem] = []
    if (bad := value_problem(config.id)) is None and any(_is_control(c) for c in config.id):
        bad = "contains a control character"
    if bad is not None:
        found.append(Problem(f"configuration id {quote(config.id)} is invalid: it {bad}"))
    for name in sorted({i.name for i in config.instances}):
        if (bad := instance_name_problem(name)) is not None:
            found.append(Problem(f"instance name {quote(name)} is invalid: it {bad}"))
    for name, count in Counter(n.name for n in config.nodes).items():
        if count > 1:
            found.append(Problem(f"multiple nodes named {quote(name)}", name))
    for node in config.nodes:
        found += node_problems(node)
    return sorted(set(found), key=lambda p: (p.text, p.node or ""))
