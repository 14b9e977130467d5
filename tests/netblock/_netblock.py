"""Refuse every non-loopback connection, so an accidental download fails at once.

Guarded: `socket.socket.connect`, `connect_ex`, `sendto`, `sendmsg` (and so
`socket.create_connection`), `socket.getaddrinfo`, `gethostbyname`, `gethostbyname_ex` and
`gethostbyaddr`. The check runs before the real call, so no packet ever leaves for a blocked
address. Proxy variables are removed too: a proxy on loopback would otherwise carry traffic out.
Unix-domain sockets, loopback addresses and this machine's own name and addresses stay
usable (tests run HTTP servers on 127.0.0.1; torchrun looks up its own host name).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["PROXY_VARIABLES", "NetworkBlocked", "block_network", "without_proxies"]

PROXY_VARIABLES = tuple(name for base in ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")
                        for name in (base, base.upper()))
_LOCAL_NAMES = {"localhost", "localhost.localdomain", ""}
_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_own: set[str] = set()  # this machine's host names and addresses, filled by block_network


class NetworkBlocked(OSError):
    """Raised instead of any network access to a non-loopback address during the tests."""


def _is_loopback(host: object) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard, used by servers to bind
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOCAL_NAMES or host in _own:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # any other name would need a lookup, which is itself network access
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    return address.is_loopback or address.is_unspecified


def _check(family: int, address: object, action: str) -> None:
    if family not in _INET_FAMILIES:
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if not _is_loopback(host):
        raise NetworkBlocked(f"network access is blocked in tests ({action} {address!r})")


def _own_names_and_addresses() -> set[str]:
    name = socket.gethostname()
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        addresses = set()
    return {name, *addresses}


def without_proxies(env: dict[str, str]) -> dict[str, str]:
    """`env` without any proxy variable (every case of http/https/all/ftp/no_proxy)."""
    return {k: v for k, v in env.items() if k.lower() not in PROXY_VARIABLES}


def block_network() -> None:
    """Install the guards in this process (idempotent) and clear the proxy variables."""
    for name in list(os.environ):
        if name.lower() in PROXY_VARIABLES:
            del os.environ[name]
    if getattr(socket.socket.connect, "_netblock", False):
        return
    _own.update(_own_names_and_addresses())
    cls = socket.socket
    real_connect, real_connect_ex = cls.connect, cls.connect_ex
    real_sendto, real_sendmsg = cls.sendto, cls.sendmsg

    def connect(self: socket.socket, address: Any) -> None:
        _check(self.family, address, "connect to")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self.family, address, "connect to")
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        _check(self.family, args[-1] if args else None, "send to")
        return real_sendto(self, data, *args)

    def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
        if len(args) >= 3 and args[2] is not None:  # (ancdata, flags, address)
            _check(self.family, args[2], "send to")
        return real_sendmsg(self, buffers, *args)

    def lookup(real: Callable[..., Any], action: str) -> Callable[..., Any]:
        def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not _is_loopback(host):
                raise NetworkBlocked(f"network access is blocked in tests ({action} {host!r})")
            return real(host, *args, **kwargs)

        return guarded

    for name, function in (("connect", connect), ("connect_ex", connect_ex), ("sendto", sendto),
                           ("sendmsg", sendmsg)):
        function._netblock = True
        setattr(cls, name, function)
    socket.getaddrinfo = lookup(socket.getaddrinfo, "resolve")
    socket.gethostbyname = lookup(socket.gethostbyname, "resolve")
    socket.gethostbyname_ex = lookup(socket.gethostbyname_ex, "resolve")
    socket.gethostbyaddr = lookup(socket.gethostbyaddr, "look up")
