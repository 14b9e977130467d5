"""The tests' network block: every non-loopback access raises the block's own error before any
packet is sent, in this process and in subprocesses; loopback keeps working; no proxy variables.

Each blocked attempt uses a short timeout, so a broken block shows up as a failed test (a timeout
or refusal instead of NetworkBlocked), not as a hang. The addresses are documentation ranges.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from _netblock import PROXY_VARIABLES, NetworkBlocked, block_network
from conftest import subprocess_env

TEST_NET_3 = "203.0.113.1"
PRIVATE = "10.255.255.1"
TEST_NET_2 = "198.51.100.1"
QUICK = 0.5  # seconds: long enough for loopback, short enough that a real attempt fails the test fast


def blocked(attempt: Callable[[], object]) -> str:
    """Run `attempt`, which must raise NetworkBlocked at once; returns the message."""
    start = time.monotonic()
    with pytest.raises(NetworkBlocked) as error:
        attempt()
    assert time.monotonic() - start < QUICK / 2
    assert type(error.value) is NetworkBlocked and isinstance(error.value, OSError)
    return str(error.value)


def tcp(timeout: float = QUICK) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    return sock


@pytest.mark.parametrize("host", [TEST_NET_3, PRIVATE])
def test_connect_to_a_remote_address_is_blocked(host: str) -> None:
    with tcp() as sock:
        assert host in blocked(lambda: sock.connect((host, 80)))
    with tcp() as sock:
        assert host in blocked(lambda: sock.connect_ex((host, 443)))


def test_ipv6_and_mapped_addresses_are_blocked() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.settimeout(QUICK)
        blocked(lambda: sock.connect(("2001:db8::1", 80, 0, 0)))
        blocked(lambda: sock.connect((f"::ffff:{TEST_NET_3}", 80, 0, 0)))


def test_create_connection_is_blocked() -> None:
    blocked(lambda: socket.create_connection((TEST_NET_3, 80), timeout=QUICK))
    blocked(lambda: socket.create_connection(("example.com", 443), timeout=QUICK))


def test_a_udp_datagram_to_a_remote_address_is_blocked() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert TEST_NET_2 in blocked(lambda: sock.sendto(b"x", (TEST_NET_2, 53)))
        blocked(lambda: sock.sendto(b"x", 0, (TEST_NET_2, 53)))
        blocked(lambda: sock.sendmsg([b"x"], [], 0, (TEST_NET_2, 53)))


@pytest.mark.parametrize("lookup", [
    lambda: socket.getaddrinfo("example.com", 443),
    lambda: socket.gethostbyname("example.com"),
    lambda: socket.gethostbyname_ex("example.com"),
    lambda: socket.gethostbyaddr(TEST_NET_3),
], ids=["getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"])
def test_name_lookups_are_blocked(lookup: Callable[[], object]) -> None:
    blocked(lookup)


def test_loopback_still_works() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def echo() -> None:
            connection, _ = server.accept()
            with connection:
                connection.sendall(connection.recv(16).upper())

        thread = threading.Thread(target=echo)
        thread.start()
        with socket.create_connection(("localhost", port), timeout=5) as client:
            client.sendall(b"ping")
            assert client.recv(16) == b"PING"
        thread.join(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        sender.sendto(b"hi", receiver.getsockname())
        assert receiver.recv(8) == b"hi"
    assert socket.getaddrinfo("127.0.0.1", 80) and socket.gethostbyname("localhost").startswith("127.")


def test_block_network_clears_every_proxy_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["HTTP_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "No_Proxy"]
    for name in names:
        monkeypatch.setenv(name, "http://127.0.0.1:3128")
    block_network()
    assert not [name for name in os.environ if name.lower().endswith("_proxy")]
    assert {"http_proxy", "HTTPS_PROXY", "all_proxy", "NO_PROXY"} <= set(PROXY_VARIABLES)


CHILD = f"""
import json, os, socket
results = {{}}
def attempt(name, call):
    try:
        call()
        results[name] = "no error"
    except Exception as exc:
        results[name] = type(exc).__module__ + "." + type(exc).__name__
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.settimeout({QUICK})
attempt("connect", lambda: tcp.connect(({TEST_NET_3!r}, 80)))
attempt("connect_private", lambda: tcp.connect_ex(({PRIVATE!r}, 80)))
attempt("sendto", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ({TEST_NET_2!r}, 53)))
attempt("getaddrinfo", lambda: socket.getaddrinfo("example.com", 443))
attempt("gethostbyname", lambda: socket.gethostbyname("example.com"))
attempt("create_connection", lambda: socket.create_connection(({TEST_NET_3!r}, 80), timeout={QUICK}))
results["proxies"] = sorted(k for k in os.environ if k.lower().endswith("_proxy"))
print(json.dumps(results))
"""


def test_subprocesses_are_blocked_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    env = subprocess_env()
    assert "HTTPS_PROXY" not in env
    env["http_proxy"] = "http://127.0.0.1:3128"  # set after subprocess_env: the child start-up clears it
    result = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert results.pop("proxies") == []
    assert results == dict.fromkeys(["connect", "connect_private", "sendto", "getaddrinfo", "gethostbyname",
                                     "create_connection"], "_netblock.NetworkBlocked")
