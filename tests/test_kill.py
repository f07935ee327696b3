"""Kill tests: ``blastseg predict`` and ``blastseg train`` killed with SIGKILL at 20 random moments
each, every time rerun with ``--resume``, end with every output valid and present once, and
equal to those of a run that was never interrupted."""

import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors.numpy import load_file

from blastseg.io import TEMP_SUFFIX
from tests.synthetic import synthetic_field

KILLS = 20
FIELD_CELLS = [((60, 70), 30, 14), ((140, 200), 32, 15), ((70, 230), 28, 12)]


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "blastseg", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish(*args) -> float:
    """Run to the end; returns the seconds it took."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "blastseg", *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - started


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kill_repeatedly(args, within_s: float, seed: int, kills: int = KILLS) -> list[int]:
    """Start ``args`` and SIGKILL it at a random moment until ``kills`` runs were killed while
    still running. A run that ends before its moment is not counted, and later moments are drawn
    within its length (a resumed run has less left to do). Returns the processes the killed runs
    had started."""
    rng, killed, orphans = random.Random(seed), 0, []
    for _ in range(5 * kills):
        process, started = start(*args), time.perf_counter()
        try:
            process.wait(timeout=rng.uniform(0.2, within_s))
            within_s = max(0.5, time.perf_counter() - started)
        except subprocess.TimeoutExpired:
            orphans += children(process.pid)
            process.kill()
            process.wait()
            killed += 1
        if killed == kills:
            return orphans
    pytest.fail(f"only {killed} of {5 * kills} runs were still running at their moment")


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_predict_killed_20_times_ends_with_every_image_once(tmp_path):
    images = []
    for i in range(30):
        image, _ = synthetic_field((200, 300), FIELD_CELLS, seed=i)
        images.append(tmp_path / "in" / f"f{i:02d}.png")
        images[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(images[-1])
    straight = finish("predict", *images, "--out", tmp_path / "straight")
    kill_repeatedly(["predict", *images, "--out", tmp_path / "out", "--resume"], straight, seed=0)
    finish("predict", *images, "--out", tmp_path / "out", "--skip-existing")

    expected, summary = json.loads((tmp_path / "straight" / "summary.json").read_text()), json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["per_image"] == expected["per_image"] and summary["failed"] == [] and summary["cells"] == expected["cells"] == 90
    rows = read_csv(tmp_path / "out" / "cells.csv")
    assert sorted(tuple(r.values()) for r in rows) == sorted(tuple(r.values()) for r in read_csv(tmp_path / "straight" / "cells.csv"))
    assert all(sum(r["image"] == path.name for r in rows) == 3 for path in images)  # every image's cells, once
    for path in images:
        assert np.array_equal(
            np.asarray(Image.open(tmp_path / "out" / f"{path.stem}_mask.png")), np.asarray(Image.open(tmp_path / "straight" / f"{path.stem}_mask.png"))
        )
    assert not list((tmp_path / "out").glob(f".*{TEMP_SUFFIX}"))


@pytest.mark.slow
def test_predict_with_two_workers_killed_and_rerun_with_skip_existing_ends_with_every_image_once(tmp_path):
    data = tmp_path / "in"
    for i in range(24):
        image, _ = synthetic_field((200, 300), FIELD_CELLS, seed=i)
        (data / f"slide{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(data / f"slide{i % 2}" / f"f{i:02d}.png")
    straight = finish("predict", data, "--out", tmp_path / "straight")
    args = ["predict", data, "--out", tmp_path / "out", "--workers", "2", "--skip-existing"]
    orphans = kill_repeatedly(args, straight + 3, seed=1, kills=5)
    finish(*args)

    assert orphans, "the killed runs had started worker processes"
    time.sleep(2)
    assert not [pid for pid in orphans if Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["per_image"] == json.loads((tmp_path / "straight" / "summary.json").read_text())["per_image"] and summary["failed"] == []
    rows = read_csv(tmp_path / "out" / "cells.csv")
    assert sorted(tuple(r.values()) for r in rows) == sorted(tuple(r.values()) for r in read_csv(tmp_path / "straight" / "cells.csv"))
    assert sorted(r["image"] for r in rows) == sorted(f"slide{i % 2}/f{i:02d}.png" for i in range(24) for _ in range(3))  # every image's cells, once
    for i in range(24):
        name = f"slide{i % 2}/f{i:02d}_mask.png"
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / name)), np.asarray(Image.open(tmp_path / "straight" / name)))


@pytest.mark.slow
def test_training_killed_20_times_resumes_to_the_uninterrupted_weights(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(8):
        image, labels = synthetic_field((64, 72), [((30 + i % 5, 34 + i % 3), 20, 9)], seed=i)
        Image.fromarray(image).save(data / "images" / f"c{i}.png")
        Image.fromarray(np.array([0, 128, 255], np.uint8)[labels]).save(data / "masks" / f"c{i}.png")
    recipe = {
        "data": {"path": str(data), "crop_size": 64, "split": [0.6, 0.2, 0.2]},
        "model": {"name": "unet", "encoder": "resnet18", "depth": 3, "decoder_channels": [16, 8, 8]},
        "optim": {"epochs": 6, "batch_size": 2, "steps_per_epoch": 3, "lr": 1e-3, "patience": 100, "device": "cpu"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    straight = finish("train", "--config", tmp_path / "r.yaml", "--out", tmp_path / "straight")
    kill_repeatedly(["train", "--config", tmp_path / "r.yaml", "--out", tmp_path / "run", "--resume"], straight, seed=1)
    finish("train", "--config", tmp_path / "r.yaml", "--out", tmp_path / "run", "--resume")

    epochs = [row["epoch"] for row in read_csv(tmp_path / "run" / "metrics.csv")]
    assert epochs == [str(e) for e in range(1, 7)]
    for name in ("best", "last"):
        a, b = load_file(tmp_path / "straight" / f"{name}.safetensors"), load_file(tmp_path / "run" / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    assert (
        json.loads((tmp_path / "run" / "test_metrics.json").read_text())["test"]
        == json.loads((tmp_path / "straight" / "test_metrics.json").read_text())["test"]
    )
    assert not list((tmp_path / "run").glob(f".*{TEMP_SUFFIX}"))
