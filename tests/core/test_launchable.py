"""What an agent can launch (mgmt.core.launchable): the shared rules, table-driven."""

from __future__ import annotations

import pytest

from mgmt.broker.records import ClusterRole, Configuration, Instance, Node, Option
from mgmt.core.launchable import NAME_MAX_BYTES, Problem, name_problem, problems, quote

W = ClusterRole.WORKER


def cfg(*nodes: Node, instances: tuple[str, ...] = ("a",), config_id: str = "c1") -> Configuration:
    return Configuration(config_id, tuple(Instance(i) for i in instances), nodes)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("worker-01", None),
        ("agent-vm", None),
        ("wörker_1:x@y", None),
        ("a" * NAME_MAX_BYTES, None),
        ("", "is empty"),
        (".", "starts with '.'"),
        ("..", "starts with '.'"),
        ("...", "starts with '.'"),
        (".bin", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("a/b", "contains a path separator"),
        ("a\\b", "contains a path separator"),
        ("a\x00", "contains a NUL byte"),
        ("a\n", "contains a control character"),
        ("a\x85", "contains a control character"),
        ("tab\t", "contains a control character"),
        ("x y", "contains whitespace"),
        ("x\u00a0y", "contains whitespace"),
        ("-x", "starts with '-'"),
        ("a\ud800", "is not valid Unicode (it has a lone surrogate)"),
        ("a" * (NAME_MAX_BYTES + 1), f"is longer than {NAME_MAX_BYTES} bytes (129)"),
        ("ö" * 65, f"is longer than {NAME_MAX_BYTES} bytes (130)"),
    ],
)
def test_name_rules(name: str, reason: str | None) -> None:
    """Node names must be safe file and process names of at most 128 bytes."""
    assert name_problem(name) == reason


CASES: list[tuple[str, Configuration, list[Problem]]] = [
    ("a launchable configuration", cfg(Node("w", "a", W, interface="eth0", env={"A": "b"})), []),
    (
        "NUL in an env value",
        cfg(Node("w", "a", W, env={"A": "x\x00y"})),
        [
            Problem(
                "node 'w' has an invalid value for env variable 'A': it contains a NUL byte", "w"
            )
        ],
    ),
    (
        "'=' in an env variable name",
        cfg(Node("w", "a", W, env={"A=B": "x"})),
        [Problem("node 'w' has an invalid env variable name 'A=B': it contains '='", "w")],
    ),
    (
        "an empty env variable name",
        cfg(Node("w", "a", W, env={"": "x"})),
        [Problem("node 'w' has an invalid env variable name '': it is empty", "w")],
    ),
    (
        "NUL in an env variable name",
        cfg(Node("w", "a", W, env={"A\x00": "x"})),
        [
            Problem(
                "node 'w' has an invalid env variable name 'A\\x00': it contains a NUL byte", "w"
            )
        ],
    ),
    (
        "NUL in the interface",
        cfg(Node("w", "a", W, interface="l\x00o")),
        [Problem("node 'w' has an invalid interface 'l\\x00o': it contains a NUL byte", "w")],
    ),
    (
        "NUL in a script, a script that is an option",
        cfg(Node("w", "a", W, scripts=("ok.zeek", "x\x00", "-e"))),
        [
            Problem(
                "node 'w' has an invalid script '-e': it starts with '-' "
                "(Zeek would take it for an option)",
                "w",
            ),
            Problem("node 'w' has an invalid script 'x\\x00': it contains a NUL byte", "w"),
        ],
    ),
    (
        "a lone surrogate in an option",
        cfg(Node("w", "a", W, options=(Option("o", "\udcff"),))),
        [
            Problem(
                "node 'w' has an invalid option 'o': it is not valid Unicode "
                "(it has a lone surrogate)",
                "w",
            )
        ],
    ),
    (
        "node name with a leading dot",
        cfg(Node(".bin", "a", W)),
        [Problem("node name '.bin' is invalid: it starts with '.'", ".bin")],
    ),
    (
        "a name used twice, in Zeek's words",
        cfg(Node("w", "a", W), Node("w", "a", W)),
        [Problem("multiple nodes named 'w'", "w")],
    ),
    (
        "a hostile name used twice is shown escaped",
        cfg(Node("\ud800", "a", W), Node("\ud800", "a", W)),
        [
            Problem("multiple nodes named '\\ud800'", "\ud800"),
            Problem(
                "node name '\\ud800' is invalid: it is not valid Unicode (it has a lone surrogate)",
                "\ud800",
            ),
        ],
    ),
    (
        "bad instance names",
        cfg(instances=("a:b", "x\x00")),
        [
            Problem(
                "instance name 'a:b' is invalid: "
                "it contains ':' (it would split the nodes' ZEEKPATH)"
            ),
            Problem("instance name 'x\\x00' is invalid: it contains a NUL byte"),
        ],
    ),
    (
        "a configuration id that would break the layout file",
        cfg(config_id="c1\nredef x = 1;"),
        [
            Problem(
                "configuration id 'c1\\nredef x = 1;' is invalid: it contains a control character"
            )
        ],
    ),
    (
        "a long name is quoted short",
        cfg(Node("w" * 200, "a", W)),
        [
            Problem(
                f"node name '{'w' * 40}'... (200 characters) is invalid: "
                f"it is longer than {NAME_MAX_BYTES} bytes (200)",
                "w" * 200,
            )
        ],
    ),
]


@pytest.mark.parametrize(("what", "config", "expected"), CASES, ids=[c[0] for c in CASES])
def test_problems(what: str, config: Configuration, expected: list[Problem]) -> None:
    """problems() names the node and the field of everything an agent cannot launch."""
    assert problems(config) == expected


def test_quote() -> None:
    """Printable text is quoted as Zeek does; anything else is escaped and cut, so that
    an error text can always be sent and logged."""
    assert quote("worker-01") == "'worker-01'"
    assert quote("a\x00b") == "'a\\x00b'"
    assert quote("x" * 41) == f"'{'x' * 40}'... (41 characters)"
    assert quote("\ud800\n").encode("ascii") == b"'\\ud800\\n'"
