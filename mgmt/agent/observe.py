"""What the agent tells about its nodes beyond get-nodes: ``status``, ``diag``, ``top``.

The payloads (README, "API", observation events) are built here from the supervisor's
snapshots (:class:`~mgmt.supervisor.node.NodeInfo`), the nodes' crash directories
(:mod:`mgmt.supervisor.crashdirs`) and ``/proc`` (psutil). Every payload carries ``now``,
the agent's clock, so that a client computes uptimes and "3 min ago" without trusting its
own clock to agree with the agent host's.

* node info (``status``): ``{"state", "pid", "restarts", "started", "now", "last_exit",
  "crashes"}``. ``last_exit`` is the last *unexpected* exit: the one the supervisor saw,
  else the newest crash directory's (so that it survives an agent restart).
* diag: node info plus ``reason``, ``dir``, ``crash`` (the newest crash directory, read
  with :func:`~mgmt.supervisor.crashdirs.read_crash_dir`, or ``null``), and the current
  ``stdout``/``stderr`` tails.
* top: one entry per process (the agent, then each node with a process).

File reads are bounded (tails); call these from a worker thread when many nodes run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mgmt.agent.supervised import STATE_MAP
from mgmt.broker.extevents import payload_result
from mgmt.broker.records import Result, State
from mgmt.core.exittext import exit_payload
from mgmt.daemon.procstats import ProcessSampler
from mgmt.supervisor.crashdirs import list_crash_dirs, read_crash_dir, signal_name
from mgmt.supervisor.node import NodeInfo
from mgmt.supervisor.nodefiles import STDERR_FILE, STDOUT_FILE, read_tail

#: How much of each output file ``diag`` sends per node (bytes).
DIAG_TAIL = 4096


def node_info(info: NodeInfo, now: float) -> dict[str, Any]:
    """The ``get_node_info`` payload of one node (without ``"v"``)."""
    state = STATE_MAP.get(info.state, State.UNKNOWN)
    crashes = list_crash_dirs(info.spec.cwd)
    last_exit = None
    if info.last_crash is not None:
        c = info.last_crash
        sig = c.status.signal
        last_exit = exit_payload(c.status.code, sig, signal_name(sig), c.time)
    elif crashes:
        last_exit = _crash_exit(crashes[0].path)
    running = state in (State.RUNNING, State.PENDING) and info.pid is not None
    return {
        "state": state.name,
        "pid": info.pid,
        "restarts": info.restarts,
        "started": info.started_at if running else None,
        "now": now,
        "last_exit": last_exit,
        "crashes": len(crashes),
    }


def _crash_exit(path: Path) -> dict[str, Any] | None:
    exit_ = read_crash_dir(path, 0)["info"].get("exit")
    return exit_ if isinstance(exit_, dict) else None


def diag(info: NodeInfo, now: float, tail: int = DIAG_TAIL) -> dict[str, Any]:
    """The ``diag`` payload of one node (without ``"v"``)."""
    payload = node_info(info, now)
    crashes = list_crash_dirs(info.spec.cwd)
    node_dir = Path(info.spec.cwd)
    payload.update(
        reason=info.reason,
        dir=str(node_dir),
        crash=read_crash_dir(crashes[0].path, tail) if crashes else None,
        stdout=_tail(node_dir / STDOUT_FILE, tail),
        stderr=_tail(node_dir / STDERR_FILE, tail),
    )
    return payload


def _tail(path: Path, limit: int) -> str:
    data, size = read_tail(path, limit)
    return ("..." if size > len(data) else "") + data.decode("utf-8", "replace")


def top_entries(
    sampler: ProcessSampler, self_role: str, self_pid: int, infos: list[NodeInfo]
) -> list[dict[str, Any]]:
    """The ``top`` processes of an agent (or controller: ``infos`` empty): itself first,
    then each node with a process, each with ``node`` (``null`` for itself), ``role``
    and the node's ``state``."""
    sampler.forget_others({self_pid, *(i.pid for i in infos if i.pid is not None)})
    entries = [{"node": None, "role": self_role, "state": "RUNNING", **sampler.sample(self_pid)}]
    for info in infos:
        if info.pid is None:
            continue
        state = STATE_MAP.get(info.state, State.UNKNOWN)
        entries.append(
            {"node": info.name, "role": "node", "state": state.name, **sampler.sample(info.pid)}
        )
    return entries


def interface(info: NodeInfo) -> str | None:
    """The interface a node captures on (its ``-i`` argument), if any."""
    argv = info.spec.argv
    for i, arg in enumerate(argv[:-1]):
        if arg == "-i":
            return argv[i + 1]
    return None


def netstats_result(reqid: str, instance: str, result: Result, info: NodeInfo | None) -> Result:
    """A node's ``get_net_stats`` dispatch Result as a ``netstats`` payload Result:
    ``{"interface", "started", "now", "pkts_recvd", "pkts_dropped", "pkts_link",
    "bytes_recvd", "network_time"}`` (errors pass through); the counters are those since
    the node's process ``started``."""
    if not result.success:
        return result.with_changes(reqid=reqid, instance=instance)
    try:
        stats = json.loads(result.data) if isinstance(result.data, str) else None
    except ValueError:
        stats = None
    if not isinstance(stats, dict):
        return Result(reqid, False, instance=instance, node=result.node, error="invalid net stats")
    known = {
        "interface": None if info is None else interface(info),
        "started": None if info is None else info.started_at,
        "now": now(),
    }
    return payload_result(reqid, {**known, **stats}, instance=instance, node=result.node)


def now() -> float:
    """The agent's clock for the payloads (seconds since the epoch)."""
    return time.time()
