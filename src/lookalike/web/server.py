"""Running the viewer: `serve(db, host, port, workers=N)` listens with uvicorn (in one process,
or in N worker processes behind the one port: web/workers.py) until interrupted, as `lookalike
serve` does, and warns when the viewer would be seen beyond this machine."""

from __future__ import annotations

import os
import sys
import threading

from ..api import Collection
from ..errors import LookalikeError
from . import addresses
from .app import create_app
from .guard import is_loopback
from .warmup import announce_search_choice
from .workers import run_workers, server_config


def exposure_warning(host: str) -> str | None:
    """The warning to print when the viewer would listen beyond this machine, else None."""
    if is_loopback(host):
        return None
    return (f"lookalike: warning: listening on {host}: other machines on the network can see "
            "every image of the collection and its file paths; there is no password. Use "
            "--host 127.0.0.1 (the default) to keep it to this machine.")


def serve(db: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False, workers: int = 1) -> None:
    """Serve the viewer for the collection in `db` until interrupted (what `lookalike serve`
    does); port 0 picks a free port. `workers`: the server's processes behind the one port,
    each with the collection open on its own (more than one uses more cores, each holding its
    own search structures in memory; what they share is said in web/workers.py). Raises
    LookalikeError when the collection cannot be opened, the address cannot be listened on,
    or `workers` is not a whole number of at least 1."""
    import uvicorn

    check_workers(workers)
    warning = exposure_warning(host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    col = Collection.open(db)
    try:
        sockets = _listen_for(host, port, workers)
        port = sockets[0].getsockname()[1]
        allowed_hosts = None if is_loopback(host) else ["*"]
        url, *elsewhere = addresses.urls(host, port)
        serving = "" if workers == 1 else f" by {workers} worker processes"
        print(f"lookalike: serving {col.store.path} ({len(col):,} images) at {url}{serving} "
              f"(API documented at {url}docs); Ctrl-C stops", file=sys.stderr, flush=True)
        for other in elsewhere:
            print(f"lookalike: from other machines: {other}", file=sys.stderr, flush=True)
        note = workers_note(workers, os.cpu_count())
        if note:
            print(note, file=sys.stderr, flush=True)
        if open_browser:
            import webbrowser

            threading.Timer(1.0, webbrowser.open, [url]).start()
        if workers > 1:
            col.close()  # each worker opens its own
            run_workers(col.store.path, allowed_hosts, sockets, workers)
        else:
            announce_search_choice()
            app = create_app(col, allowed_hosts=allowed_hosts)
            try:
                uvicorn.Server(server_config(app)).run(sockets=sockets)
            except KeyboardInterrupt:  # uvicorn stops gracefully, then re-raises Ctrl-C
                pass
        print("lookalike: viewer stopped", file=sys.stderr)
    finally:
        col.close()


def check_workers(workers: int) -> None:
    """Refuse a number of worker processes that is not a whole number of at least 1."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise LookalikeError(f"workers: {workers!r} is not a number of worker processes; give "
                             "1 (one process, the default) or more")


def workers_note(workers: int, cores: int | None) -> str | None:
    """The note printed when there are more worker processes than cores: allowed (a core
    may be shared with other work anyway), but each worker holds its own search structures
    in memory and more processes than cores serve no faster."""
    if cores is None or workers <= cores:
        return None
    return (f"lookalike: note: {workers} worker processes on {cores} cores: more than the "
            "cores serve no faster, and each holds its own search structures in memory")


def _listen_for(host: str, port: int, workers: int) -> list:
    """The listening sockets of `workers` processes: one, or with several workers where the
    system has SO_REUSEPORT (Linux spreads connections evenly over the sockets of a port),
    one each, bound to the same port."""
    import socket

    if workers == 1 or not hasattr(socket, "SO_REUSEPORT"):
        return [_listen(host, port)]
    if port:  # a port another server holds, even one with SO_REUSEPORT, is an error here
        _listen(host, port).close()
    sockets = [_listen(host, port, reuse_port=True)]
    try:
        for _ in range(workers - 1):
            sockets.append(_listen(host, sockets[0].getsockname()[1], reuse_port=True))
    except LookalikeError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _listen(host: str, port: int, reuse_port: bool = False):
    """A socket bound to (host, port), so that a busy port is a clear error before start-up;
    `reuse_port`: others may bind to the port too (each worker's own socket)."""
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
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as exc:
        sock.close()
        raise LookalikeError(addresses.listen_failure(host, port, exc)) from None
    return sock


__all__ = ["exposure_warning", "is_loopback", "serve"]
