"""Names of rotated Zeek logs and of their archived copies (pure: no I/O).

This module holds the naming rules of ``zeek-archiver`` (zeek-aux,
``zeek-archiver/zeek-archiver.cc``); :mod:`mgmt.archive.engine` does the file work.

Theory of operation
-------------------

Zeek's archiver rotation format function (``Log::rotation_format_func`` in a managed
cluster, behaviour.md §6.8) names each rotated file::

    <path>__<open>__<close>__[<metadata>__]<ext>

where both times use ``Log::default_rotation_date_format`` (``%Y-%m-%d-%H-%M-%S``),
``<metadata>`` is an optional comma-separated ``key=value`` list (Zeek writes
``log_suffix=<logger name>`` when a cluster has several loggers) and ``<ext>`` is what
the writer appends: ``.log``, or ``.log.gz`` when it compressed in flight.

zeek-archiver's rules, which we follow:

* The name is split on the delimiter (``__``, option ``-d``). Exactly 4 parts
  (no metadata) or 5 parts (with metadata) are accepted; anything else is not a log.
* Both timestamps are parsed with ``strptime(3)`` and the time format (option ``-t``).
  Like glibc, a timestamp may be followed by unparsed text; zeek-archiver then only
  prints a debug note, and so do we. :func:`parse_timestamp` implements the glibc
  ``strptime`` rules for the directives it supports (see :data:`SUPPORTED_DIRECTIVES`).
* Metadata: empty is fine; otherwise every comma-separated entry must be ``key=value``
  with exactly one ``=`` and a non-blank key and value (both stripped of white space).
  Only ``log_suffix`` means something; other keys are ignored.
* The archived name is ``<path>.<open HH:MM:SS>-<close HH:MM:SS>[-<log_suffix>]<ext>``
  in the directory ``<open YYYY-MM-DD>``, plus ``.<compress ext>`` when the file gets
  compressed. The date and clock fields are taken verbatim from the name: there is no
  time-zone conversion at all, so the date directory is the *open* time's calendar date
  in whatever zone the writer used when it formatted the name.
* A file whose extension ends with one of the "already zipped" extensions
  (``gz,bz2,lz,lz4``; a plain suffix test, without a dot, like zeek-archiver's) is not
  compressed again and keeps its extension.
* The temporary file is ``.tmp.<archived name without the compress ext>`` in the date
  directory. Because the name is deterministic, a temporary file left behind by a crash
  is truncated and reused by the next run that archives the same source.
"""

from __future__ import annotations

import re

from mgmt.core.frozen import frozen
from mgmt.exceptions import ConfigError

#: zeek-archiver's defaults.
DEFAULT_DELIMITER = "__"
DEFAULT_TIME_FORMAT = "%Y-%m-%d-%H-%M-%S"
DEFAULT_ZIP_EXTENSIONS: tuple[str, ...] = ("gz", "bz2", "lz", "lz4")
DEFAULT_COMPRESS_EXT = "gz"
DEFAULT_COMPRESS_CMD = "gzip"

#: The ``strptime`` directives understood in a time format, with glibc's meaning.
#: ``%F``, ``%T``, ``%R`` and ``%D`` expand to their glibc definitions.
SUPPORTED_DIRECTIVES = "YmdeHMSyFTRDnt%"

# glibc get_number(from, to, n): (field, minimum, maximum, maximum digits).
_NUMERIC: dict[str, tuple[str, int, int, int]] = {
    "Y": ("year", 0, 9999, 4),
    "m": ("month", 1, 12, 2),
    "d": ("day", 1, 31, 2),
    "e": ("day", 1, 31, 2),
    "H": ("hour", 0, 23, 2),
    "M": ("minute", 0, 59, 2),
    "S": ("second", 0, 61, 2),
    "y": ("year2", 0, 99, 2),
}
_COMPOSITE = {"F": "%Y-%m-%d", "T": "%H:%M:%S", "R": "%H:%M", "D": "%m/%d/%y"}

# Python's str.isspace() is wider than C's isspace(); use the C locale's set.
_C_SPACE = " \t\n\v\f\r"


@frozen
class Stamp:
    """A broken-down time as ``strptime`` leaves it (no zone, no validation of dates).

    Fields the format does not mention keep these defaults (zeek-archiver would print
    whatever its uninitialised ``struct tm`` held).
    """

    year: int = 1900
    month: int = 1
    day: int = 1
    hour: int = 0
    minute: int = 0
    second: int = 0

    def date(self) -> str:
        """The ``%Y-%m-%d`` form, used as the date directory."""
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def clock(self) -> str:
        """The ``%H:%M:%S`` form, used in the archived name."""
        return f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}"


def check_time_format(fmt: str) -> None:
    """Check that every directive of ``fmt`` is supported.

    Raises:
        ConfigError: ``fmt`` is empty, ends in a lone ``%`` or uses a directive outside
            :data:`SUPPORTED_DIRECTIVES`.
    """
    if not fmt:
        raise ConfigError("time format: must not be empty")
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            if i + 1 >= len(fmt):
                raise ConfigError(f"time format {fmt!r}: ends with a lone '%'")
            if fmt[i + 1] not in SUPPORTED_DIRECTIVES:
                raise ConfigError(
                    f"time format {fmt!r}: unsupported directive '%{fmt[i + 1]}' "
                    f"(supported: {', '.join('%' + c for c in SUPPORTED_DIRECTIVES)})"
                )
            i += 2
        else:
            i += 1


def parse_timestamp(text: str, fmt: str) -> tuple[Stamp, int] | None:
    """Parse ``text`` with ``fmt`` the way glibc's ``strptime`` does.

    Args:
        text: the timestamp part of a file name.
        fmt: a time format accepted by :func:`check_time_format`.

    Returns:
        The parsed stamp and how many characters of ``text`` were consumed (fewer than
        ``len(text)`` when text follows the timestamp), or ``None`` if it does not match.
    """
    fields: dict[str, int] = {}
    pos = _match(text, 0, fmt, fields)
    if pos is None:
        return None
    year = fields.get("year", 1900)
    if "year2" in fields and "year" not in fields:
        # glibc: 69-99 are 19xx, 00-68 are 20xx.
        y2 = fields["year2"]
        year = 1900 + y2 if y2 >= 69 else 2000 + y2
    stamp = Stamp(
        year=year,
        month=fields.get("month", 1),
        day=fields.get("day", 1),
        hour=fields.get("hour", 0),
        minute=fields.get("minute", 0),
        second=fields.get("second", 0),
    )
    return stamp, pos


def _match(text: str, pos: int, fmt: str, fields: dict[str, int]) -> int | None:
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c in _C_SPACE:
            # White space in the format matches any amount of white space, even none.
            while pos < len(text) and text[pos] in _C_SPACE:
                pos += 1
            i += 1
            continue
        if c != "%":
            if pos >= len(text) or text[pos] != c:
                return None
            pos += 1
            i += 1
            continue
        d = fmt[i + 1] if i + 1 < len(fmt) else ""
        i += 2
        if d == "%":
            if pos >= len(text) or text[pos] != "%":
                return None
            pos += 1
        elif d in ("n", "t"):
            while pos < len(text) and text[pos] in _C_SPACE:
                pos += 1
        elif d in _COMPOSITE:
            sub = _match(text, pos, _COMPOSITE[d], fields)
            if sub is None:
                return None
            pos = sub
        elif d in _NUMERIC:
            name, low, high, width = _NUMERIC[d]
            got = _number(text, pos, low, high, width)
            if got is None:
                return None
            fields[name], pos = got
            if name == "year":
                fields.pop("year2", None)
        else:
            return None
    return pos


def _number(text: str, pos: int, low: int, high: int, width: int) -> tuple[int, int] | None:
    """glibc's ``get_number``: skip spaces, read up to ``width`` digits, check the range."""
    while pos < len(text) and text[pos] in _C_SPACE:
        pos += 1
    if pos >= len(text) or not ("0" <= text[pos] <= "9"):
        return None
    value = 0
    left = width
    while True:
        value = value * 10 + ord(text[pos]) - ord("0")
        pos += 1
        left -= 1
        if left <= 0 or value * 10 > high or pos >= len(text) or not ("0" <= text[pos] <= "9"):
            break
    if value < low or value > high:
        return None
    return value, pos


@frozen
class NamingOptions:
    """How rotated names are parsed (zeek-archiver's ``-d`` and ``-t``).

    Attributes:
        delimiter: separates the name's parts (``-d``), never empty.
        time_format: ``strptime`` format of both timestamps (``-t``).
    """

    delimiter: str = DEFAULT_DELIMITER
    time_format: str = DEFAULT_TIME_FORMAT

    def check(self) -> None:
        """Validate the options.

        Raises:
            ConfigError: empty delimiter or an unsupported time format.
        """
        if not self.delimiter:
            raise ConfigError("delimiter: must not be empty")
        check_time_format(self.time_format)


@frozen
class Rejected:
    """A queue entry that is not a rotated log.

    Attributes:
        name: the entry's name in the queue.
        reason: why it is not one, in zeek-archiver's words.
    """

    name: str
    reason: str


@frozen
class RotatedName:
    """A parsed rotated-log name.

    Attributes:
        name: the file name in the queue.
        path: the log path (``conn``, ``management-agent-vm``, ...).
        open: when the file was opened.
        close: when it was rotated.
        ext: everything after the last delimiter (``.log``, ``.log.gz``).
        suffix: the ``log_suffix`` metadata value, or ``""``.
        notes: debug remarks zeek-archiver would print with ``-v`` (trailing text after a
            timestamp, ignored metadata keys).
    """

    name: str
    path: str
    open: Stamp
    close: Stamp
    ext: str
    suffix: str = ""
    notes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str, options: NamingOptions | None = None) -> RotatedName | Rejected:
        """Parse a queue file name with zeek-archiver's rules.

        Args:
            name: a file name (no directory part).
            options: delimiter and time format; zeek-archiver's defaults if omitted.

        Returns:
            The parsed name, or a :class:`Rejected` saying why it is not a rotated log.
        """
        opts = options or NamingOptions()
        parts = name.split(opts.delimiter)
        if len(parts) not in (4, 5):
            return Rejected(name, f"Skipping archival of non-log: {name}")
        notes: list[str] = []
        stamps: list[Stamp] = []
        for text in (parts[1], parts[2]):
            parsed = parse_timestamp(text, opts.time_format)
            if parsed is None:
                return Rejected(name, f"Skipping archival of log with bad timestamp format: {name}")
            stamp, used = parsed
            if used != len(text):
                notes.append(f"Possible log with timestamp format mismatch: {name}")
            stamps.append(stamp)
        suffix = ""
        if len(parts) == 5:
            meta = parse_metadata(parts[3])
            if meta is None:
                return Rejected(name, f"Skipping archival of log with bad metadata format: {name}")
            for key, value in meta:
                if key == "log_suffix":
                    suffix = value
                else:
                    notes.append(f"Ignoring unknown metadata entry {key} in {name}")
        return cls(
            name=name,
            path=parts[0],
            open=stamps[0],
            close=stamps[1],
            ext=parts[-1],
            suffix=suffix,
            notes=tuple(notes),
        )

    def dest_dir(self) -> str:
        """The date directory below the archive directory: the open time's date."""
        return self.open.date()

    def dest_file(self) -> str:
        """The archived name before any compression extension is added."""
        name = f"{self.path}.{self.open.clock()}-{self.close.clock()}"
        if self.suffix:
            name += f"-{self.suffix}"
        return name + self.ext

    def temp_file(self) -> str:
        """The temporary name in the date directory (zeek-archiver's ``.tmp.`` prefix)."""
        return ".tmp." + self.dest_file()


def parse_metadata(text: str) -> list[tuple[str, str]] | None:
    """Parse the metadata part: comma-separated ``key=value`` entries, or empty.

    Returns:
        The stripped ``(key, value)`` pairs in order, or ``None`` if an entry is malformed.
    """
    if not text:
        return []
    pairs: list[tuple[str, str]] = []
    for entry in text.split(","):
        kv = entry.split("=")
        if len(kv) != 2:
            return None
        key, value = kv[0].strip(_C_SPACE), kv[1].strip(_C_SPACE)
        if not key or not value:
            return None
        pairs.append((key, value))
    return pairs


def already_compressed(ext: str, zip_extensions: tuple[str, ...]) -> bool:
    """Whether ``ext`` ends with one of ``zip_extensions`` (a plain suffix test).

    Empty entries are ignored, so ``()`` or ``("",)`` disables the detection (what
    zeek-archiver's help promises for ``-z ""``).
    """
    return any(e and ext.endswith(e) for e in zip_extensions)


@frozen
class Compression:
    """The compression step (zeek-archiver's ``-c <ext>,<cmd>``).

    Attributes:
        ext: appended to the archived name as ``.<ext>`` (nothing if empty).
        command: a shell command reading the log on stdin and writing stdout.
    """

    ext: str = DEFAULT_COMPRESS_EXT
    command: str = DEFAULT_COMPRESS_CMD

    @classmethod
    def parse(cls, value: str) -> Compression | None:
        """Parse a ``-c`` value; ``""`` means "do not compress" (``None``).

        Raises:
            ConfigError: the value is not ``<ext>,<cmd>``.
        """
        if value == "":
            return None
        parts = value.split(",")
        if len(parts) != 2:
            raise ConfigError(
                f"--compress must give a 'ext,compress_cmd' formatted value, got: {value}"
            )
        return cls(ext=parts[0], command=parts[1])

    def gzip_level(self) -> int | None:
        """The level if the command is plain gzip (``gzip`` or ``gzip -N``), else ``None``.

        Such commands are run in-process with zlib instead of through ``sh -c``.
        """
        m = _GZIP_CMD.fullmatch(self.command)
        if m is None:
            return None
        return int(m.group(1)) if m.group(1) else 6

    def target(self, dest_file: str) -> str:
        """The archived name once compressed."""
        return f"{dest_file}.{self.ext}" if self.ext else dest_file


_GZIP_CMD = re.compile(r"\s*gzip(?:\s+-([1-9]))?\s*")
