"""Who may use `clipopt studio`: a non-loopback --host is refused without --allow-remote (exit 2,
before anything loads); with it, every request needs the token (401 without)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from conftest import subprocess_env

from clipstyler_opt import StyleConfig


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::"])
def test_a_non_loopback_host_needs_allow_remote(host: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "clipstyler_opt", "studio", "--host", host, "--output-dir",
                           str(tmp_path / "out")], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: --host {host} would let other machines use the studio; add "
                                   "--allow-remote (a token printed at start is then needed on every request)")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def remote_client(tiny_config: StyleConfig, tmp_path: Path) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from clipstyler_opt.studio.server import Access, build_app
    from clipstyler_opt.studio.service import Studio

    studio = Studio(tiny_config, tmp_path, max_upload_bytes=2**20, catalog=False)
    try:
        with TestClient(build_app(studio, Access("s3cret-token", 80), page=False)) as client:
            yield client
    finally:
        studio.queue.shutdown()


def test_with_allow_remote_every_request_needs_the_token(remote_client: object) -> None:
    client = remote_client
    for method, url in (("GET", "/api/backbones"), ("GET", "/api/jobs"), ("POST", "/api/jobs"), ("GET", "/"),
                        ("DELETE", "/api/jobs/x")):
        refused = client.request(method, url)  # type: ignore[attr-defined]
        assert refused.status_code == 401 and "token" in refused.json()["error"], (method, url)
    wrong = client.get("/api/backbones", headers={"Authorization": "Bearer s3cret-tokeX"})  # type: ignore[attr-defined]
    assert wrong.status_code == 401
    right = client.get("/api/backbones", headers={"Authorization": "Bearer s3cret-token"})  # type: ignore[attr-defined]
    assert right.status_code == 200 and right.json()[0]["default"]
    # the page's address with ?token= sets it as a cookie once, which then stands for the header
    visit = client.get("/?token=s3cret-token", follow_redirects=False)  # type: ignore[attr-defined]
    assert visit.status_code == 303 and "httponly" in visit.headers["set-cookie"].lower()
    assert client.get("/api/backbones").status_code == 200  # type: ignore[attr-defined]
