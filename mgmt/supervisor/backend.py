"""The OS seam of the supervisor: every system call on node processes goes through here.

:class:`Backend` is the interface the driver uses; :class:`OsBackend` implements it with
``subprocess`` (for our own children) and ``psutil`` (for adopted processes). Tests of the
driver can substitute a fake with the same methods.

How a node is spawned (DESIGN.md, "Nodes without Zeek's Supervisor"; behaviour.md §8.1):

1. The node directory ``spec.cwd`` is created if missing.
2. ``stdout`` and ``stderr`` in it are opened with create + truncate + append, and handed
   to the child as its fds 1 and 2: the node writes them itself, there are no pipes, so
   output survives a supervisor restart.
3. The stale ``.status`` file is removed, so that readiness can only come from this run.
4. The executable is run through a per-node symlink ``<bin_dir>/zeek.<node>`` pointing at
   the real one. The kernel takes a process's name (``comm``, 15 characters) from the
   file name given to ``execve``, so ``ps c`` shows ``zeek.<node>`` like under Zeek's
   Supervisor, without ``prctl``. (For ``#!`` scripts the kernel keeps the script's name,
   so the test doubles get the same name.) ``argv`` is passed unchanged, as a list.
5. The child gets its own session (so a Ctrl-C on the agent's terminal does not reach
   the nodes, which must survive an agent restart), stdin from ``/dev/null``, exactly
   ``spec.env``, and, if ``spec.cpu_affinity`` is set, is pinned to that CPU before
   ``exec`` (Zeek reports a pinning failure on stderr and carries on; so do we).

Reaping: only our own children, one ``Popen.poll()`` per handle, never ``waitpid(-1)``
(asyncio's child watcher may own other children). Adopted processes are not our
children; their exit is detected with psutil (gone, or a zombie), and they are signalled
through psutil, which refuses to signal a pid that now belongs to another process.

One-shot commands (the agent's log archiver through :meth:`OsBackend.run_command`; the
``notify_cmd`` hook and ``zeek --version`` through :func:`run_command`): the command runs
in its own process group with stdin from ``/dev/null``, its stdout and stderr read
through one pipe of which only the last ``output_limit`` bytes are kept. At the time
limit, or when the awaiting task is cancelled, the whole group is killed (SIGKILL), so
children it started (e.g. ``gzip``) do not linger.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import signal as signals
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from mgmt.core.frozen import frozen
from mgmt.exceptions import SpawnError
from mgmt.supervisor.nodefiles import STATUS_FILE, STDERR_FILE, STDOUT_FILE, read_status
from mgmt.supervisor.policy import ExitStatus, NodeSpec

logger = logging.getLogger("mgmt.supervisor")

#: How far a stored process start time may drift from psutil's (seconds). psutil derives
#: it from the boot time, which the kernel recomputes when the wall clock is stepped, so
#: two readings in different processes may differ slightly. A reused pid would have to
#: start within this window of the original to be mistaken for it.
CREATE_TIME_TOLERANCE = 1.0


def process_name(node: str) -> str:
    """The kernel name (``comm``) a node's process gets: ``zeek.<node>``, cut to 15."""
    return f"zeek.{node}"[:15]


class Handle:
    """A supervised process, as returned by :meth:`Backend.spawn` or :meth:`Backend.adopt`.

    Attributes:
        pid: the process id.
        create_time: its start time (seconds since the epoch, psutil's ``create_time()``).
        cwd: the node directory (where ``.status`` is).
        adopted: ``True`` if the process is not our child (exit codes are then unknown).
        native: backend-specific state (a ``Popen`` or a ``psutil.Process``).
    """

    __slots__ = ("pid", "create_time", "cwd", "adopted", "native")

    def __init__(self, pid: int, create_time: float, cwd: str, adopted: bool, native: Any):
        self.pid = pid
        self.create_time = create_time
        self.cwd = cwd
        self.adopted = adopted
        self.native = native

    def __repr__(self) -> str:
        kind = "adopted" if self.adopted else "child"
        return f"<Handle pid={self.pid} {kind}>"


class Backend(Protocol):
    """What the supervisor driver needs from the OS. All methods are synchronous and fast."""

    def spawn(self, spec: NodeSpec) -> Handle:
        """Start a process for ``spec`` (see the module docstring).

        Raises:
            SpawnError: the process could not be started; the reason is also written to
                the node's ``stderr`` file when that file could be opened.
        """
        ...

    def adopt(self, pid: int, create_time: float, cwd: str) -> Handle | None:
        """A handle on a live process started earlier, or ``None`` if ``pid`` is gone,
        a zombie, or now another process (its start time differs)."""
        ...

    def signal(self, handle: Handle, sig: int) -> None:
        """Send ``sig`` to the process. A process that is already gone is ignored."""
        ...

    def poll(self, handle: Handle) -> ExitStatus | None:
        """``None`` while the process runs, else how it ended (reaping our own child)."""
        ...

    def is_ready(self, handle: Handle) -> bool:
        """Whether the first line of the node's ``.status`` file starts with ``RUNNING``."""
        ...

    def release(self, handle: Handle) -> None:
        """Stop supervising the process but leave it running (for adoption later)."""
        ...

    def describe(self, handle: Handle) -> str:
        """A short text for logs, e.g. ``pid 1234``."""
        ...


@frozen
class CommandResult:
    """How a one-shot command ended (see :meth:`CommandRunner.run_command`).

    Attributes:
        status: its exit status (negative: killed by that signal); ``None`` when it did
            not finish: it could not start, or it was killed at the time limit.
        output: the end of what it wrote to stdout and stderr (at most the limit asked for,
            after ``...`` when more was written), or why it could not start.
        timed_out: it was killed at the time limit.
    """

    status: int | None
    output: str = ""
    timed_out: bool = False


class CommandRunner(Protocol):
    """Runs one-shot commands (the agent's archiver): the other half of the OS seam."""

    async def run_command(
        self,
        argv: Sequence[str],
        *,
        time_limit: float,
        output_limit: int,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run ``argv`` (executed directly) in its own process group and wait for it, at
        most ``time_limit`` seconds, keeping the last ``output_limit`` bytes of its output.
        ``env`` (the whole environment) and ``cwd`` default to the caller's.

        At the limit, and when the caller is cancelled (then re-raising), the whole group
        is killed.
        """
        ...


async def run_command(
    argv: Sequence[str],
    *,
    time_limit: float | None,
    output_limit: int,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> CommandResult:
    """Run a one-shot command as :meth:`CommandRunner.run_command` says (``time_limit``
    ``None``: no limit), with ``env`` as its whole environment if given (else ours), in
    ``cwd`` if given."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(None, _strerror(exc))
    except ValueError as exc:  # what execve cannot take, e.g. a NUL byte in an argument
        return CommandResult(None, str(exc))
    tail, cut = bytearray(), False
    try:
        async with asyncio.timeout(time_limit):
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(65536):
                tail += chunk
                if len(tail) > output_limit:
                    del tail[:-output_limit]
                    cut = True
            status = await proc.wait()
    except TimeoutError:
        await _kill_group(proc)
        return CommandResult(None, _text(tail, cut), timed_out=True)
    except asyncio.CancelledError:
        await _kill_group(proc)
        raise
    return CommandResult(status, _text(tail, cut))


# Children we released while they ran (``close(keep_nodes=True)``). Keeping the Popen
# objects stops subprocess from warning about a running child and from reaping it behind
# our back; if a later supervisor in this same process adopts the pid, it can still reap
# its zombie through here (it is our child after all).
_released: dict[int, subprocess.Popen[bytes]] = {}


class OsBackend:
    """The real :class:`Backend` over ``subprocess`` and ``psutil`` (Linux/BSD).

    Args:
        bin_dir: where the per-node ``zeek.<node>`` symlinks live (created on demand),
            e.g. ``<state>/nodes/.bin``.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = Path(bin_dir)

    # --- spawn ------------------------------------------------------------------------

    def spawn(self, spec: NodeSpec) -> Handle:
        """See :meth:`Backend.spawn`."""
        cwd = Path(spec.cwd)
        try:
            cwd.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpawnError(spec.name, f"cannot create directory {cwd}: {_strerror(exc)}") from exc
        except ValueError as exc:  # a NUL byte or invalid Unicode in the path
            raise SpawnError(spec.name, f"cannot create directory {str(cwd)!r}: {exc}") from exc
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        fds: list[int] = []
        try:
            try:
                fds.append(os.open(cwd / STDOUT_FILE, flags, 0o644))
                fds.append(os.open(cwd / STDERR_FILE, flags, 0o644))
            except OSError as exc:
                raise SpawnError(
                    spec.name, f"cannot create output file in {cwd}: {_strerror(exc)}"
                ) from exc
            try:
                try:
                    return self._spawn(spec, cwd, fds[0], fds[1])
                except ValueError as exc:  # e.g. a NUL byte in the symlink's name
                    raise SpawnError(spec.name, f"cannot start: {exc}") from exc
            except SpawnError as exc:
                _write_quietly(fds[1], f"cannot start node {spec.name}: {exc.reason}\n")
                raise
        finally:
            for fd in fds:
                os.close(fd)

    def _spawn(self, spec: NodeSpec, cwd: Path, out_fd: int, err_fd: int) -> Handle:
        executable = self._resolve(spec)
        link = self._link(spec.name, executable)
        try:
            (cwd / STATUS_FILE).unlink(missing_ok=True)
        except OSError as exc:
            raise SpawnError(
                spec.name, f"cannot remove {cwd / STATUS_FILE}: {_strerror(exc)}"
            ) from exc
        preexec: Callable[[], None] | None = None
        if spec.cpu_affinity is not None:
            preexec = _pin_to(spec.name, spec.cpu_affinity)
        try:
            proc = subprocess.Popen(
                list(spec.argv),
                executable=link,
                cwd=cwd,
                env=dict(spec.env),
                stdin=subprocess.DEVNULL,
                stdout=out_fd,
                stderr=err_fd,
                close_fds=True,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as exc:
            raise SpawnError(spec.name, f"cannot execute {executable}: {_strerror(exc)}") from exc
        except (subprocess.SubprocessError, ValueError, TypeError) as exc:
            # ValueError: what execve cannot take, e.g. a NUL byte in an argument or
            # environment variable, '=' in a variable name, invalid Unicode.
            raise SpawnError(spec.name, f"cannot execute {executable}: {exc}") from exc
        import psutil  # on first use, not at start-up (~4 % of a daemon's imports)

        try:
            create_time = float(psutil.Process(proc.pid).create_time())
        except psutil.Error:
            # Exited and reaped within microseconds? Not by us (we have not polled), so
            # the zombie exists; this is only a belt-and-braces fallback.
            create_time = 0.0
        logger.debug("[%s] + pid %d: %s", spec.name, proc.pid, " ".join(spec.argv))
        return Handle(proc.pid, create_time, str(cwd), adopted=False, native=proc)

    def _resolve(self, spec: NodeSpec) -> str:
        """The absolute path of the executable named by ``argv[0]``."""
        program = spec.argv[0]
        if "/" in program:
            path = os.path.abspath(program)
        else:
            found = shutil.which(program, path=spec.env.get("PATH", os.defpath))
            if found is None:
                raise SpawnError(spec.name, f"executable not found on PATH: {program}")
            path = os.path.abspath(found)
        if not os.path.isfile(path):
            raise SpawnError(spec.name, f"no such executable: {path}")
        if not os.access(path, os.X_OK):
            raise SpawnError(spec.name, f"not executable: {path}")
        return path

    def _link(self, name: str, executable: str) -> str:
        """Point ``<bin_dir>/zeek.<name>`` at ``executable`` (atomically replaced)."""
        link = self.bin_dir / f"zeek.{name}"
        try:
            if os.readlink(link) == executable:
                return str(link)
        except OSError:
            pass
        tmp = self.bin_dir / f".zeek.{name}.{os.getpid()}.tmp"
        try:
            self.bin_dir.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            os.symlink(executable, tmp)
            os.replace(tmp, link)
        except OSError as exc:
            raise SpawnError(name, f"cannot create {link}: {_strerror(exc)}") from exc
        return str(link)

    # --- adopt ------------------------------------------------------------------------

    def adopt(self, pid: int, create_time: float, cwd: str) -> Handle | None:
        """See :meth:`Backend.adopt`."""
        import psutil

        try:
            proc = psutil.Process(pid)
            actual = float(proc.create_time())
            if abs(actual - create_time) > CREATE_TIME_TOLERANCE:
                logger.info(
                    "pid %d started at %.2f, not %.2f: a different process",
                    pid,
                    actual,
                    create_time,
                )
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return Handle(pid, actual, cwd, adopted=True, native=proc)

    # --- signal, poll -----------------------------------------------------------------

    def signal(self, handle: Handle, sig: int) -> None:
        """See :meth:`Backend.signal`."""
        native = handle.native
        if isinstance(native, subprocess.Popen):
            # Popen.send_signal polls first and does nothing once the child is reaped,
            # so a reaped pid is never signalled.
            try:
                native.send_signal(sig)
            except ProcessLookupError:
                pass
            return
        import psutil  # imported already: native is a psutil.Process

        try:
            # psutil checks the start time first and raises NoSuchProcess for a reused pid.
            native.send_signal(sig)
        except psutil.Error as exc:
            logger.debug("signal %d to pid %d not sent: %s", sig, handle.pid, exc)

    def poll(self, handle: Handle) -> ExitStatus | None:
        """See :meth:`Backend.poll`."""
        native = handle.native
        if isinstance(native, subprocess.Popen):
            returncode = native.poll()
            return None if returncode is None else ExitStatus.from_returncode(returncode)
        import psutil  # imported already: native is a psutil.Process

        try:
            if native.is_running() and native.status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            pass
        # Gone, or a zombie waiting for its parent. If that parent is us (released by an
        # earlier supervisor in this process), reap it and learn the real status.
        child = _released.get(handle.pid)
        if child is not None:
            returncode = child.poll()
            if returncode is not None:
                del _released[handle.pid]
                return ExitStatus.from_returncode(returncode)
        return ExitStatus()

    def is_ready(self, handle: Handle) -> bool:
        """See :meth:`Backend.is_ready`."""
        return read_status(handle.cwd).startswith("RUNNING")

    def release(self, handle: Handle) -> None:
        """See :meth:`Backend.release`."""
        if isinstance(handle.native, subprocess.Popen) and handle.native.returncode is None:
            _released[handle.pid] = handle.native

    def exit_fd(self, handle: Handle) -> int | None:
        """A pidfd that becomes readable when the process exits (Linux >= 5.3), owned by
        the caller; ``None`` where pidfds are unavailable (then the driver polls).

        Optional for backends: the driver uses it when present.
        """
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return None
        try:
            fd: int = pidfd_open(handle.pid)
        except OSError as exc:
            # ESRCH: already gone (and reaped); the next poll sees it.
            logger.debug("pidfd_open(%d): %s", handle.pid, exc)
            return None
        return fd

    def describe(self, handle: Handle) -> str:
        """See :meth:`Backend.describe`."""
        return f"pid {handle.pid}" + (" (adopted)" if handle.adopted else "")

    # --- one-shot commands ------------------------------------------------------------

    #: See :meth:`CommandRunner.run_command`: no state of the backend's is involved.
    run_command = staticmethod(run_command)


# --------------------------------------------------------------------------------------
# Helpers


def _text(output: bytearray, cut: bool) -> str:
    """Output as text; ``...`` in front when its beginning was dropped."""
    text = bytes(output).decode("utf-8", "replace").strip()
    return f"...{text}" if cut else text


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL a child started in its own session, and its whole process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signals.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await asyncio.shield(proc.wait())


def _strerror(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


def _write_quietly(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode("utf-8", "replace"))
    except OSError as exc:
        logger.warning("cannot write to a node's stderr file: %s", exc)


def _pin_to(name: str, cpu: int) -> Callable[[], None]:
    """A ``preexec_fn`` pinning the child to ``cpu`` (runs between fork and exec)."""
    message = f"node '{name}' failed to set CPU affinity: ".encode()

    def pin() -> None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError as exc:
            # Zeek's wording (behaviour.md §6.2); fd 2 is already the stderr file.
            os.write(2, message + (exc.strerror or "error").encode() + b"\n")
        except (ValueError, OverflowError) as exc:  # a negative or huge CPU number
            os.write(2, message + str(exc).encode() + b"\n")

    return pin
