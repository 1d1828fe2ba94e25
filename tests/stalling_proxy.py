"""An HTTP proxy in front of the S3 test server that stops answering at a moment a test chooses.

Tests of interrupted uploads and downloads used to stop the server or kill the
client after waiting for a sign of progress, and failed (or passed for the
wrong reason) when the work finished first. The proxy decides instead: ``stall``
is asked before each request is forwarded and after each piece of a response
body; from the first time it says yes, that response and every later request
hang until ``release()``, exactly as a server that stopped answering would.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from typing import Callable

PIECE = 64 << 10
"""Response bytes forwarded between two questions to ``stall``."""
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class StallingProxy:
    def __init__(self, upstream_port: int, stall: Callable[["StallingProxy", str, int], bool]):
        """``stall(proxy, request_line, body_bytes_sent)``; ``proxy.answered`` lists the request lines answered."""
        self.upstream_port = upstream_port
        self.stall = stall
        self.answered: list[str] = []
        self.stalled = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def release(self) -> None:
        """Let every held connection go (closed without an answer) and stop serving."""
        self._released.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _should_stall(self, request: str, sent: int) -> bool:
        with self._lock:
            if not self.stalled.is_set() and self.stall(self, request, sent):
                self.stalled.set()
            return self.stalled.is_set()

    def _hold(self) -> None:
        self._released.wait()

    def _handler(self):
        proxy = self

        class Forward(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy._should_stall(self.requestline, 0):
                    proxy._hold()
                    self.close_connection = True
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port)
                try:
                    upstream.request(self.command, self.path, body, headers=dict(self.headers))
                    response = upstream.getresponse()
                    length = response.getheader("Content-Length")
                    whole = b"" if length is not None or self.command == "HEAD" else response.read()
                    self.send_response_only(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in HOP_BY_HOP:
                            self.send_header(name, value)
                    self.send_header("Content-Length", length if length is not None else str(len(whole)))
                    self.end_headers()
                    self.wfile.write(whole)
                    sent = 0
                    while self.command != "HEAD" and (piece := response.read(PIECE)):
                        self.wfile.write(piece)
                        self.wfile.flush()
                        sent += len(piece)
                        if proxy._should_stall(self.requestline, sent):
                            proxy._hold()
                            self.close_connection = True
                            return
                    with proxy._lock:
                        proxy.answered.append(self.requestline)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

            def log_message(self, *args):
                pass

        return Forward
