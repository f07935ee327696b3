"""The command line end to end: through a subprocess as a user runs it (``run``), and in this
process where only the error paths and file handling are at stake (``invoke``: no start-up cost)."""

import csv
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blastseg.cli import app
from blastseg.io import read_mask
from tests.synthetic import synthetic_cell


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "blastseg", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def invoke(*args):
    """The CLI in this process, answering like :func:`run` (returncode, stdout, stderr)."""
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def write_cells(folder, count=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, labels = synthetic_cell(seed=i)
        Image.fromarray(image).save(folder / f"{i:03d}.bmp")
        Image.fromarray(np.array([0, 128, 255], np.uint8)[labels]).save(folder / f"{i:03d}.png")


def test_segment_writes_mask_and_overlay(tmp_path):
    write_cells(tmp_path / "in", 2)
    result = run("segment", tmp_path / "in" / "000.bmp", tmp_path / "in" / "001.bmp", "--method", "kmeans", "--target", "multiclass", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "000_instances.tif",
        "000_mask.png",
        "000_overlay.png",
        "001_instances.tif",
        "001_mask.png",
        "001_overlay.png",
        "cells.csv",
        "images.jsonl",
        "summary.json",
    ]
    rows = (tmp_path / "out" / "cells.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("000.bmp,1,48")  # one cell per image, centred at x = 48
    mask = read_mask(tmp_path / "out" / "000_mask.png")
    assert set(np.unique(mask)) == {0, 128, 255}
    assert mask[48, 48] == 255 and mask[48, 48 + 22] == 128 and mask[0, 0] == 0


def test_segment_refuses_to_overwrite_and_bad_input_is_one_line(tmp_path):
    write_cells(tmp_path / "in", 1)
    image = tmp_path / "in" / "000.bmp"
    assert invoke("segment", image, "--out", tmp_path / "out").returncode == 0
    again = invoke("segment", image, "--out", tmp_path / "out")
    assert again.returncode == 2 and "exists" in again.stderr and "--overwrite" in again.stderr
    assert invoke("segment", image, "--out", tmp_path / "out", "--overwrite").returncode == 0
    (tmp_path / "broken.jpg").write_text("not an image")
    broken = invoke("segment", tmp_path / "broken.jpg", image, "--out", tmp_path / "o2")
    assert broken.returncode == 1  # the good image is done, the broken one listed
    failed_line = next(line for line in broken.stderr.splitlines() if line.startswith("failed:"))
    assert "broken.jpg: not a readable image" in failed_line and "Traceback" not in broken.stderr
    summary = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert summary["images"] == 1 and [f["image"] for f in summary["failed"]] == ["broken.jpg"]
    missing = invoke("segment", tmp_path / "absent.jpg", "--out", tmp_path / "o3")
    assert missing.returncode == 2 and missing.stderr == f"error: {tmp_path / 'absent.jpg'}: no such file or folder\n"
    assert not (tmp_path / "o3").exists()  # refused before the folder is made


def test_unknown_names_and_config_keys_list_valid_ones(tmp_path):
    write_cells(tmp_path / "in", 1)
    image = tmp_path / "in" / "000.bmp"
    bad_method = invoke("segment", image, "--method", "unet", "--out", tmp_path / "o")
    assert bad_method.returncode == 2 and "valid: adaptive, hsv, kmeans, magenta, otsu, watershed" in bad_method.stderr
    (tmp_path / "c.yaml").write_text("method: otsu\ntreshold: 3\n")
    bad_key = invoke("segment", image, "--config", tmp_path / "c.yaml", "--out", tmp_path / "o")
    assert bad_key.returncode == 2 and "unknown key 'treshold'; valid keys: kind, method, target, params, preprocess, instances, max_pixels" in bad_key.stderr


def test_evaluate_writes_csv_and_summary(tmp_path):
    write_cells(tmp_path / "data", 3)
    (tmp_path / "c.yaml").write_text("method: kmeans\ntarget: cell\npreprocess: [{name: median, kernel: 3}]\n")
    result = invoke("evaluate", "--data", tmp_path / "data", "--config", tmp_path / "c.yaml", "--out", tmp_path / "ev")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "ev" / "per_image.csv").read_text().splitlines()
    assert lines[0].startswith("image,group,target,dice,iou,ssim,precision,recall,specificity,accuracy")
    assert len(lines) == 4
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["config"]["method"] == "kmeans"
    assert summary["metrics"]["cell"]["all"]["dice"]["n"] == 3
    assert summary["metrics"]["cell"]["all"]["dice"]["mean"] > 0.95
    assert "dice" in result.stdout


def test_evaluate_sweep_and_errors(tmp_path):
    write_cells(tmp_path / "data", 2)
    sweep = invoke("evaluate", "--data", tmp_path / "data", "--method", "kmeans", "--sweep", "-p", "k_range=[2,3]", "--out", tmp_path / "ev")
    assert sweep.returncode == 0, sweep.stderr
    assert "k" in (tmp_path / "ev" / "per_image.csv").read_text().splitlines()[0].split(",")
    not_kmeans = invoke("evaluate", "--data", tmp_path / "data", "--method", "otsu", "--sweep", "--out", tmp_path / "ev2")
    assert not_kmeans.returncode == 2 and "(--sweep) needs the kmeans method, not otsu" in not_kmeans.stderr
    (tmp_path / "empty").mkdir()
    empty = invoke("evaluate", "--data", tmp_path / "empty", "--out", tmp_path / "ev3")
    assert empty.returncode == 2 and "no images found" in empty.stderr


def test_help_lists_commands():
    result = run("--help")
    assert result.returncode == 0 and "segment" in result.stdout and "evaluate" in result.stdout


@pytest.mark.slow
def test_predict_with_the_bundled_model_on_the_bundled_field(tmp_path):
    from blastseg import example_image_path

    result = run("predict", example_image_path(), "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    mask = read_mask(tmp_path / "out" / "example_field_mask.png")
    assert mask.shape == (480, 640) and set(np.unique(mask)) <= {0, 128, 255}
    rows = list(csv.DictReader((tmp_path / "out" / "cells.csv").open()))
    assert len(rows) >= 1 and all(int(row["nucleus_area"]) > 0 for row in rows)  # every cell has a nucleus
    missing = run("predict", example_image_path(), "--checkpoint", tmp_path / "nowhere", "--out", tmp_path / "o2")
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow
def test_predict_reads_the_instances_yaml_and_names_valid_keys(tmp_path):
    image = tmp_path / "cell.png"
    Image.fromarray(synthetic_cell((128, 128), (64, 64), 40, 20)[0]).save(image)
    settings = tmp_path / "instances.yaml"
    settings.write_text("instances:\n  min_area: 1000000\n")
    result = run("predict", image, "--instances", settings, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["instances"]["min_area"] == 1000000
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["cells"] == 0
    settings.write_text("instances:\n  min_aera: 10\n")
    result = run("predict", image, "--instances", settings, "--out", tmp_path / "out2")
    assert result.returncode == 2 and "valid keys: open_size, close_size" in result.stderr
