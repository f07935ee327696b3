"""Batches on a Dask LocalCluster (``--dask``): the same files and rows as a plain run, a killed
worker loses nothing and its finished chunks are not run again, and without the extra one line
names the install command."""

from __future__ import annotations

import csv
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blastseg.artifacts import example_image_path
from blastseg.batch import KEPT, BatchJob, ImageOutcome, PredictOptions, predict_files, run_batch
from blastseg.folders import find_images
from blastseg.segment import create_segmenter
from tests.test_architecture import python

dask_distributed = pytest.importorskip("dask.distributed", reason="the distributed extra is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Twelve small fields in two subfolders: quarters of the bundled example, flipped in turn."""
    root = tmp_path_factory.mktemp("fields")
    example = np.asarray(Image.open(example_image_path()).convert("RGB"))
    for i in range(12):
        quarter = example[(i // 2 % 2) * 240 :][:240, (i % 2) * 320 :][:, :320]
        (root / f"part{i % 2}").mkdir(exist_ok=True)
        Image.fromarray(quarter[:, ::-1] if i >= 4 else quarter).save(root / f"part{i % 2}" / f"f{i:02d}.png")
    return root


def rows(out: Path) -> list[dict]:
    with (out / "cells.csv").open(newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda row: (row["image"], int(row["cell_id"])))


def outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*_*.*")) if p.suffix in (".png", ".tif")}


@pytest.mark.slow
def test_a_local_cluster_gives_the_files_and_rows_of_a_plain_run_and_survives_a_killed_worker(folder, tmp_path):
    from blastseg.cluster import connect

    options = PredictOptions(device="cpu", batch_size=1)
    plain = predict_files([folder], tmp_path / "plain", options)
    cluster = connect("local:2")
    try:
        spread = predict_files([folder], tmp_path / "dask", options, cluster=cluster.client)  # a notebook's own client works as it is
        assert spread.summary["images"] == plain.summary["images"] == 12 and not spread.failed
        assert rows(tmp_path / "dask") == rows(tmp_path / "plain")
        assert outputs(tmp_path / "dask") == outputs(tmp_path / "plain")

        cluster.images_per_task = 1  # twelve tasks, so that the kill lands while both workers are busy
        workers = cluster.client.run(os.getpid)  # address -> pid
        finished: list[Path] = []

        killed: dict[str, int] = {}

        def kill_one_worker_after_the_first_images() -> None:
            while len(finished) < 2:
                time.sleep(0.01)
            killed["pid"], killed["images_done"] = next(iter(workers.values())), len(finished)
            os.kill(killed["pid"], signal.SIGKILL)

        killer = threading.Thread(target=kill_one_worker_after_the_first_images)
        killer.start()
        survived = predict_files([folder], tmp_path / "killed", options, on_done=lambda path, error: finished.append(path), cluster=cluster)
        killer.join(30)
        assert killed["images_done"] < 12 and killed["pid"] not in cluster.client.run(os.getpid).values()  # killed mid-run
        assert survived.summary["images"] == 12 and not survived.failed
        listed = [row["image"] for row in rows(tmp_path / "killed")]
        assert sorted(set(listed)) == sorted({row["image"] for row in rows(tmp_path / "plain")})
        assert rows(tmp_path / "killed") == rows(tmp_path / "plain")  # every image once, with its rows
    finally:
        cluster.close()


class DiesAfterTwoImages(BatchJob):
    """A batch job that logs each image it finishes and, the first time it has finished two,
    SIGKILLs its own worker (in the middle of a chunk)."""

    def keep(self, outcome: ImageOutcome) -> ImageOutcome:
        kept = super().keep(outcome)
        log = self.out_dir.with_suffix(".log")
        with log.open("a") as handle:
            handle.write(f"{outcome.image.name}\n")
        died = log.with_suffix(".died")
        if len(log.read_text().split()) == 2 and not died.exists():
            died.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return kept


@pytest.mark.slow
def test_a_chunk_run_again_after_its_worker_died_redoes_only_the_images_that_worker_had_not_finished(folder, tmp_path):
    from blastseg.cluster import connect, run_on_dask

    images = find_images([folder])[:6]
    cluster = connect("local:2")
    try:
        runs = {}
        for keeping in (True, False):
            job = DiesAfterTwoImages(create_segmenter("otsu", target="cell"), tmp_path / f"keeping_{keeping}")
            outcomes = [o for part in (run_batch(job, [images], cluster=cluster) if keeping else run_on_dask(cluster, job, [images])) for o in part]
            assert job.out_dir.with_suffix(".died").exists() and sorted(o.image.name for o in outcomes if o.reason is None) == sorted(i.name for i in images)
            runs[keeping] = job.out_dir.with_suffix(".log").read_text().split()
        assert sorted(runs[True]) == sorted(i.name for i in images)  # every image once
        assert not (tmp_path / "keeping_True" / KEPT).exists()  # and the kept outcomes are gone at the end
        assert all(runs[False].count(name) == 2 for name in runs[False][:2])  # not kept: the two finished images ran again
    finally:
        cluster.close()


def test_without_the_extra_dask_is_one_line_naming_the_install_command(tmp_path):
    argv = ["predict", str(example_image_path()), "--out", str(tmp_path / "out"), "--dask", "local:2"]
    result = python(f"from blastseg.cli import main; main({argv!r})", blocked=("dask", "distributed"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr == "error: dask is not installed: --dask needs the distributed extra (pip install 'blastseg[distributed]')\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dask", "local:two"], "error: --dask local:two: local:N needs a whole number of workers N >= 1\n"),
        (["--dask", "local:2", "--workers", "2"], "error: --dask and --workers both share the images: choose one (local:N gives N workers here)\n"),
    ],
)
def test_dask_flags_that_cannot_work_are_one_line(tmp_path, capsys, flags, message):
    from blastseg.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["segment", str(example_image_path()), "--out", str(tmp_path / "out"), *flags])
    assert stop.value.code == 2 and capsys.readouterr().err == message
    assert not (tmp_path / "out").exists()
