"""Test certificates made with the ``openssl`` command line tool.

Two CAs: ``ca`` (trusted) and ``other_ca`` (not). Leaf certificates (EC P-256, valid two
days, ``serverAuth`` and ``clientAuth``):

* ``server``: for ``127.0.0.1`` and ``localhost`` (SAN), signed by ``ca``; the controller's;
* ``agent``: for ``127.0.0.1`` too (it also serves the agent port), signed by ``ca``;
* ``rogue``: signed by ``other_ca``, so a peer verifying against ``ca`` refuses it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_EXT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = {san}
"""


@dataclass(frozen=True)
class CertPair:
    """A PEM certificate and its unencrypted PEM key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Every file the TLS tests use."""

    ca: Path
    other_ca: Path
    server: CertPair
    agent: CertPair
    rogue: CertPair


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _ca(directory: Path, name: str) -> CertPair:
    pair = CertPair(directory / f"{name}.pem", directory / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", pair.key, "-out", pair.cert, "-days", "2", "-subj", f"/CN=zeek-mgmt {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return pair


def _leaf(directory: Path, name: str, ca: CertPair, san: str) -> CertPair:
    pair = CertPair(directory / f"{name}.pem", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    ext.write_text(_EXT.format(san=san))
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", pair.key, "-out", csr, "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-out", pair.cert, "-days", "2", "-extfile", ext,
    )  # fmt: skip
    return pair


def have_openssl() -> bool:
    """Whether the ``openssl`` tool is on PATH."""
    return shutil.which("openssl") is not None


def make_pki(directory: Path) -> Pki:
    """Create the CAs and certificates in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca")
    other = _ca(directory, "other-ca")
    san = "IP:127.0.0.1,DNS:localhost"
    return Pki(
        ca=ca.cert,
        other_ca=other.cert,
        server=_leaf(directory, "server", ca, san),
        agent=_leaf(directory, "agent", ca, san),
        rogue=_leaf(directory, "rogue", other, san),
    )
