"""What ``get_id_value`` answers: Zeek's value rendering (``to_json``, intervals) and the
globals the management node script can see."""

from __future__ import annotations

import re
from typing import Any

from .scripts import loads_in

#: Zeek's script declaring Management::Agent:: (and, through its loads, the rest).
MGMT_CONFIG_SCRIPT = "policy/frameworks/management/agent/config"
#: Some Management:: constants as Zeek 8.2.2's config scripts define them (to_json).
MGMT_DEFAULTS: dict[str, Any] = {
    "Management::default_address": "0.0.0.0",
    "Management::connect_retry": "1.0 sec",
    "Management::Controller::topic": "zeek/management/controller",
    "Management::Controller::default_port": {"port": 2150, "proto": "tcp"},
    "Management::Controller::default_port_websocket": {"port": 2149, "proto": "tcp"},
    "Management::Agent::topic_prefix": "zeek/management/agent",
    "Management::Agent::default_port": {"port": 2151, "proto": "tcp"},
    "Management::Node::node_topic": "zeek/management/node",
}
_REDEF_RE = re.compile(r"^redef\s+([A-Za-z_][\w:]*)\s*=\s*(.+?);\s*$", re.M)
_PORT_LITERAL = re.compile(r"^(\d+)/(tcp|udp|icmp|unknown)$")
_INTERVAL_LITERAL = re.compile(r"^(\d+(?:\.\d*)?)\s*secs?$")
_STRING_LITERAL = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
_RECORD_LITERAL = re.compile(r"^[A-Za-z_][\w:]*\((.*)\)$")


def zeek_literal_json(expr: str) -> Any:
    """``to_json`` of a Zeek constant as the agent writes them in redefs (strings, bools,
    ports, intervals in seconds, enum names, record constructors of those); ``None``
    for anything else."""
    expr = expr.strip()
    if expr in ("T", "F"):
        return expr == "T"
    if m := _STRING_LITERAL.match(expr):
        return re.sub(
            r"\\(x[0-9a-fA-F]{2}|.)",
            lambda e: chr(int(e.group(1)[1:], 16)) if e.group(1)[0] == "x" else e.group(1),
            m.group(1),
        )
    if m := _PORT_LITERAL.match(expr):
        return {"port": int(m.group(1)), "proto": m.group(2)}
    if m := _INTERVAL_LITERAL.match(expr):
        return zeek_interval_str(float(m.group(1)))
    if m := _RECORD_LITERAL.match(expr):
        fields = {}
        for part in re.findall(r'\$(\w+)=("(?:[^"\\]|\\.)*"|[^,]+)', m.group(1)):
            fields[part[0]] = zeek_literal_json(part[1])
        return fields
    if re.fullmatch(r"[A-Za-z_][\w:]*::[A-Z_]+", expr):
        return expr  # an enum value
    return None


def zeek_double_str(value: float) -> str:
    """``ODesc::Add(double)``: 6 significant digits, ``.0`` appended to integral values."""
    text = f"{value:.6g}"
    if value == round(value) and "e" not in text and "." not in text:
        text += ".0"
    return text


def zeek_interval_str(seconds: float) -> str:
    """An interval as Zeek describes it (``IntervalVal::ValDescribe``): ``1.0 hr``."""
    if seconds == 0:
        return "0 secs"
    units = (
        (86400.0, "day"),
        (3600.0, "hr"),
        (60.0, "min"),
        (1.0, "sec"),
        (1e-3, "msec"),
        (1e-6, "usec"),
    )
    parts: list[str] = []
    v = seconds
    for i, (unit, word) in enumerate(units):
        if i == len(units) - 1:
            num = v / unit
            if abs(num) < 1e-6:
                if not parts:
                    parts.append("0 secs")
                break
        else:
            if not (v >= unit or v <= -unit):
                continue
            num = float(int(v / unit))
            v -= num * unit
        plural = "" if abs(abs(num) - 1) < 1e-6 else "s"
        parts.append(f"{zeek_double_str(num)} {word}{plural}")
    return " ".join(parts)


def _stream_info(module: str, path: str, ev: str | None) -> dict[str, Any]:
    """One ``Log::Stream`` as ``to_json`` renders it (fields as in Zeek 8.2.2)."""
    info: dict[str, Any] = {
        "columns": None,
        "event_groups": [],
        "max_delay_interval": "200.0 msecs",
        "max_delay_queue_size": 1000,
        "max_field_container_elements": 100,
        "max_field_string_bytes": 4096,
        "max_total_container_elements": 500,
        "max_total_string_bytes": 256000,
        "path": path,
        "policy": f"{module}::log_policy: Log::PolicyHook",
    }
    if ev is not None:
        info["ev"] = ev
    return info


def all_streams() -> dict[str, Any]:
    """A shortened ``Log::all_streams`` (the real one has ~50 streams)."""
    return {
        "Broker::LOG": _stream_info("Broker", "broker", None),
        "Cluster::LOG": _stream_info("Cluster", "cluster", None),
        "Conn::LOG": _stream_info("Conn", "conn", "Conn::log_conn: event(rec:Conn::Info)"),
        "DNS::LOG": _stream_info("DNS", "dns", "DNS::log_dns: event(rec:DNS::Info)"),
        "Reporter::LOG": _stream_info("Reporter", "reporter", None),
        "Weird::LOG": _stream_info("Weird", "weird", "Weird::log_weird: event(rec:Weird::Info)"),
    }


NO_VALUE = object()


def management_values(settings: str) -> dict[str, Any]:
    """``Management::`` globals where the settings script (text ``settings``) loads Zeek's
    management config scripts: their defaults (a few) and its redefs; else none."""
    if not any(target == MGMT_CONFIG_SCRIPT for _, target in loads_in(settings)):
        return {}
    values = dict(MGMT_DEFAULTS)
    for m in _REDEF_RE.finditer(settings):
        value = zeek_literal_json(m.group(2))
        if value is not None:
            values[m.group(1)] = value
    return values
