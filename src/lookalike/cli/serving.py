"""Long-running servers, until Ctrl-C: `serve` (the web viewer) and `cluster` (Dask workers
for `index --cluster`)."""

from __future__ import annotations

import os
import sys

from .options import Commands, db_option, positive_int
from .shell import program


def add_serve(commands: Commands) -> None:
    p = commands.add_parser("serve", help="browse the collection and walk through look-alikes in "
                                          "a web browser",
                            description="Start the web viewer: a grid of every image; click one "
                                        "to see its look-alikes, click a look-alike to walk on. "
                                        "The page's data is also a JSON API, documented at /docs. "
                                        "It listens on this machine only unless --host says "
                                        "otherwise.")
    db_option(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 shows the collection to the whole network, with a warning)")
    p.add_argument("--port", type=int, default=8000,
                   help="the port to listen on (default 8000; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="server processes behind the one port (default 1): more use more "
                        "cores for many simultaneous users, each holding its own search "
                        "structures in memory")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args) -> int:
    from ..web import serve

    if not 0 <= args.port <= 65535:
        print(f"lookalike: error: --port must be between 0 and 65535, not {args.port}",
              file=sys.stderr)
        return 2
    open_browser = args.open and has_browser()
    if args.open and not open_browser:
        print("no graphical browser here: open the address below in one", file=sys.stderr)
    serve(args.db, host=args.host, port=args.port, open_browser=open_browser,
          workers=args.workers)
    return 0


def port_is_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def has_browser() -> bool:
    """Whether opening a page can show it: on a machine without a display, Python's
    webbrowser would start a text-mode browser in this terminal, or nothing at all."""
    if os.environ.get("BROWSER") or sys.platform in ("darwin", "win32"):
        return True
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def add_cluster(commands: Commands) -> None:
    from ..distributed.workers import DEFAULT_PORT

    p = commands.add_parser("cluster", help="start Dask workers (and a scheduler) on this "
                                            "machine for `index --cluster`",
                            description="Start Dask worker processes that can run lookalike's "
                                        "work, joined to --scheduler or to a scheduler started "
                                        "here, whose address is printed; run until Ctrl-C. Start "
                                        "one on each machine of the cluster (all of them with "
                                        "lookalike installed and the images at the same paths), "
                                        "then `lookalike index PATH --cluster ADDRESS` anywhere. "
                                        "The same as `dask scheduler` and `dask worker ADDRESS "
                                        "--nworkers N`.")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="worker processes, sharing this machine's cores (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="join this scheduler (tcp://HOST:8786) instead of starting one")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address the scheduler started here listens on (default 127.0.0.1: "
                        "this machine only; 0.0.0.0 for workers on other machines)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"the scheduler's port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.set_defaults(handler=cmd_cluster)


def cmd_cluster(args) -> int:
    from ..distributed.workers import serve_workers

    def ready(address: str) -> None:
        print(f"{args.workers} worker{'s' * (args.workers != 1)} ready; scheduler {address}\n"
              f"index with: {program()} index PATH --cluster {address}\n"
              "(Ctrl-C stops them)", flush=True)

    try:
        serve_workers(args.workers, scheduler=args.scheduler, host=args.host, port=args.port,
                      ready=ready)
    except KeyboardInterrupt:
        print("workers stopped", file=sys.stderr)
    return 0
