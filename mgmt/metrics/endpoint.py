"""A daemon's metrics endpoint: Prometheus exposition over HTTP, on the event loop.

``GET /metrics`` (and ``/``) answers with the registry in the text format the scraper's
``Accept`` header asks for (``prometheus_client.exposition.choose_encoder``: the classic
text format, or OpenMetrics); other paths are the daemon's JSON documents (the
controller's ``/services.json``). The collectors run on the event loop, so they read the
daemon's state without locks (``prometheus_client``'s own server would scrape from a
thread). Each connection gets one request and is closed; a peer has a few seconds to
send its request line and headers (at most 16 KiB), and at most :data:`MAX_CONNECTIONS`
are served at once (more are closed at once), so what a scraper can cost is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("mgmt.metrics")

#: Seconds a scraper has to send its request.
REQUEST_TIMEOUT = 10.0
#: Largest request head accepted.
MAX_HEAD = 16384
#: Connections served at once.
MAX_CONNECTIONS = 32


class MetricsEndpoint:
    """The HTTP endpoint of one daemon.

    Args:
        address: the address to listen on.
        port: the port (0: one the OS picks; see :attr:`port` once started).
        registry: the daemon's metrics.
        documents: JSON documents by path (``"/services.json"``), built per request.
    """

    def __init__(
        self,
        address: str,
        port: int,
        registry: CollectorRegistry,
        documents: Mapping[str, Callable[[], object]] | None = None,
    ) -> None:
        self.host = address
        self.port = port
        self.registry = registry
        self.documents = dict(documents or {})
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen (raises OSError if the port cannot be bound)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics endpoint http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        """Stop listening and close the connections still open."""
        if self._server is not None:
            self._server.close()
            for writer in tuple(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def respond(self, path: str, accept: str) -> tuple[int, str, bytes]:
        """The status, content type and body for a GET of ``path``."""
        path = path.split("?", 1)[0]
        if path in ("/", "/metrics"):
            encode, content_type = choose_encoder(accept)
            return 200, content_type, encode(self.registry)
        document = self.documents.get(path)
        if document is None:
            return 404, "text/plain; charset=utf-8", b"not found\n"
        body = json.dumps(document(), separators=(",", ":")).encode()
        return 200, "application/json", body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._writers.add(writer)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, *_ = lines[0].split(" ") + ["", ""]
            headers = dict(
                (k.strip().lower(), v.strip())
                for k, sep, v in (line.partition(":") for line in lines[1:])
                if sep
            )
            if method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain; charset=utf-8", b"method not allowed\n"
            else:
                status, ctype, body = self.respond(path, headers.get("accept", ""))
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a scraper that said nothing useful: just close
        except ConnectionError:
            pass
        except Exception:
            log.exception("metrics request failed")
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
