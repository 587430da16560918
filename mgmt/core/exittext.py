"""How a node's exit reads to an operator: ``killed by SIGKILL 3 min ago``.

The agent describes an exit once, with the signal's name on *its* platform (signal numbers
differ between systems), in the ``last_exit`` object of the observation payloads (README,
"API"): ``{"code", "signal", "signal_name", "text", "time"}``. Clients turn it and the
agent's clock (``now`` of the same payload, so that clock skew between hosts does not
matter) into the words ``status``, ``diag`` and the notification hook show.

This module is pure: no I/O, no clocks (``now`` is an argument).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def exit_text(code: int | None, signal: int | None, signal_name: str | None = None) -> str:
    """``killed by SIGKILL``, ``exited with status 1``, or ``exited (status unknown)``
    (a process that was not our child, e.g. adopted after an agent restart)."""
    if signal is not None:
        return f"killed by {signal_name or f'signal {signal}'}"
    if code is not None:
        return f"exited with status {code}"
    return "exited (status unknown)"


def ago(seconds: float) -> str:
    """A past duration in words: ``just now``, ``12 s ago``, ``3 min ago``, ``5 h ago``,
    ``2 days ago``. A negative duration (clock skew) reads ``just now``."""
    s = int(seconds)
    if s < 1:
        return "just now"
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    days = s // 86400
    return f"{days} day ago" if days == 1 else f"{days} days ago"


def exit_payload(
    code: int | None, signal: int | None, signal_name: str | None, time: float
) -> dict[str, Any]:
    """The ``last_exit`` object of the observation payloads."""
    return {
        "code": code,
        "signal": signal,
        "signal_name": signal_name,
        "text": exit_text(code, signal, signal_name),
        "time": time,
    }


def last_exit_text(last_exit: Mapping[str, Any] | None, now: float) -> str | None:
    """``killed by SIGKILL 3 min ago`` from a ``last_exit`` object and the agent's ``now``
    (``None`` without one). Tolerates missing members (an older or newer agent)."""
    if not isinstance(last_exit, Mapping):
        return None
    text = last_exit.get("text")
    if not isinstance(text, str):
        text = exit_text(_int(last_exit.get("code")), _int(last_exit.get("signal")))
    when = last_exit.get("time")
    if isinstance(when, int | float) and not isinstance(when, bool):
        return f"{text} {ago(now - when)}"
    return text


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
