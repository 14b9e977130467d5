"""The studio's REST API (documented in the README's "Studio" section).

- `POST /api/jobs`: multipart form, `image` (the file), `settings` (JSON), optional `style_image`
  files (their weights as `style_weights` in the settings): `{"id": ...}`.
- `GET /api/jobs`: every job of the session, the queue's order included.
- `GET /api/jobs/{id}`: status, step, losses, time left, the preview's URL.
- `GET /api/jobs/{id}/preview`, `/result` (the PNG with its embedded record), `/sidecar`, `/command`.
- `DELETE /api/jobs/{id}`: cancel (a running job keeps its latest image).
- `POST /api/jobs/{id}/score`: "score it" (queued; the job then shows `scores`);
  `POST /api/jobs/{id}/plan`: add it to the output folder's experiment plan.
- `GET /api/backbones`.

Errors are `{"error": "<one line>"}`: 400 for bad settings or images, 404 for an unknown job,
409 for a result not there yet, 413 for an upload over the limit, 503 while stopping.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from clipstyler_opt.core.errors import ClipoptError, ConfigError, InputImageError
from clipstyler_opt.core.files import read_bytes
from clipstyler_opt.run.images import sidecar_path
from clipstyler_opt.studio.jobs import Job
from clipstyler_opt.studio.service import MAX_STYLE_IMAGES, Studio, Upload
from clipstyler_opt.studio.uploads import UploadTooLarge

__all__ = ["api_router", "error_response"]


def error_response(status: int, message: str) -> JSONResponse:
    """`{"error": message}` with `status`."""
    return JSONResponse({"error": message}, status_code=status)


def _status_of(exc: ClipoptError) -> int:
    if isinstance(exc, UploadTooLarge):
        return 413
    if isinstance(exc, (ConfigError, InputImageError)):
        return 400
    return 503


async def _upload(value: Any, name: str) -> Upload:
    if not isinstance(value, UploadFile):
        raise ConfigError(f"'{name}' must be a file")
    return Upload(value.filename or "", await value.read())


def api_router(studio: Studio) -> APIRouter:
    """The API's routes, driving `studio`'s queue (the one the page drives)."""
    router = APIRouter(prefix="/api")

    def found(job_id: str) -> Job | JSONResponse:
        job = studio.queue.get(job_id)
        return job if job is not None else error_response(404, f"no job {job_id!r}")

    @router.post("/jobs")
    async def create_job(request: Request) -> Response:
        try:
            form = await request.form(max_files=1 + MAX_STYLE_IMAGES, max_fields=8)
        except Exception as exc:  # a malformed multipart body, too many parts
            return error_response(400, f"not a multipart form with an image and settings ({exc})")
        try:
            image, settings = form.get("image"), form.get("settings")
            if image is None:
                raise ConfigError("the form needs 'image' (the content image file)")
            if not isinstance(settings, str):
                raise ConfigError("the form needs 'settings' (a JSON object with at least 'prompt')")
            studio.check(settings, len(form.getlist("style_image")))  # before any upload is read
            styles = [await _upload(value, "style_image") for value in form.getlist("style_image")]
            job = studio.submit(await _upload(image, "image"), settings, styles)
        except ClipoptError as exc:
            return error_response(_status_of(exc), str(exc))
        finally:
            await form.close()
        return JSONResponse({"id": job.id}, status_code=201)

    @router.get("/jobs")
    def list_jobs() -> Response:
        return JSONResponse([job.describe(studio.queue.position(job)) for job in studio.queue.jobs()])

    @router.get("/jobs/{job_id}")
    def job_status(job_id: str) -> Response:
        job = found(job_id)
        return job if isinstance(job, JSONResponse) else JSONResponse(job.describe(studio.queue.position(job)))

    @router.delete("/jobs/{job_id}")
    def cancel_job(job_id: str) -> Response:
        job = studio.queue.cancel(job_id)
        if job is None:
            return error_response(404, f"no job {job_id!r}")
        return JSONResponse(job.describe(studio.queue.position(job)))

    @router.get("/jobs/{job_id}/preview")
    def job_preview(job_id: str) -> Response:
        job = found(job_id)
        if isinstance(job, JSONResponse):
            return job
        if job.preview is None:
            return error_response(409, "no preview yet")
        return Response(job.preview, media_type="image/png", headers={"Cache-Control": "no-store"})

    def output_of(job_id: str, sidecar: bool) -> Response:
        job = found(job_id)
        if isinstance(job, JSONResponse):
            return job
        if job.output is None:
            return error_response(409, f"job {job_id} has no image yet (status {job.status})")
        path = sidecar_path(job.output) if sidecar else job.output
        try:
            data = read_bytes(path, what="result")
        except ClipoptError as exc:
            return error_response(410, str(exc))
        kind = "application/json" if sidecar else "image/png"
        return Response(data, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{path.name}"'})

    @router.get("/jobs/{job_id}/result")
    def job_result(job_id: str) -> Response:
        return output_of(job_id, sidecar=False)

    @router.get("/jobs/{job_id}/sidecar")
    def job_sidecar(job_id: str) -> Response:
        return output_of(job_id, sidecar=True)

    @router.get("/jobs/{job_id}/command")
    def job_command(job_id: str) -> Response:
        job = found(job_id)
        if isinstance(job, JSONResponse):
            return job
        return JSONResponse({"command": studio.command(job)})

    @router.post("/jobs/{job_id}/score")
    def score_job(job_id: str) -> Response:
        job = found(job_id)
        if isinstance(job, JSONResponse):
            return job
        try:
            task = studio.request_score(job)
        except ClipoptError as exc:
            return error_response(409, str(exc))
        return JSONResponse({"id": task.id}, status_code=202)

    @router.post("/jobs/{job_id}/plan")
    def plan_job(job_id: str) -> Response:
        job = found(job_id)
        if isinstance(job, JSONResponse):
            return job
        try:
            path, plan = studio.add_to_plan(job)
        except ClipoptError as exc:
            return error_response(_status_of(exc), str(exc))
        return JSONResponse({"plan": path.name, "content": plan})

    @router.get("/backbones")
    def backbones() -> Response:
        return JSONResponse([offer.describe() | {"default": n == 0} for n, offer in enumerate(studio.offers)])

    return router
