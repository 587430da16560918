"""The controller's persisted configurations: staged, ready, deployed (``g_configs``).

Rules / theory of operation
---------------------------
Nothing is acknowledged that was not persisted. A change of the slots (a stage, a
completed deploy) is *tentative*: :meth:`Configs.persist` emits
:class:`~mgmt.controller.actions.Persist` with the new slots and keeps a continuation.
The service writes them and reports the outcome through
:meth:`~mgmt.controller.state.ControllerState.persisted` before it hands the machine any
other input; only when the write succeeded do the slots change, and the continuation
then answers the request (success, or ``could not persist configuration: <reason>``,
:data:`PERSIST_FAILED`, with the previous slots kept in memory as on disk).

:class:`Configs` also answers the requests that only read or stage a configuration
(``stage_configuration_request``, ``get_configuration_request``).

This module is pure: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Callable

from mgmt.broker import events as ev
from mgmt.broker.records import Configuration, Result
from mgmt.controller.actions import Outbox, Persist
from mgmt.core.frozen import frozen
from mgmt.core.logaction import Level
from mgmt.core.peertext import peer_text
from mgmt.exceptions import InvalidState

#: The error of a request whose change could not be written (followed by the reason).
PERSIST_FAILED = "could not persist configuration"

#: The three persisted slots: staged, ready, deployed.
Slots = tuple[Configuration | None, Configuration | None, Configuration | None]
#: Continues a request once its write is done: gets ``None`` (written) or the reason,
#: and ``now``.
Then = Callable[[str | None, float], None]


@frozen
class _Write:
    """A :class:`Persist` whose outcome is not reported yet."""

    slots: Slots
    then: Then


class Configs:
    """The three slots and the one write that may be in flight.

    Args:
        out: where the actions go.
        slots: staged, ready and deployed configurations restored from disk.
    """

    def __init__(self, out: Outbox, slots: Slots) -> None:
        self._out = out
        self.staged, self.ready, self.deployed = slots
        self._write: _Write | None = None

    def slots(self) -> Slots:
        """The slots as they are (in memory as on disk)."""
        return (self.staged, self.ready, self.deployed)

    def persist(self, slots: Slots, then: Then) -> None:
        """Ask for ``slots`` to be written; ``then`` continues once :meth:`persisted` says
        how it went (the slots are adopted first if it worked).

        Raises:
            InvalidState: an earlier write is still waiting for :meth:`persisted`.
        """
        if self._write is not None:
            raise InvalidState("a Persist is still waiting for persisted()")
        self._write = _Write(slots, then)
        self._out.emit(Persist(*slots))

    def persisted(self, error: str | None, now: float) -> None:
        """The outcome of the last :class:`Persist`: ``None`` when it was written, else
        why not (e.g. ``<file>: cannot write: No space left on device``)."""
        write, self._write = self._write, None
        if write is None:
            self._out.log(Level.WARNING, "persisted() without a pending Persist; ignored")
            return
        if error is None:
            self.staged, self.ready, self.deployed = write.slots
        write.then(error, now)

    # -- the configuration requests ----------------------------------------------------

    def stage(self, reqid: str, config: Configuration, ready: Configuration) -> None:
        """Stage ``config`` (valid) as it is, with ``ready`` (ports and hosts filled in)
        as the one to deploy; answered once written."""

        def staged(error: str | None, _now: float) -> None:
            if error is None:
                result = Result(reqid, True, data=config.id)
            else:
                self._out.log(
                    Level.INFO, f"configuration {peer_text(config.id)} not staged: {error}"
                )
                result = Result(reqid, False, error=f"{PERSIST_FAILED}: {error}")
            self._out.publish(ev.StageConfigurationResponse(reqid, (result,)))

        self.persist((config, ready, self.deployed), staged)

    def get(self, reqid: str, deployed: bool) -> None:
        """Answer a ``get_configuration_request``."""
        self._out.log(
            Level.INFO, f"rx get_configuration_request {peer_text(reqid)} deployed={deployed}"
        )
        config = self.deployed if deployed else self.staged
        if config is None:
            which = "deployed" if deployed else "staged"
            result = Result(reqid, False, error=f"no {which} configuration available")
        else:
            result = Result(reqid, True, data=config)
        self._out.publish(ev.GetConfigurationResponse(reqid, result))
