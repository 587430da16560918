"""zeekctl's worker keys in a cluster configuration: ``lb_procs`` expands a worker.

Rules / theory of operation
---------------------------
zeek-client sends the nodes it parses, one per section, and ignores keys it does not
know. ``zeek-mgmt stage-config``/``deploy-config`` first rewrite the parsed ``.ini`` the
way zeekctl reads its ``node.cfg`` (``ZeekControl/config.py`` and its af_packet plugin),
so that the controller stores and deploys the expanded nodes:

* a worker section with ``lb_procs = N`` becomes N sections ``<section>-1`` ...
  ``<section>-N`` (zeekctl's names) with the section's other keys;
* ``lb_method`` (required with ``lb_procs``): ``af_packet`` (the interface becomes
  ``af_packet::<interface>``), ``custom`` (the interface as given) or ``interfaces``
  (``lb_interfaces``, one comma-separated interface per process, in order);
* ``pin_cpus``: a comma-separated CPU list, repeated when shorter than N; process *i*
  gets ``cpu_affinity`` = the *i*-th entry (without ``lb_procs``: the first);
* ``af_packet_<key>`` for zeekctl's af_packet keys (:data:`AF_PACKET_KEYS`): a Zeek
  expression that becomes ``redef AF_Packet::<key> = <value>;`` on each of the
  section's nodes, carried as ``ZEEK_MGMT_REDEF_AF_Packet::<key>`` in the node's ``env``
  (see :mod:`mgmt.core.noderedefs`), so it survives ``get-config`` and a re-stage.

Every error names the section, like the parser's other node errors. Where zeekctl
assigns ``lb_interfaces`` from the end of the list, process *i* gets the *i*-th here.
The ``[DEFAULT]`` section is folded into the sections (values interpolated) when a
configuration is rewritten.

Pure: works on a parsed :class:`configparser.ConfigParser`.
"""

from __future__ import annotations

import configparser
import shlex

from mgmt.core.noderedefs import PREFIX as REDEF_PREFIX

#: zeekctl's af_packet plugin keys (in node.cfg prefixed ``af_packet_``).
AF_PACKET_KEYS = (
    "block_size",
    "block_timeout",
    "buffer_size",
    "checksum_validation_mode",
    "enable_defrag",
    "enable_fanout",
    "enable_hw_timestamping",
    "fanout_id",
    "fanout_mode",
    "link_type",
)
#: The load-balancing keys of zeekctl's node.cfg.
LB_KEYS = ("lb_procs", "lb_method", "lb_interfaces", "pin_cpus")
#: Every key this module consumes.
WORKER_KEYS = frozenset(LB_KEYS) | {f"af_packet_{k}" for k in AF_PACKET_KEYS}
#: The ``lb_method`` values zeek-mgmt implements.
LB_METHODS = ("af_packet", "custom", "interfaces")


class ExpansionError(ValueError):
    """A section's worker keys are invalid (the message names the section)."""


def _fail(section: str, text: str) -> ExpansionError:
    return ExpansionError(f'invalid node "{section}" configuration: {text}')


def expand_workers(cfp: configparser.ConfigParser) -> configparser.ConfigParser:
    """The configuration with zeekctl's worker keys applied (see the module docstring).

    Returns ``cfp`` itself when no section uses them; otherwise a new parser without
    interpolation whose sections hold their effective values.

    Raises:
        ExpansionError: a section's keys are invalid.
        configparser.Error: a value's ``%`` interpolation is broken.
    """
    if not any(WORKER_KEYS & set(cfp[s].keys()) for s in cfp.sections() if s != "instances"):
        return cfp
    out = configparser.ConfigParser(allow_no_value=True, interpolation=None)
    taken = set(cfp.sections())
    for section in cfp.sections():
        values = dict(cfp.items(section))
        if section == "instances" or not WORKER_KEYS & set(values):
            out[section] = values
            continue
        for name, node in _expand(section, values):
            if name != section and name in taken:
                raise _fail(section, f'expanded node name "{name}" is already a section')
            taken.add(name)
            out[name] = node
    return out


def _expand(section: str, values: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    role = (values.get("role") or values.get("type") or "").split("::")[-1].lower()
    if role != "worker":
        raise _fail(section, "load balancing node config options are only for worker nodes")
    base = {k: v for k, v in values.items() if k not in WORKER_KEYS}
    _add_redefs(section, base, values)
    procs_text = values.get("lb_procs")
    if not procs_text:
        if values.get("lb_method"):
            raise _fail(section, "number of load-balanced processes not specified")
        cpus = _pin_cpus(section, values, 1)
        if cpus:
            base["cpu_affinity"] = str(cpus[0])
        return [(section, base)]
    try:
        procs = int(procs_text)
    except ValueError:
        raise _fail(section, "number of load-balanced processes must be an integer") from None
    if procs < 1:
        raise _fail(section, "number of load-balanced processes must be greater than zero")
    if values.get("port"):
        raise _fail(section, "port cannot be set with lb_procs (each process would need it)")
    cpus = _pin_cpus(section, values, procs)
    interfaces = _interfaces(section, values, procs)
    nodes = []
    for i in range(procs):
        node = dict(base)
        if cpus:
            node["cpu_affinity"] = str(cpus[i])
        if (interface := interfaces[i]) is not None:
            node["interface"] = interface
        nodes.append((f"{section}-{i + 1}", node))
    return nodes


def _pin_cpus(section: str, values: dict[str, str], procs: int) -> list[int]:
    text = values.get("pin_cpus")
    if not text:
        return []
    if values.get("cpu_affinity"):
        raise _fail(section, "set either cpu_affinity or pin_cpus, not both")
    try:
        cpus = [int(x) for x in text.split(",")]
        if min(cpus) < 0:
            raise ValueError(text)
    except ValueError:
        raise _fail(section, "pin cpus list must contain only non-negative integers") from None
    return [cpus[i % len(cpus)] for i in range(max(procs, len(cpus)))]


def _interfaces(section: str, values: dict[str, str], procs: int) -> list[str | None]:
    method = values.get("lb_method")
    interface = values.get("interface") or None
    if not method:
        raise _fail(section, "no load balancing method given")
    if method not in LB_METHODS:
        raise _fail(
            section,
            f"unknown load balancing method '{method}' (zeek-mgmt knows: {', '.join(LB_METHODS)})",
        )
    if method == "interfaces":
        listed = [x.strip() for x in (values.get("lb_interfaces") or "").split(",") if x.strip()]
        if not listed:
            raise _fail(section, "list of load-balanced interfaces not specified")
        if len(listed) != procs:
            raise _fail(
                section,
                "number of load-balanced interfaces is not same as number of "
                "load-balanced processes",
            )
        return list(listed)
    if method == "af_packet":
        if interface is None:
            raise _fail(section, "lb_method af_packet needs an interface")
        if interface.startswith("af_packet::"):
            raise _fail(section, f"unexpected af_packet:: prefix for interface {interface}")
        interface = f"af_packet::{interface}"
    return [interface] * procs


def _add_redefs(section: str, node: dict[str, str], values: dict[str, str]) -> None:
    items = [
        f"{REDEF_PREFIX}AF_Packet::{key}={value.strip()}"
        for key in AF_PACKET_KEYS
        if (value := values.get(f"af_packet_{key}")) and value.strip()
    ]
    if not items:
        return
    for item in items:
        if any(c in item for c in "\n\r;"):
            raise _fail(section, f"{item.split('=')[0]} is not a single Zeek expression")
    env = node.get("env") or ""
    node["env"] = " ".join([env, *(shlex.quote(i) for i in items)]).strip()
