"""Which addresses count as this machine only; checked before the studio loads anything."""

from __future__ import annotations

import ipaddress

from clipstyler_opt.core.errors import ConfigError

__all__ = ["check_host", "is_loopback"]

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, True, False, True)
    """
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """ConfigError (exit 2) for a host that is not loopback, unless `allow_remote`."""
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"--host {host} would let other machines use the studio; add --allow-remote "
                          "(a token printed at start is then needed on every request)")
