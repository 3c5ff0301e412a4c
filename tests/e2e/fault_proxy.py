"""A faulty object store for tests: a threaded HTTP reverse proxy on 127.0.0.1 in front of the S3
server (moto on loopback), injecting faults on a deterministic schedule.

Every request (method, path, query, headers including Host, body) is forwarded unchanged, so
the client signs for the proxy's address and the request reaches the real server as sent. On the
schedule, a request instead

  - `slowdown`: gets `503` with S3's SlowDown XML body (what S3 answers when throttling),
  - `drop`:     has its connection closed with no response at all (a reset / dead peer),
  - `delay`:    is forwarded after a pause (`delay_s`), i.e. a slow store.

The schedule is by request number, counted per kind of operation (`read`: GET/HEAD, `write`:
PUT/POST/DELETE), so both reads and writes see faults whatever the concurrency: request n of a
kind is faulted when `n % every[fault] == offset[fault]` (first match wins, in the order above).
`counts` records what was injected, per fault and kind. `down = True` makes every request a
503 SlowDown (a store that stays down); `down_after_writes = n` turns `down` on once n writes have
been answered (a store that dies mid-run); `enabled = False` forwards everything untouched.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                 b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
READS = {"GET", "HEAD"}


class FaultProxy:
    """`FaultProxy(upstream).start()`; `.endpoint` is the URL clients use instead of the upstream's."""

    def __init__(self, upstream: str, every: dict[str, int] | None = None, offset: dict[str, int] | None = None,
                 delay_s: float = 0.3):
        u = urlsplit(upstream)
        self.upstream_host, self.upstream_port = u.hostname, u.port
        # Defaults: about 1 request in 7 throttled, 1 in 11 dropped, 1 in 5 of the rest delayed.
        self.every = every or {"slowdown": 7, "drop": 11, "delay": 5}
        self.offset = offset or {"slowdown": 3, "drop": 5, "delay": 1}
        self.delay_s = delay_s
        self.enabled = True
        self.down = False
        self.down_after_writes: int | None = None
        self.counts: Counter = Counter()  # (fault, kind) -> n; fault "ok" counts clean forwards
        self._seq: Counter = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ schedule
    def _decide(self, kind: str) -> str:
        with self._lock:
            n = self._seq[kind]
            self._seq[kind] += 1
            if self.down_after_writes is not None and self._seq["write"] > self.down_after_writes:
                self.down = True
            if self.down:
                fault = "down"
            elif not self.enabled:
                fault = "ok"
            else:
                fault = next((f for f in ("slowdown", "drop", "delay") if n % self.every[f] == self.offset[f]), "ok")
            self.counts[(fault, kind)] += 1
            return fault

    def injected(self, kind: str | None = None) -> dict[str, int]:
        """Faults injected so far (all kinds, or one kind): {fault: n}."""
        out: Counter = Counter()
        with self._lock:
            for (fault, k), n in self.counts.items():
                if fault != "ok" and (kind is None or k == kind):
                    out[fault] += n
        return dict(out)

    # ------------------------------------------------------------------ server
    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                body = self._body()
                kind = "read" if self.command in READS else "write"
                fault = proxy._decide(kind)
                if fault in ("slowdown", "down"):
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN_BODY)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(SLOWDOWN_BODY)
                    return
                if fault == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if fault == "delay":
                    time.sleep(proxy.delay_s)
                self._forward(body)

            def _forward(self, body: bytes):
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response_only(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                    if length is not None:
                        self.send_header("Content-Length", length)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
