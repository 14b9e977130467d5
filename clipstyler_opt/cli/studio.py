"""`clipopt studio`: a local web studio with a live preview, and a REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from clipstyler_opt.cli.options import field_options, verbosity, verbosity_options
from clipstyler_opt.core.config import StyleConfig
from clipstyler_opt.core.errors import EXIT_INTERRUPTED
from clipstyler_opt.core.naming import printable

__all__ = ["STUDIO_FIELDS", "studio"]

# The weights options of `run` (they decide which backbones the studio offers), and the device.
STUDIO_FIELDS = (*(name for name in StyleConfig.field_names() if StyleConfig.field_meta(name)["role"] == "weights"),
                 "device", "precision")
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 50.0


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address needs --allow-remote.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on (0: a free one, printed at start).")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host; every request then needs the token printed at start "
                   "(Authorization: Bearer TOKEN).")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False), default=Path("studio"),
              show_default=True, help="Folder for results (generated names, never over a file) and uploads "
                                      "(inputs/).")
@click.option("--max-upload-mb", type=click.FloatRange(0, min_open=True), default=DEFAULT_MAX_UPLOAD_MB,
              show_default=True, help="Largest uploaded image, in MiB.")
@click.option("--page/--no-page", default=True, show_default=True,
              help="Serve the page at /; --no-page serves the REST API only (and starts faster).")
@click.option("--scorer", metavar="SPEC", default=None,
              help="Backbone that scores results for \"score it\" (as `clipopt eval --scorer`); default: eval's "
                   "rule, a default backbone that did not optimise the result.")
@click.option("--catalog/--no-catalog", default=True, show_default=True,
              help="Also offer the backbones of `clipopt weights list` (cached ones first).")
@field_options(STUDIO_FIELDS)
@verbosity_options
def studio(host: str, port: int, allow_remote: bool, output_dir: Path, max_upload_mb: float, page: bool,
           scorer: str | None, catalog: bool, quiet: bool, verbose: bool, **params: Any) -> None:
    """Start a local web studio and print its address: upload an image, build a style, watch it
    emerge, cancel, compare, and download. The page and the REST API (/api) share one job queue.

    The weights options decide the backbones offered; the first is the default."""
    verbosity(quiet, verbose)
    from clipstyler_opt.studio.hosts import check_host

    check_host(host, allow_remote)  # before anything is loaded or bound
    base = StyleConfig(**params)
    import os

    from clipstyler_opt.core.files import scratch_folder

    with scratch_folder("clipopt-studio-") as scratch:
        os.environ["GRADIO_TEMP_DIR"] = str(scratch)  # the page's uploads live here, removed at exit
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        _serve(host, port, allow_remote, output_dir, max_upload_mb, page, scorer, catalog, base)


def _serve(host: str, port: int, allow_remote: bool, output_dir: Path, max_upload_mb: float, page: bool,
           scorer: str | None, catalog: bool, base: StyleConfig) -> None:
    from clipstyler_opt.core.errors import OutputError
    from clipstyler_opt.studio.server import Access, bind, build_app, new_token, serve
    from clipstyler_opt.studio.service import Studio

    if scorer is not None:
        from clipstyler_opt.evaluate.scorer import labelled_scorers

        labelled_scorers([scorer])  # a bad spec fails now, not at the first "score it"
    service = Studio(base, output_dir, max_upload_bytes=int(max_upload_mb * 2**20), catalog=catalog, scorer=scorer)
    token = new_token() if allow_remote else None
    try:
        sock = bind(host, port)
    except OSError as exc:
        service.queue.shutdown()
        raise OutputError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    actual = sock.getsockname()[1]
    app = build_app(service, Access(token, actual), page=page)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"studio: http://{shown}:{actual}/", nl=True)
    if token is not None:
        click.echo(f"token: {token}  (page: http://{shown}:{actual}/?token={token})")
    click.echo(f"results go to {printable(str(output_dir))}; Ctrl-C stops", err=True)
    try:
        serve(app, sock, service.queue.stop)
    except KeyboardInterrupt:
        pass
    finally:
        service.queue.shutdown()
        sock.close()
    kept = [job.output for job in service.queue.jobs() if job.partial and job.output is not None]
    for path in kept:
        click.echo(f"interrupted; the latest image is {printable(str(path))}", err=True)
    click.echo("studio stopped", err=True)
    click.get_current_context().exit(EXIT_INTERRUPTED)
