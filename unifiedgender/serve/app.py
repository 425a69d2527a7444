"""The FastAPI application: the upload page, POST /api/predict and GET /health."""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from unifiedgender import __version__
from unifiedgender.decision import near_threshold
from unifiedgender.data.images import HEAVY_DECODE_BYTES
from unifiedgender.inference.predictor import NON_FINITE
from unifiedgender.serve.batching import BatchingPredictor, ImagePredictor
from unifiedgender.serve.limits import ServeLimits
from unifiedgender.serve.model_card import ModelCard
from unifiedgender.serve.security import SecurityHeaders
from unifiedgender.serve.uploads import Rejection, Upload, decode_cost, decode_upload, read_form

STATIC_DIR = Path(__file__).with_name("static")
DECODE_CHUNK = 4  # images decoded and predicted together per request: bounds decoded pixels held per request
log = logging.getLogger("unifiedgender.serve")


def create_app(predictor: ImagePredictor, limits: ServeLimits | None = None, card: ModelCard | None = None) -> FastAPI:
    """Build the app around one loaded predictor shared by all requests."""
    limits = limits or ServeLimits()
    card = card or ModelCard.from_predictor(predictor)
    batcher = BatchingPredictor(predictor)
    decode_limiter = anyio.CapacityLimiter(max(1, os.cpu_count() or 1))
    heavy_limiter = anyio.CapacityLimiter(1)  # large decodes queue here, never in the light ones' lane

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="unifiedgender",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # the interactive docs load scripts from a CDN; the API is described in docs/serve.md
        redoc_url=None,
    )
    app.state.limits = limits  # the server's timeouts and connection limit are read from here (serve.server)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(Exception)
    async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health() -> dict:
        """Model identity, accepted modalities, limits and package version."""
        return {"status": "ok", "version": __version__, "model": card.as_dict(), "limits": limits.as_dict()}

    @app.post("/api/predict")
    async def predict(request: Request) -> JSONResponse:
        """Multipart upload of one or more images (field `files`, optional `modality`): one result per file."""
        uploads, fields = await read_form(request, limits)
        try:
            if not uploads:
                raise HTTPException(422, "no files: send one or more images in the multipart field 'files'")
            modality = card.resolve_modality(fields.get("modality"))
            results = []
            for start in range(0, len(uploads), DECODE_CHUNK):
                results += await _predict_chunk(uploads[start : start + DECODE_CHUNK], modality)
        finally:
            for upload in uploads:
                upload.file.close()
        return JSONResponse(
            {"model": card.tag, "modality": modality, "results": results}, status_code=_overall_status(results)
        )

    async def _predict_chunk(uploads: list[Upload], modality: str | None) -> list[dict]:
        """Decode a few uploads in worker threads, predict the readable ones together, one result per upload."""
        lanes = [heavy_limiter if decode_cost(u) > HEAVY_DECODE_BYTES else decode_limiter for u in uploads]
        decoded = await asyncio.gather(
            *(anyio.to_thread.run_sync(decode_upload, u, limits.max_pixels, limiter=lane) for u, lane in zip(uploads, lanes))
        )
        images = [image for image in decoded if not isinstance(image, Rejection)]
        probs = iter(await batcher.predict(images, modality) if images else [])
        return [
            _rejected(upload.name, outcome)
            if isinstance(outcome, Rejection)
            else _predicted(predictor, upload.name, modality, float(next(probs)))
            for upload, outcome in zip(uploads, decoded)
        ]

    return app


def _predicted(predictor: ImagePredictor, name: str, modality: str | None, prob_male: float) -> dict:
    """Label and confidence come from the predictor's record (its decision threshold); `uncertain` when P(male)
    lies near that threshold; a non-finite output (broken weights) is a server error, never a label."""
    record = predictor.record(name, modality, prob_male)
    if record["status"] == NON_FINITE:
        log.error("%s: %s", name, NON_FINITE)
        return _rejected(name, Rejection(500, NON_FINITE))
    keys = ("pred", "prob_male", "prob_female", "confidence")
    uncertain = near_threshold(prob_male, predictor.threshold)
    return {"name": name, "status": "ok", **{k: record[k] for k in keys}, "uncertain": uncertain, "error": None, "code": 200}


def _rejected(name: str, rejection: Rejection) -> dict:
    return {
        "name": name,
        "status": "error",
        "pred": None,
        "prob_male": None,
        "prob_female": None,
        "confidence": None,
        "uncertain": None,
        "error": rejection.reason,
        "code": rejection.code,
    }


def _overall_status(results: list[dict]) -> int:
    """200 when any file was predicted; otherwise the files' shared error status, or 422 when they differ."""
    codes = {r["code"] for r in results}
    if 200 in codes:
        return 200
    return codes.pop() if len(codes) == 1 else 422
