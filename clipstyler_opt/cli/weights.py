"""`clipopt weights`: list the known backbones, prefetch them, re-check the caches, inspect a file."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from clipstyler_opt.core.backbone_spec import BackboneSpec, offline_requested
from clipstyler_opt.core.digests import file_sha256, sha256_of_file
from clipstyler_opt.core.errors import OutputError, WeightsError
from clipstyler_opt.models.tokenizers import TOKENIZER_FILES, resolve_tokenizer_folder
from clipstyler_opt.weights.download import VGG19_FILENAME, check_reachable, download_file, one_line, vgg19_url
from clipstyler_opt.weights.resolve import resolve_hub_file, resolve_vgg_weights

if TYPE_CHECKING:  # models.catalog and models.inspect load torch: imported where used, so --help stays light
    from clipstyler_opt.models.catalog import CacheStatus, HubSource
    from clipstyler_opt.models.inspect import CheckpointReport

__all__ = ["weights"]

SUMS_FILE = "SHA256SUMS"
_CONFIG_FILE = "open_clip_config.json"
_cache_dir_option = click.option(
    "--cache-dir", type=click.Path(path_type=Path, file_okay=False),
    help="Extra weights cache folder, as for `run` (searched first; downloads without --to go there).")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")


@click.group()
def weights() -> None:
    """List, prefetch, verify and inspect backbone weights."""


def _status_dict(status: CacheStatus) -> dict[str, Any]:
    entry = status.entry
    tokenizer = None if status.tokenizer_repo is None else {
        "repo": status.tokenizer_repo, "cached": status.tokenizer_path is not None,
        "path": str(status.tokenizer_path) if status.tokenizer_path else None}
    return {"name": entry.name, "role": entry.role, "default": entry.is_default, "source": status.source,
            "parameters": entry.parameters, "approx_download_bytes": entry.approx_download_bytes,
            "cached": status.path is not None, "path": str(status.path) if status.path else None,
            "tokenizer": tokenizer}


@weights.command("list")
@_cache_dir_option
@_json_option
def list_command(cache_dir: Path | None, as_json: bool) -> None:
    """The known backbones: download size, and whether and where the caches hold them.

    Looks only in the caches a run searches; never touches the network.
    """
    from clipstyler_opt.models.catalog import CATALOG, cache_status, size_text

    statuses = [cache_status(entry, cache_dir) for entry in CATALOG]
    if as_json:
        click.echo(json.dumps([_status_dict(status) for status in statuses], indent=2))
        return
    width = max(len(entry.name) for entry in CATALOG) + len(" (default)")
    for status in statuses:
        entry = status.entry
        label = entry.name + (" (default)" if entry.is_default else " (content)" if entry.role == "content" else "")
        where = f"cached: {status.path}" if status.path else f"not cached ({status.source})"
        click.echo(f"{label:<{width}}  {'~' + size_text(entry.approx_download_bytes):>8}  {where}")
        if status.tokenizer_repo:
            found = f"cached: {status.tokenizer_path}" if status.tokenizer_path else "not cached"
            click.echo(f"{'':<{width}}  {'':>8}  tokenizer {status.tokenizer_repo}: {found}")
    click.echo("Sizes are approximate (fp32 files, 4 bytes a parameter). "
               "`clipopt weights download NAME` fetches one.")


@dataclass
class _Fetched:
    """What one SPEC brought: files (path -> sha256 or None) and the options that use them."""

    name: str
    files: dict[Path, str | None] = field(default_factory=dict)
    options: list[str] = field(default_factory=list)


def _checked(path: Path) -> str:
    """The sha256 of a file just resolved or downloaded, after re-checking it; WeightsError if corrupt."""
    from clipstyler_opt.models.catalog import check_cached_file

    finding = check_cached_file(path)
    if finding.problem:
        raise WeightsError(f"{path}: {finding.problem}; delete it and run the download again")
    return finding.sha256 or file_sha256(path)


def _hub_to_folder(repo_id: str, filenames: list[str], folder: Path) -> Path:
    """The first of `filenames` in `repo_id`, downloaded as a plain file into `folder`; LFS files
    are checked against the SHA-256 the hub announces, and deleted when they differ."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    last: Exception | None = None
    for filename in filenames:
        try:
            announced = get_hf_file_metadata(hf_hub_url(repo_id, filename), timeout=10).etag or ""
            path = Path(hf_hub_download(repo_id, filename, local_dir=folder, etag_timeout=10))
        except Exception as exc:  # a missing safetensors variant: try the next name
            last = exc
            continue
        if re.fullmatch(r"[0-9a-f]{64}", announced) and sha256_of_file(path) != announced:
            path.unlink()
            raise WeightsError(f"{repo_id}/{filename}: the downloaded file's SHA-256 differs from the hub's "
                               f"{announced[:16]}...; it was deleted")
        return path
    raise WeightsError(f"{repo_id}: {one_line(last or Exception())}")


def _config_and_weights(source: HubSource, fetch: Callable[[list[str]], Path], fetched: _Fetched
                        ) -> tuple[Path, str | None]:
    """(weights file, tokenizer repo): hf-hub: sources name their tokenizer in their config."""
    from clipstyler_opt.models.catalog import tokenizer_repo_of

    tokenizer_repo = source.tokenizer_repo
    if source.with_config:
        config = fetch([_CONFIG_FILE])
        fetched.files[config] = None
        tokenizer_repo = tokenizer_repo_of(config)
    weights_file = fetch(list(source.weights))
    fetched.files[weights_file] = _checked(weights_file)
    return weights_file, tokenizer_repo


def _hub_into_cache(spec: BackboneSpec, source: HubSource, cache_dir: Path | None) -> _Fetched:
    """Through the resolvers a run uses, into the caches it searches."""
    fetched = _Fetched(str(spec))
    flag = "a local-dir: spec" if source.with_config else "--clip-checkpoint"  # as a run would say

    def fetch(names: list[str]) -> Path:
        return resolve_hub_file(source.repo_id, names, what=str(spec), explicit=None, explicit_flag=flag,
                                cache_dir=cache_dir, offline=False).path

    _, tokenizer_repo = _config_and_weights(source, fetch, fetched)
    if tokenizer_repo:
        folder = resolve_tokenizer_folder(tokenizer_repo, explicit=None, bundled=None, cache_dir=cache_dir,
                                          offline=False).path
        fetched.files[folder] = None
    return fetched


def _hub_into_folder(spec: BackboneSpec, source: HubSource, folder: Path) -> _Fetched:
    """Plain files under FOLDER/NAME, and the --backbone option that uses them."""
    from huggingface_hub import constants, snapshot_download

    check_reachable(constants.ENDPOINT)
    target = folder / (spec.model.rsplit("/", 1)[-1] if spec.schema else f"{spec.model}-{spec.pretrained}")
    fetched = _Fetched(str(spec))
    weights_file, tokenizer_repo = _config_and_weights(
        source, lambda names: _hub_to_folder(source.repo_id, names, target), fetched)
    tokenizer = None
    if tokenizer_repo:
        tokenizer = target if source.with_config else target / "tokenizer"  # local-dir: looks next to the weights
        try:
            snapshot_download(tokenizer_repo, allow_patterns=TOKENIZER_FILES, local_dir=tokenizer, etag_timeout=10)
        except Exception as exc:  # huggingface_hub and requests raise many types
            raise WeightsError(f"tokenizer {tokenizer_repo}: {one_line(exc)}") from None
        for path in sorted(tokenizer.iterdir()):
            if path.is_file():
                fetched.files.setdefault(path, None)
    use = spec.with_defaults(source=f"local-dir:{target}") if source.with_config else \
        spec.with_defaults(file=weights_file, tokenizer=tokenizer)
    fetched.options.append(f"--backbone {shlex.quote(str(use))}")
    return fetched


def _fetch_vgg(folder: Path | None, cache_dir: Path | None) -> _Fetched:
    from clipstyler_opt.models import catalog
    from clipstyler_opt.models.catalog import check_cached_file

    fetched = _Fetched("vgg19")
    if folder is None:
        path = resolve_vgg_weights(explicit=None, cache_dir=cache_dir, offline=False).path
    else:
        path = folder / VGG19_FILENAME
        if not (path.is_file() and not check_cached_file(path).problem):
            url = vgg19_url()
            check_reachable(url)
            download_file(url, path, sha256_prefix=catalog.VGG19_SHA256_PREFIX)
        fetched.options.append(f"--vgg-checkpoint {shlex.quote(str(path))}")
    fetched.files[path] = _checked(path)
    return fetched


def _record_sums(folder: Path, files: dict[Path, str | None]) -> Path:
    """Add the files' SHA-256 to FOLDER/SHA256SUMS (`sha256sum -c` format), replaced atomically."""
    from clipstyler_opt.core.files import read_text, write_atomic

    sums = folder / SUMS_FILE
    lines: dict[str, str] = {}
    known = read_text(sums, error=OutputError, what="cannot read").splitlines() if sums.exists() else []
    for line in known:
        recorded, _, name = line.partition("  ")
        if name:
            lines[name] = recorded
    for path, digest in files.items():
        if path.is_file():
            lines[str(path.relative_to(folder))] = digest or file_sha256(path)
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(lines.items()))
    return write_atomic(sums, lambda fh: fh.write(text.encode("utf-8", "surrogateescape")))


@weights.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@click.option("--to", "folder", type=click.Path(path_type=Path, file_okay=False),
              help="Write plain files into this folder (for another machine) and print the options that use them.")
@_cache_dir_option
def download(specs: tuple[str, ...], folder: Path | None, cache_dir: Path | None) -> None:
    """Fetch the weights (and tokenizer) of each SPEC, e.g. ViT-B-16-SigLIP/webli, hf-hub:ORG/NAME or vgg19.

    Without --to the files go into the caches a run searches, so a later offline run finds
    them. Every file is checked (SHA-256 where the hub or the file name gives one) and its
    SHA-256 printed; an interrupted VGG19 download resumes on the next attempt.
    """
    from clipstyler_opt.models.catalog import hub_source, is_content_network

    if offline_requested(False):
        raise WeightsError("downloads are switched off (CLIPOPT_OFFLINE or HF_HUB_OFFLINE is set)")
    plans: list[tuple[BackboneSpec, HubSource] | None] = []
    for text in specs:  # every spec is checked before anything is fetched
        spec = None if is_content_network(text) else BackboneSpec.parse(text)
        plans.append(None if spec is None else (spec, hub_source(spec)))
    folder = folder.expanduser().absolute() if folder is not None else None
    done = [_fetch_vgg(folder, cache_dir) if plan is None else
            _hub_into_cache(*plan, cache_dir) if folder is None else _hub_into_folder(*plan, folder)
            for plan in plans]
    for fetched in done:
        click.echo(f"{fetched.name}:")
        for path, digest in fetched.files.items():
            click.echo(f"  {path}" + (f"  sha256 {digest}" if digest else ""))
    if folder is not None:
        sums = _record_sums(folder, {path: digest for fetched in done for path, digest in fetched.files.items()})
        click.echo(f"SHA-256 of every file: {sums}. Use them with:")
        click.echo("  " + " ".join(option for fetched in done for option in fetched.options))
    elif cache_dir is not None:
        click.echo(f"Runs find these with --cache-dir {shlex.quote(str(cache_dir))}.")


@weights.command()
@click.argument("specs", nargs=-1, metavar="[SPEC]...")
@_cache_dir_option
def verify(specs: tuple[str, ...], cache_dir: Path | None) -> None:
    """Re-check the cached files of each SPEC (default: every backbone `weights list` shows).

    Checks each file's SHA-256 where the hub cache or the file name gives one, that weights
    files are intact checkpoints (no model is built), and reports partial downloads. Exit
    code 4 when anything is wrong, with one line per problem.
    """
    from clipstyler_opt.models.catalog import verify_caches

    findings = verify_caches(cache_dir, specs)
    problems = [finding for finding in findings if finding.problem]
    for finding in findings:
        click.echo(f"problem: {finding.path}: {finding.problem}" if finding.problem
                   else f"ok: {finding.path} ({finding.check})")
    if not findings:
        click.echo("the caches hold no files of these backbones")
    if problems:
        raise WeightsError(f"{len(problems)} of {len(findings)} cached files have problems (listed above)")


def _describe(report: CheckpointReport) -> list[str]:
    architecture = report.architecture
    dtypes = ", ".join(f"{name} {count:,}" for name, count in report.dtypes.items())
    lines = [f"file: {report.path}", f"size: {report.size_bytes:,} bytes", f"sha256: {report.sha256}",
             f"format: {report.format}; loads as a state dict: {report.tensors} tensors, "
             f"{report.parameters:,} parameters ({dtypes})",
             f"architecture: {architecture.summary}"]
    lines += [f"  {key}: {value}" for key, value in architecture.details.items()]
    if architecture.family.startswith("open_clip-"):
        names = ", ".join(architecture.candidates) or "none of open_clip's architectures"
        lines.append(f"candidates: {names}" + (" (GELU or QuickGELU is not visible in the weights)"
                                               if any(n.endswith("-quickgelu") for n in architecture.candidates)
                                               else ""))
    elif architecture.candidates:
        lines.append(f"candidates: {', '.join(architecture.candidates)}")
    if report.content_network is not None:
        lines.append(f"as the VGG19 content network: {report.content_network}")
    return lines


@weights.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@_json_option
def info_command(file: Path, as_json: bool) -> None:
    """What the checkpoint FILE holds: architecture (from tensor names and shapes), candidates
    among open_clip's architectures, parameters, size and SHA-256. Exit code 4 when it is not
    a checkpoint."""
    from clipstyler_opt.models.inspect import inspect_checkpoint

    report = inspect_checkpoint(file)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    for line in _describe(report):
        click.echo(line)
