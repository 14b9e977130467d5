"""The studio's web server: the FastAPI app (API and page), who may call it, and how it stops.

- It binds 127.0.0.1 unless `--host` names another address, which needs `--allow-remote`; then a
  token printed at start is needed on every request (`Authorization: Bearer TOKEN`; the page's
  address with `?token=TOKEN` sets it as a cookie once).
- On loopback, requests must name the loopback host (`Host`) and come from the studio's own page
  (`Origin`), so another web site open in the browser cannot drive it.
- Ctrl-C or SIGTERM stops taking requests, ends the running job (its latest image is kept) and
  cancels the waiting ones; the command then exits 130.
"""

from __future__ import annotations

import hmac
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from clipstyler_opt.studio.api import api_router, error_response
from clipstyler_opt.studio.hosts import is_loopback
from clipstyler_opt.studio.service import MAX_STYLE_IMAGES, Studio

__all__ = ["TOKEN_COOKIE", "Access", "bind", "build_app", "new_token", "serve"]

TOKEN_COOKIE = "clipopt_studio_token"


def new_token() -> str:
    """A fresh random bearer token."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Access:
    """Who may call: the token (None on loopback) and the host names a loopback request may name."""

    token: str | None
    port: int

    def allowed(self, request: Request) -> Response | None:
        """None when `request` may go on, else the refusal."""
        if self.token is None:
            return self._same_machine(request)
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        query = request.query_params.get("token")
        if query is not None and request.url.path == "/" and hmac.compare_digest(query.encode(), self.token.encode()):
            redirect = RedirectResponse("/", status_code=303)
            redirect.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            return redirect
        return error_response(401, "this studio needs its token: Authorization: Bearer TOKEN")

    def _same_machine(self, request: Request) -> Response | None:
        host = (request.headers.get("host") or "").rpartition(":")[0] or request.headers.get("host", "")
        if not is_loopback(host):
            return error_response(421, f"the studio answers only to its loopback address, not {host!r}")
        origin = request.headers.get("origin")
        if origin and origin != "null":
            parts = urlsplit(origin)
            if not is_loopback(parts.hostname or "") or parts.port != self.port:
                return error_response(403, f"requests from {origin} are refused (not the studio's own page)")
        return None


def build_app(studio: Studio, access: Access, *, page: bool = True) -> FastAPI:
    """The FastAPI app: the API under /api, the page at / (Gradio, mounted), `access` checked first."""
    app = FastAPI(title="clipopt studio", docs_url=None, redoc_url=None, openapi_url=None)
    limit = studio.max_upload_bytes * (1 + MAX_STYLE_IMAGES) + 256 * 1024

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refused = access.allowed(request)
        if refused is not None:
            return refused
        if request.method in ("POST", "PUT"):
            length = request.headers.get("content-length")
            if length is None and request.url.path.startswith("/api/"):
                return error_response(411, "the request needs a Content-Length (the upload limit is checked first)")
            if length is not None and (not length.isdigit() or int(length) > limit):
                return error_response(413, f"request body over the limit of {limit} bytes (--max-upload-mb)")
        return await call_next(request)

    app.include_router(api_router(studio))
    if page:
        from clipstyler_opt.studio.page import mount_page

        app = mount_page(app, studio)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` (0: a free port); OSError when taken."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app: FastAPI, sock: socket.socket, on_stop: Callable[[], None]) -> None:
    """Serve `app` on the listening `sock` until Ctrl-C or SIGTERM; `on_stop` runs as the signal
    arrives (it ends the running job). Raises KeyboardInterrupt once stopped by a signal."""
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            on_stop()
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2,
                            lifespan="on")
    server = _Server(config)
    server.run(sockets=[sock])
    if server.should_exit:  # uvicorn re-raises a captured SIGINT/SIGTERM itself; any other way out too
        raise KeyboardInterrupt
