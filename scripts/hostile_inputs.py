"""Run the hostile inputs of the reliability issue through the real command line and record, per
case, the exit status, the seconds, the peak memory of the process and its stderr.

    python scripts/hostile_inputs.py            # writes results/hostile_inputs.csv and prints a table

The bar: every case ends with exit status 0 (a correct result), 1 (a batch that lists the image as
failed) or 2 (one ``error:`` line); no traceback; under 30 s and 2 GB each. The files are made
here, small: crafted headers claim huge images without holding them.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synthetic import png_claiming, synthetic_cell, synthetic_field  # noqa: E402

from blastseg.artifacts import bundled  # noqa: E402

LIMIT_S, LIMIT_MB = 30, 2048


def run(args: list) -> tuple[dict, float]:
    """One ``blastseg`` process: exit status, seconds and stderr, and its peak resident memory (MB, from ``wait4``)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "blastseg", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    return {"status": code, "seconds": round(seconds, 1), "stderr": err.strip()}, usage.ru_maxrss / 1024


def make_files(tmp: Path) -> dict[str, Path]:
    """Every hostile file, and a small good image and dataset beside them."""
    files = {"good": tmp / "good.png", "black": tmp / "black.png", "one": tmp / "one.png", "user_file": tmp / "notes.txt"}
    Image.fromarray(synthetic_field((200, 300), [((60, 70), 30, 14), ((140, 200), 32, 15)])[0]).save(files["good"])
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(files["black"])
    Image.new("RGB", (1, 1), (90, 50, 150)).save(files["one"])
    files["user_file"].write_text("mine")
    files["bomb_png"] = png_claiming(tmp / "bomb.png", 10_000, 10_000)
    files["pil_bomb_png"] = png_claiming(tmp / "pil_bomb.png", 40_000, 40_000)
    files["huge_tif"] = tmp / "huge.tif"
    tifffile.imwrite(files["huge_tif"], shape=(30_000, 30_000), dtype=np.uint8)
    files["empty_tif"] = tmp / "empty.tif"
    tifffile.imwrite(files["empty_tif"], np.zeros((0, 0), np.uint8))
    files["dash"] = tmp / "-dash.png"
    Image.fromarray(synthetic_cell()[0]).save(files["dash"])

    card = json.loads(bundled("models", "default.json").read_text())
    (tmp / "wide").mkdir()
    wide = {**card, "model": {**card["model"], "decoder_channels": [10**6] * len(card["model"]["decoder_channels"])}}
    (tmp / "wide" / "best.json").write_text(json.dumps(wide))
    (tmp / "wide" / "best.safetensors").write_bytes(bundled("models", "default.safetensors").read_bytes())
    (tmp / "deep").mkdir()
    (tmp / "deep" / "best.json").write_text("[" * 200_000 + "]" * 200_000)
    (tmp / "deep" / "best.safetensors").write_bytes(b"")

    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(bundled("models", "classifier.safetensors")))
    (tmp / "loop").mkdir()
    looped = arrays["left"].copy()
    looped[0] = 0
    save_file({**arrays, "left": looped}, str(tmp / "loop" / "classifier.safetensors"))
    (tmp / "loop" / "classifier.json").write_text(bundled("models", "classifier.json").read_text())
    (tmp / "floats").mkdir()
    save_file({**arrays, "left": arrays["left"].astype(np.float32)}, str(tmp / "floats" / "classifier.safetensors"))
    (tmp / "floats" / "classifier.json").write_text(bundled("models", "classifier.json").read_text())

    data = tmp / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for i in range(4):
        image, labels = synthetic_cell((64, 72), seed=i)
        Image.fromarray(image).save(data / "images" / f"c{i}.png")
        Image.fromarray(np.array([0, 128, 255], np.uint8)[labels]).save(data / "masks" / f"c{i}.png")
    small = {"data": {"path": str(data), "crop_size": 64}, "model": {"depth": 3, "decoder_channels": [16, 8, 8]}, "optim": {"epochs": 1, "steps_per_epoch": 1}}
    recipes = {
        "lr_inf": {**small, "optim": {"lr": float("inf")}},
        "batch_huge": {**small, "optim": {"batch_size": 100_000}},
        "good_recipe": small,
        "pickled_encoder": {**small, "model": {**small["model"], "encoder_weights_path": str(tmp / "pickled.pth")}},
    }
    torch.save({"encoder.conv1.weight": torch.zeros(1), "code": Path}, tmp / "pickled.pth")
    for name, recipe in recipes.items():
        files[name] = tmp / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(recipe))
    files["bad_max_features"] = tmp / "rf.yaml"
    files["bad_max_features"].write_text(f"kind: classifier\ndata: {{path: {data}}}\nrandom_forest: {{max_features: bogus}}\n")
    files["missing_data"] = tmp / "rf_missing.yaml"
    files["missing_data"].write_text("kind: classifier\ndata: {path: nowhere}\n")
    files["data"] = data
    return files


def cases(files: dict[str, Path], tmp: Path) -> list[tuple[str, list]]:
    out = tmp / "out"
    corrupt_run = tmp / "corrupt_run"
    return [
        ("10000x10000 PNG header (316 KB bomb)", ["predict", files["bomb_png"], "--out", out / "a"]),
        ("40000x40000 PNG over PIL's limit", ["predict", files["pil_bomb_png"], "--out", out / "b"]),
        ("30000x30000 TIFF", ["segment", files["huge_tif"], "--out", out / "c"]),
        ("0-pixel TIFF", ["predict", files["empty_tif"], "--out", out / "d"]),
        ("1x1 image, k-means", ["segment", files["one"], "--method", "kmeans", "--out", out / "e"]),
        ("all-black 640x480 frame", ["predict", files["black"], "--out", out / "f"]),
        ("forest node pointing to itself", ["predict", files["good"], "--classifier", tmp / "loop", "--out", out / "g"]),
        ("forest with float child indices", ["predict", files["good"], "--classifier", tmp / "floats", "--out", out / "h"]),
        ("card with 10^6 decoder channels", ["predict", files["good"], "--checkpoint", tmp / "wide", "--out", out / "i"]),
        ("card nested 200000 deep", ["predict", files["good"], "--checkpoint", tmp / "deep", "--out", out / "j"]),
        ("--batch-size 100000", ["predict", files["good"], "--batch-size", "100000", "--out", out / "k"]),
        ("--batch-size -1", ["predict", files["good"], "--batch-size", "-1", "--out", out / "l"]),
        ("--batch-size 0", ["predict", files["good"], "--batch-size", "0", "--out", out / "l"]),
        ("--tile-size 0", ["predict", files["good"], "--tile-size", "0", "--out", out / "l"]),
        ("--min-cell-area -5", ["predict", files["good"], "--min-cell-area", "-5", "--out", out / "l"]),
        ("--min-nucleus-fraction nan", ["predict", files["good"], "--min-nucleus-fraction", "nan", "--out", out / "l"]),
        ("k-means sample_size 0", ["segment", files["good"], "--method", "kmeans", "-p", "sample_size=0", "--out", out / "l"]),
        ("k-means blur 4", ["segment", files["good"], "--method", "kmeans", "-p", "blur=4", "--out", out / "l"]),
        ("--out is a file", ["predict", files["good"], "--out", files["user_file"]]),
        ("--out under a file", ["predict", files["good"], "--out", files["user_file"] / "sub"]),
        ("file name starting with a dash", ["predict", files["dash"].name, "--out", out / "m"]),
        ("learning rate .inf", ["train", "--config", files["lr_inf"], "--out", out / "n"]),
        ("optim.batch_size 100000", ["train", "--config", files["batch_huge"], "--out", out / "o"]),
        ("--folds 50 on 4 images", ["train", "--config", files["good_recipe"], "--folds", "50", "--out", out / "p"]),
        ("pickled encoder weights (.pth)", ["train", "--config", files["pickled_encoder"], "--out", out / "q"]),
        ("corrupt last_state.pt", ["train", "--resume", "--out", corrupt_run]),
        ("bad max_features", ["classify", "train", "--config", files["bad_max_features"], "--out", out / "r"]),
        ("classify --overwrite, data missing", ["classify", "train", "--config", files["missing_data"], "--out", tmp, "--overwrite"]),
    ]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        files = make_files(tmp)
        corrupt_run = tmp / "corrupt_run"
        assert (
            subprocess.run(
                [sys.executable, "-m", "blastseg", "train", "--config", str(files["good_recipe"]), "--out", str(corrupt_run)], capture_output=True
            ).returncode
            == 0
        )
        (corrupt_run / "last_state.pt").write_bytes(b"\x00" * 64)
        os.chdir(tmp)  # the dash case names its file relative to here
        for name, args in cases(files, tmp):
            result, megabytes = run(args)
            lines = result["stderr"].splitlines()
            passed = result["status"] in (0, 1, 2) and "Traceback" not in result["stderr"] and result["seconds"] < LIMIT_S and megabytes < LIMIT_MB
            rows.append({"case": name, **result, "peak_mb": round(megabytes), "stderr_lines": len(lines), "passed": passed, "stderr": " | ".join(lines)[:300]})
            print(
                f"{'ok ' if passed else 'BAD'} {name:38s} exit {result['status']}  {result['seconds']:5.1f} s  {megabytes:6.0f} MB  {lines[-1][:110] if lines else ''}"
            )
        assert files["user_file"].read_text() == "mine"
    out = ROOT / "results" / "hostile_inputs.csv"
    out.parent.mkdir(exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{sum(r['passed'] for r in rows)}/{len(rows)} cases within the bar; wrote {out}")


if __name__ == "__main__":
    main()
