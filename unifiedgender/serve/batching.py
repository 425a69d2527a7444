"""One shared model behind a queue: concurrent requests are batched together and run off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import anyio
import numpy as np
from PIL import Image


class ImagePredictor(Protocol):
    """What the server needs from `unifiedgender.inference.predictor.Predictor`."""

    threshold: float

    def predict_images(self, images: list[Image.Image], modality: str | None) -> np.ndarray: ...

    def record(self, path: str, modality: str | None, prob_male: float | None, status: str = "ok") -> dict: ...


class BatchingPredictor:
    """Collects images from concurrent requests into batches of up to `max_batch` per modality.

    A single worker task runs the model in a worker thread, one batch at a time, so the event loop never
    blocks and the model (and its intra-op threads) is never used by two requests at once.
    """

    def __init__(self, predictor: ImagePredictor, max_batch: int = 32) -> None:
        self.predictor = predictor
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[list[Image.Image], str | None, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        self._worker = asyncio.create_task(self._run(), name="ugn-batching-predictor")

    async def stop(self) -> None:
        """Stop the worker; requests still queued fail with RuntimeError."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        while not self._queue.empty():
            *_, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("server is shutting down"))

    async def predict(self, images: Sequence[Image.Image], modality: str | None) -> np.ndarray:
        """prob_male for each image, computed in a batch with whatever else is waiting."""
        if self._worker is None:
            raise RuntimeError("BatchingPredictor.start() was not called")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((list(images), modality, future))
        return await future

    async def _run(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            count = len(jobs[0][0])
            while count < self.max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                count += len(jobs[-1][0])
            for modality in dict.fromkeys(job[1] for job in jobs):
                await self._run_group([job for job in jobs if job[1] == modality], modality)

    async def _run_group(self, jobs: list, modality: str | None) -> None:
        images = [image for job in jobs for image in job[0]]
        try:
            probs = await anyio.to_thread.run_sync(self.predictor.predict_images, images, modality)
        except Exception as exc:  # handed to every waiting request, which reports it as a 500
            for *_, future in jobs:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for job_images, _, future in jobs:
            if not future.done():  # a request whose client went away has a cancelled future
                future.set_result(np.asarray(probs[start : start + len(job_images)], dtype=np.float64))
            start += len(job_images)
