"""TLS for the daemons' WebSocket ports (``wss://``): contexts built from settings.

Plaintext stays the default, as in Zeek. The rules:

Controller (``[controller]`` settings): two independent channels
    * The client port (zeek-client, 2149), as Zeek's
      ``Management::Controller::tls_options_websocket``: ``websocket_tls_cert`` (with
      ``websocket_tls_key``, or a key inside the certificate file) turns TLS on for this
      port only. ``websocket_tls_ca`` makes it mutual TLS: a client must present a
      certificate signed by that CA. This is Zeek's ``enable_peer_verification = T`` with
      ``ca_file`` (IXWebSocket then sets ``SSL_VERIFY_PEER |
      SSL_VERIFY_FAIL_IF_NO_PEER_CERT``); Zeek's ``ca_file`` means nothing without peer
      verification, so here the CA alone says "verify". Zeek's variant that verifies
      clients against the system's CA store has no equivalent: name the CA bundle instead.
    * The agent channel: ``tls_cert`` (with ``tls_key``) turns TLS on for the agent port
      and for the connections the controller dials to agents (``wss://``); Zeek's Broker
      channel has no counterpart in the framework's settings. ``tls_client_auth``: the
      agent port requires a certificate signed by ``tls_ca`` (mutual TLS), so only agents
      holding one can register. When dialing an agent, the controller checks the agent's
      certificate against ``tls_ca`` (the system's trusted CAs without one) and the host
      name or address it dials, and presents its own certificate.
    * So TLS on the client port leaves agents connecting as before (plaintext unless
      ``tls_cert`` is set), as with Zeek.

Agent (``[agent]`` settings)
    * ``tls_cert`` or ``tls_ca`` turns TLS on: the agent dials ``wss://`` and its own port
      (if it listens) serves TLS with ``tls_cert``. The controller's certificate is checked
      against ``tls_ca`` (the system's CAs without one) and the address dialed, and
      ``tls_cert`` is presented as the client certificate (needed when the controller sets
      ``tls_client_auth``).
    * ``tls_client_auth``: the agent's own port requires the dialing controller to present
      a certificate signed by ``tls_ca``.

Both sides accept TLS 1.2 and 1.3. zeek-client with ``ssl.enable = true`` and no
``ssl.certificate`` restricts TLS 1.2 to anonymous ciphers (Broker's old default) and does
not verify; it still negotiates TLS 1.3 with our certificate-based server.

Every file is checked when the daemon starts: a missing or unreadable file, a file that
holds no PEM certificate or key, an encrypted key (a daemon cannot prompt for the
passphrase), or a key that does not match its certificate is a
:class:`~mgmt.exceptions.ConfigError` naming the setting and the file.

A failed TLS handshake on one of our ports is logged at WARNING with the port's role
(asyncio itself only logs it in debug mode), so a plaintext client on a TLS port or an
agent without an acceptable certificate is visible in the daemon's log.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from pathlib import Path

from mgmt.core.frozen import frozen
from mgmt.exceptions import ConfigError
from mgmt.settings.model import AgentSettings, ControllerSettings, DaemonSettings

log = logging.getLogger("mgmt.settings.tls")

__all__ = [
    "AgentTLS",
    "ControllerTLS",
    "agent_tls",
    "client_context",
    "controller_tls",
    "server_context",
]


@frozen
class ControllerTLS:
    """The controller's contexts; all ``None`` for plaintext."""

    client_ssl: ssl.SSLContext | None = None
    agent_ssl: ssl.SSLContext | None = None
    dial_ssl: ssl.SSLContext | None = None


@frozen
class AgentTLS:
    """The agent's contexts: its own port and the connection it dials; ``None``: plaintext."""

    server_ssl: ssl.SSLContext | None = None
    dial_ssl: ssl.SSLContext | None = None


@frozen
class _Files:
    """The TLS settings of one role, with labels for error messages."""

    section: str
    cert: Path | None
    key: Path | None
    ca: Path | None
    sources: Mapping[str, str]
    #: Prefix of the setting names: ``websocket_`` for the controller's client port.
    prefix: str = ""

    def label(self, name: str) -> str:
        name = self.prefix + name
        source = self.sources.get(name)
        where = f" ({source})" if source and source != "default" else ""
        return f"{self.section}.{name}{where}"


def _read(files: _Files, name: str, path: Path) -> str:
    """The file's text; a ConfigError naming the setting when it cannot be read."""
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ConfigError(
            f"{files.label(name)}: cannot read {path}: {exc.strerror or exc}"
        ) from exc


def _check_pem(files: _Files) -> None:
    """Pre-flight checks with precise messages (OpenSSL's own say only ``PEM lib``)."""
    if files.cert is not None:
        text = _read(files, "tls_cert", files.cert)
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ConfigError(f"{files.label('tls_cert')}: {files.cert}: no PEM certificate")
        key_name, key_path = ("tls_key", files.key) if files.key else ("tls_cert", files.cert)
        key_text = text if files.key is None else _read(files, "tls_key", files.key)
        if "PRIVATE KEY-----" not in key_text:
            hint = f" (set {files.prefix}tls_key)" if files.key is None else ""
            what = "no PEM private key" + hint
            raise ConfigError(f"{files.label(key_name)}: {key_path}: {what}")
        if "ENCRYPTED" in key_text:
            raise ConfigError(
                f"{files.label(key_name)}: {key_path}: the private key is encrypted; "
                "a daemon cannot ask for its passphrase, use an unencrypted key "
                "readable only by the daemon's user"
            )
    if files.ca is not None:
        text = _read(files, "tls_ca", files.ca)
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ConfigError(f"{files.label('tls_ca')}: {files.ca}: no PEM certificate")


def _no_passphrase() -> bytes:
    # Never let OpenSSL prompt on the terminal (it would block a daemon).
    return b""


def _load_chain(ctx: ssl.SSLContext, files: _Files) -> None:
    assert files.cert is not None
    try:
        ctx.load_cert_chain(files.cert, files.key, password=_no_passphrase)
    except ssl.SSLError as exc:
        if exc.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            what = f"the private key {files.key} does not match the certificate"
        else:
            what = f"cannot load the certificate and private key: {exc.reason or exc}"
        raise ConfigError(f"{files.label('tls_cert')}: {files.cert}: {what}") from exc
    except OSError as exc:  # the file vanished since the pre-flight check
        raise ConfigError(f"{files.label('tls_cert')}: {exc.strerror or exc}") from exc


def _load_ca(ctx: ssl.SSLContext, files: _Files) -> None:
    assert files.ca is not None
    try:
        ctx.load_verify_locations(cafile=files.ca)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise ConfigError(f"{files.label('tls_ca')}: {files.ca}: {reason}") from exc


def _report_failed_handshakes(ctx: ssl.SSLContext, port: str, prefix: str = "") -> None:
    """Log failed server-side handshakes at WARNING (asyncio logs them only in debug mode).

    ``SSLContext.sslobject_class`` is the documented hook for the objects asyncio's TLS
    layer creates (``wrap_bio``); the subclass only observes ``do_handshake``.
    """

    class _ReportingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                log.warning("%s: TLS handshake with a peer failed: %s", port, _explain(exc, prefix))
                raise

    ctx.sslobject_class = _ReportingSSLObject


def _explain(exc: ssl.SSLError, prefix: str = "") -> str:
    reason = exc.reason or ""
    if reason in ("HTTP_REQUEST", "WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING"):
        return f"the peer does not speak TLS (a plaintext ws:// client?) [{reason}]"
    if reason in ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_VERIFY_FAILED"):
        detail = getattr(exc, "verify_message", "") or reason.lower().replace("_", " ")
        return f"client certificate refused ({detail}): one signed by {prefix}tls_ca is required"
    if reason.startswith(("TLSV1_ALERT_", "SSLV3_ALERT_")):
        return (
            f"the peer refused our certificate [{reason}]: it must trust the CA that "
            f"signed {prefix}tls_cert"
        )
    return str(exc)


def server_context(
    cert: Path,
    key: Path | None,
    ca: Path | None,
    *,
    client_auth: bool,
    port: str = "server",
    section: str = "controller",
    sources: Mapping[str, str] | None = None,
    prefix: str = "",
) -> ssl.SSLContext:
    """A TLS server context for one port.

    Args:
        cert: PEM certificate chain (server certificate first).
        key: PEM private key; ``None`` when it is in ``cert``.
        ca: PEM CA certificates that sign acceptable client certificates.
        client_auth: require a client certificate signed by ``ca`` (mutual TLS).
        port: the port's role for log messages (``agent port``).
        section, sources, prefix: for error messages (``controller.tls_cert (file ...)``;
            prefix ``websocket_`` names ``websocket_tls_cert`` etc.).

    Raises:
        ConfigError: a file is missing, unreadable or invalid, the key does not match,
            or ``client_auth`` without ``ca``.
    """
    files = _Files(section, cert, key, ca, sources or {}, prefix)
    if client_auth and ca is None:
        raise ConfigError(
            f"{section}: client certificate verification on the {port} needs {prefix}tls_ca"
        )
    _check_pem(files)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, files)
    if client_auth:
        ctx.verify_mode = ssl.CERT_REQUIRED
        _load_ca(ctx, files)
    _report_failed_handshakes(ctx, port, prefix)
    return ctx


def client_context(
    cert: Path | None,
    key: Path | None,
    ca: Path | None,
    *,
    section: str = "agent",
    sources: Mapping[str, str] | None = None,
) -> ssl.SSLContext:
    """A TLS client context that verifies the server (certificate and host name).

    Args:
        cert, key: our client certificate and key, presented if the server asks;
            ``None`` for none.
        ca: PEM CA certificates to verify the server against; ``None``: the system's.
        section, sources: for error messages.

    Raises:
        ConfigError: as :func:`server_context`.
    """
    files = _Files(section, cert, key, ca, sources or {})
    _check_pem(files)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        _load_ca(ctx, files)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert is not None:
        _load_chain(ctx, files)
    return ctx


def controller_tls(
    settings: ControllerSettings, sources: Mapping[str, str] | None = None
) -> ControllerTLS:
    """The controller's TLS contexts from its settings (see the module docstring).

    Raises:
        ConfigError: inconsistent TLS settings or unusable files.
    """
    s, section = settings, "controller"
    client_ssl = None
    if s.websocket_tls_cert is None:
        for name in ("websocket_tls_key", "websocket_tls_ca"):
            if getattr(s, name) is not None:
                raise ConfigError(
                    f"{section}.{name} is set but {section}.websocket_tls_cert is not: "
                    "TLS on the client port needs the controller's certificate"
                )
    else:
        client_ssl = server_context(
            s.websocket_tls_cert,
            s.websocket_tls_key,
            s.websocket_tls_ca,
            client_auth=s.websocket_tls_ca is not None,
            port="client port",
            section=section,
            sources=sources,
            prefix="websocket_",
        )
    if s.tls_cert is None:
        for name in ("tls_key", "tls_ca", "tls_client_auth"):
            if getattr(s, name):
                raise ConfigError(
                    f"{section}.{name} is set but {section}.tls_cert is not: "
                    "TLS on the agent channel needs the controller's certificate"
                )
        return ControllerTLS(client_ssl=client_ssl)
    _check_client_auth(s, section)
    return ControllerTLS(
        client_ssl=client_ssl,
        agent_ssl=_agent_port(s, s.tls_cert, section, sources),
        dial_ssl=client_context(s.tls_cert, s.tls_key, s.tls_ca, section=section, sources=sources),
    )


def _check_client_auth(s: DaemonSettings, section: str) -> None:
    if s.tls_client_auth and s.tls_ca is None:
        raise ConfigError(f"{section}.tls_client_auth needs {section}.tls_ca (the CA of the peers)")


def _agent_port(
    s: DaemonSettings, cert: Path, section: str, sources: Mapping[str, str] | None
) -> ssl.SSLContext:
    """The context of the agent channel's listening port (the controller's agent port, the
    agent's own), with certificate ``cert``."""
    return server_context(
        cert,
        s.tls_key,
        s.tls_ca,
        client_auth=s.tls_client_auth,
        port="agent port",
        section=section,
        sources=sources,
    )


def agent_tls(settings: AgentSettings, sources: Mapping[str, str] | None = None) -> AgentTLS:
    """The agent's TLS contexts from its settings (see the module docstring).

    Raises:
        ConfigError: inconsistent TLS settings or unusable files.
    """
    s, section = settings, "agent"
    if s.tls_cert is None and s.tls_ca is None:
        for name in ("tls_key", "tls_client_auth"):
            if getattr(s, name):
                raise ConfigError(
                    f"{section}.{name} is set but neither {section}.tls_cert nor "
                    f"{section}.tls_ca is"
                )
        return AgentTLS()
    if s.tls_key is not None and s.tls_cert is None:
        raise ConfigError(f"{section}.tls_key is set but {section}.tls_cert is not")
    _check_client_auth(s, section)
    server = None
    if s.listen_port:
        if s.tls_cert is None:
            raise ConfigError(
                f"{section}: TLS is on (tls_ca is set) and the agent listens on port "
                f"{s.listen_port}, which needs tls_cert and tls_key; set them, or set "
                f"{section}.listen_port = 0 if the controller never dials this agent"
            )
        server = _agent_port(s, s.tls_cert, section, sources)
    dial = None
    if s.controller is not None:
        dial = client_context(s.tls_cert, s.tls_key, s.tls_ca, section=section, sources=sources)
    return AgentTLS(server_ssl=server, dial_ssl=dial)
