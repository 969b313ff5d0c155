"""The request guard in front of every route: only requests addressed to this server's own host
name (so that pages elsewhere cannot reach the viewer through DNS rebinding), bodies within the
upload limit, and headers that keep browsers from sniffing or framing the answers."""

from __future__ import annotations

import ipaddress
import json

#: Largest accepted upload (the image file itself).
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
#: Room for the multipart envelope and the form fields around an upload.
ENVELOPE_BYTES = 64 * 1024

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

_SAFETY_HEADERS = [(b"x-content-type-options", b"nosniff"),
                   (b"referrer-policy", b"no-referrer"),
                   (b"x-frame-options", b"DENY")]


def accepted_hosts(allowed_hosts: list[str] | None) -> set[str] | None:
    """The Host names a server accepts: the loopback names and `allowed_hosts`; None (any)
    when `allowed_hosts` holds "*"."""
    if allowed_hosts is not None and "*" in allowed_hosts:
        return None
    return {h.lower() for h in (allowed_hosts or [])} | LOOPBACK_NAMES | {"127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is reachable only from this machine."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """ASGI middleware: refuses unknown Host headers (DNS rebinding) and bodies over
    `max_body` bytes (413, counted as they arrive, whether or not Content-Length is given),
    and adds headers that keep browsers from sniffing or framing responses."""

    def __init__(self, app, max_body: int, hosts: set[str] | None):
        self.app = app
        self.max_body = max_body
        self.hosts = hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self._refusal(dict(scope["headers"]))
        if refusal:
            return await _send_json(send, *refusal)
        await _BodyLimit(self, send).run(scope, receive)

    def _refusal(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        """(status, message) for a request refused on its headers alone, else None."""
        if self.hosts is not None and _host_name(headers.get(b"host", b"")) not in self.hosts:
            return 400, ("this server answers only requests addressed to its own host name "
                         "(Host header refused)")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return 400, "invalid Content-Length"
            if too_big:
                return 413, self.too_big()
        return None

    def too_big(self) -> str:
        return (f"the request body is larger than {self.max_body:,} bytes; uploads are limited "
                f"to {self.max_body - ENVELOPE_BYTES:,} bytes")


class _BodyLimit:
    """One request under the guard: its body counted as it arrives, the answer replaced by a
    413 once the count passes the limit, and the safety headers added to every answer."""

    def __init__(self, guard: RequestGuard, send):
        self.guard = guard
        self.send = send
        self.received = 0
        self.over = False
        self.started = False

    async def run(self, scope, receive) -> None:
        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.guard.max_body:
                    self.over = True
                    raise _BodyTooLarge()
            return message

        try:
            await self.guard.app(scope, counting_receive, self.guarded_send)
        except _BodyTooLarge:
            if not self.started:
                await _send_json(self.send, 413, self.guard.too_big())

    async def guarded_send(self, message) -> None:
        if self.over:  # whatever the app made of the cut-off body, the answer is 413
            if message["type"] == "http.response.start" and not self.started:
                self.started = True
                await _send_json(self.send, 413, self.guard.too_big())
            return
        if message["type"] == "http.response.start":
            self.started = True
            message = dict(message, headers=list(message.get("headers", [])) + _SAFETY_HEADERS)
        await self.send(message)


class _BodyTooLarge(Exception):
    pass


def _host_name(value: bytes) -> str:
    host = value.decode("latin-1").strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})
