"""ZeroMQ CURVE keys: key pairs, their Z85 text and the JSON they travel in.

ZeroMQ's CURVE is CurveZMQ over Curve25519: a secret key is 32 random bytes, its public
key is X25519(secret, 9) (RFC 7748; libzmq's ``zmq_curve_keypair`` via libsodium's
``crypto_box_keypair``), and Zeek's ``Cluster::Backend::ZeroMQ::curve_*`` options take
both as 40-character Z85 text (ZeroMQ RFC 32). zeekctl generates a server and a client
key pair with Zeek's ``generate_keypair()``; the controller does the same here without
needing a Zeek: :func:`keypair` from 32 random bytes the caller draws.

The scalar multiplication is the RFC's Montgomery ladder; it is not constant-time, which
does not matter for generating a key once on the controller's host. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import field, fields

from mgmt.core.frozen import frozen

_P = 2**255 - 19
_A24 = 121665
Z85_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
#: A Z85 key: 32 bytes as 40 characters.
Z85_KEY = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")


def x25519(scalar: bytes, u: bytes) -> bytes:
    """RFC 7748's X25519 function (scalar clamped as the RFC says)."""
    if len(scalar) != 32 or len(u) != 32:
        raise ValueError("X25519 takes 32-byte inputs")
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    kn = int.from_bytes(k, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (kn >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % _P, (x2 - z2) % _P
        aa, bb = a * a % _P, b * b % _P
        e = (aa - bb) % _P
        c, d = (x3 + z3) % _P, (x3 - z3) % _P
        da, cb = d * a % _P, c * b % _P
        x3 = (da + cb) ** 2 % _P
        z3 = x1 * (da - cb) ** 2 % _P
        x2 = aa * bb % _P
        z2 = e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def z85_encode(data: bytes) -> str:
    """Z85 text of ``data`` (a multiple of 4 bytes long)."""
    if len(data) % 4:
        raise ValueError("Z85 encodes multiples of 4 bytes")
    out: list[str] = []
    for i in range(0, len(data), 4):
        value = int.from_bytes(data[i : i + 4], "big")
        chunk = []
        for _ in range(5):
            value, digit = divmod(value, 85)
            chunk.append(Z85_CHARS[digit])
        out.extend(reversed(chunk))
    return "".join(out)


def keypair(secret: bytes) -> tuple[str, str]:
    """``(public, secret)`` in Z85 for a 32-byte random ``secret``."""
    base = (9).to_bytes(32, "little")
    return z85_encode(x25519(secret, base)), z85_encode(secret)


@frozen
class CurveKeys:
    """The server and client key pairs of a ZeroMQ cluster (zeekctl's four keys).

    The secrets never appear in ``repr`` (nor, therefore, in log lines).
    """

    server_publickey: str
    server_secretkey: str = field(repr=False)
    client_publickey: str
    client_secretkey: str = field(repr=False)

    @classmethod
    def generate(cls, random32: bytes, other32: bytes) -> CurveKeys:
        """Two key pairs from two draws of 32 random bytes (server, then client)."""
        server_public, server_secret = keypair(random32)
        client_public, client_secret = keypair(other32)
        return cls(server_public, server_secret, client_public, client_secret)

    def to_json(self) -> str:
        """Compact JSON, ``{"v": 1, "<name>": "<z85>", ...}``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.dumps({"v": 1, **values}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CurveKeys:
        """Read :meth:`to_json`'s form.

        Raises:
            ValueError: not that form, or a key that is not 40 Z85 characters.
        """
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"invalid JSON: {exc}") from None
        if not isinstance(obj, dict) or obj.get("v") != 1:
            raise ValueError('expected a JSON object with "v": 1')
        values = {}
        for f in fields(cls):
            value = obj.get(f.name)
            if not isinstance(value, str) or not Z85_KEY.fullmatch(value):
                raise ValueError(f"{f.name}: expected 40 Z85 characters")
            values[f.name] = value
        return cls(**values)
