"""A webhook receiver on 127.0.0.1, for trying alerts against ``make run`` and for the tests and
the bench: it records what it gets and answers a status, or trickles its answer a byte at a time."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records each request's (headers, body) and when it came (``times``, monotonic), and answers
    ``status`` (with a ``location`` header, if set), or trickles a 200 a byte every ``trickle`` s."""

    def __init__(self, status: int = 200, location: str | None = None, trickle: float | None = None):
        self.status, self.requests, self.times = status, [], []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.times.append(time.monotonic())
                receiver.requests.append((dict(self.headers.items()), body))
                if trickle:
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(trickle)
                    return
                self.send_response(receiver.status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()
