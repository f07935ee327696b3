"""The page in a real browser: Debian's Chromium driven by Playwright against ``blastseg serve``'s
app on a local port. Upload the bundled example, look, toggle layers, relabel and drop cells,
switch theme, download the ZIP; a 2592x1944 field keeps the server answering. Screenshots of
both themes go to ``results/screenshots/``."""

from __future__ import annotations

import io
import json
import socket
import statistics
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blastseg.artifacts import example_image_path
from blastseg.serve.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "results" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(workdir=tmp_path_factory.mktemp("jobs")), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the app that records script errors and any request leaving the server."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"script error: {error}"))
    page.on("console", lambda message: message.type == "error" and page.problems.append(f"console: {message.text}"))
    page.on("request", lambda request: request.url.startswith(server) or page.problems.append(f"left the server: {request.url}"))
    page.goto(server)
    yield page
    context.close()


def until(page, expression: str, seconds: float = 30) -> None:
    """Wait for a JavaScript expression to hold (``wait_for_function`` evaluates strings, which the page's CSP forbids)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never held: {expression}"
        time.sleep(0.05)


def canvas_pixels(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator("#canvas").screenshot())).convert("RGB")).astype(int)


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_upload_look_correct_switch_theme_and_download(page, server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    example = example_image_path().read_bytes()
    tiled = jpeg(np.tile(np.asarray(Image.open(example_image_path()).convert("RGB")), (2, 2, 1)))  # four white cells
    hostile = {"name": "<img src=x onerror=window.hacked=1>.jpg", "mimeType": "image/jpeg", "buffer": example}
    page.set_input_files("#files", [hostile, {"name": "tiled.jpg", "mimeType": "image/jpeg", "buffer": tiled}])
    page.click("#analyze")
    page.wait_for_selector("#result:not([hidden])", timeout=120_000)
    progress = page.inner_text("#progress")
    assert "<img src=x onerror=window.hacked=1>.jpg: done (1 cells)" in progress and "tiled.jpg: done" in progress  # names shown as text
    assert page.evaluate("window.hacked") is None

    rows = page.locator("#cells tbody tr")
    assert rows.count() == 1  # the bundled example holds one white cell
    until(page, "document.getElementById('canvas').width > 0")
    time.sleep(0.3)  # the picture's first frame
    drawn = canvas_pixels(page)
    for layer in ("#layer-outlines", "#layer-nuclei", "#layer-boxes"):
        page.uncheck(layer)
    plain = canvas_pixels(page)
    changed = np.abs(drawn - plain).sum(axis=2).astype(bool).mean()
    assert changed > 0.001  # the outlines and the box were there
    page.check("#layer-outlines")
    assert 0 < np.abs(canvas_pixels(page) - plain).sum(axis=2).astype(bool).mean() < changed
    for layer in ("#layer-nuclei", "#layer-boxes"):
        page.check(layer)

    relabelled = rows.first.get_attribute("data-cell")
    rows.first.locator("select").select_option("blast")
    counts = page.inner_text("#counts")
    assert "blast\n1" in counts and "blast %\n100.0 (95% CI 20.7–100.0)" in counts  # Wilson, 1 of 1
    page.select_option("#image", label="tiled.jpg")
    until(page, "document.querySelectorAll('#cells tbody tr').length >= 3")
    cells_before = int(page.locator("#counts dd").first.inner_text())
    dropped = rows.nth(1).get_attribute("data-cell")
    rows.nth(1).locator("button").click()
    assert page.locator("#counts dd").first.inner_text() == str(cells_before - 1)
    assert "dropped" in page.get_attribute(f'#cells tbody tr[data-cell="{dropped}"]', "class")
    kept = rows.nth(0).get_attribute("data-cell") if rows.nth(0).get_attribute("data-cell") != dropped else rows.nth(2).get_attribute("data-cell")
    page.locator(f'#cells tbody tr[data-cell="{kept}"]').focus()
    page.keyboard.press("Enter")  # keyboard reaches a row and finds its cell
    assert "selected" in page.get_attribute(f'#cells tbody tr[data-cell="{kept}"]', "class")
    scale = page.evaluate("state.view.scale")
    page.click("#zoom-in")
    assert page.evaluate("state.view.scale") == pytest.approx(1.25 * scale)
    page.click("#zoom-fit")
    other = rows.nth(2).get_attribute("data-cell") if rows.nth(2).get_attribute("data-cell") != kept else rows.nth(3).get_attribute("data-cell")
    centre = page.evaluate(
        f"(() => {{ const c = state.cells.find((c) => c.cell_id === '{other}'); const v = state.view; return [Number(c.x) * v.scale + v.x, Number(c.y) * v.scale + v.y]; }})()"
    )
    page.locator("#viewer").click(position={"x": centre[0], "y": centre[1]})  # a click on a cell finds its row
    assert "selected" in page.get_attribute(f'#cells tbody tr[data-cell="{other}"]', "class")

    page.screenshot(path=SCREENSHOTS / "page_light.png", full_page=True)
    light_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("#theme")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.get_attribute("#theme", "aria-pressed") == "true"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != light_background
    page.screenshot(path=SCREENSHOTS / "page_dark.png", full_page=True)

    with page.expect_download() as download:
        page.click("#download")
    archive = zipfile.ZipFile(download.value.path())
    names = set(archive.namelist())
    for stem in ("image_000", "image_001"):
        assert {f"{stem}_mask.png", f"{stem}_overlay.png", f"{stem}_instances.tif", f"{stem}.xyc", f"{stem}_corrected.xyc"} <= names
    assert {"cells.csv", "summary.json", "corrections.json", "cells_corrected.csv"} <= names
    changes = json.loads(archive.read("corrections.json"))["changes"]
    assert sorted(changes, key=lambda c: c["image"]) == [
        {"image": 0, "cell": int(relabelled), "class": "blast"},
        {"image": 1, "cell": int(dropped), "drop": True},
    ]
    assert len(archive.read("image_000_corrected.xyc").decode().splitlines()) == 1
    assert page.problems == []


def test_the_page_reads_at_200_percent_zoom_in_the_dark(browser, server):
    context = browser.new_context(viewport={"width": 640, "height": 450}, device_scale_factor=2, color_scheme="dark")
    page = context.new_page()
    page.goto(server)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"  # follows the system
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing cut off sideways
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") in ("theme", "files")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "page_dark_200_percent.png", full_page=True)
    context.close()


def test_the_api_page_renders_without_the_internet(page, server):
    page.goto(f"{server}/docs")
    page.get_by_text("/api/analyze", exact=True).first.wait_for(timeout=30_000)  # Swagger UI drew the operations
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "api_docs.png")
    assert page.problems == []  # and nothing was fetched from anywhere else


@pytest.mark.slow
def test_a_2592x1944_field_keeps_the_server_answering(page, server):
    tile = np.asarray(Image.open(example_image_path()).convert("RGB"))
    field = np.tile(tile, (5, 5, 1))[:1944, :2592]
    buffer = io.BytesIO()
    Image.fromarray(field).save(buffer, format="JPEG", quality=92)
    page.set_input_files("#files", {"name": "field.jpg", "mimeType": "image/jpeg", "buffer": buffer.getvalue()})
    page.click("#analyze")
    until(page, "document.getElementById('progress').innerText.includes('running')")
    job = page.evaluate("state.job")
    latencies = []
    while "running" in page.inner_text("#progress") and len(latencies) < 400:
        started = time.perf_counter()
        with urllib.request.urlopen(f"{server}/api/jobs/{job}") as response:
            response.read()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)
    page.wait_for_selector("#result:not([hidden])", timeout=180_000)
    assert len(latencies) >= 5, "the field finished before the server could be asked"
    timing = f"{len(latencies)} requests while the field ran: slowest {max(latencies):.3f} s, median {statistics.median(latencies):.3f} s"
    print(timing)  # pytest -rP shows it
    assert max(latencies) < 0.2, timing
    with urllib.request.urlopen(f"{server}/api/jobs/{job}/images/0/overlay.png") as response:
        overlay = Image.open(io.BytesIO(response.read()))
    assert overlay.size == (2592, 1944)
    assert page.problems == []
