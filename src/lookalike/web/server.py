"""Running the viewer: `serve(db, host, port)` listens with uvicorn until interrupted, as
`lookalike serve` does, and warns when the viewer would be seen beyond this machine."""

from __future__ import annotations

import logging
import os
import sys
import threading

from ..api import Collection
from ..errors import LookalikeError
from . import addresses
from .app import create_app
from .guard import is_loopback


def exposure_warning(host: str) -> str | None:
    """The warning to print when the viewer would listen beyond this machine, else None."""
    if is_loopback(host):
        return None
    return (f"lookalike: warning: listening on {host}: other machines on the network can see "
            "every image of the collection and its file paths; there is no password. Use "
            "--host 127.0.0.1 (the default) to keep it to this machine.")


def serve(db: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False) -> None:
    """Serve the viewer for the collection in `db` until interrupted (what `lookalike serve`
    does); port 0 picks a free port. Raises LookalikeError when the collection cannot be
    opened or the address cannot be listened on."""
    import uvicorn

    warning = exposure_warning(host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    col = Collection.open(db)
    try:
        sock = _listen(host, port)
        port = sock.getsockname()[1]
        app = create_app(col, allowed_hosts=None if is_loopback(host) else ["*"])
        url, *elsewhere = addresses.urls(host, port)
        print(f"lookalike: serving {col.store.path} ({len(col):,} images) at {url} "
              f"(API documented at {url}docs); Ctrl-C stops", file=sys.stderr, flush=True)
        for other in elsewhere:
            print(f"lookalike: from other machines: {other}", file=sys.stderr, flush=True)
        _announce_search_choice()
        if open_browser:
            import webbrowser

            threading.Timer(1.0, webbrowser.open, [url]).start()
        # HTTP is parsed by httptools (a dependency; uvicorn takes it when installed): h11, in
        # Python, cost a quarter of the throughput of graph searches from 20 clients.
        config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn stops gracefully, then re-raises Ctrl-C
            pass
        print("lookalike: viewer stopped", file=sys.stderr)
    finally:
        col.close()


def _announce_search_choice() -> None:
    """Print, when the warm-up has decided it, which exact cosine pass serves this machine and
    the timings it was chosen by (search/exact.py logs it; large collections only)."""
    logger = logging.getLogger("lookalike.search.exact")
    if not any(getattr(h, "lookalike_announce", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lookalike: %(message)s"))
        handler.setLevel(logging.INFO)
        handler.lookalike_announce = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _listen(host: str, port: int):
    """A socket bound to (host, port), so that a busy port is a clear error before start-up."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
            flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        raise LookalikeError(f"--host {host}: not an address or a name this machine knows; use "
                             "127.0.0.1 (this machine only) or 0.0.0.0 (every network it is "
                             "on)") from None
    # The protocol must be IPPROTO_TCP, not 0: only then does asyncio set TCP_NODELAY on the
    # accepted connections (else each response waits ~40 ms for a delayed ACK).
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as exc:
        sock.close()
        raise LookalikeError(addresses.listen_failure(host, port, exc)) from None
    return sock


__all__ = ["exposure_warning", "is_loopback", "serve"]
