"""Process identity helpers for the daemons.

* Kernel process names, so ``ps c``/``pgrep`` see Zeek's tree (``zeek``,
  ``zeek.<controller>``, ``zeek.<agent>``, ``zeek.<node>``). Our own daemons rename
  themselves with ``prctl(PR_SET_NAME)``; zeek nodes get their name from the per-node
  symlink they are executed through (see ``mgmt.supervisor.backend``).
* Command lines (``/proc/<pid>/cmdline``, what ``ps`` without ``c``, ``pgrep -f``,
  ``netstat -p`` and monitoring agents read): :func:`set_process_title` rewrites them
  with ``setproctitle`` to begin with the same Zeek name, followed by the real invocation
  so ``ps`` still shows the settings flags, e.g.
  ``zeek.controller-vm zeek-mgmt controller --state-dir /srv/zeek``. (Under Zeek every
  process shows ``<prefix>/bin/zeek -C -j ...``; the name is what tells them apart.) The
  title's words are separated by NULs, as a real argv: ``psutil.Process.cmdline()``
  lists them and ``psutil.Process.name()`` is the Zeek name.
  ``SPT_NOENV`` is set while the title is set, so ``setproctitle`` leaves the environment
  block alone (``/proc/<pid>/environ`` stays readable); the title is then at most as long
  as the original command line, so trailing words that do not fit are left out (the
  name always stays). ``zeek-mgmt run`` forks its children without ``exec``, so they
  share its command line's room: :func:`make_title_room` lets their titles move to
  memory of their own (``prctl(PR_SET_MM_MAP)``, which points the kernel's command line
  at a buffer; no privilege needed where the kernel has it, as mainstream ones do), and
  where the kernel refuses that, re-executes ``run`` once, at start
  (:func:`reexec_for_room`), with the interpreter option ``-X zeek_mgmt_title_room=___...``
  padding its command line to what the children's titles need.
* Parent death: under ``zeek-mgmt run`` the controller and agent ask the kernel for a
  SIGTERM when the run supervisor dies (even by ``kill -9``), as Zeek's stem ends when its
  supervisor disappears, so no daemon is left orphaned.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import sys

log = logging.getLogger("mgmt")

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_PR_SET_MM = 35
_PR_SET_MM_MAP = 14
_PR_SET_MM_MAP_SIZE = 15
#: Set by ``zeek-mgmt run`` in its children's environment: its own pid.
ENV_RUN_PARENT = "ZEEK_MGMT_RUN_PARENT"
#: The kernel keeps 15 bytes of a process name (plus the NUL).
COMM_MAX = 15
#: The interpreter's ``-X`` option whose value pads ``run``'s command line (ignored by
#: Python; present once ``run`` has re-executed itself).
TITLE_ROOM_XOPTION = "zeek_mgmt_title_room"
#: The title room ``run`` makes before it knows its children's names: enough for
#: ``zeek.controller-<64-byte host name> zeek-mgmt controller`` and the flags.
RUN_TITLE_ROOM = 104


def set_process_name(name: str) -> bool:
    """Set the calling process's kernel name (``/proc/self/comm``); False if unsupported."""
    ok = _prctl(_PR_SET_NAME, name.encode()[:COMM_MAX])
    if not ok:
        log.debug("cannot set the process name to %s", name)
    return ok


def set_process_title(name: str, argv: list[str] | None = None) -> None:
    """Make the command line ``<name> zeek-mgmt <args>`` and the kernel name ``name``.

    Args:
        name: the Zeek name, e.g. ``zeek.controller-vm`` or ``zeek``.
        argv: the arguments after the program (default ``sys.argv[1:]``).
    """
    words = [name, "zeek-mgmt", *(sys.argv[1:] if argv is None else argv)]
    room = _title_room()
    if _may_move and room is not None and len(" ".join(words).encode()) > room:
        if _move_title(words):
            set_process_name(name)
            return
    words = _fit(words, room)
    title = " ".join(words)
    had_noenv = "SPT_NOENV" in os.environ
    os.environ["SPT_NOENV"] = "1"  # read by setproctitle on its first call
    try:
        import setproctitle  # only the daemons load it

        setproctitle.setproctitle(title)
        _separate_words(words)
    except ImportError:
        log.debug("setproctitle is not installed; the command line stays as it is")
    finally:
        if not had_noenv:
            del os.environ["SPT_NOENV"]
    # setproctitle also sets the kernel name, to the title's first 15 bytes.
    set_process_name(name)


def title_length(name: str, argv: list[str]) -> int:
    """The bytes :func:`set_process_title` needs for ``name`` and ``argv`` in full."""
    return len(" ".join([name, "zeek-mgmt", *argv]).encode())


#: Set by :func:`make_title_room`: a title that does not fit the command line is written
#: into a buffer of its own instead (:func:`_move_title`); inherited by forked children.
_may_move = False
#: The buffer the kernel shows as this process's command line, once moved (kept alive).
_title_buffer: ctypes.Array[ctypes.c_char] | None = None


def make_title_room(needed: int) -> None:
    """Let this process and the children it forks show titles of ``needed`` bytes.

    If the command line is long enough, nothing to do. Else, if the kernel lets this
    process move its command line (``PR_SET_MM_MAP``, tried once with the current
    values), :func:`set_process_title` will do so for a title that does not fit, in
    this process or a forked child; else :func:`reexec_for_room` re-executes it.
    """
    global _may_move
    room = _title_room()
    if _may_move or room is None or room >= needed:
        return
    if _set_mm_map(None):
        _may_move = True
        return
    reexec_for_room(needed)


def reexec_for_room(needed: int) -> None:
    """Re-execute this process with its command line padded to ``needed`` bytes of title
    room, unless it has that room already (returns then).

    The same interpreter runs the same command line (``sys.orig_argv``) with the
    option ``-X zeek_mgmt_title_room=<padding>`` in front, which Python ignores (a
    padding from an earlier re-execution is replaced). ``run`` calls this (through
    :func:`make_title_room`) first with :data:`RUN_TITLE_ROOM` plus its flags, before
    importing anything heavy, and once more with the exact need once its settings name
    the children, which re-executes only for names longer than that.
    """
    room = _title_room()
    if room is None or room >= needed or not sys.executable or not sys.orig_argv:
        return
    old = f"{TITLE_ROOM_XOPTION}={sys._xoptions.get(TITLE_ROOM_XOPTION)}"
    rest = list(sys.orig_argv[1:])
    if TITLE_ROOM_XOPTION in sys._xoptions and old in rest:
        at = rest.index(old)
        del rest[at - 1 : at + 1]  # "-X", "<option>=<padding>"
        room -= len(old) + len("-X") + 2
    padding = "_" * max(1, needed - room)
    argv = [sys.executable, "-X", f"{TITLE_ROOM_XOPTION}={padding}", *rest]
    log.debug("re-executing with %d bytes of title room", len(padding))
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execv(sys.executable, argv)


def _title_room() -> int | None:
    """How many bytes of title the original command line leaves (None: unknown)."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            # setproctitle keeps one byte of the argv area for the final NUL, one as slack.
            return len(f.read()) - 2
    except OSError:
        return None


def _fit(words: list[str], room: int | None) -> list[str]:
    """The leading words whose title fits in ``room`` bytes (at least the first word)."""
    while len(words) > 1 and room is not None and len(" ".join(words).encode()) > room:
        words = words[:-1]
    return words


def _separate_words(words: list[str]) -> None:
    """Turn the spaces between the title's words into NULs, so the command line is a real
    argv (``psutil.Process.cmdline()`` lists the words, ``name()`` is the first one) and
    ``ps`` still shows them separated by spaces.

    setproctitle writes the title where the kernel reads the command line (``arg_start``
    in ``/proc/self/stat``); the bytes there are checked to be the title before any change.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        arg_start = int(fields[45])  # field 48 of proc(5); fields[0] is field 3
    except (OSError, ValueError, IndexError):
        return
    title = " ".join(words).encode()
    if arg_start <= 0 or ctypes.string_at(arg_start, len(title)) != title:
        log.debug("the command line is not where expected; leaving it as one string")
        return
    offset = 0
    for word in words[:-1]:
        offset += len(word.encode())
        ctypes.memset(arg_start + offset, 0, 1)
        offset += 1


class _MMMap(ctypes.Structure):
    """``struct prctl_mm_map`` (linux/prctl.h)."""

    _fields_ = [
        *(
            (field, ctypes.c_uint64)
            for field in (
                "start_code", "end_code", "start_data", "end_data", "start_brk", "brk",
                "start_stack", "arg_start", "arg_end", "env_start", "env_end", "auxv",
            )
        ),
        ("auxv_size", ctypes.c_uint32),
        ("exe_fd", ctypes.c_uint32),
    ]  # fmt: skip


def _set_mm_map(args: tuple[int, int] | None) -> bool:
    """``PR_SET_MM_MAP`` with this process's memory map as it is, except the command
    line's place ``args`` (``(start, end)``; None: as it is too). False if refused.

    The map's fields are read from ``/proc/self/stat`` (fields 26-28, 45-51 of proc(5))
    and the break from ``sbrk(0)``, last, right before the call. No auxiliary vector
    and no executable are given, so neither changes.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = [int(x) for x in f.read().rsplit(b")", 1)[1].split()[1:]]
        libc = _libc()
        size = ctypes.c_uint(0)
        zero = ctypes.c_ulong(0)
        ok = libc.prctl(_PR_SET_MM, _PR_SET_MM_MAP_SIZE, ctypes.byref(size), zero, zero) == 0
        if not ok or size.value != ctypes.sizeof(_MMMap):
            return False
        field = fields.__getitem__  # field n of proc(5) is fields[n - 4]
        start, end = (field(48 - 4), field(49 - 4)) if args is None else args
        mm = _MMMap(
            start_code=field(26 - 4),
            end_code=field(27 - 4),
            start_data=field(45 - 4),
            end_data=field(46 - 4),
            start_brk=field(47 - 4),
            start_stack=field(28 - 4),
            arg_start=start,
            arg_end=end,
            env_start=field(50 - 4),
            env_end=field(51 - 4),
            exe_fd=0xFFFFFFFF,  # (u32)-1: the executable stays
        )
        libc.sbrk.restype = ctypes.c_void_p
        mm.brk = libc.sbrk(0) or 0
        length = ctypes.c_ulong(ctypes.sizeof(mm))
        done = libc.prctl(_PR_SET_MM, _PR_SET_MM_MAP, ctypes.byref(mm), length, zero)
        return bool(done == 0)
    except (OSError, ValueError, IndexError, AttributeError):
        return False


def _move_title(words: list[str]) -> bool:
    """Make a buffer of ours, holding ``words`` as an argv, the command line the kernel
    shows (the original one stays where it is, unused). False if refused."""
    global _title_buffer
    data = b"\0".join(word.encode() for word in words) + b"\0"
    buffer = ctypes.create_string_buffer(data, len(data))
    start = ctypes.addressof(buffer)
    if not _set_mm_map((start, start + len(data))):
        log.debug("cannot move the command line; the title is cut to fit")
        return False
    _title_buffer = buffer
    return True


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library: the process's own symbols (dlopen(NULL)), which include libc's on
    Linux. ``ctypes.util.find_library`` would run ``ldconfig -p`` in a subprocess, at
    every call."""
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int | bytes) -> bool:
    try:
        return bool(_libc().prctl(option, arg, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def follow_run_parent() -> bool:
    """Under ``zeek-mgmt run``: get SIGTERM when the run supervisor dies.

    Returns:
        True if the supervisor is already gone (the caller should exit at once).
    """
    parent = os.environ.get(ENV_RUN_PARENT, "")
    if not parent.isdigit():
        return False
    if not _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM):
        log.debug("cannot request a parent-death signal")
    # The parent may have died before the request took effect.
    return os.getppid() != int(parent)
