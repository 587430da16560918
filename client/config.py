"""Client settings, compatible with zeek-client 1.5.0 (wire spec §9.1).

Settings are ``section.key`` strings, kept in a :class:`configparser.ConfigParser` so that
``client-settings`` prints exactly what ``zeek-client show-settings`` prints (same section
and key order, same value spelling). Sources, lowest to highest precedence:

1. built-in defaults (:data:`DEFAULTS`);
2. a config file: ``-c FILE``, else env ``ZEEK_CLIENT_CONFIG_FILE``, else none (the PyPI
   zeek-client's built-in path is an unexpanded placeholder, i.e. no file either); a
   missing file is silently skipped, as configparser does;
3. env ``ZEEK_CLIENT_CONFIG_SETTINGS``: space-separated, shell-quoted ``section.key=value``;
4. ``--set section.key=value`` (repeatable);
5. ``--controller HOST:PORT`` (either part may be omitted; IPv6 in brackets);
6. ``-v`` (count): ``client.verbosity``.

Like zeek-client, the environment settings are applied once before the file and once
after it, so they win over the file while sections they create come first. Unknown
sections and keys are kept (and shown). Unlike zeek-client, which drops them silently
because its logging is not set up yet, malformed ``--set`` items are reported.

No sockets, no asyncio: the caller passes the environment in.
"""

from __future__ import annotations

import configparser
import io
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

from mgmt.exceptions import ConfigError

#: Env var naming the config file (``-c`` wins).
CONFIG_FILE_ENV = "ZEEK_CLIENT_CONFIG_FILE"
#: Env var holding ``section.key=value`` items.
CONFIG_SETTINGS_ENV = "ZEEK_CLIENT_CONFIG_SETTINGS"

#: zeek-client 1.5.0's defaults, in its order (values as configparser stores them).
DEFAULTS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "client",
        (
            # Longer than the controller's 10 s request expiry, so its timeouts arrive.
            ("request_timeout_secs", "20"),
            # Total attempts, shared by the WebSocket connect and the ack read.
            ("peering_attempts", "10"),
            # Connect/read timeout while peering, and the pause between attempts.
            ("peering_retry_delay_secs", "1.0"),
            ("rich_logging_format", "False"),
            ("pretty_json", "True"),
            # 0 errors, 1 +warnings, 2 +info, 3 +debug, 4 +WebSocket frame trace.
            ("verbosity", "0"),
        ),
    ),
    ("controller", (("host", "127.0.0.1"), ("port", "2149"))),
    (
        "ssl",
        (
            ("enable", "False"),
            ("certificate", ""),
            ("keyfile", ""),
            ("cafile", ""),
            ("capath", ""),
            ("passphrase", ""),
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The ``[ssl]`` section, typed. Empty strings mean unset."""

    enable: bool
    certificate: str
    keyfile: str
    cafile: str
    capath: str
    passphrase: str
    #: The pre-1.5 ``ssl.disable`` setting is present (ignored, with a warning).
    legacy_disable: bool


T = TypeVar("T")


class _Setting(Generic[T]):
    """A read-only typed attribute of :class:`ClientSettings`: ``section.key`` converted
    by one of its ``get*`` readers (so a bad value raises ``ConfigError`` naming it)."""

    def __init__(
        self, section: str, key: str, read: Callable[[ClientSettings, str, str], T]
    ) -> None:
        self.section = section
        self.key = key
        self.read = read

    @overload
    def __get__(self, settings: None, owner: type[ClientSettings]) -> _Setting[T]: ...
    @overload
    def __get__(self, settings: ClientSettings, owner: type[ClientSettings]) -> T: ...
    def __get__(
        self, settings: ClientSettings | None, owner: type[ClientSettings]
    ) -> T | _Setting[T]:
        if settings is None:  # on the class, as a property: the descriptor itself
            return self
        return self.read(settings, self.section, self.key)

    def __set__(self, settings: ClientSettings, value: object) -> None:
        raise AttributeError(f"{self.section}.{self.key} is set through the settings sources")


class ClientSettings:
    """The effective client settings.

    Build with :meth:`load` (all sources) or construct for the defaults only. Typed
    accessors raise :class:`~mgmt.exceptions.ConfigError` naming the setting when a value
    does not convert.
    """

    def __init__(self) -> None:
        # interpolation=None: a "%" in a value is a plain character, never a crash.
        self._cfp = configparser.ConfigParser(interpolation=None)
        for section, items in DEFAULTS:
            self._cfp.add_section(section)
            for key, value in items:
                self._cfp.set(section, key, value)
        #: Problems found while loading (bad ``section.key=value`` items), for the caller
        #: to report once logging is set up.
        self.problems: list[str] = []

    # -- building -------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str],
        config_file: str | None = None,
        sets: Sequence[str] = (),
        controller: str | None = None,
        verbose: int | None = None,
    ) -> ClientSettings:
        """Apply every source in precedence order (see the module docstring).

        Args:
            env: the process environment.
            config_file: ``-c FILE``; ``None`` falls back to ``ZEEK_CLIENT_CONFIG_FILE``.
            sets: the ``--set`` items.
            controller: the ``--controller`` value.
            verbose: the ``-v`` count.

        Raises:
            ConfigError: the config file does not parse, or ``--controller`` is malformed.
        """
        settings = cls()
        settings.update_from_env(env, report=False)
        path = config_file if config_file is not None else env.get(CONFIG_FILE_ENV) or None
        if path is not None:
            settings.update_from_file(path)
        settings.update_from_env(env)
        for item in sets:
            try:
                settings.apply(item)
            except ConfigError:
                settings.problems.append(
                    f'config item "{item}" invalid. Please use <section.key>=<val>.'
                )
        if controller:
            settings.set_controller(controller)
        if verbose:
            settings._cfp.set("client", "verbosity", str(verbose))
        return settings

    def update_from_file(self, path: str) -> None:
        """Merge a config file; a missing or unreadable file is skipped (like zeek-client).

        Raises:
            ConfigError: the file does not parse.
        """
        try:
            self._cfp.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigError(f"cannot parse client config file {path}: {exc}") from exc

    def update_from_env(self, env: Mapping[str, str], *, report: bool = True) -> None:
        """Apply ``ZEEK_CLIENT_CONFIG_SETTINGS`` items."""
        text = env.get(CONFIG_SETTINGS_ENV) or ""
        try:
            items = shlex.split(text)
        except ValueError:
            if report:
                self.problems.append(f"{CONFIG_SETTINGS_ENV} is not valid shell syntax")
            return
        for item in items:
            try:
                self.apply(item)
            except ConfigError:
                if report:
                    self.problems.append(
                        f'config item "{item}" in {CONFIG_SETTINGS_ENV} invalid. '
                        "Please use <section.key>=<val>."
                    )

    def apply(self, item: str) -> None:
        """Apply one ``section.key=value`` item, creating the section if needed.

        Raises:
            ConfigError: the item is not of that form (or names the DEFAULT section).
        """
        ident, eq, value = item.partition("=")
        section, dot, key = ident.partition(".")
        if not eq or not dot:
            raise ConfigError(f'config item "{item}" invalid')
        try:
            if not self._cfp.has_section(section):
                self._cfp.add_section(section)
            self._cfp.set(section, key, value)
        except (ValueError, configparser.Error) as exc:
            raise ConfigError(f'config item "{item}" invalid') from exc

    def set_controller(self, spec: str) -> None:
        """Apply ``--controller``: ``host``, ``:port``, ``host:port``, ``[v6]`` or
        ``[v6]:port``. The brackets stay in the host (they end up in the URL).

        Raises:
            ConfigError: an IPv6 address without brackets.
        """
        host, port = parse_controller(spec)
        if port == "":
            self._cfp.set("controller", "host", host)
        elif host == "":
            self._cfp.set("controller", "port", port)
        else:
            self._cfp.set("controller", "host", host)
            self._cfp.set("controller", "port", port)

    # -- reading --------------------------------------------------------------------

    def get(self, section: str, key: str) -> str:
        """The raw string value (``ConfigError`` if the setting does not exist)."""
        try:
            return self._cfp.get(section, key)
        except configparser.Error as exc:
            raise ConfigError(f"setting {section}.{key} is missing") from exc

    def get_int(self, section: str, key: str) -> int:
        """An integer setting."""
        return self._converted(section, key, int, "an integer")

    def get_float(self, section: str, key: str) -> float:
        """A float setting."""
        return self._converted(section, key, float, "a number")

    def _converted(self, section: str, key: str, convert: Callable[[str], T], what: str) -> T:
        """The raw value through ``convert``; a ``ValueError`` says it is not ``what``."""
        value = self.get(section, key)
        try:
            return convert(value)
        except ValueError:
            raise ConfigError(f'setting {section}.{key}: "{value}" is not {what}') from None

    def get_bool(self, section: str, key: str) -> bool:
        """A boolean setting (configparser's spellings: 1/yes/true/on, 0/no/false/off)."""
        try:
            return self._cfp.getboolean(section, key)
        except (ValueError, configparser.Error):
            value = self._cfp.get(section, key, fallback="")
            raise ConfigError(f'setting {section}.{key}: "{value}" is not a boolean') from None

    # -- the typed settings: attributes read from the settings on each access --------

    #: ``controller.host`` (brackets of an IPv6 address included).
    controller_host = _Setting("controller", "host", get)
    controller_port = _Setting("controller", "port", get_int)
    #: ``client.request_timeout_secs``: per-read wait for a response.
    request_timeout = _Setting("client", "request_timeout_secs", get_int)
    peering_attempts = _Setting("client", "peering_attempts", get_int)
    peering_retry_delay = _Setting("client", "peering_retry_delay_secs", get_float)
    pretty_json = _Setting("client", "pretty_json", get_bool)
    rich_logging = _Setting("client", "rich_logging_format", get_bool)
    verbosity = _Setting("client", "verbosity", get_int)

    def tls(self) -> TlsSettings:
        """The ``[ssl]`` settings."""
        return TlsSettings(
            enable=self.get_bool("ssl", "enable"),
            certificate=self.get("ssl", "certificate"),
            keyfile=self.get("ssl", "keyfile"),
            cafile=self.get("ssl", "cafile"),
            capath=self.get("ssl", "capath"),
            passphrase=self.get("ssl", "passphrase"),
            legacy_disable=self._cfp.has_option("ssl", "disable"),
        )

    def render(self) -> str:
        """The settings as zeek-client's ``show-settings`` prints them (INI)."""
        out = io.StringIO()
        self._cfp.write(out)
        return out.getvalue()


def parse_controller(spec: str) -> tuple[str, str]:
    """Split a ``--controller`` value into (host, port); either may be empty.

    Raises:
        ConfigError: an unbracketed IPv6 address.
    """
    if ":" not in spec:
        return spec, ""
    host, _, port = spec.rpartition(":")
    if ":" in host:
        if not host.startswith("["):
            raise ConfigError("IPv6 addresses must be surrounded by brackets: [<ipv6>]:<port>")
        if port.endswith("]"):
            # "[fe80::1]" alone: the last colon was inside the brackets.
            return f"{host}:{port}", ""
    return host, port
