"""The addresses the viewer is reached at, and why listening on one failed, for people.

`--host 0.0.0.0` is not an address a browser can open: the viewer prints 127.0.0.1 and this
machine's own network addresses instead, found without sending a single packet.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

#: Hosts that mean "every address of this machine".
WILDCARDS = {"0.0.0.0": socket.AF_INET, "::": socket.AF_INET6, "": socket.AF_INET}

#: Documentation addresses (RFC 5737, RFC 3849): a UDP socket "connected" to one of them
#: tells which local address the default route would use; no packet leaves for them.
_PROBES = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}


def urls(host: str, port: int) -> list[str]:
    """The addresses to open the viewer at, the one for this machine first: for a wildcard
    host, http://127.0.0.1 (or [::1]) and then this machine's network addresses."""
    name = host.strip().strip("[]")
    family = WILDCARDS.get(name)
    if family is None:
        return [_url(name, port)]
    local = "::1" if family == socket.AF_INET6 and not _dual_stack() else "127.0.0.1"
    families = [socket.AF_INET, socket.AF_INET6] if family == socket.AF_INET6 else [family]
    return [_url(local, port)] + [_url(a, port) for a in own_addresses(families)]


def own_addresses(families=(socket.AF_INET,)) -> list[str]:
    """This machine's addresses that other machines may reach: not loopback, not link-local
    (which a browser needs a zone for); from the host name's entries and the default route."""
    found: list[str] = []
    for family in families:
        try:
            infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
        except OSError:
            infos = []
        candidates = [str(info[4][0]) for info in infos]
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((_PROBES[family], 9))  # UDP: sets the route, sends nothing
                candidates.append(probe.getsockname()[0])
        except OSError:
            pass  # no route there: no network
        for address in candidates:
            try:
                ip = ipaddress.ip_address(address.split("%")[0])
            except ValueError:
                continue
            if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified) \
                    and str(ip) not in found and _is_own(family, str(ip)):
                found.append(str(ip))
    return found


def _is_own(family, address: str) -> bool:
    """Whether this machine has `address` (it can bind to it): a host name's entry may be stale."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


def _dual_stack() -> bool:
    """Whether a socket on :: also accepts IPv4 connections (Linux's default)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            return sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    except (OSError, AttributeError):
        return False


def _url(address: str, port: int) -> str:
    shown = f"[{address}]" if ":" in address else address
    return f"http://{shown}:{port}/"


def listen_failure(host: str, port: int, exc: OSError) -> str:
    """One sentence for a failed bind: the address is not this machine's, the port is taken,
    or the port needs privileges."""
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"--host {host}: not an address of this machine; use 127.0.0.1 (this machine "
                "only) or 0.0.0.0 (every network it is on)")
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {host} port {port}: the port is in use; choose another --port"
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return (f"cannot listen on {host} port {port}: ports below 1024 need administrator "
                "rights; choose another --port, such as 8000")
    return f"cannot listen on {host} port {port} ({exc.strerror or exc}); choose another --port"
