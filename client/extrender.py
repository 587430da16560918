"""Rendering of zeek-mgmt's own client outputs, which zeek-client does not have.

Pure, like :mod:`client.render` (zeek-client's outputs), whose :class:`~client.render.Rendered`
and JSON rules it shares:

* :func:`render_extension` -- the JSON of an extension request (``get-versions``,
  ``df --json``, ``check``, ``stop``, ``start``), shaped like zeek-client's commands;
* :func:`render_df` -- zeekctl's ``df`` table;
* :func:`render_status` -- ``status``'s table of every node, and :func:`format_table`,
  :func:`format_duration` for the other tables (:mod:`client.observe`);
* :func:`wait_progress` -- the progress lines of ``deploy-config --wait``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from client.render import Rendered, decode_get_nodes, json_text
from mgmt.broker.extevents import ExtensionResult
from mgmt.broker.records import ClusterRole, NodeStatus, Result, Role, State
from mgmt.core.logaction import Level, Log

# --------------------------------------------------------------------------------------
# Extension requests: JSON and df


def _unit_size(num: float) -> str:
    """zeekctl's ``number_unit_str``: ``931G``, `` 12M``, ``  0``."""
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if num >= factor:
            return f"{num / factor:3.0f}{unit}"
    return f" {num:3.0f}"


def render_df(results: Sequence[ExtensionResult]) -> Rendered:
    """``df`` (issue 13): zeekctl's ``df`` table, a row per file system of each agent's
    state, spool and archive directories (``instance``, mount point, total, available,
    percent used); exit 1 if an agent failed (``df failed on <instance>: <error>``)."""
    lines = [f"{'':>27s}  {'':>15s}  {'total':<5s}  {'avail':<5s}  {'capacity':<5s}"]
    diags = []
    for res in results:
        if res.payload is None:
            diags.append(Log(Level.ERROR, f"df failed on {res.instance}: {res.error}"))
            continue
        for fs in res.payload.get("filesystems", ()):
            used, avail = fs["used"], fs["avail"]
            percent = 100.0 * used / (used + avail) if used + avail else 0.0
            lines.append(
                f"{res.instance or '':>28s}  {fs['fs']:>15s}  {_unit_size(fs['size']):<5s}  "
                f"{_unit_size(avail):<5s}  {percent:<5.1f}%"
            )
    return Rendered("\n".join(lines) + "\n", 1 if diags else 0, tuple(diags))


def render_extension(results: Sequence[ExtensionResult], *, pretty: bool) -> Rendered:
    """An extension response like zeek-client's commands: ``{"results": {<instance>:
    <payload>, ...}, "errors": [{"source", "error"}, ...]}`` (``<instance>/<node>`` for
    node-level results); exit 1 if any result is an error."""
    out: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for res in results:
        source = "/".join(part for part in (res.instance, res.node) if part) or None
        if res.payload is None or source is None or source in out:
            error = res.error if res.payload is None else f"unexpected result from {source}"
            errors.append({"source": source, "error": error})
            continue
        out[source] = res.payload
    return Rendered(
        json_text({"results": out, "errors": errors}, pretty=pretty), 0 if not errors else 1
    )


# --------------------------------------------------------------------------------------
# status and deploy-config --wait

STATUS_COLUMNS = (
    "INSTANCE",
    "NODE",
    "ROLE",
    "STATE",
    "PID",
    "PORT",
    "METRICS",
    "RESTARTS",
    "UPTIME",
    "LAST EXIT",
)


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One row of ``status``. ``restarts``, ``uptime`` and ``last_exit`` are not in the
    controller's v1 API (``NodeStatus`` has no such fields): they come from the
    ``get_node_info`` extension (:func:`client.observe.with_node_info`), else ``-``."""

    instance: str
    node: str
    role: str
    state: State
    pid: int | None = None
    port: int | None = None
    metrics_port: int | None = None
    restarts: int | None = None
    uptime: float | None = None
    last_exit: str | None = None

    def cells(self) -> tuple[str, ...]:
        """The row as table cells; ``-`` for unknown values."""
        return (
            self.instance,
            self.node,
            self.role,
            self.state.name,
            _cell(self.pid),
            _cell(self.port),
            _cell(self.metrics_port),
            _cell(self.restarts),
            "-" if self.uptime is None else format_duration(self.uptime),
            self.last_exit or "-",
        )


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def format_duration(seconds: float) -> str:
    """``3d4h``, ``2h05m``, ``4m07s``, ``12s``."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{s}s"


def _role_name(st: NodeStatus) -> str:
    if st.cluster_role is not ClusterRole.NONE:
        return st.cluster_role.name.lower()
    if st.mgmt_role is not Role.NONE:
        return st.mgmt_role.name.lower()
    return "-"


def status_rows(results: Sequence[Result]) -> tuple[list[StatusRow], list[Log]]:
    """The ``status`` rows of a get-nodes answer, plus one error per failed result."""
    rows: list[StatusRow] = []
    diags: list[Log] = []
    for answer in decode_get_nodes(results):
        source = answer.instance or "controller"
        problem = answer.invalid or (answer.error or "no reason given" if answer.failed else None)
        if problem is not None:
            diags.append(Log(Level.ERROR, f"{source}: {problem}"))
        rows += [
            StatusRow(
                instance=source,
                node=st.node,
                role=_role_name(st),
                state=st.state,
                pid=st.pid,
                port=None if st.p is None else st.p.number,
                metrics_port=None if st.metrics_port is None else st.metrics_port.number,
            )
            for st in answer.statuses
        ]
    return rows, diags


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, no trailing blanks."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines) + "\n"


def render_status(
    results: Sequence[Result], fill: Callable[[list[StatusRow]], list[StatusRow]] | None = None
) -> Rendered:
    """``status``: a table of every node (``fill`` adds what get-nodes lacks); exit 0
    only if there is no error and every row is RUNNING."""
    rows, diags = status_rows(results)
    if fill is not None:
        rows = fill(rows)
    all_running = all(r.state is State.RUNNING for r in rows)
    text = format_table(STATUS_COLUMNS, [r.cells() for r in rows])
    return Rendered(text, 0 if all_running and not diags else 1, tuple(diags))


@dataclass(frozen=True, slots=True)
class WaitProgress:
    """One poll of ``deploy-config --wait``.

    Attributes:
        states: node name -> state name (``UNKNOWN`` while a node is not reported).
        lines: progress lines for the nodes whose state changed since the last poll.
        done: every node is RUNNING.
        failed: nodes that are FAILED or CRASHED (waiting stops).
    """

    states: Mapping[str, str]
    lines: tuple[str, ...]
    done: bool
    failed: tuple[str, ...] = field(default=())


def wait_progress(
    wanted: Mapping[str, str], previous: Mapping[str, str], results: Sequence[Result]
) -> WaitProgress:
    """Compare a get-nodes answer with the last one, for the nodes of a deployment.

    Args:
        wanted: node name -> instance, the nodes of the deployed configuration.
        previous: the states of the last poll (empty at first).
        results: the get-nodes results.
    """
    seen = {
        st.node: st.state.name
        for answer in decode_get_nodes(results)
        for st in answer.statuses
        if answer.instance is not None and wanted.get(st.node) == answer.instance
    }
    states = {name: seen.get(name, State.UNKNOWN.name) for name in sorted(wanted)}
    lines = tuple(
        f"{name} on {wanted[name]}: "
        + (f"{previous[name]} -> {state}" if name in previous else state)
        for name, state in states.items()
        if previous.get(name) != state
    )
    failed = tuple(n for n, s in states.items() if s in ("FAILED", "CRASHED"))
    done = all(s == State.RUNNING.name for s in states.values())
    return WaitProgress(states, lines, done, failed)
