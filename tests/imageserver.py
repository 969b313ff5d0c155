"""A real HTTP server on 127.0.0.1, started by the tests: good images, broken ones, errors,
slow answers. It counts the requests each path gets, when, and how many were in flight."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from imagefactory import pattern


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "image/png"
    delay: float = 0.0            # seconds before the answer starts
    fail_first: int = 0           # this many requests get `fail_status` first
    fail_status: int = 500
    headers: dict = field(default_factory=dict)
    send_length: bool = True      # False: no Content-Length, the body ends with the connection


class ImageServer:
    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.hits: Counter = Counter()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> ImageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes = b"", **options) -> str:
        self.routes[path] = Route(body, **options)
        return self.url(path)


def _handler(server: ImageServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            path = self.path
            with server._lock:
                server.hits[path] += 1
                count = server.hits[path]
                server.times[path].append(time.monotonic())
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                self._answer(server.routes.get(path), count)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout, a size limit)
            finally:
                with server._lock:
                    server.in_flight -= 1

        def _answer(self, route: Route | None, count: int):
            if route is None:
                return self._send(404, b"no such image", "text/plain")
            if route.delay:
                time.sleep(route.delay)
            if count <= route.fail_first:
                return self._send(route.fail_status, b"try again later", "text/plain",
                                  route.headers)
            self._send(route.status, route.body, route.content_type, route.headers,
                       route.send_length)

        def _send(self, status, body, content_type, headers=None, send_length=True):
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            if send_length:
                self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def png_bytes(seed: int = 0, size: tuple[int, int] = (96, 64)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pattern(*size, seed=seed)).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(seed: int = 0) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pattern(seed=seed)).save(out, "JPEG", quality=90)
    return out.getvalue()
