"""Batches of folders: recursive discovery, mirrored output folders, ``--skip-existing`` after a
kill or a lost file, the journal, and worker processes that give the same outputs as one."""

import csv
import json
import os
import time

import numpy as np
import pytest
from PIL import Image

import blastseg.batch as batch
from blastseg.batch import BatchLedger, OutputRules, read_journal, segment_files, segment_with_recipe
from blastseg.cli import main
from blastseg.errors import ImageReadError, OutputError
from blastseg.folders import ImageInput, find_images
from blastseg.segment.recipe import SegmentConfig
from tests.synthetic import synthetic_cell

OTSU = SegmentConfig(method="otsu", target="cell")


def save_cells(paths, seed=0):
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(synthetic_cell(seed=seed + i)[0]).save(path)
    return paths


def rows_of(folder):
    with (folder / "cells.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as ended:
        main([str(arg) for arg in args])
    return ended.value.code, capsys.readouterr().err


def test_folders_are_searched_recursively_in_order_without_hidden_files_or_the_output_folder(tmp_path):
    data = tmp_path / "slides"
    save_cells([data / "b.png", data / "a" / "2.jpg", data / "a" / "1.tif", data / ".cache" / "x.png", data / ".y.png", data / "out" / "o.png"])
    (data / "notes.txt").write_text("not an image")
    (data / "a" / "sub.png").mkdir()  # a folder named like an image
    found = find_images([data, tmp_path / "slides" / "b.png"], exclude=data / "out")
    assert [image.name for image in found] == ["a/1.tif", "a/2.jpg", "b.png", "b.png"]
    assert found[0] == ImageInput(data / "a" / "1.tif", "a/1.tif") and str(found[0].stem) == "a/1"
    assert [image.name for image in find_images([data], glob="*.jpg")] == ["a/2.jpg"]
    assert [image.name for image in find_images([data], glob="a/*")] == ["a/1.tif", "a/2.jpg"]


def test_an_empty_folder_or_a_missing_path_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match=r"empty: no image files \(\.jpg, .*\) in this folder or below"):
        find_images([tmp_path / "empty"])
    save_cells([tmp_path / "some" / "a.png"])
    with pytest.raises(ImageReadError, match=r"no image files matching --glob '\*\.bmp'"):
        find_images([tmp_path / "some"], glob="*.bmp")
    with pytest.raises(ImageReadError, match="gone.png: no such file or folder"):
        find_images([tmp_path / "gone.png"])


def test_segment_a_folder_mirrors_its_subfolders_and_names_rows_by_relative_path(capsys, tmp_path):
    data = tmp_path / "slides"
    save_cells([data / "p1" / "f.png", data / "p2" / "f.png", data / "top.png"])
    code, err = run_cli(capsys, "segment", data, "--method", "otsu", "--target", "cell", "--out", tmp_path / "out")
    assert code == 0, err
    out = tmp_path / "out"
    for stem in ("p1/f", "p2/f", "top"):
        assert (out / f"{stem}_mask.png").is_file() and (out / f"{stem}_overlay.png").is_file()
    assert sorted(row["image"] for row in rows_of(out)) == ["p1/f.png", "p2/f.png", "top.png"]  # one cell each
    assert sorted(json.loads((out / "summary.json").read_text())["per_image"]) == ["p1/f.png", "p2/f.png", "top.png"]
    code, err = run_cli(capsys, "segment", data / "p1" / "f.png", data / "p2" / "f.png", "--method", "otsu", "--out", tmp_path / "flat")
    assert code == 2 and "would write the same output names" in err  # two files given by name, one name between them


def test_skip_existing_redoes_only_what_is_missing_and_lists_each_image_once(tmp_path):
    paths = save_cells([tmp_path / "in" / f"{i}.png" for i in range(4)])
    out = tmp_path / "out"
    segment_with_recipe(paths, OTSU, out)
    first = rows_of(out)
    (out / "1_mask.png").unlink()  # a finished image whose output went missing is done again
    with (out / "images.jsonl").open("a") as handle:
        handle.write('{"image": "3.png", "cel')  # a kill while a line was written
    redone = []
    result = segment_with_recipe(paths, OTSU, out, OutputRules(skip_existing=True), on_done=lambda path, error: redone.append(path.name))
    assert redone == ["1.png"] and result.failed == []
    assert sorted(map(tuple, (r.values() for r in rows_of(out)))) == sorted(map(tuple, (r.values() for r in first)))
    assert list(read_journal(out / "images.jsonl")) == ["0.png", "2.png", "3.png", "1.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 4 and summary["cells"] == 4


def test_the_journal_marks_images_done_and_the_summary_is_rewritten_every_few_seconds(tmp_path, monkeypatch):
    ledger = BatchLedger(tmp_path, ["image", "x"], {"models": {}, "instances": {}}, None)
    ledger.start(OutputRules())
    ledger.add("a.png", [{"image": "a.png", "x": 1}], {"cells": 1})
    assert read_journal(tmp_path / "images.jsonl") == {"a.png": {"cells": 1}} and rows_of(tmp_path) == [{"image": "a.png", "x": "1"}]
    assert json.loads((tmp_path / "summary.json").read_text())["images"] == 0  # within SUMMARY_EVERY_S of the last write
    monkeypatch.setattr(batch, "SUMMARY_EVERY_S", 0.0)
    ledger.add("b.png", [], {"cells": 0})
    assert json.loads((tmp_path / "summary.json").read_text())["images"] == 2


@pytest.mark.slow
def test_two_workers_write_what_one_process_writes(tmp_path):
    paths = save_cells([tmp_path / "in" / f"{i:02d}.png" for i in range(8)])
    one = segment_with_recipe(paths, OTSU, tmp_path / "one")
    two = segment_with_recipe(paths, OTSU, tmp_path / "two", workers=2)
    assert two.summary["per_image"] == one.summary["per_image"] and two.summary["failed"] == []
    key = lambda row: tuple(row.values())  # noqa: E731 - rows arrive in the order images finish
    assert sorted(rows_of(tmp_path / "two"), key=key) == sorted(rows_of(tmp_path / "one"), key=key)
    for path in paths:
        masks = [np.asarray(Image.open(tmp_path / run / f"{path.stem}_mask.png")) for run in ("one", "two")]
        assert np.array_equal(*masks)


class DiesOnImage3:
    """Otsu, except that the process running it dies on an image whose top-left pixel says 3."""

    target = "cell"

    def segment_many(self, images):
        if any(image[0, 0, 0] == 3 for image in images):
            os._exit(9)  # as the kernel's out-of-memory killer would end it
        return OTSU.segmenter().segment_many(images)


@pytest.mark.slow
def test_a_worker_that_dies_is_one_line_and_the_finished_images_are_kept(capsys, tmp_path):
    paths = save_cells([tmp_path / "in" / f"{i}.png" for i in range(6)])
    dying = np.asarray(Image.open(paths[3])).copy()
    dying[0, 0, 0] = 3
    Image.fromarray(dying).save(paths[3])
    with pytest.raises(OutputError, match=r"a worker process died \(out of memory\?\); the images it finished are kept: rerun with --skip-existing"):
        segment_files(paths, DiesOnImage3(), tmp_path / "out", workers=2)
    kept = read_journal(tmp_path / "out" / "images.jsonl")
    assert "3.png" not in kept and all(name in {p.name for p in paths} for name in kept)
    assert sorted(row["image"] for row in rows_of(tmp_path / "out")) == sorted(kept)


class DiesOnThirdChunk:
    """A stand-in for :class:`~blastseg.batch.BatchJob` whose worker dies on the chunk ``["dies"]``."""

    def run(self, chunk):
        if chunk == ["dies"]:
            os._exit(9)
        return chunk


@pytest.mark.slow
def test_a_worker_that_dies_while_the_caller_writes_is_the_same_one_line():
    """The pool breaks while the caller is busy with a finished chunk, so the next chunk's submit,
    not a result, is the first to see it."""
    chunks = [["a"], ["b"], ["dies"], ["c"], ["d"], ["e"], ["f"]]
    seen = []
    with pytest.raises(OutputError, match=r"a worker process died"):
        for outcomes in batch.run_batch(DiesOnThirdChunk(), chunks, workers=2):
            seen += outcomes
            time.sleep(1.5)  # writing the outputs, long enough for the pool to notice the death
    assert "dies" not in seen and set(seen) <= {"a", "b", "c", "d", "e", "f"}


class CountingSegmenter:
    """A segmenter that records how many images each ``segment_many`` call gets."""

    def __init__(self, inner):
        self.inner, self.target, self.calls = inner, inner.target, []

    def segment(self, image):
        return self.inner.segment(image)

    def segment_many(self, images):
        self.calls.append(len(images))
        return self.inner.segment_many(images)


def test_a_job_that_keeps_outcomes_runs_again_only_the_images_it_had_not_finished(tmp_path):
    from blastseg.batch import BatchJob
    from blastseg.segment import create_segmenter

    images = find_images(save_cells([tmp_path / "in" / f"c{i}.png" for i in range(3)]))
    (tmp_path / "kept").mkdir()
    counting = CountingSegmenter(create_segmenter("otsu", target="cell"))
    job = BatchJob(counting, tmp_path / "out", kept=tmp_path / "kept")
    first = job.run(images)
    assert counting.calls == [3] and all(outcome.reason is None and outcome.rows for outcome in first)
    assert len(list((tmp_path / "kept").iterdir())) == 3
    (tmp_path / "kept" / job.kept_path(images[1]).name).unlink()  # as if the worker died before finishing it
    again = job.run(images)
    assert counting.calls == [3, 1]  # only the unfinished image is segmented again
    assert [(o.image, o.rows, o.record) for o in again] == [(o.image, o.rows, o.record) for o in first]
