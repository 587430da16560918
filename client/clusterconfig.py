"""Cluster configuration files (``.ini``) → :class:`~mgmt.broker.records.Configuration`.

The format and every message are zeek-client 1.5.0's (wire spec §8):

* parsed with :mod:`configparser` (keys case-insensitive, ``=`` or ``:``, full-line ``#``/
  ``;`` comments only, ``[DEFAULT]`` keys inherited by every section, ``%`` interpolation);
* ``[instances]``: ``name`` (the agent dials the controller) or ``name = host:port`` (the
  controller dials the agent; split at the last colon, brackets stripped);
* every other section is a node: ``role`` (alias ``type``) required; ``instance``, ``port``,
  ``metrics_port``, ``cpu_affinity``, ``interface``, ``scripts`` (shell-split, sorted),
  ``env`` (shell-split ``KEY=VALUE`` items) optional; ``state`` and unknown keys ignored
  with a warning (``zeek-mgmt``: unknown keys are an error unless allowed, and zeekctl's
  worker keys are applied first, see :mod:`client.workers`);
* no ``instance`` anywhere and no ``[instances]``: every node runs on
  ``agent-<hostname>``.

Where zeek-client crashes with a traceback (duplicate sections or keys, a host name instead
of an IP address, an unbalanced quote in ``scripts``, a non-numeric instance port), this
parser reports an error instead; every other outcome is the same.

Pure: the caller reads the file and supplies the host name and the configuration id.
"""

from __future__ import annotations

import configparser
import ipaddress
import shlex
from dataclasses import dataclass

from client.workers import WORKER_KEYS, ExpansionError, expand_workers
from mgmt.broker.data import Port
from mgmt.broker.records import ClusterRole, Configuration, Instance, Node
from mgmt.core.logaction import Level, Log

#: Node keys zeek-client understands (``type`` and ``state`` are read but still reported
#: as unexpected, as zeek-client does).
_NODE_KEYS = frozenset(
    {"instance", "role", "scripts", "port", "interface", "cpu_affinity", "env", "metrics_port"}
)

#: Every node key zeek-mgmt knows: zeek-client's, its read-but-reported ``type`` and
#: ``state``, and zeekctl's worker keys (consumed before nodes are built).
_KNOWN_KEYS = _NODE_KEYS | {"type", "state"} | WORKER_KEYS


@dataclass(frozen=True, slots=True)
class ParsedConfig:
    """What :func:`parse_cluster_config` found.

    ``config`` is ``None`` when there is an error; ``diagnostics`` holds the warnings and
    errors in the order zeek-client logs them.
    """

    config: Configuration | None
    diagnostics: tuple[Log, ...]

    @property
    def errors(self) -> tuple[str, ...]:
        """The error messages only."""
        return tuple(d.message for d in self.diagnostics if d.level is Level.ERROR)


class _Invalid(Exception):
    """The configuration is invalid (the message is zeek-client's error)."""


class _NodeError(ValueError):
    """A node section is invalid (message without the ``invalid node`` prefix)."""


def parse_cluster_config(
    text: str,
    *,
    hostname: str,
    config_id: str,
    source: str = "<string>",
    zeekctl_keys: bool = False,
    unknown_keys_ok: bool = True,
) -> ParsedConfig:
    """Parse a cluster configuration.

    Args:
        text: the file's contents.
        hostname: this machine's host name (for ``agent-<hostname>``); empty means
            ``localhost``, as in zeek-client.
        config_id: the id to give the configuration (zeek-client uses ``uuid1()``).
        source: the file name, for configparser's error messages.
        zeekctl_keys: apply zeekctl's worker keys (``lb_procs``, ...; see
            :mod:`client.workers`) first, as ``zeek-mgmt`` does; zeek-client does not.
        unknown_keys_ok: a key nobody knows is a warning, as in zeek-client; ``False``
            makes it an error naming key and section.

    Returns:
        The configuration (or ``None``) and the diagnostics.
    """
    diags: list[Log] = []
    cfp = configparser.ConfigParser(allow_no_value=True)
    try:
        cfp.read_string(text, source=source)
        if not unknown_keys_ok:
            _refuse_unknown_keys(cfp)
        if zeekctl_keys:
            cfp = expand_workers(cfp)
        config = _build(cfp, diags, hostname or "localhost", config_id)
    except configparser.Error as exc:
        # Duplicates, a key before the first section, bad "%" interpolation.
        diags.append(Log(Level.ERROR, str(exc)))
        return ParsedConfig(None, tuple(diags))
    except (_Invalid, ExpansionError) as exc:
        diags.append(Log(Level.ERROR, str(exc)))
        return ParsedConfig(None, tuple(diags))
    return ParsedConfig(config, tuple(diags))


def _refuse_unknown_keys(cfp: configparser.ConfigParser) -> None:
    for section in cfp.sections():
        unknown = sorted(set(cfp[section].keys()) - _KNOWN_KEYS)
        if section != "instances" and unknown:
            raise _Invalid(
                f'invalid node "{section}" configuration: unknown '
                f"key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                "(--allow-unknown-keys ignores them)"
            )


def _build(
    cfp: configparser.ConfigParser, diags: list[Log], hostname: str, config_id: str
) -> Configuration:
    instances: list[Instance] = []
    nodes: list[Node] = []
    instance_free: set[str] = set()
    sections = cfp.sections()

    for section in sections:
        if section == "instances":
            instances.extend(_instance(key, val) for key, val in cfp.items("instances"))
            continue
        # zeek-client also rejects keys without a value here ("config item <s>.<k> needs
        # a value"), but configparser's items() reports them as "", so that never fires.
        if "instance" not in cfp[section]:
            instance_free.add(section)
        try:
            nodes.append(_node(cfp, section, diags, hostname))
        except _NodeError as exc:
            raise _Invalid(f'invalid node "{section}" configuration: {exc}') from None

    if instance_free:
        if len(instance_free) != len(nodes):
            raise _Invalid("either all or no nodes must state instances")
        if "instances" in sections:
            raise _Invalid("omit instances section when skipping instances in node definitions")

    if "instances" not in sections:
        # The instances are implied by the nodes; their agents dial the controller.
        instances = [Instance(name) for name in sorted({n.instance for n in nodes})]

    return Configuration(config_id, tuple(instances), tuple(nodes))


def _instance(key: str, val: str | None) -> Instance:
    if not val:
        return Instance(key)  # host 0.0.0.0, no port: the agent dials the controller
    host, _, port = val.rpartition(":")
    if host == "" or port == "":
        raise _Invalid(f'invalid spec for instance "{key}": "{val}" should be <host>:<port>')
    host, port = host.strip("[] "), port.strip()
    try:
        addr = ipaddress.ip_address(host)
        number = int(port)
        if number < 1:
            raise ValueError(port)
        listen = Port(number)
    except ValueError:
        raise _Invalid(
            f'invalid spec for instance "{key}": "{val}" should be <host>:<port> '
            "with an IP address and a port number"
        ) from None
    return Instance(key, addr, listen)


def _get(cfp: configparser.ConfigParser, section: str, *keys: str) -> str | None:
    for key in keys:
        val = cfp.get(section, key, fallback=None)
        if val is not None:
            return val
    return None


def _get_int(cfp: configparser.ConfigParser, section: str, key: str) -> int | None:
    val = cfp.get(section, key, fallback=None)
    if val is None:
        return None
    try:
        return int(val)
    except ValueError:
        raise _NodeError(f'cannot convert "{section}.{key}" value "{val}" to int') from None


def _role(text: str) -> ClusterRole:
    # Qualified spellings are accepted: "Supervisor::worker", "ClusterRole.WORKER".
    name = text.split("::")[-1].split(".")[-1].upper()
    try:
        return ClusterRole[name]
    except KeyError:
        raise _NodeError(f'role "{text}" is invalid') from None


def _node(cfp: configparser.ConfigParser, section: str, diags: list[Log], hostname: str) -> Node:
    # The order of reads, warnings and checks is zeek-client's (Node.from_config_parser).
    instance = _get(cfp, section, "instance")
    role_text = _get(cfp, section, "role", "type")
    state = _get(cfp, section, "state")
    if state:
        diags.append(
            Log(Level.WARNING, f'ignoring node "{section}" state "{state}" in configuration')
        )
    port = _get_int(cfp, section, "port")
    interface = _get(cfp, section, "interface")
    cpu_affinity = _get_int(cfp, section, "cpu_affinity")
    metrics_port = _get_int(cfp, section, "metrics_port")

    if not instance:
        instance = "agent-" + hostname
    if not role_text:
        raise _NodeError("node requires a role")
    role = _role(role_text)
    if port is not None and not 1 <= port <= 65535:
        raise _NodeError(f"port {port} outside valid range")
    if metrics_port is not None and not 1 <= metrics_port <= 65535:
        # zeek-client names the *port* value here, not the metrics port; kept verbatim.
        raise _NodeError(f"metrics port {port} outside valid range")

    scripts: tuple[str, ...] | None = None
    val = _get(cfp, section, "scripts")
    if val:
        try:
            scripts = tuple(sorted(shlex.split(val)))
        except ValueError:
            raise _NodeError(f'scripts value "{val}" is invalid') from None

    env: dict[str, str] = {}
    val = _get(cfp, section, "env")
    if val:
        try:
            for item in shlex.split(val):
                key, eq, value = item.partition("=")
                if not eq:
                    raise ValueError(item)
                env[key] = value
        except ValueError:
            raise _NodeError(f'env value "{val}" is invalid') from None

    unexpected = set(cfp[section].keys()) - _NODE_KEYS
    if unexpected:
        diags.append(
            Log(Level.WARNING, "ignoring unexpected keys: " + ", ".join(sorted(unexpected)))
        )

    return Node(
        name=section,
        instance=instance,
        role=role,
        p=None if port is None else Port(port),
        scripts=scripts,
        interface=interface,
        cpu_affinity=cpu_affinity,
        env=env,
        metrics_port=None if metrics_port is None else Port(metrics_port),
    )
