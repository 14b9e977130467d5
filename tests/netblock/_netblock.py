"""Refuse every non-loopback connection, so an accidental download fails at once."""

from __future__ import annotations

import socket

_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}


class NetworkBlocked(OSError):
    pass


def _own_addresses() -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        return set()


_OWN = _own_addresses() | {socket.gethostname()}


def _is_local(host: object) -> bool:
    if host in _LOCAL_NAMES or host in _OWN:
        return True
    return isinstance(host, str) and host.startswith("127.")


def block_network() -> None:
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(host):
            raise NetworkBlocked(f"network access is blocked in tests (connect to {address!r})")
        return real_connect(self, address)

    def guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if not _is_local(host):
            raise NetworkBlocked(f"network access is blocked in tests (resolve {host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo  # type: ignore[assignment]
