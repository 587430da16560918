"""The controller's view of its agents: wanted, connected, ready (behaviour.md §4).

Rules / theory of operation
---------------------------
:class:`Instances` keeps three of Zeek's controller globals (``controller/main.zeek``):

* ``instances`` (``g_instances``): the instances the current deployment needs;
* ``known`` (``g_instances_known``): every agent that said hello and is still connected;
* ``ready`` (``g_instances_ready``): instances in ``instances`` that accepted our welcome.

An instance the deployment needs is welcomed once it is known; when every needed instance
is ready, the owner learns it (``all_ready``), as Zeek raises ``notify_agents_ready``. An
instance the deployment no longer needs is told to stand by. Instances that listen
(``Instance.listen_port`` set) are dialed for as long as the deployment needs them.

It emits :mod:`mgmt.controller.actions` through ``emit`` and asks its owner, the
:class:`~mgmt.controller.state.ControllerState`, to ``welcome`` an instance (a request
with a deadline, which the owner keeps). This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import replace

from mgmt.broker import events as ev
from mgmt.broker.data import Port
from mgmt.broker.records import Instance, Result
from mgmt.controller.actions import Action, Dial, SendToAgent, StopDialing
from mgmt.core.logaction import Level, Log
from mgmt.core.peertext import peer_text
from mgmt.core.requests import API_VERSION

#: The address of an instance whose address is not known (it dials us).
UNSPECIFIED = ipaddress.IPv4Address("0.0.0.0")


class Instances:
    """The agents as the controller sees them (see the module docstring).

    Args:
        emit: queues an action of the controller.
        welcome: sends an ``agent_welcome_request`` to an instance (the owner keeps the
            request and reports the answer with :meth:`welcomed`).
        all_ready: called with the ready instances when every needed one is ready.
    """

    def __init__(
        self,
        emit: Callable[[Action], None],
        welcome: Callable[[str, float], None],
        all_ready: Callable[[frozenset[str]], None],
    ) -> None:
        self.instances: dict[str, Instance] = {}
        self.known: dict[str, Instance] = {}
        self.ready: set[str] = set()
        self._emit = emit
        self._welcome = welcome
        self._all_ready = all_ready

    def _log(self, level: Level, message: str) -> None:
        self._emit(Log(level, message))

    # -- the deployment's instances ----------------------------------------------------

    def deploy(self, wanted: Mapping[str, Instance], now: float) -> None:
        """Make ``wanted`` the needed instances: drop the others, add the new ones."""
        current = set(self.instances)
        to_drop = current - set(wanted)
        to_add = set(wanted) - current
        for name in sorted(current & set(wanted)):
            if self._connectivity_changed(wanted[name]):
                # Zeek drops such an instance and forgets to re-add it (Q5); we re-add.
                to_drop.add(name)
                to_add.add(name)
        for name in sorted(to_drop):
            self.drop(name)
        for name in sorted(to_add):
            self._add(wanted[name], now)

    def _connectivity_changed(self, new: Instance) -> bool:
        old = self.instances.get(new.name)
        if old is None:
            return False
        if new.host != UNSPECIFIED and new.host != old.host:
            return True
        return new.listen_port != old.listen_port

    def _add(self, inst: Instance, now: float) -> None:
        self.instances[inst.name] = inst
        if inst.listen_port is not None:
            self._emit(Dial(inst.name, str(inst.host), inst.listen_port.number))
        seen = self.known.get(inst.name)
        if seen is None:
            self._log(Level.DEBUG, f"instance {peer_text(inst.name)} not known to us, skipping")
            return
        if inst.listen_port is None:
            self.instances[inst.name] = replace(inst, host=seen.host)
        self._welcome(inst.name, now)

    def drop(self, name: str) -> None:
        """The deployment no longer needs instance ``name``: it stands by."""
        inst = self.instances.pop(name, None)
        if inst is None:
            return
        self.ready.discard(name)
        self._emit(SendToAgent(name, ev.AgentStandbyRequest("")))
        if inst.listen_port is not None:
            self._emit(StopDialing(name))
        self._log(Level.INFO, f"dropped instance {peer_text(name)}")

    def check_ready(self) -> None:
        """Tell the owner if every needed instance is ready (``notify_agents_ready``)."""
        if set(self.instances) == self.ready:
            self._all_ready(frozenset(self.ready))

    # -- agents coming and going ---------------------------------------------------------

    def hello(self, hello: ev.NotifyAgentHello, host: str, port: int | None, now: float) -> bool:
        """An agent announced itself on a connection from/to ``host`` (``port``: its
        listening port when we dialed it). Returns whether the hello was accepted."""
        name = hello.instance
        self._log(
            Level.INFO,
            f"rx notify_agent_hello {peer_text(name)} {peer_text(hello.id)} {hello.connecting}",
        )
        if hello.api_version != API_VERSION:
            self._log(
                Level.WARNING,
                f"instance {peer_text(name)}/{peer_text(hello.id)} has checked in with "
                f"incompatible API version {hello.api_version}",
            )
            self.drop(name)
            self.known.pop(name, None)
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            addr = UNSPECIFIED
        listen = Port(port) if port is not None else None
        self.known[name] = Instance(name, addr, listen)
        if name in self.instances and name not in self.ready:
            inst = self.instances[name]
            if inst.listen_port is None and addr != UNSPECIFIED:
                self.instances[name] = replace(inst, host=addr)
            self._welcome(name, now)
        return True

    def lost(self, name: str) -> None:
        """The connection bound to instance ``name`` is gone (``Broker::peer_lost``)."""
        if name in self.known:
            self.known.pop(name, None)
            self.ready.discard(name)
            self._log(Level.INFO, f"dropped state for instance {peer_text(name)}")

    def welcomed(self, name: str, result: Result) -> None:
        """The answer to a welcome sent to the agent bound to ``name``."""
        instance = result.instance or name
        if not result.success or instance not in self.instances:
            self._emit(SendToAgent(name, ev.AgentStandbyRequest("")))
            return
        self.ready.add(instance)
        self._log(Level.INFO, f"instance {peer_text(instance)} ready")
        self.check_ready()
