"""`ugn serve`: the JSON API on a real uvicorn server with a tiny real checkpoint, upload safety, the CLI."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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
TAG = "resnet10t.c3_in1k_F1_An_Lb_Z0"
LIMITS = ServeLimits(max_upload_bytes=256 * 1024, max_pixels=1_000_000, max_files=4)


# ------------------------------------------------------------------------------------------------- fixtures
def tiny_checkpoint(folder: Path, flag: bool = True) -> Path:
    """A real, randomly initialised UMCC model at 48 px; with the modality flag it needs a modality."""
    import torch

    from unifiedgender.checkpoint import save_checkpoint
    from unifiedgender.models import create_model

    torch.manual_seed(0)
    model = create_model("umcc", "resnet10t.c3_in1k", pretrained="none", flag=flag)
    model.data_config = {**model.data_config, "input_size": [3, 48, 48]}
    return save_checkpoint(folder / "tiny.pt", model, tag=TAG if flag else TAG.replace("_F1_", "_F0_"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("serve-ckpt"))


@pytest.fixture(scope="module")
def predictor(checkpoint: Path):
    """The served predictor, with one torch thread: the test client shares the cores with the server."""
    import torch

    from unifiedgender.inference.predictor import Predictor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Predictor.from_checkpoint(checkpoint, device="cpu")
    torch.set_num_threads(threads)


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


def post(client: httpx.Client, files: list[tuple[str, bytes]], modality: str | None = "hand") -> httpx.Response:
    data = {"modality": modality} if modality else {}
    parts = [("files", (name, content, "image/png")) for name, content in files]
    return client.post("/api/predict", files=parts, data=data)


# --------------------------------------------------------------------------------------------------- health
def test_health_describes_model_limits_and_version(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["version"] == __version__
    model = body["model"]
    assert model["tag"] == TAG and model["arch"] == "umcc" and model["backbone"].startswith("resnet10t")
    assert model["needs_modality"] is True and model["modalities"] == ["hand", "face"]
    assert model["input_size"] == [3, 48, 48]
    assert body["limits"] == LIMITS.as_dict()
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_page_and_static_files_are_served_without_external_resources(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.head("/").status_code == 200 and client.head("/health").status_code == 200
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
        assert result["pred"] == ("male" if prob >= predictor.threshold else "female")


def test_modality_changes_the_input_of_a_flag_model(client: httpx.Client) -> None:
    content = sample_images()["noise.png"]
    hand = post(client, [("a.png", content)], modality="hand").json()["results"][0]["prob_male"]
    face = post(client, [("a.png", content)], modality="face").json()["results"][0]["prob_male"]
    assert hand != face


def test_client_file_name_is_reduced_to_its_base_name(client: httpx.Client) -> None:
    response = post(client, [("../../etc/C:\\evil\\photo.png", sample_images()["noise.png"])])
    assert response.json()["results"][0]["name"] == "photo.png"



def test_model_without_modality_input_needs_no_choice(tmp_path: Path) -> None:
    from unifiedgender.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(tiny_checkpoint(tmp_path, flag=False), device="cpu")
    with BackgroundServer(create_app(predictor, LIMITS)) as running, httpx.Client(base_url=running.url) as http:
        model = http.get("/health").json()["model"]
        assert model["needs_modality"] is False
        assert model["modalities"] == ["hand", "face", "fingerprint", "fluting_virtual", "fluting_tactile"]
        content = sample_images()["noise.png"]
        for modality in (None, "fingerprint"):
            response = post(http, [("a.png", content)], modality=modality)
            assert response.status_code == 200 and response.json()["modality"] == modality


def test_serves_an_onnx_export_like_its_checkpoint(checkpoint: Path, client: httpx.Client, tmp_path: Path) -> None:
    from unifiedgender.inference.export import export_checkpoint
    from unifiedgender.inference.predictor import Predictor

    onnx_path = export_checkpoint(checkpoint, "onnx", tmp_path / "tiny.onnx")["output"]
    images = list(sample_images().items())
    with BackgroundServer(create_app(Predictor.from_checkpoint(onnx_path), LIMITS)) as running:
        with httpx.Client(base_url=running.url, timeout=30) as http:
            model = http.get("/health").json()["model"]
            onnx_results = post(http, images, modality="hand").json()["results"]
    assert model["arch"] == "onnx" and model["tag"] == TAG and model["modalities"] == ["hand", "face"]
    torch_results = post(client, images, modality="hand").json()["results"]
    for got, want in zip(onnx_results, torch_results):
        assert got["status"] == "ok" and got["prob_male"] == pytest.approx(want["prob_male"], abs=1e-4)

# ------------------------------------------------------------------------------------------- rejected files
def test_text_file_named_like_an_image_is_415(client: httpx.Client) -> None:
    response = post(client, [("photo.jpg", b"this is not an image, whatever its name says")])
    assert response.status_code == 415
    result = response.json()["results"][0]
    assert result["status"] == "error" and result["code"] == 415 and result["pred"] is None
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
    assert response.json()["detail"].startswith("upload too large: the limit is 0.25 MB per request")


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



# -------------------------------------------------------------------------------- threshold and uncertainty
@pytest.fixture(scope="module")
def decided(predictor, tmp_path_factory: pytest.TempPathFactory):
    """A server for a model (logits spread around 0) saved with a decision: of the two sample images whose
    logits differ most, the temperature puts their P(male) far apart and the stored threshold is the first
    one's P(male) (so it is uncertain and the second is not). Yields (server, threshold, the two names)."""
    from predict_fixtures import make_checkpoint
    from unifiedgender.checkpoint import load_checkpoint, save_checkpoint
    from unifiedgender.decision import Decision, calibrated_probs
    from unifiedgender.inference.predictor import Predictor

    folder = tmp_path_factory.mktemp("decided")
    model, info = load_checkpoint(make_checkpoint(folder / "raw.pt", flag=True))
    images = sample_images()
    names = list(images)
    raw = Predictor.from_checkpoint(folder / "raw.pt", device="cpu").predict_images(
        [Image.open(io.BytesIO(images[n])) for n in names], "hand")
    logits = np.log(raw / (1 - raw))
    first, second = int(np.argmin(logits)), int(np.argmax(logits))
    temperatures = np.geomspace(0.02, 50, 400)
    gaps = [abs(np.diff(calibrated_probs(logits[[first, second]], t))[0]) for t in temperatures]
    temperature = float(temperatures[int(np.argmax(gaps))])
    probs = calibrated_probs(logits, temperature)
    assert abs(probs[first] - probs[second]) > 0.3, "the sample images should score apart"
    decision = Decision(temperature, "youden", {"0.5": 0.5, "youden": float(probs[first]), "eer": 0.5}, "validation val.csv")
    path = save_checkpoint(folder / "decided.pt", model, tag=info["tag"], decision=decision)
    with BackgroundServer(create_app(Predictor.from_checkpoint(path, device="cpu"), LIMITS)) as running:
        yield running, float(probs[first]), (names[first], names[second])


def test_health_and_results_carry_the_threshold_and_uncertainty(decided) -> None:
    from unifiedgender.decision import UNCERTAIN_MARGIN

    running, threshold, names = decided
    with httpx.Client(base_url=running.url, timeout=30) as http:
        card = http.get("/health").json()["model"]["threshold"]
        assert card["value"] == threshold and card["method"] == "youden" and card["chosen_on"] == "validation val.csv"
        assert card["description"] == f"{threshold:.4f} (youden on validation val.csv)"
        assert card["uncertain_margin"] == UNCERTAIN_MARGIN
        images = sample_images()
        results = post(http, [(n, images[n]) for n in names]).json()["results"]
    assert [r["uncertain"] for r in results] == [True, False]
    assert results[0]["prob_male"] == pytest.approx(threshold)
    for result in results:
        assert result["pred"] == ("male" if result["prob_male"] >= threshold else "female")


# ---------------------------------------------------------------------------------------- headless browser
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium) to test the page")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser, server):
    """The upload page, loaded, under its own Content-Security-Policy; fails the test on any page error."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(server.url)
    page.locator("#model-info code").wait_for()
    yield page
    context.close()
    assert errors == []


def api_result(client: httpx.Client, name: str, content: bytes, modality: str) -> dict:
    return post(client, [(name, content)], modality=modality).json()["results"][0]


def shown_percent(confidence: float) -> str:
    """The page's rounding (JavaScript Math.round) of a confidence."""
    return f"{int(confidence * 100 + 0.5)}%"


@pytest.mark.browser
def test_page_shows_label_and_confidence_for_uploaded_images(page, client: httpx.Client, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    images = sample_images()
    names = ["noise.png", "gray.jpg"]
    for name in names:
        (tmp_path / name).write_bytes(images[name])
    expect(page.locator("#modality-field")).to_be_visible()
    assert page.locator("#modality option").all_inner_texts() == ["hand", "face"]
    page.select_option("#modality", "face")
    page.set_input_files("#file-input", [str(tmp_path / name) for name in names])

    cards = page.locator("[data-testid=result]")
    expect(cards).to_have_count(2)
    expect(page.locator("[data-testid=result][data-status=ok]")).to_have_count(2)
    for index, name in enumerate(names):
        card = cards.nth(index)
        expected = api_result(client, name, images[name], "face")
        assert card.locator("[data-testid=name]").inner_text() == name
        assert card.locator("[data-testid=label]").inner_text().lower() == expected["pred"]
        assert card.locator("[data-testid=confidence]").inner_text() == shown_percent(expected["confidence"])
        meter = card.locator("[role=meter]")
        assert meter.get_attribute("aria-valuenow") == shown_percent(expected["confidence"])[:-1]
        assert card.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator("#announcer")).to_contain_text("confidence")
    expect(page.locator("[data-testid=threshold]")).to_contain_text("0.5000 (default 0.5: the model stores no threshold)")


@pytest.mark.browser
def test_page_shows_the_threshold_and_marks_results_near_it_uncertain(browser, decided, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    running, threshold, names = decided
    images = sample_images()
    for name in names:
        (tmp_path / name).write_bytes(images[name])
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(running.url)
    expect(page.locator("[data-testid=threshold]")).to_contain_text(f"{threshold:.4f} (youden on validation val.csv)")
    expect(page.locator("[data-testid=threshold]")).to_contain_text("within ±0.10 of it are marked uncertain")
    page.select_option("#modality", "hand")
    page.set_input_files("#file-input", [str(tmp_path / name) for name in names])
    expect(page.locator("[data-testid=result][data-status=ok]")).to_have_count(2)
    cards = page.locator("[data-testid=result]")
    expect(cards.nth(0)).to_have_attribute("data-uncertain", "true")
    expect(cards.nth(0).locator("[data-testid=uncertain]")).to_be_visible()
    expect(cards.nth(0).locator("[data-testid=uncertain]")).to_contain_text(f"threshold {threshold:.3f}")
    assert cards.nth(1).get_attribute("data-uncertain") is None
    expect(cards.nth(1).locator("[data-testid=uncertain]")).to_be_hidden()
    context.close()


@pytest.mark.browser
def test_page_accepts_a_dropped_image(page, client: httpx.Client) -> None:
    from playwright.sync_api import expect

    content = sample_images()["alpha.png"]
    page.select_option("#modality", "hand")
    dropped = page.evaluate(
        """async ([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
            const zone = document.getElementById("dropzone");
            const fire = (type) => zone.dispatchEvent(
                new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
            fire("dragenter");
            fire("dragover");
            const highlighted = zone.classList.contains("dragging");
            fire("drop");
            return { highlighted, after: zone.classList.contains("dragging") };
        }""",
        ["dropped.png", base64.b64encode(content).decode()],
    )
    assert dropped == {"highlighted": True, "after": False}
    card = page.locator("[data-testid=result]")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "ok")
    expected = api_result(client, "dropped.png", content, "hand")
    assert card.locator("[data-testid=label]").inner_text().lower() == expected["pred"]
    assert card.locator("[data-testid=confidence]").inner_text() == shown_percent(expected["confidence"])


@pytest.mark.browser
def test_page_explains_rejected_files(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    (tmp_path / "notes.png").write_text("meeting notes, not a picture")
    (tmp_path / "huge.png").write_bytes(os.urandom(300_000))
    (tmp_path / "big.png").write_bytes(encode(Image.new("L", (1200, 1000))))
    page.select_option("#modality", "hand")
    page.set_input_files("#file-input", [str(tmp_path / n) for n in ("notes.png", "huge.png", "big.png")])

    expect(page.locator("[data-testid=result][data-status=error]")).to_have_count(3)
    cards = page.locator("[data-testid=result]")
    expect(cards.nth(0).locator("[data-testid=label]")).to_have_text("Not accepted")
    expect(cards.nth(1).locator("[data-testid=label]")).to_have_text("Too large")
    expect(cards.nth(0).locator("[data-testid=detail]")).to_contain_text("unsupported file type")
    expect(cards.nth(1).locator("[data-testid=detail]")).to_contain_text("0.29 MB is over the 0.25 MB limit per upload")
    expect(cards.nth(2).locator("[data-testid=detail]")).to_contain_text("too many pixels (1200x1000 > 1,000,000)")
    page.click("#clear")
    expect(cards).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()

# --------------------------------------------------------------------------------- broken models, slow clients
def test_nan_model_output_is_an_error_not_a_label(tmp_path: Path) -> None:
    """A checkpoint with NaN weights: loading warns, and the API answers 500 with the reason, never a label."""
    import torch

    from unifiedgender.checkpoint import NonFiniteWeightsWarning, read_checkpoint
    from unifiedgender.inference.predictor import NON_FINITE, Predictor

    payload = read_checkpoint(tiny_checkpoint(tmp_path, flag=False))
    payload["state_dict"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "nan.pt")
    with pytest.warns(NonFiniteWeightsWarning, match=r"nan.pt: \d+ weight tensors hold NaN"):
        predictor = Predictor.from_checkpoint(tmp_path / "nan.pt", device="cpu", engine="torch")
    with BackgroundServer(create_app(predictor, LIMITS)) as running, httpx.Client(base_url=running.url, timeout=30) as http:
        response = post(http, [("a.png", sample_images()["noise.png"])], modality=None)
    assert response.status_code == 500, response.text
    result = response.json()["results"][0]
    assert result["status"] == "error" and result["pred"] is None and result["error"] == NON_FINITE


def _raw_connection(server: BackgroundServer):
    import socket

    connection = socket.create_connection((server.host, server.port))
    connection.settimeout(10)  # bounded: a server that never closes fails the test instead of hanging it
    return connection


def _closed_within(connection, seconds: float) -> float:
    """Seconds until the server closed the connection (recv gives b''); fails after `seconds`."""
    import socket

    started = time.monotonic()
    connection.settimeout(seconds)
    try:
        assert connection.recv(100) == b""
    except socket.timeout:
        pytest.fail(f"the server kept a stalled connection open for over {seconds} s")
    finally:
        connection.close()
    return time.monotonic() - started


def test_slow_and_silent_clients_are_disconnected(predictor) -> None:
    """Partial headers, a silent connection and a request trickled byte by byte are all dropped in time."""
    limits = ServeLimits(max_upload_bytes=256 * 1024, max_pixels=1_000_000, max_files=4, idle_timeout_s=0.5,
                         request_timeout_s=2.0)
    with BackgroundServer(create_app(predictor, limits)) as running:
        partial = _raw_connection(running)
        partial.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\n")  # then nothing more
        assert _closed_within(partial, 5) < 3
        assert _closed_within(_raw_connection(running), 5) < 3  # never sends a byte

        trickle, started, closed = _raw_connection(running), time.monotonic(), False
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:  # bounded: ~60 s at most
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.25)  # under the idle timeout: only the whole-request deadline stops it
        trickle.close()
        assert closed and time.monotonic() - started < 6

        with httpx.Client(base_url=running.url, timeout=10) as http:  # normal clients are unaffected
            assert http.get("/health").status_code == 200


def test_connections_over_the_limit_get_503(predictor) -> None:
    limits = ServeLimits(max_upload_bytes=256 * 1024, max_pixels=1_000_000, max_files=4, max_connections=3)
    with BackgroundServer(create_app(predictor, limits)) as running:
        held = [_raw_connection(running) for _ in range(3)]
        try:
            extra = _raw_connection(running)
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert extra.recv(100).startswith(b"HTTP/1.1 503"), "a connection over the limit must be refused"
            extra.close()
        finally:
            for connection in held:
                connection.close()
        for _ in range(50):  # the server notices the closed connections within a few event-loop turns
            with httpx.Client(base_url=running.url, timeout=10) as http:
                if http.get("/health").status_code == 200:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the server stayed over its connection limit after the clients left")


def test_upload_too_large_to_decode_is_413_and_light_uploads_still_pass(predictor) -> None:
    """A 16-bit RGBA PNG whose header claims 5000x5000 (under the pixel limit, 200 MB of samples) is refused
    before decoding; an ordinary image in the same request is predicted."""
    from test_bad_inputs import png_bytes

    limits = ServeLimits(max_pixels=40_000_000)
    heavy = png_bytes(5000, 5000, 16, 6, b"\x00" * 1000)
    with BackgroundServer(create_app(predictor, limits)) as running, httpx.Client(base_url=running.url, timeout=30) as http:
        response = post(http, [("heavy.png", heavy), ("light.png", sample_images()["noise.png"])])
    heavy_result, light_result = response.json()["results"]
    assert heavy_result["code"] == 413 and "too large to decode" in heavy_result["error"], heavy_result
    assert light_result["status"] == "ok"


@pytest.mark.browser
def test_page_hides_the_modality_choice_and_clear_all_when_they_do_nothing(browser, tmp_path: Path) -> None:
    """`hidden` must win over `.field{display:grid}` and the button's display rule (it did not)."""
    from playwright.sync_api import expect

    from unifiedgender.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(tiny_checkpoint(tmp_path, flag=False), device="cpu")
    with BackgroundServer(create_app(predictor, LIMITS)) as running:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.goto(running.url)
        page.locator("#model-info code").wait_for()
        expect(page.locator("#modality-field")).to_be_hidden()  # the model ignores modality
        expect(page.locator("#clear")).to_be_hidden()  # no results yet
        (tmp_path / "a.png").write_bytes(sample_images()["noise.png"])
        page.set_input_files("#file-input", [str(tmp_path / "a.png")])
        expect(page.locator("[data-testid=result][data-status=ok]")).to_have_count(1)
        expect(page.locator("#clear")).to_be_visible()
        page.click("#clear")
        expect(page.locator("#clear")).to_be_hidden()
        context.close()


# ------------------------------------------------------------------------------------------------ load test
@pytest.mark.slow
def test_cli_server_under_load(checkpoint: Path) -> None:
    """`ugn serve` in its own process answers 500 requests from 16 concurrent clients without one error."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "unifiedgender", "serve", str(checkpoint), "--port", str(port), "--max-upload-mb", "1",
         "--threads", "1"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_for_health(url, process)
        assert health["model"]["tag"] == TAG and health["limits"]["max_upload_bytes"] == 1024 * 1024
        image = sample_images()["noise.png"]
        # on its own thread: playwright's sync API may hold an event loop on this one
        with ThreadPoolExecutor(1) as thread:
            baseline = thread.submit(asyncio.run, load(url, image, requests=50, concurrency=1)).result()
            report = thread.submit(asyncio.run, load(url, image, requests=500, concurrency=16)).result()
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    print(f"\nserve load test: {report}\n  baseline, one client: {baseline}\n"
          f"  throughput ratio: {report.throughput / baseline.throughput:.2f}x")
    assert f"serving tiny.pt at {url}/" in output and "Application shutdown complete" in output
    assert baseline.completed == 50 and baseline.errors == []
    assert report.completed == 500 and report.errors == []


class LoadReport:
    """Outcome of a load test: completed requests, error descriptions and latency percentiles."""

    def __init__(self, latencies: list[float], errors: list[str], wall: float, concurrency: int) -> None:
        self.completed, self.errors, self.wall, self.concurrency = len(latencies), errors, wall, concurrency
        self.p50, self.p95, self.p99 = (np.percentile(latencies, q) * 1000 for q in (50, 95, 99))
        self.throughput = self.completed / wall

    def __str__(self) -> str:
        return (f"{self.completed} requests, {self.concurrency} concurrent, {len(self.errors)} errors, "
                f"{self.throughput:.1f} req/s, latency p50 {self.p50:.1f} ms, p95 {self.p95:.1f} ms, "
                f"p99 {self.p99:.1f} ms")


async def load(url: str, image: bytes, requests: int, concurrency: int) -> LoadReport:
    """POST one image `requests` times from `concurrency` concurrent clients; time each request."""
    latencies: list[float] = []
    errors: list[str] = []
    remaining = iter(range(requests))

    async def worker(http: httpx.AsyncClient) -> None:
        for index in remaining:
            started = time.perf_counter()
            try:
                response = await http.post("/api/predict", files=[("files", (f"{index}.png", image))],
                                           data={"modality": "hand"})
                body = response.json()
                if response.status_code != 200 or body["results"][0]["status"] != "ok":
                    errors.append(f"request {index}: HTTP {response.status_code} {response.text[:200]}")
                    continue
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(f"request {index}: {type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return LoadReport(latencies, errors, wall, concurrency)

