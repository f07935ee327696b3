"""The structure keeps its promises: light imports, a torch-free classical path, a complete public API."""

import subprocess
import sys

import pytest

import blastseg
from tests.synthetic import synthetic_cell

HEAVY = ("torch", "timm", "sklearn", "matplotlib", "segmentation_models_pytorch", "albumentations")

# Installed before anything else in a child process: importing a blocked package fails there.
BLOCKER = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"{{name}} is blocked in this test", name=name)  # what a package not installed raises
sys.meta_path.insert(0, Blocker())
"""


def python(code: str, blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=set(blocked)) + code], capture_output=True, text=True)


def test_import_blastseg_loads_no_heavy_package():
    result = python(f"import blastseg, sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_answers_with_torch_unimportable():
    result = python("import sys; from blastseg.cli import app; sys.argv = ['blastseg', '--help']; app()", blocked=HEAVY)
    assert result.returncode == 0, result.stderr
    assert all(command in result.stdout for command in ("segment", "predict", "train", "evaluate", "classify"))


def test_classical_segment_runs_without_the_training_extra(tmp_path):
    from PIL import Image

    image, _ = synthetic_cell()
    Image.fromarray(image).save(tmp_path / "cell.png")
    argv = ["blastseg", "segment", str(tmp_path / "cell.png"), "--method", "kmeans", "--out", str(tmp_path / "out")]
    result = python(f"import sys; from blastseg.cli import app; sys.argv = {argv!r}; app()", blocked=HEAVY)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "cell_mask.png").is_file() and (tmp_path / "out" / "cells.csv").is_file()


def test_predict_with_the_bundled_int8_twin_runs_with_torch_unimportable(tmp_path):
    from PIL import Image

    from blastseg.artifacts import example_image_path

    Image.open(example_image_path()).crop((0, 0, 320, 240)).save(tmp_path / "field.png")
    argv = ["blastseg", "predict", str(tmp_path / "field.png"), "--out", str(tmp_path / "out"), "--classifier", "default"]
    result = python(f"import sys; from blastseg.cli import app; sys.argv = {argv!r}; app()", blocked=HEAVY)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "field_mask.png").is_file() and '"engine": "int8"' in (tmp_path / "out" / "summary.json").read_text()
    assert "class,probability" in (tmp_path / "out" / "cells.csv").read_text().splitlines()[0]  # the bundled forest runs in NumPy


def test_the_web_page_and_its_analysis_need_no_training_extra(tmp_path):
    from PIL import Image

    from blastseg.artifacts import example_image_path

    Image.open(example_image_path()).crop((0, 0, 320, 240)).save(tmp_path / "field.png")
    code = f"""
import time
from fastapi.testclient import TestClient
from blastseg.serve.app import create_app
with TestClient(create_app(workdir={str(tmp_path / "jobs")!r})) as client:
    job = client.post("/api/analyze", files=[("files", ("f.png", open({str(tmp_path / "field.png")!r}, "rb").read(), "image/png"))]).json()["id"]
    while (answer := client.get(f"/api/jobs/{{job}}").json())["status"] != "done":
        time.sleep(0.1)
    print(answer["images"][0]["status"], answer["classes"])
"""
    result = python(code, blocked=HEAVY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("done ['eosinophil', 'lymphocyte', 'monocyte', 'neutrophil']"), result.stdout


def test_without_the_training_extra_the_torch_engine_is_one_line_naming_it(tmp_path):
    from blastseg.artifacts import example_image_path

    argv = ["blastseg", "predict", str(example_image_path()), "--out", str(tmp_path / "out"), "--engine", "torch"]
    result = python(f"from blastseg.cli import main; main({argv[1:]!r})", blocked=HEAVY)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.endswith("is not installed: training, export and the torch engine need the training extra (pip install 'blastseg[train]')\n")


def test_the_blocker_does_block():
    result = python("import torch", blocked=("torch",))
    assert result.returncode == 1 and "torch is blocked" in result.stderr


@pytest.mark.parametrize("name", blastseg.__all__)
def test_every_public_name_resolves(name):
    assert getattr(blastseg, name) is not None


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'segment_everything'"):
        blastseg.segment_everything  # noqa: B018
