"""The web page's HTTP API (``blastseg serve``) through FastAPI's TestClient: a whole analysis with
corrections and the ZIP, every limit, hostile uploads, concurrent jobs and expiry."""

import io
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from blastseg.artifacts import example_image_path
from blastseg.serve.app import create_app
from blastseg.serve.uploads import Limits

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def field_png() -> bytes:
    """The bundled example's top-left quarter (two white cells), as PNG."""
    return png_bytes(np.asarray(Image.open(example_image_path()).convert("RGB"))[:240, :320])


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(Limits(max_files=3, max_file_mb=2, max_pixels=4_000_000), workdir=tmp_path / "jobs")) as client:
        yield client


def wait(client: TestClient, job_id: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] == "done":
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {seconds} s")


def one_line_refusal(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail, detail


def test_an_analysis_its_corrections_and_the_zip(client, field_png):
    files = [("files", ("smear <b>one</b>.png", field_png, "image/png")), ("files", ("two.png", field_png, "image/png"))]
    started = client.post("/api/analyze", files=files, data={"method": "network", "classifier": "default"})
    assert started.status_code == 202
    job = wait(client, started.json()["id"])
    assert [image["status"] for image in job["images"]] == ["done", "done"]
    assert job["images"][0]["name"] == "smear <b>one</b>.png"  # kept as sent, for the page to show as text
    assert job["classes"] == ["eosinophil", "lymphocyte", "monocyte", "neutrophil"] and "blast" in job["correction_classes"]
    assert job["colours"]["blast"] == "#e61919" and job["colours"]["lymphocyte"] == "#00be00"

    view = client.get(f"/api/jobs/{job['id']}/images/0/view.jpg")
    assert view.status_code == 200 and view.content[:3] == b"\xff\xd8\xff"
    assert view.headers["content-security-policy"].startswith("default-src 'self'")
    cells = client.get(f"/api/jobs/{job['id']}/images/0/cells.json").json()
    assert (cells["width"], cells["height"]) == (320, 240)
    assert len(cells["cells"]) == job["images"][0]["summary"]["cells"] >= 1
    first = cells["cells"][0]
    assert len(first["outline"][0]) >= 8 and first["nucleus"] and first["class"] in job["classes"]
    xs = [x for x, _ in first["outline"][0]]
    assert int(first["bbox_x0"]) <= min(xs) and max(xs) < int(first["bbox_x1"])  # the outline lies in the cell's box

    changes = [{"image": 0, "cell": int(first["cell_id"]), "class": "blast"}, {"image": 1, "cell": int(first["cell_id"]), "drop": True}]
    counts = client.post(f"/api/jobs/{job['id']}/corrections", json={"changes": changes}).json()["counts"]
    found = job["images"][0]["summary"]["cells"]
    assert counts["smear <b>one</b>.png"]["counts"]["blast"] == 1 and counts["smear <b>one</b>.png"]["cells"] == found
    assert counts["two.png"]["cells"] == found - 1
    assert counts["smear <b>one</b>.png"]["blast_percent"] == round(100 / found, 2)

    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/jobs/{job['id']}/zip").content))
    names = set(archive.namelist())
    for stem in ("image_000", "image_001"):
        assert {f"{stem}_mask.png", f"{stem}_overlay.png", f"{stem}_instances.tif", f"{stem}.xyc", f"{stem}_corrected.xyc"} <= names
    assert {"cells.csv", "summary.json", "corrections.json", "cells_corrected.csv"} <= names
    blast = archive.read("image_000_corrected.xyc").decode().split()
    assert [int(v) for v in blast] == [round(float(first["x"])), round(float(first["y"]))]
    corrected = archive.read("cells_corrected.csv").decode().splitlines()
    assert len(corrected) == 1 + 2 * found - 1


def test_limits_are_413_with_one_line(client, field_png):
    four = [("files", (f"{i}.png", field_png, "image/png")) for i in range(4)]
    one_line_refusal(client.post("/api/analyze", files=four), 413, "4 files, over the limit of 3")
    big = png_bytes(np.random.default_rng(0).integers(0, 255, (1000, 1000, 3), dtype=np.uint8))  # about 3 MB of noise
    one_line_refusal(client.post("/api/analyze", files=[("files", ("noise.png", big, "image/png"))]), 413, "larger than the limit of 2 MB")
    wide = png_bytes(np.zeros((1, 4_000_001), np.uint8))
    one_line_refusal(client.post("/api/analyze", files=[("files", ("wide.png", wide, "image/png"))]), 413, "over the limit of 4 megapixels")
    declared = client.post("/api/analyze", content=b"x", headers={"content-length": str(10 * 2**20), "content-type": "multipart/form-data; boundary=x"})
    one_line_refusal(declared, 413, "over the limit of 3 files of 2 MB")
    assert client.get("/").status_code == 200  # still serving
    assert list(client.app.state.store.root.iterdir()) == []  # nothing kept of refused uploads


def decompression_bomb() -> bytes:
    """A 33 kB PNG whose header claims 100,000 x 100,000 grey pixels (10 gigapixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = (100_000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    rows = zlib.compress(b"\x00" * (100_001 * 256), 9)  # the first rows only: enough to look real
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_hostile_uploads_are_refused_and_the_server_keeps_serving(client, field_png):
    started = time.perf_counter()
    one_line_refusal(client.post("/api/analyze", files=[("files", ("bomb.png", decompression_bomb(), "image/png"))]), 413, "100000x100000 pixels")
    assert time.perf_counter() - started < 5  # refused from its header, not decoded
    one_line_refusal(
        client.post("/api/analyze", files=[("files", ("page.jpg", b"<html><script>alert(1)</script>", "image/jpeg"))]), 415, "not a JPEG, PNG, BMP or TIFF"
    )
    truncated = field_png[: len(field_png) // 2]
    one_line_refusal(client.post("/api/analyze", files=[("files", ("cut.png", truncated, "image/png"))]), 422, "cut.png: ")
    one_line_refusal(client.post("/api/analyze", files=[("files", ("a.png", field_png, "image/png"))], data={"method": "magic"}), 422, "method: ")
    one_line_refusal(client.get("/api/jobs/0123"), 404, "no job '0123'")

    mixed = client.post("/api/analyze", files=[("files", ("bad.png", truncated, "image/png")), ("files", ("good.png", field_png, "image/png"))])
    assert mixed.status_code == 202
    job = wait(client, mixed.json()["id"])
    bad, good = job["images"]
    assert bad["status"] == "failed" and bad["error"].startswith("bad.png: ") and "\n" not in bad["error"]
    assert good["status"] == "done" and good["summary"]["cells"] >= 1
    uploads = sorted(p.name for p in (client.app.state.store.root / job["id"] / "uploads").iterdir())
    assert uploads == ["image_001.png"]  # the browser's names are never paths; the refused file is gone

    wrong = client.post(f"/api/jobs/{job['id']}/corrections", json={"changes": [{"image": 1, "cell": 999, "drop": True}]})
    one_line_refusal(wrong, 400, "image 1 has no cell 999")
    unknown = client.post(f"/api/jobs/{job['id']}/corrections", json={"changes": [{"image": 1, "cell": 1, "class": "dragon"}]})
    one_line_refusal(unknown, 400, "'dragon' is not a class to relabel to (valid: eosinophil, lymphocyte")


def test_the_api_pages_load_their_viewers_from_this_server(client):
    """/docs and /redoc work in a lab without internet: every script, style and icon they name is served here."""
    assert {"/api/analyze", "/api/jobs/{job_id}", "/api/jobs/{job_id}/zip"} <= set(client.get("/openapi.json").json()["paths"])
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert len(assets) >= 2 and all(asset.startswith("/") for asset in assets), assets
        assert "http://" not in html and "https://" not in html
        assert all(client.get(asset).status_code == 200 for asset in assets)


def test_concurrent_jobs_each_get_their_own_results(client, field_png):
    flipped = png_bytes(np.asarray(Image.open(io.BytesIO(field_png)))[:, ::-1].copy())
    ids = [
        client.post("/api/analyze", files=[("files", ("f.png", data, "image/png"))], data={"method": method}).json()["id"]
        for data, method in ((field_png, "network"), (flipped, "kmeans"))
    ]
    jobs = [wait(client, job_id) for job_id in ids]
    assert [job["settings"]["method"] for job in jobs] == ["network", "kmeans"]
    assert all(job["images"][0]["status"] == "done" for job in jobs)
    views = [client.get(f"/api/jobs/{job_id}/images/0/view.jpg").content for job_id in ids]
    assert views[0] != views[1]


def test_jobs_expire_with_their_files(tmp_path, field_png):
    with TestClient(create_app(keep_minutes=0.01, workdir=tmp_path / "jobs")) as client:  # 0.6 s after it finished
        job = wait(client, client.post("/api/analyze", files=[("files", ("f.png", field_png, "image/png"))], data={"classifier": "none"}).json()["id"])
        folder = tmp_path / "jobs" / job["id"]
        assert folder.is_dir() and job["classes"] is None
        time.sleep(0.7)
        one_line_refusal(client.get(f"/api/jobs/{job['id']}"), 404, "are deleted 0.01 minutes after they finish")
        assert not folder.exists()


def test_blastseg_serve_prints_its_address_and_serves_the_page(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "blastseg", "serve", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr.readline().strip() == f"blastseg page at http://127.0.0.1:{port}/ (Ctrl-C stops it)"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
                    page = response.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        assert "<title>blastseg</title>" in page and 'src="/page/app.js"' in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/page/app.js") as response:
            assert "textContent" in response.read().decode()
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C is how the server is stopped: a clean exit
        assert process.wait(timeout=30) == 0
        assert "Traceback" not in process.stderr.read()


@pytest.mark.parametrize("extension", [".jpg", ".png", ".bmp", ".tif"])
def test_every_offered_type_is_recognised_by_its_content_whatever_its_name(tmp_path, extension):
    from blastseg.serve.uploads import save_upload

    image = np.asarray(Image.open(example_image_path()).convert("RGB"))[:60, :80]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format={".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF"}[extension])
    buffer.seek(0)
    saved = save_upload(buffer, "photo.dat", tmp_path, "image_000", Limits())
    assert saved == tmp_path / f"image_000{extension}" and saved.read_bytes() == buffer.getvalue()
