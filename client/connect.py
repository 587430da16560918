"""Connecting to the controller as zeek-client does: the TLS context of the ``ssl``
settings (zeek-client's choices, wire spec §1.9) and a :class:`~client.api.ControllerClient`
configured from the client settings.
"""

from __future__ import annotations

import logging
import os
import ssl as ssl_module

from client.api import ControllerClient
from client.config import ClientSettings
from mgmt.exceptions import ConfigError

log = logging.getLogger("mgmt.client")


def tls_context(settings: ClientSettings) -> ssl_module.SSLContext | None:
    """The TLS context for ``ssl.enable = true`` (zeek-client's choices, §1.9), else
    ``None``.

    Without ``ssl.certificate`` the server is not verified (Broker's default mode); with
    it, the client presents its certificate and verifies the server against
    ``ssl.cafile``/``ssl.capath``.

    Raises:
        ConfigError: a configured file is missing or unusable.
    """
    tls = settings.tls()
    if not tls.enable:
        return None
    for path, what in (
        (tls.certificate, "SSL certificate file"),
        (tls.keyfile, "SSL private key file"),
        (tls.cafile, "SSL trusted CAs file"),
    ):
        if path and not os.path.isfile(path):
            raise ConfigError(f'{what} "{path}" not found')
    if tls.capath and not os.path.isdir(tls.capath):
        raise ConfigError(f'SSL trusted CAs path "{tls.capath}" not found')
    ctx = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_CLIENT)
    try:
        if not tls.certificate:
            ctx.check_hostname = False
            ctx.verify_mode = ssl_module.CERT_NONE
            # Anonymous ECDH for TLS <= 1.2 as Broker does; TLS 1.3 is unaffected. Where
            # OpenSSL lacks the suite (zeek-client then fails), keep the defaults.
            for ciphers in ("AECDH-AES256-SHA@SECLEVEL=0", "AECDH-AES256-SHA"):
                try:
                    ctx.set_ciphers(ciphers)
                    break
                except ssl_module.SSLError:
                    continue
        else:
            ctx.set_ciphers("HIGH:!aNULL:!MD5")
            ctx.load_cert_chain(tls.certificate, tls.keyfile or None, tls.passphrase or None)
            if tls.cafile or tls.capath:
                ctx.load_verify_locations(cafile=tls.cafile or None, capath=tls.capath or None)
    except (ssl_module.SSLError, OSError) as exc:
        raise ConfigError(str(exc)) from exc
    return ctx


def make_client(settings: ClientSettings) -> ControllerClient:
    """A :class:`ControllerClient` from the settings.

    Raises:
        ConfigError: ``cannot configure connection to H:P: ...`` (zeek-client's message).
    """
    host = settings.controller_host
    port = settings.controller_port
    if settings.tls().legacy_disable:
        log.warning(
            "The ssl.disable setting is deprecated and ignored. "
            "Controller connections now default to plaintext. "
            "Use ssl.enabled to enable encryption. "
            "See 'zeek-client show-settings' for details."
        )
    try:
        ctx = tls_context(settings)
        return ControllerClient(
            host,
            port,
            ssl=ctx,
            timeout=settings.request_timeout,
            peering_attempts=settings.peering_attempts,
            retry_delay=settings.peering_retry_delay,
        )
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"cannot configure connection to {host}:{port}: {exc}") from exc
