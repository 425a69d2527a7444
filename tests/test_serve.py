"""`ugn serve`: the JSON API on a real uvicorn server with a tiny real checkpoint, upload safety, the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from unifiedgender import __version__
from unifiedgender.data.images import load_image
from unifiedgender.serve import BackgroundServer, ServeLimits, create_app
from unifiedgender.serve.server import free_port

REPO = Path(__file__).resolve().parents[1]
TAG = "mobilenetv3_small_050.lamb_in1k_F1_An_Lb_Z0"
LIMITS = ServeLimits(max_upload_bytes=256 * 1024, max_pixels=1_000_000, max_files=4)


# ------------------------------------------------------------------------------------------------- fixtures
def tiny_checkpoint(folder: Path) -> Path:
    """A real, randomly initialised UMCC model with the modality flag (so it needs a modality), 48 px."""
    import torch

    from unifiedgender.checkpoint import save_checkpoint
    from unifiedgender.models import create_model

    torch.manual_seed(0)
    model = create_model("umcc", "mobilenetv3_small_050.lamb_in1k", pretrained="none", flag=True)
    model.data_config = {**model.data_config, "input_size": [3, 48, 48]}
    return save_checkpoint(folder / "tiny.pt", model, tag=TAG)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("serve-ckpt"))


@pytest.fixture(scope="module")
def predictor(checkpoint: Path):
    from unifiedgender.inference.predictor import Predictor

    return Predictor.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def server(predictor):
    with BackgroundServer(create_app(predictor, LIMITS)) as running:
        yield running


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


# --------------------------------------------------------------------------------------------- test images
def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def sample_images() -> dict[str, bytes]:
    """A few different, valid uploads: RGB PNG, grayscale JPEG, RGBA PNG, palette GIF."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), "RGB")
    return {
        "noise.png": encode(noise),
        "gray.jpg": encode(noise.convert("L"), "JPEG", quality=90),
        "alpha.png": encode(Image.new("RGBA", (50, 40), (200, 30, 30, 128))),
        "palette.gif": encode(noise.convert("P"), "GIF"),
    }


def post(client: httpx.Client, files: list[tuple[str, bytes]], modality: str | None = "hand", **kwargs) -> httpx.Response:
    data = {"modality": modality} if modality else {}
    parts = [("files", (name, content, "image/png")) for name, content in files]
    return client.post("/api/predict", files=parts, data=data, **kwargs)


# --------------------------------------------------------------------------------------------------- health
def test_health_describes_model_limits_and_version(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["version"] == __version__
    model = body["model"]
    assert model["tag"] == TAG and model["arch"] == "umcc" and model["backbone"].startswith("mobilenetv3_small_050")
    assert model["needs_modality"] is True and model["modalities"] == ["hand", "face"]
    assert model["input_size"] == [3, 48, 48]
    assert body["limits"] == LIMITS.as_dict()
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_page_and_static_files_are_served_without_external_resources(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: the page works offline


# -------------------------------------------------------------------------------------------------- success
def test_predict_several_images_matches_the_predictor(client: httpx.Client, predictor) -> None:
    images = sample_images()
    response = post(client, list(images.items()), modality="face")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == TAG and body["modality"] == "face"
    results = body["results"]
    assert [r["name"] for r in results] == list(images)
    decoded = [load_image(io.BytesIO(content)) for content in images.values()]
    expected = predictor.predict_images(decoded, "face")
    for result, prob in zip(results, expected):
        assert result["status"] == "ok" and result["error"] is None and result["code"] == 200
        assert result["prob_male"] == pytest.approx(prob, abs=1e-6)
        assert result["prob_female"] == pytest.approx(1 - prob, abs=1e-6)
        assert result["confidence"] == pytest.approx(max(prob, 1 - prob), abs=1e-6)
        assert result["label"] == ("male" if prob >= predictor.threshold else "female")


def test_modality_changes_the_input_of_a_flag_model(client: httpx.Client) -> None:
    content = sample_images()["noise.png"]
    hand = post(client, [("a.png", content)], modality="hand").json()["results"][0]["prob_male"]
    face = post(client, [("a.png", content)], modality="face").json()["results"][0]["prob_male"]
    assert hand != face


def test_client_file_name_is_reduced_to_its_base_name(client: httpx.Client) -> None:
    response = post(client, [("../../etc/C:\\evil\\photo.png", sample_images()["noise.png"])])
    assert response.json()["results"][0]["name"] == "photo.png"


# ------------------------------------------------------------------------------------------- rejected files
def test_text_file_named_like_an_image_is_415(client: httpx.Client) -> None:
    response = post(client, [("photo.jpg", b"this is not an image, whatever its name says")])
    assert response.status_code == 415
    result = response.json()["results"][0]
    assert result["status"] == "error" and result["code"] == 415 and result["label"] is None
    assert "unsupported file type" in result["error"] and "checked by content" in result["error"]


def test_image_format_outside_the_allow_list_is_415(client: httpx.Client) -> None:
    icon = encode(Image.new("RGB", (32, 32), (10, 200, 10)), "ICO")  # a real image PIL can read, not accepted
    response = post(client, [("icon.png", icon)])
    assert response.status_code == 415
    assert "unsupported file type" in response.json()["results"][0]["error"]


def test_empty_file_is_422(client: httpx.Client) -> None:
    response = post(client, [("empty.png", b"")])
    assert response.status_code == 422
    assert response.json()["results"][0]["error"] == "empty file (0 bytes)"


def test_truncated_image_is_422(client: httpx.Client) -> None:
    content = sample_images()["noise.png"]
    response = post(client, [("cut.png", content[: len(content) // 2])])
    assert response.status_code == 422
    assert "corrupt" in response.json()["results"][0]["error"]


def test_too_many_pixels_is_413(client: httpx.Client) -> None:
    big = encode(Image.new("L", (1200, 1000)))  # 1.2 MP of zeros: a few KB, over the 1 MP limit
    response = post(client, [("big.png", big)])
    assert response.status_code == 413
    assert "too many pixels (1200x1000 > 1,000,000)" in response.json()["results"][0]["error"]


def test_decompression_bomb_is_413_without_decoding(client: httpx.Client) -> None:
    bomb = encode(Image.new("1", (20_000, 10_000)))  # 200 MP in about 25 KB
    assert len(bomb) < LIMITS.max_upload_bytes
    response = post(client, [("bomb.png", bomb)])
    assert response.status_code == 413
    assert "decompression bomb" in response.json()["results"][0]["error"]


def test_bad_files_do_not_stop_good_ones(client: httpx.Client) -> None:
    good = sample_images()["noise.png"]
    response = post(client, [("good.png", good), ("cut.png", good[:300]), ("empty.png", b"")])
    assert response.status_code == 200
    statuses = [(r["name"], r["status"], r["code"]) for r in response.json()["results"]]
    assert statuses == [("good.png", "ok", 200), ("cut.png", "error", 422), ("empty.png", "error", 422)]


def test_mixed_failures_without_success_are_422(client: httpx.Client) -> None:
    response = post(client, [("text.png", b"plain text"), ("empty.png", b"")])
    assert response.status_code == 422
    assert [r["code"] for r in response.json()["results"]] == [415, 422]


# ---------------------------------------------------------------------------------------- request-level errors
def test_body_over_the_limit_is_refused_from_its_content_length(client: httpx.Client) -> None:
    too_big = os.urandom(LIMITS.max_upload_bytes + 1)
    response = post(client, [("huge.png", too_big)])
    assert response.status_code == 413
    assert response.json()["detail"].startswith("upload too large: the limit is 0.2 MB per request")


def test_streamed_body_over_the_limit_is_refused_while_reading(client: httpx.Client) -> None:
    boundary = "ugnboundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()

    def body():  # a generator: sent chunked, without Content-Length
        yield head
        for _ in range(LIMITS.max_upload_bytes // 65536 + 2):
            yield b"\0" * 65536

    response = client.post(
        "/api/predict", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413
    assert "upload too large" in response.json()["detail"]


def test_too_many_files_is_413(client: httpx.Client) -> None:
    content = sample_images()["noise.png"]
    response = post(client, [(f"{i}.png", content) for i in range(LIMITS.max_files + 1)])
    assert response.status_code == 413
    assert response.json()["detail"] == "too many files: at most 4 per request; send them in several requests"


def test_not_multipart_is_415(client: httpx.Client) -> None:
    response = client.post("/api/predict", json={"files": ["a.png"]})
    assert response.status_code == 415
    assert "expected multipart/form-data" in response.json()["detail"]


def test_no_files_is_422(client: httpx.Client) -> None:
    response = client.post("/api/predict", files={"modality": (None, "hand")})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("no files")


@pytest.mark.parametrize(
    ("modality", "message"),
    [(None, "choose a modality: this model accepts hand, face"), ("fingerprint", "unknown modality 'fingerprint'")],
)
def test_missing_or_unaccepted_modality_is_422(client: httpx.Client, modality: str | None, message: str) -> None:
    response = post(client, [("a.png", sample_images()["noise.png"])], modality=modality)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_uploads_never_touch_the_disk(predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2 MB upload (over Starlette's 1 MB spooling threshold) stays in memory: no temporary file is opened."""
    opened: list[str] = []
    real = tempfile.TemporaryFile

    def spy(*args, **kwargs):
        opened.append("TemporaryFile")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", spy)
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (800, 900, 3), dtype=np.uint8), "RGB")
    content = encode(noise, compress_level=0)
    assert len(content) > 2_000_000
    with BackgroundServer(create_app(predictor, ServeLimits(max_upload_bytes=4 * 1024 * 1024))) as running:
        response = post(httpx.Client(base_url=running.url, timeout=30), [("noise.png", content)])
    assert response.status_code == 200 and response.json()["results"][0]["status"] == "ok"
    assert opened == []


# --------------------------------------------------------------------------------------------------- the CLI
def test_cli_help_stays_light_and_documents_serve() -> None:
    code = (
        "import sys; from unifiedgender.cli.app import app; from typer.testing import CliRunner;"
        "out = CliRunner().invoke(app, ['serve', '--help']).output; print(out);"
        "heavy = [m for m in ('torch', 'numpy', 'fastapi', 'uvicorn', 'PIL') if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"})
    assert "--max-upload-mb" in result.stdout and "--max-pixels" in result.stdout
    assert "HEAVY []" in result.stdout


def test_cli_refuses_a_missing_checkpoint(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "unifiedgender", "serve", str(tmp_path / "nope.pt")],
                            capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert "checkpoint not found" in result.stderr and "nope.pt" in result.stderr


def test_cli_serves_a_checkpoint(checkpoint: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "unifiedgender", "serve", str(checkpoint), "--port", str(port), "--max-upload-mb", "1"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        health = wait_for_health(f"http://127.0.0.1:{port}", process)
        assert health["model"]["tag"] == TAG and health["limits"]["max_upload_bytes"] == 1024 * 1024
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            response = post(http, [("a.png", sample_images()["noise.png"])])
        assert response.status_code == 200 and response.json()["results"][0]["status"] == "ok"
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert process.returncode == 0, output
    assert f"serving tiny.pt at http://127.0.0.1:{port}/" in output


def wait_for_health(url: str, process: subprocess.Popen, timeout: float = 60.0) -> dict:
    """Poll GET /health until the server answers (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {process.stdout.read()}")
        try:
            return json.loads(httpx.get(f"{url}/health", timeout=2).text)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"server at {url} did not answer within {timeout} s")
