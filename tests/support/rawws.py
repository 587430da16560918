"""A raw WebSocket peer on a blocking socket, for tests that must misbehave.

The ``websockets`` client reads for us and frames correctly; a hostile or broken peer does
neither. :class:`RawPeer` does exactly what a test says: the HTTP upgrade, frames built
byte by byte (any opcode, broken lengths, unmasked), and reading only when asked, so a
test can leave a connection silent or never read from it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

from tests.support.waiting import TIMEOUT

API_PATH = "/v1/messages/json"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9


class UpgradeRefused(ConnectionError):
    """The server answered the HTTP upgrade with something other than 101, or closed."""


def encode_frame(
    payload: bytes, opcode: int = OP_TEXT, *, fin: bool = True, mask: bool = True
) -> bytes:
    """One WebSocket frame as a client sends it (masked unless ``mask`` is false)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    if n >= 4096:
        # A server unmasks with whatever key arrives; a zero key makes that a no-op, so
        # big test payloads cost no XOR (real clients must use unpredictable keys).
        return head + bytes(4) + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


class RawPeer:
    """One TCP connection to a Broker WebSocket port, driven by hand.

    Args:
        port: the port on 127.0.0.1.
        rcvbuf: a small receive buffer makes a peer that does not read fill up sooner.
        timeout: socket timeout for connect and every read.
    """

    def __init__(self, port: int, *, rcvbuf: int | None = None, timeout: float = TIMEOUT) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self._buf = bytearray()
        self.fin = True

    def upgrade(self, path: str = API_PATH) -> None:
        """Send the HTTP upgrade and read the 101 response.

        Raises:
            UpgradeRefused: another status, or the connection closed first.
        """
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in self._buf:
            try:
                chunk = self.sock.recv(4096)
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise UpgradeRefused(f"connection reset: {exc}") from exc
            if not chunk:
                raise UpgradeRefused(f"closed during the upgrade after {self._buf!r}")
            self._buf += chunk
        head, _, rest = bytes(self._buf).partition(b"\r\n\r\n")
        self._buf = bytearray(rest)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise UpgradeRefused(status.decode(errors="replace"))

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.sock.sendall(data)

    def send_text(self, text: str) -> None:
        """Send one text frame."""
        self.sock.sendall(encode_frame(text.encode()))

    def subscribe(self, *topics: str) -> None:
        """Send the Broker handshake (subscriptions) and read the ack."""
        self.send_text(json.dumps(list(topics)))
        opcode, payload = self.read_frame()
        assert opcode == OP_TEXT and b'"ack"' in payload, payload[:200]

    def _read_exact(self, n: int) -> bytes:
        if len(self._buf) >= n:
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data
        out = bytearray(n)
        have = len(self._buf)
        out[:have] = self._buf
        self._buf.clear()
        view = memoryview(out)
        while have < n:
            got = self.sock.recv_into(view[have:])
            if not got:
                raise ConnectionError("connection closed")
            have += got
        return bytes(out)

    def read_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (opcode, payload); :attr:`fin` says if it was the
        last of its message."""
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8))
        self.fin = bool(b0 & 0x80)
        return b0 & 0x0F, self._read_exact(n)

    def read_text(self) -> str:
        """The next text message (fragments joined; pings skipped).

        Raises:
            ConnectionError: the server closed (close frame or end of stream).
        """
        parts: list[bytes] = []
        while True:
            opcode, payload = self.read_frame()
            if opcode == OP_PING:
                continue
            if opcode == OP_CLOSE:
                raise ConnectionError(f"close frame {payload!r}")
            parts.append(payload)
            if self.fin:
                return b"".join(parts).decode()

    def _recv_some(self, timeout: float) -> bytes | None:
        """What the server sent within ``timeout`` seconds (0: what is there now); ``b""``
        once it closed the connection (or reset it), ``None`` when nothing came."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1 << 20)
        except (TimeoutError, BlockingIOError):
            return None
        except OSError:
            return b""

    def closed_by_server(self, timeout: float = TIMEOUT) -> bool:
        """Read and discard until the server closes (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        self._buf = bytearray()
        while time.monotonic() < deadline:
            chunk = self._recv_some(max(0.01, deadline - time.monotonic()))
            if chunk is None:
                return False
            if not chunk:
                return True
        return False

    def drain(self) -> bool:
        """Read and discard what the server sent so far, without waiting; False once it
        closed the connection."""
        timeout = self.sock.gettimeout()
        try:
            while (chunk := self._recv_some(0)) is not None:
                if not chunk:
                    return False
            return True
        finally:
            self.sock.settimeout(timeout)

    def close(self) -> None:
        """Drop the connection (no closing handshake)."""
        self.sock.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
