"""Rendering of the observation commands: ``status``'s extra columns, ``diag``, ``top``,
``netstats`` (README, "Crashes, diag, top, netstats").

Pure: the payloads (README, "API") come in, text goes out. Times are the agent's (each
payload's ``now``), so that uptimes and "3 min ago" do not depend on this host's clock.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from client.extrender import StatusRow, format_duration, format_table
from client.render import Rendered
from mgmt.broker.extevents import ExtensionResult
from mgmt.core.exittext import last_exit_text
from mgmt.core.logaction import Level, Log

TOP_COLUMNS = ("INSTANCE", "NODE", "ROLE", "PID", "CPU%", "RSS", "THREADS", "STATE")
NETSTATS_COLUMNS = ("INSTANCE", "NODE", "INTERFACE", "RECEIVED", "DROPPED", "LINK", "SINCE")


def _num(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _source(r: ExtensionResult) -> str:
    return "/".join(p for p in (r.instance, r.node) if p) or "controller"


def _by_source(r: ExtensionResult) -> tuple[str, str]:
    return (r.instance or "", r.node or "")


def _errors(results: Sequence[ExtensionResult]) -> list[Log]:
    return [Log(Level.ERROR, f"{_source(r)}: {r.error}") for r in results if r.payload is None]


# --------------------------------------------------------------------------------------
# status


def with_node_info(rows: Sequence[StatusRow], infos: Sequence[ExtensionResult]) -> list[StatusRow]:
    """``status`` rows with RESTARTS, UPTIME and LAST EXIT from ``get_node_info``."""
    known = {(r.instance, r.node): r.payload for r in infos if r.payload is not None}
    out = []
    for row in rows:
        p = known.get((row.instance, row.node))
        if p is None:
            out.append(row)
            continue
        now, started = _num(p.get("now")), _num(p.get("started"))
        restarts = p.get("restarts")
        out.append(
            dataclasses.replace(
                row,
                restarts=restarts if isinstance(restarts, int) else None,
                uptime=None if now is None or started is None else max(0.0, now - started),
                last_exit=last_exit_text(p.get("last_exit"), now or time.time()),
            )
        )
    return out


# --------------------------------------------------------------------------------------
# diag


def _when(seconds: object) -> str:
    t = _num(seconds)
    if t is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _block(title: str, text: object) -> list[str]:
    body = str(text or "").rstrip("\n")
    return [f"==== {title} ====", *(body.splitlines() or ["(empty)"])]


#: The environment variables diag shows (the crash directory keeps them all).
_ENV_PREFIXES = ("ZEEK", "CLUSTER_", "PATH=", "LD_", "PYTHONPATH=")


def _zeek_env(env: object) -> str:
    lines = str(env or "").splitlines()
    return "\n".join(line for line in lines if line.startswith(_ENV_PREFIXES))


def _diag_node(r: ExtensionResult) -> list[str]:
    p = r.payload or {}
    now = _num(p.get("now")) or time.time()
    started = _num(p.get("started"))
    state = str(p.get("state", "?"))
    if p.get("pid") is not None:
        state += f" (pid {p['pid']}"
        state += f", up {format_duration(now - started)})" if started is not None else ")"
    lines = [
        f"[{r.node}] on {r.instance}",
        f"state:      {state}",
        f"restarts:   {p.get('restarts', '-')}",
        f"last exit:  {last_exit_text(p.get('last_exit'), now) or '-'}",
    ]
    if p.get("reason"):
        lines.append(f"reason:     {p['reason']}")
    lines.append(f"directory:  {p.get('dir', '?')}")
    crash = p.get("crash")
    if not isinstance(crash, Mapping):
        lines.append("crashes:    none kept")
    else:
        info: Mapping[str, Any] = crash.get("info") or {}
        exit_: Mapping[str, Any] = info.get("exit") or {}
        lines += [
            f"crashes:    {p.get('crashes', '?')} kept; newest: {crash.get('dir', '?')}",
            f"  exit:     {exit_.get('text', '?')} at {_when(info.get('time'))}"
            f" (pid {info.get('pid', '?')}, restart {info.get('restarts', '?')}"
            + (", gave up" if info.get("gave_up") else "")
            + ")",
            f"  started:  {_when(info.get('started'))}",
            f"  core:     {info.get('core_hint') or ', '.join(crash.get('core_files', [])) or '-'}",
            f"  command:  {str(crash.get('cmdline', '')).strip()}",
            f"  .status:  {str(crash.get('status', '')).strip() or '-'}",
            *_block("stderr of the crashed run (end)", crash.get("stderr")),
            *_block("stdout of the crashed run (end)", crash.get("stdout")),
            *_block(
                f"environment of the crashed run (Zeek's; all in {crash.get('dir', '?')}/env)",
                _zeek_env(crash.get("env")),
            ),
        ]
    lines += _block("current stderr (end)", p.get("stderr"))
    return lines


def render_diag(results: Sequence[ExtensionResult]) -> Rendered:
    """``diag``: a report per node, zeekctl's crash report; exit 1 on an error."""
    nodes = sorted((r for r in results if r.payload is not None), key=_by_source)
    parts = ["\n".join(_diag_node(r)) for r in nodes]
    diags = _errors(results)
    text = "\n\n".join(parts) + "\n" if parts else None
    return Rendered(text, 1 if diags else 0, tuple(diags))


# --------------------------------------------------------------------------------------
# top


def format_bytes(value: object) -> str:
    """``812K``, ``45.2M``, ``1.3G``; ``-`` if unknown."""
    n = _num(value)
    if n is None:
        return "-"
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}{unit}" if unit != "K" else f"{n / size:.0f}K"
    return f"{int(n)}B"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def render_top(results: Sequence[ExtensionResult]) -> Rendered:
    """``top``: one line per process (controller, agents, nodes); exit 1 on an error."""
    rows = []
    for r in results:
        processes = (r.payload or {}).get("processes")
        for proc in processes if isinstance(processes, list) else ():
            if not isinstance(proc, Mapping):
                continue
            cpu = _num(proc.get("cpu"))
            rows.append(
                (
                    r.instance or "?",
                    _cell(proc.get("node")),
                    _cell(proc.get("role")),
                    _cell(proc.get("pid")),
                    "-" if cpu is None else f"{cpu:.1f}",
                    format_bytes(proc.get("rss")),
                    _cell(proc.get("threads")),
                    _cell(proc.get("state")),
                )
            )
    diags = _errors(results)
    return Rendered(format_table(TOP_COLUMNS, rows), 1 if diags else 0, tuple(diags))


# --------------------------------------------------------------------------------------
# netstats


def render_netstats(results: Sequence[ExtensionResult]) -> Rendered:
    """``netstats``: packets received, dropped and seen on the link per node with an
    interface, since its process started; exit 1 on an error."""
    rows = []
    for r in sorted(results, key=_by_source):
        p: Mapping[str, Any] | None = r.payload
        if p is None:
            continue
        now, started = _num(p.get("now")), _num(p.get("started"))
        since = "-"
        if started is not None:
            since = _when(started)
            if now is not None:
                since += f" ({format_duration(now - started)})"
        rows.append(
            (
                r.instance or "?",
                r.node or "?",
                _cell(p.get("interface")),
                _cell(p.get("pkts_recvd")),
                _cell(p.get("pkts_dropped")),
                _cell(p.get("pkts_link")),
                since,
            )
        )
    diags = _errors(results)
    return Rendered(format_table(NETSTATS_COLUMNS, rows), 1 if diags else 0, tuple(diags))
