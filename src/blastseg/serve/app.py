"""The FastAPI app of ``blastseg serve``: the page (plain HTML, CSS and JavaScript under
``page/``, nothing loaded from elsewhere) and the HTTP API it uses, which scripts may use too
(documented at ``/docs`` and ``/redoc``, whose viewers ``fastapi-offline`` serves from here
too, and at ``/openapi.json``):

- ``POST /api/analyze`` (multipart: ``files`` and the settings) → ``202 {"id": ...}``;
- ``GET /api/jobs/{id}`` → status, per image its state, counts and error;
- ``GET /api/jobs/{id}/images/{n}/view.jpg``, ``.../cells.json``, ``.../overlay.png``: what the page shows;
- ``POST /api/jobs/{id}/corrections`` → the counts after the user's relabels and drops;
- ``GET /api/jobs/{id}/zip`` → every result file as one ZIP.

Every refusal is a 4xx whose ``detail`` is one line.
"""

from __future__ import annotations

import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field

from blastseg.errors import BlastsegError, describe_error
from blastseg.serve.jobs import AnalysisSettings, ImageEntry, Job, JobNotFound, JobStore
from blastseg.serve.uploads import Limits, UploadRefused, save_upload

PAGE = Path(__file__).parent / "page"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
API_PAGES = ("/docs", "/redoc")
IMAGE_FILES = {
    "view.jpg": ("page", "{stem}.jpg", "image/jpeg"),
    "cells.json": ("page", "{stem}.json", "application/json"),
    "overlay.png": ("results", "{stem}_overlay.png", "image/png"),
}


class Change(BaseModel):
    """One correction: cell ``cell`` of image ``image`` relabelled as ``class`` or dropped."""

    image: int = Field(ge=0)
    cell: int = Field(ge=1)
    label: str | None = Field(default=None, alias="class", max_length=64)
    drop: bool = False


class Corrections(BaseModel):
    changes: list[Change] = Field(max_length=100_000)


def create_app(limits: Limits | None = None, keep_minutes: float = 60.0, workdir: Path | None = None) -> FastAPI:
    """The app, its jobs kept in ``workdir`` (a new temporary folder by default, deleted at shutdown)."""
    limits = limits or Limits()
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="blastseg-serve-"))
    store = JobStore(root, keep_minutes)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        store.close()

    app = FastAPIOffline(title="blastseg", summary="White cells and blasts in blood smear images", lifespan=lifespan, favicon_url="/page/icon.svg")
    app.state.store, app.state.limits = store, limits

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        if request.url.path not in API_PAGES:  # their viewers start with an inline script
            response.headers.update(SECURITY_HEADERS)
        return response

    @app.middleware("http")
    async def refuse_oversized(request: Request, call_next):
        """An upload larger than the limits allow in all is refused before it is read."""
        declared = request.headers.get("content-length", "")
        if request.url.path == "/api/analyze" and declared.isdigit() and int(declared) > limits.max_files * limits.max_file_mb * 2**20 + 2**20:
            return JSONResponse(
                {"detail": f"upload of {int(declared) / 2**20:.0f} MB, over the limit of {limits.max_files} files of {limits.max_file_mb:g} MB"},
                status_code=413,
            )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part != "body")
        return JSONResponse({"detail": f"{where}: {first['msg']}"}, status_code=422)

    @app.exception_handler(BlastsegError)
    async def user_mistake(request: Request, error: BlastsegError) -> JSONResponse:
        status = error.status if isinstance(error, UploadRefused) else 404 if isinstance(error, JobNotFound) else 400
        return JSONResponse({"detail": describe_error(error)}, status_code=status)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    app.mount("/page", StaticFiles(directory=PAGE), name="page")

    @app.post("/api/analyze", status_code=202)
    def analyze(
        files: Annotated[list[UploadFile], File(description="JPEG, PNG, BMP or TIFF images")],
        method: Annotated[Literal["network", "kmeans", "otsu"], Form()] = "network",
        classifier: Annotated[Literal["default", "none"], Form()] = "default",
        split: Annotated[bool, Form()] = True,
        min_area: Annotated[int, Form(ge=0, le=10_000_000)] = 100,
    ) -> dict[str, Any]:
        """Start analysing the uploaded images; answers at once with the job's id. A file that is
        too large, not an image or unreadable fails alone (its error is in the job) unless it is
        the only one, which is refused with 413, 415 or 422."""
        if len(files) > limits.max_files:
            raise UploadRefused(413, f"{len(files)} files, over the limit of {limits.max_files} per request")
        job = store.new_job(AnalysisSettings(method=method, classifier=classifier, split=split, min_area=min_area))
        refusals = []
        for index, upload in enumerate(files):
            name = (upload.filename or f"file {index + 1}")[:200]
            image = ImageEntry(index, name)
            try:
                image.path = save_upload(upload.file, name, job.folder / "uploads", image.stem, limits)
            except UploadRefused as refused:
                image.status, image.error = "failed", str(refused)
                refusals.append(refused)
            job.images.append(image)
        if len(refusals) == len(files):
            store.discard(job)
            raise refusals[0]
        store.start(job)
        return {"id": job.id, "status": job.status}

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str) -> dict[str, Any]:
        """The job's state and, per image, its state, counts and error."""
        return store.get(job_id).as_dict()

    @app.get("/api/jobs/{job_id}/images/{index}/{name}")
    def image_file(job_id: str, index: int, name: Literal["view.jpg", "cells.json", "overlay.png"]) -> FileResponse:
        """An analysed image as the page shows it, its cells with outlines, or blastseg's overlay."""
        job = store.get(job_id)
        image = done_image(job, index)
        folder, pattern, media = IMAGE_FILES[name]
        return FileResponse(job.folder / folder / pattern.format(stem=image.stem), media_type=media)

    @app.post("/api/jobs/{job_id}/corrections")
    def correct(job_id: str, corrections: Corrections) -> dict[str, Any]:
        """Replace the job's corrections; answers the corrected counts per image."""
        job = store.get(job_id)
        changes = [{"image": c.image, "cell": c.cell, **({"drop": True} if c.drop else {"class": c.label})} for c in corrections.changes]
        return {"counts": store.correct(job, changes)}

    @app.get("/api/jobs/{job_id}/zip")
    def download(job_id: str) -> Response:
        """Every result file: masks, overlays, instance TIFFs, cells.csv, summary.json, .xyc, corrections."""
        job = store.get(job_id)
        if job.status != "done":
            raise HTTPException(409, "the job is still running")
        return Response(
            store.zip_bytes(job), media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="blastseg_{job.id[:8]}.zip"'}
        )

    return app


def done_image(job: Job, index: int) -> ImageEntry:
    if not 0 <= index < len(job.images):
        raise JobNotFound(f"job {job.id} has no image {index}")
    image = job.images[index]
    if image.status != "done":
        raise HTTPException(409, f"image {index} is {image.status}")
    return image
