"""A stand-in for ``POST /v1/events`` on a loopback port whose failures a test scripts.

It keeps what the meter keeps (each id once, a resend a duplicate, another body a conflict) and
answers as the meter does, unless the test queued another answer first: a status with headers and
body, or a dropped connection. The client's tests use it for the failures the real stack cannot be
made to produce on demand; the end-to-end tests run the client against the real stack.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DROP = "drop"  # close the connection without an answer


class MeterDouble:
    """``url`` to point a Meter at; ``stored`` ids; ``requests`` the id lists of each request received."""

    def __init__(self, max_events: int = 500) -> None:
        self.stored: dict[str, str] = {}
        self.requests: list[list[str]] = []
        self.encodings: list[str] = []
        self.script: deque[Any] = deque()
        self.max_events = max_events
        self.lock = threading.Lock()
        self.hold = threading.Event()  # cleared: requests wait until set
        self.hold.set()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                double.hold.wait(30)
                encoding = self.headers.get("Content-Encoding", "")
                body = json.loads(gzip.decompress(raw) if encoding == "gzip" else raw)
                status, headers, answer = double.answer(body["events"], encoding)
                if status == DROP:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, events: list[dict[str, Any]], encoding: str) -> tuple[Any, dict[str, str], Any]:
        with self.lock:
            self.requests.append([e["id"] for e in events])
            self.encodings.append(encoding)
            if self.script:
                scripted = self.script.popleft()
                return scripted if isinstance(scripted, tuple) else (scripted, {}, {"error": "scripted"})
            if len(events) > self.max_events:
                return 413, {}, {"error": "too many"}
            results = []
            for event in events:
                body = json.dumps(event, sort_keys=True)
                known = self.stored.setdefault(event["id"], body)
                status = "accepted" if known is body else "duplicate" if known == body else "conflict"
                results.append({"id": event["id"], "status": status})
            conflicts = sum(r["status"] == "conflict" for r in results)
            return (409 if conflicts else 200), {}, {"results": results}

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()
