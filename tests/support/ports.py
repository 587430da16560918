"""Loopback ports for the daemons and nodes tests start.

A port that was free when looked at may be taken a moment later by another process;
tests accept that small race (run them in a network namespace of their own, e.g.
``unshare -rn``, and only the test itself competes).
"""

from __future__ import annotations

import random
import socket


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    return free_ports(1)[0]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 right now (node channel,
    Broker and metrics ports are assigned consecutively from a start port)."""
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(20000, 60000 - count)
        if all(_bindable(p) for p in range(start, start + count)):
            return start
    raise RuntimeError(f"no block of {count} free ports")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect((host, port))
        except OSError:
            return False
    return True
