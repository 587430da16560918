"""Rendering controller responses exactly as zeek-client 1.5.0 prints them (wire spec §7).

Every ``render_*`` function is pure: it takes decoded :class:`~mgmt.broker.records.Result`
records and returns a :class:`Rendered` -- the complete stdout text (or ``None``), the exit
code, and the diagnostics to log on stderr -- so the CLI only does I/O.

zeek-client's rules that shape the output, kept here on purpose:

* JSON is dumped with sorted keys, indent 2 when ``client.pretty_json`` is on, else one
  line with ``", "``/``": "`` separators, and a trailing newline;
* ``get-nodes``, ``get-id-value`` and ``restart`` sort results with zeek-client's
  ``Result.__lt__`` (results with an instance first, by instance, then by node when both
  have one); ``deploy`` and ``stage-config`` keep arrival order;
* "truthy" ``data`` follows zeek-client's Broker types: containers are false when empty,
  every scalar (even ``""``) is true.

zeek-mgmt's own outputs (``status``, ``df``, extension JSON, ``deploy-config --wait``)
are rendered by :mod:`client.extrender` and :mod:`client.observe`.
"""

from __future__ import annotations

import configparser
import functools
import io
import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mgmt.broker import data as bd
from mgmt.broker import events as ev
from mgmt.broker.data import BrokerSet, BrokerValue, Port, Table
from mgmt.broker.records import (
    ClusterRole,
    Configuration,
    Instance,
    Node,
    NodeOutputs,
    NodeStatus,
    Result,
    Role,
)
from mgmt.core.logaction import Level, Log
from mgmt.exceptions import DecodeError


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a command prints: ``text`` for stdout (``None``: nothing), the exit code, and
    the diagnostics for stderr (each logged as ``<level>: <message>`` before ``text`` is
    written)."""

    text: str | None
    exit_code: int
    diagnostics: tuple[Log, ...] = ()


def _error(message: str) -> Rendered:
    return Rendered(None, 1, (Log(Level.ERROR, message),))


# --------------------------------------------------------------------------------------
# JSON and Broker values


def json_text(obj: Any, *, pretty: bool) -> str:
    """zeek-client's JSON output: sorted keys, indent 2 if ``pretty``, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=2 if pretty else None, default=jsonable) + "\n"


def jsonable(value: BrokerValue) -> Any:
    """A generic Broker value as plain JSON data (what zeek-client's ``to_py`` gives)."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return int(value)  # Count is an int subclass
    if isinstance(value, str):
        return str(value)  # EnumValue is a str subclass
    if isinstance(value, Port):
        return value.number
    if isinstance(value, (tuple, list, BrokerSet, frozenset, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, (Table, dict)):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    return str(value)


def broker_repr(value: BrokerValue, *, pretty: bool = False) -> str:
    """zeek-client's ``repr()`` (compact) or ``str()`` (indent 4) of a Broker value: its
    Broker JSON with sorted keys. ``None`` (an unset value) is ``None``."""
    if value is None:
        return "None"
    return json.dumps(bd.to_json(value), sort_keys=True, indent=4 if pretty else None)


def truthy(value: BrokerValue) -> bool:
    """zeek-client's truth test of a Broker value: containers by length, scalars true."""
    if value is None:
        return False
    if isinstance(value, (tuple, list, BrokerSet, Table, dict, frozenset, set)):
        return len(value) > 0
    return True


# zeek-client's Broker type class for each argument codec (monitor lines, error texts).
_BT_CLASS = {"string": "String", "bool": "Boolean", "set[string]": "Set", "count": "Count"}
#: The controller API events zeek-client knows (its event registry).
KNOWN_EVENTS: frozenset[type] = frozenset(
    {
        ev.GetInstancesRequest,
        ev.StageConfigurationRequest,
        ev.GetConfigurationRequest,
        ev.DeployRequest,
        ev.GetNodesRequest,
        ev.GetIdValueRequest,
        ev.RestartRequest,
        ev.TestTimeoutRequest,
        ev.GetInstancesResponse,
        ev.StageConfigurationResponse,
        ev.GetConfigurationResponse,
        ev.DeployResponse,
        ev.GetNodesResponse,
        ev.GetIdValueResponse,
        ev.RestartResponse,
        ev.TestTimeoutResponse,
    }
)


def describe_event(event: object) -> str:
    """An event as zeek-client's ``str(event)`` shows it, e.g.
    ``Management::Controller::API::get_nodes_request(reqid: <class
    'zeekclient.brokertypes.String'>)``."""
    spec = ev.spec_for(event)
    args = ", ".join(
        f"{name}: <class 'zeekclient.brokertypes.{_BT_CLASS.get(codec.type_name, 'Vector')}'>"
        for name, codec in zip(spec.field_names, spec.args, strict=True)
    )
    return f"{spec.name}({args})"


def monitor_line(event: object) -> str | None:
    """The ``monitor`` line for a received event, or ``None`` for events zeek-client does
    not know (it skips those)."""
    if type(event) not in KNOWN_EVENTS:
        return None
    return f'received "{describe_event(event)}"'


# --------------------------------------------------------------------------------------
# Sorting like zeek-client's Result.__lt__


def _result_less(a: Result, b: Result) -> bool:
    if a.instance is None and b.instance is not None:
        return False
    if a.instance is not None and b.instance is None:
        return True
    if a.instance is not None and b.instance is not None:
        if a.instance < b.instance:
            return True
        if a.instance > b.instance:
            return False
    if a.node is not None and b.node is not None:
        return a.node < b.node
    return False


def sorted_results(results: Iterable[Result]) -> list[Result]:
    """Results in zeek-client's order. Python's sort only asks "less than?", so the same
    predicate gives the same (stable) order as zeek-client, even where it is partial."""
    return sorted(results, key=functools.cmp_to_key(_result_cmp))


def _result_cmp(a: Result, b: Result) -> int:
    return -1 if _result_less(a, b) else 0


# --------------------------------------------------------------------------------------
# Commands


def render_deploy(results: Sequence[Result], *, pretty: bool) -> Rendered:
    """``deploy`` (§7.3): exit 1 if any result failed, including node results."""
    code = 0
    errors: list[str] = []
    out: dict[str, Any] = {}
    diags: list[Log] = []
    for res in results:
        if not res.success:
            code = 1
        if not res.success and res.node is None and res.error:
            errors.append(res.error)
            continue
        if res.success and res.node is None and res.instance is None and truthy(res.data):
            out["id"] = jsonable(res.data)
            continue
        if res.instance is None:
            diags.append(Log(Level.WARNING, f"skipping unexpected response {res!r}"))
            continue
        if res.node is None:
            continue  # an agent without nodes of its own succeeded
        entry: dict[str, Any] = {"success": res.success, "instance": res.instance}
        if truthy(res.data):
            try:
                outputs = NodeOutputs.from_value(res.data)
            except DecodeError as exc:
                diags.append(Log(Level.ERROR, f"invalid node outputs for {res.node}: {exc}"))
            else:
                entry["stdout"] = outputs.stdout
                entry["stderr"] = outputs.stderr
        out.setdefault("nodes", {})[res.node] = entry
    return Rendered(
        json_text({"results": out, "errors": errors}, pretty=pretty), code, tuple(diags)
    )


def render_stage(results: Sequence[Result], *, pretty: bool) -> Rendered:
    """``stage-config`` (§7.4): arrival order; any failure gives exit 1."""
    code = 0
    errors: list[str] = []
    out: dict[str, Any] = {}
    for res in results:
        if not res.success:
            code = 1
            errors.append(res.error if res.error else "no reason given")
            continue
        if truthy(res.data):
            out["id"] = jsonable(res.data)
    return Rendered(json_text({"results": out, "errors": errors}, pretty=pretty), code)


def render_get_config(
    response: ev.GetConfigurationResponse, *, as_json: bool, pretty: bool
) -> Rendered:
    """``get-config`` (§7.5): the configuration as INI (default) or JSON."""
    res = response.result
    if not res.success:
        return _error(res.error if res.error else "no reason given")
    if not truthy(res.data):
        return _error(
            "received result did not contain configuration data: " + describe_event(response)
        )
    try:
        config = Configuration.from_value(res.data)
    except DecodeError as exc:
        return _error(f"configuration data invalid: {exc}")
    if as_json:
        return Rendered(json_text(config_json(config), pretty=pretty), 0)
    return Rendered(config_ini(config), 0)


def _instance_json(inst: Instance) -> dict[str, Any]:
    if inst.listen_port is not None:
        return {"name": inst.name, "host": str(inst.host), "port": inst.listen_port.number}
    if str(inst.host) != "0.0.0.0":
        return {"name": inst.name, "host": str(inst.host)}
    return {"name": inst.name}


def _node_json(node: Node) -> dict[str, Any]:
    return {
        "name": node.name,
        "instance": node.instance,
        "role": node.role.name,
        "port": None if node.p is None else node.p.number,
        "scripts": None if node.scripts is None else list(node.scripts),
        # zeek-client cannot serialize options at all (it crashes); we show them.
        "options": None
        if node.options is None
        else [{"name": o.name, "value": o.value} for o in node.options],
        "interface": node.interface,
        "cpu_affinity": node.cpu_affinity,
        "env": dict(node.env),
        "metrics_port": None if node.metrics_port is None else node.metrics_port.number,
    }


def config_json(config: Configuration) -> dict[str, Any]:
    """``get-config --as-json``: instances and nodes sorted by name, ``state`` omitted."""
    return {
        "id": config.id,
        "instances": [_instance_json(i) for i in sorted(config.instances, key=lambda i: i.name)],
        "nodes": [_node_json(n) for n in sorted(config.nodes, key=lambda n: n.name)],
    }


def _quote_words(text: str) -> str:
    # zeek-client quotes a value that splits into several words; it does not escape.
    return f'"{text}"' if len(text.split()) > 1 else text


def config_ini(config: Configuration) -> str:
    """``get-config``: the configuration as a cluster configuration file (zeek-client's
    configparser output, a blank line after every section)."""
    cfp = configparser.ConfigParser(allow_no_value=True, interpolation=None)
    cfp.optionxform = str  # type: ignore[assignment,method-assign]
    instances = sorted(config.instances, key=lambda i: i.name)
    if instances:
        cfp.add_section("instances")
        for inst in instances:
            if inst.listen_port is not None:
                cfp.set("instances", inst.name, f"{inst.host}:{inst.listen_port.number}")
            else:
                cfp.set("instances", inst.name, None)
    for node in sorted(config.nodes, key=lambda n: n.name):
        name = node.name
        if cfp.has_section(name):
            cfp.remove_section(name)
        cfp.add_section(name)
        cfp.set(name, "instance", node.instance)
        cfp.set(name, "role", node.role.name)
        if node.p is not None:
            cfp.set(name, "port", str(node.p.number))
        if node.scripts:
            cfp.set(name, "scripts", " ".join(_quote_words(s) for s in sorted(node.scripts)))
        if node.interface is not None:
            cfp.set(name, "interface", node.interface)
        if node.cpu_affinity is not None:
            cfp.set(name, "cpu_affinity", str(node.cpu_affinity))
        if node.env:
            cfp.set(
                name,
                "env",
                " ".join(f"{k}={_quote_words(node.env[k])}" for k in sorted(node.env)),
            )
        if node.metrics_port is not None:
            cfp.set(name, "metrics_port", str(node.metrics_port.number))
    out = io.StringIO()
    cfp.write(out)
    return out.getvalue()


def render_get_id_value(results: Sequence[Result], *, pretty: bool) -> Rendered:
    """``get-id-value`` (§7.6): ``data`` is a string of JSON from Zeek's ``to_json()``."""
    errors: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    for res in sorted_results(results):
        if not res.success:
            errors.append({"source": res.node, "error": res.error})
            continue
        if res.node:
            if type(res.data) is not str:
                errors.append(
                    {
                        "source": res.node,
                        "error": f"invalid result data type {broker_repr(res.data)}",
                    }
                )
                continue
            try:
                out[res.node] = json.loads(res.data)
            except json.JSONDecodeError as exc:
                errors.append({"source": res.node, "error": f"JSON decode error: {exc}"})
            continue
        errors.append({"error": f"result lacking node: {broker_repr(res.data, pretty=True)}"})
    return Rendered(
        json_text({"results": out, "errors": errors}, pretty=pretty), 0 if not errors else 1
    )


def render_get_instances(response: ev.GetInstancesResponse, *, pretty: bool) -> Rendered:
    """``get-instances`` (§7.7): ``{name: {host?, port?}}``; bad entries only log."""
    res = response.result
    if not res.success:
        return _error(res.error if res.error else "no reason given")
    if res.data is None:
        return _error("received result did not contain instance data: " + describe_event(response))
    out: dict[str, Any] = {}
    diags: tuple[Log, ...] = ()
    try:
        items = decode_instances(res.data)
    except DecodeError as exc:
        diags = (Log(Level.ERROR, f"instance data invalid: {exc}"),)
    else:
        for inst in items:
            entry = _instance_json(inst)
            entry.pop("name")
            out[inst.name] = entry
    return Rendered(json_text(out, pretty=pretty), 0, diags)


def decode_instances(data: BrokerValue) -> list[Instance]:
    """``get_instances`` data: a vector of Instance records, sorted by name.

    Raises:
        DecodeError: not a vector of instances.
    """
    if not isinstance(data, (tuple, BrokerSet)):
        raise DecodeError("data", "expected a vector of Instance records")
    return sorted(
        (Instance.from_value(v, f"data[{i}]") for i, v in enumerate(data)), key=lambda i: i.name
    )


def decode_node_statuses(data: BrokerValue) -> list[NodeStatus]:
    """A ``NodeStatusVec``, sorted by node name.

    Raises:
        DecodeError: not a vector of NodeStatus records.
    """
    if not isinstance(data, (tuple, BrokerSet)):
        raise DecodeError("data", "expected a vector of NodeStatus records")
    return sorted(
        (NodeStatus.from_value(v, f"data[{i}]") for i, v in enumerate(data)),
        key=lambda s: s.node,
    )


@dataclass(frozen=True, slots=True)
class InstanceNodes:
    """One result of a get-nodes answer, decoded.

    Attributes:
        instance: the instance that answered (``None``: the controller itself).
        statuses: its nodes, sorted by name; empty when ``failed`` or ``invalid``.
        failed: the result is an error, ``error`` says why (as received, so possibly
            ``None``); zeek-client lists it under ``errors``.
        invalid: the data did not decode; zeek-client logs it and shows the instance
            without nodes.
    """

    instance: str | None
    statuses: tuple[NodeStatus, ...] = ()
    failed: bool = False
    error: str | None = None
    invalid: str | None = None


def decode_get_nodes(results: Sequence[Result]) -> list[InstanceNodes]:
    """A get-nodes answer in zeek-client's order, each result's node statuses decoded
    (one bad row drops all of that instance's rows, as in zeek-client)."""
    out: list[InstanceNodes] = []
    for res in sorted_results(results):
        if not res.success:
            out.append(InstanceNodes(res.instance, failed=True, error=res.error))
        elif res.data is None:
            no_data = "result does not contain node status data"
            out.append(InstanceNodes(res.instance, failed=True, error=no_data))
        else:
            try:
                statuses = tuple(decode_node_statuses(res.data))
            except DecodeError as exc:
                out.append(InstanceNodes(res.instance, invalid=f"NodeStatus data invalid: {exc}"))
            else:
                out.append(InstanceNodes(res.instance, statuses))
    return out


def render_get_nodes(results: Sequence[Result], *, pretty: bool) -> Rendered:
    """``get-nodes`` (§7.8): ``{instance: {node: {state, mgmt_role, cluster_role, pid?,
    port?, metrics_port?}}}``; exit 1 if any result is an error."""
    errors: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    diags: list[Log] = []
    for answer in decode_get_nodes(results):
        if answer.failed:
            errors.append({"source": answer.instance, "error": answer.error})
            continue
        nodes: dict[str, Any] = {}
        out[str(answer.instance)] = nodes
        if answer.invalid is not None:
            diags.append(Log(Level.ERROR, answer.invalid))
        for st in answer.statuses:
            row: dict[str, Any] = {
                "state": st.state.name,
                "mgmt_role": None if st.mgmt_role is Role.NONE else st.mgmt_role.name,
                "cluster_role": None
                if st.cluster_role is ClusterRole.NONE
                else st.cluster_role.name,
            }
            if st.pid is not None:
                row["pid"] = st.pid
            if st.p is not None:
                row["port"] = st.p.number
            if st.metrics_port is not None:
                row["metrics_port"] = st.metrics_port.number
            nodes[st.node] = row
    return Rendered(
        json_text({"results": out, "errors": errors}, pretty=pretty),
        0 if not errors else 1,
        tuple(diags),
    )


def render_restart(results: Sequence[Result], *, pretty: bool) -> Rendered:
    """``restart`` (§7.9): agent-reported failures are ``false`` entries, not errors."""
    errors: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    for res in sorted_results(results):
        if not res.success and res.instance is None:
            errors.append({"source": res.node, "error": res.error})
            continue
        if res.node:
            out[res.node] = res.success
            continue
        # zeek-client prints its Result object's default repr (with a memory address).
        errors.append({"error": f"result lacking node: {res!r}"})
    return Rendered(
        json_text({"results": out, "errors": errors}, pretty=pretty), 0 if not errors else 1
    )


def render_test_timeout(result: Result, *, pretty: bool) -> Rendered:
    """``test-timeout``: always exit 0 once a response arrived."""
    return Rendered(json_text({"success": result.success, "error": result.error}, pretty=pretty), 0)
