"""zeek-mgmt check's command line: a node's own, in parse-only mode, without metrics."""

from __future__ import annotations

from mgmt.agent.configcheck import CHECK_CODE, check_argv


def test_check_argv_adds_parse_only_and_disables_the_metrics_port() -> None:
    """-a comes first; the metrics redef is a -e of its own when the node has none."""
    argv = ("/z/zeek", "-i", "lo", "-U", ".status", "b", "zeek-mgmt-node")
    assert check_argv(argv) == ("/z/zeek", "-a", *argv[1:], "-e", CHECK_CODE)


def test_check_argv_joins_the_nodes_own_redefs() -> None:
    """Zeek keeps only the last -e: the check's code joins the node's redefs."""
    argv = ("/z/zeek", "-U", ".status", "n", "-e", "redef A::b = 1;")
    assert check_argv(argv) == (
        "/z/zeek", "-a", "-U", ".status", "n", "-e", f"redef A::b = 1; {CHECK_CODE}"
    )  # fmt: skip
