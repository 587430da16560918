"""Helpers for the peer fault and fuzz tests: the real daemons as child processes, measured.

:func:`controller` and :func:`agent` start ``python -m mgmt controller|agent`` on free
loopback ports (optionally with a low open-file limit) and wait until it is live;
:func:`rss_mb` and :func:`log_size` measure it; :func:`request_text` builds the raw frames
a misbehaving client sends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from mgmt.broker import events as ev
from mgmt.broker import messages as bm
from mgmt.core.topics import CONTROLLER_TOPIC, agent_topic
from tests.support.daemons import Daemon, daemon_env
from tests.support.ports import free_port

AGENT_NAME = "agent-fault"
AGENT_TOPIC = agent_topic(AGENT_NAME)


@dataclass
class Running:
    """A daemon under test and its ports (``client`` is 0 for the agent)."""

    daemon: Daemon
    port: int
    agent_port: int = 0

    @property
    def pid(self) -> int:
        return self.daemon.proc.pid

    def alive(self) -> bool:
        """Whether the daemon process still runs."""
        return self.daemon.proc.poll() is None


@contextlib.contextmanager
def controller(tmp_path: Path, *, nofile: int | None = None) -> Iterator[Running]:
    """A controller on 127.0.0.1: ``port`` for clients, ``agent_port`` for agents."""
    port, agent_port = free_port(), free_port()
    args = [
        "--state-dir",
        str(tmp_path / "state"),
        "--websocket-address",
        "127.0.0.1",
        "--websocket-port",
        str(port),
        "--listen-address",
        "127.0.0.1",
        "--listen-port",
        str(agent_port),
    ]
    d = Daemon("controller", args, tmp_path / "controller.log", daemon_env(), nofile=nofile)
    try:
        d.wait_log(" is live")
        yield Running(d, port, agent_port)
    finally:
        d.stop()


@contextlib.contextmanager
def agent(tmp_path: Path) -> Iterator[Running]:
    """An agent named :data:`AGENT_NAME` listening on 127.0.0.1, dialing no controller."""
    port = free_port()
    args = [
        "--state-dir",
        str(tmp_path / "agent-state"),
        "--name",
        AGENT_NAME,
        "--listen-address",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--controller",
        "none",
        "--zeek",
        str(tmp_path / "no-zeek-here"),
    ]
    d = Daemon("agent", args, tmp_path / "agent.log", daemon_env())
    try:
        d.wait_log(" is live")
        yield Running(d, port)
    finally:
        d.stop()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    return float(psutil.Process(pid).memory_info().rss) / 1e6


def log_size(run: Running) -> int:
    """Bytes the daemon logged so far."""
    return run.daemon.log_path.stat().st_size


def request_text(event: object, topic: str = CONTROLLER_TOPIC) -> str:
    """A data message carrying ``event`` on ``topic``, as a client would send it."""
    return bm.data_message_text(topic, ev.event_to_json(event))
