"""Running a segmenter over image files and writing the outputs named in the design notes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from blastseg.errors import OutputExistsError
from blastseg.io import read_image, write_png, write_tiff
from blastseg.preprocess import Pipeline
from blastseg.report import mask_image, overlay
from blastseg.segment import Segmentation


def output_paths(image: Path, out_dir: Path) -> dict[str, Path]:
    stem = image.stem
    return {
        "mask": out_dir / f"{stem}_mask.png",
        "overlay": out_dir / f"{stem}_overlay.png",
        "instances": out_dir / f"{stem}_instances.tif",
    }


def segment_files(
    images: Sequence[str | Path],
    segmenter,
    target: str,
    out_dir: str | Path,
    preprocess: Pipeline | None = None,
    overwrite: bool = False,
    on_done: Callable[[Path, Segmentation], None] | None = None,
) -> list[dict[str, Path]]:
    """Segment each image file and write ``NAME_mask.png``, ``NAME_overlay.png`` and, when the
    segmenter separates objects, ``NAME_instances.tif`` into ``out_dir``.

    Every input is checked and every output name is checked for clashes before anything is
    written, so a bad file in the middle of a list does not leave half a result.
    """
    out_dir = Path(out_dir)
    images = [Path(p) for p in images]
    _refuse_clashes(images, out_dir, overwrite)
    preprocess = preprocess or Pipeline()
    written = []
    for path in images:
        image = read_image(path)
        result = segmenter.segment(preprocess(image))
        paths = output_paths(path, out_dir)
        write_png(paths["mask"], mask_image(result.labels, target))
        write_png(paths["overlay"], overlay(image, result.labels))
        if result.instances is not None and result.instances.max() > 0:
            write_tiff(paths["instances"], result.instances.astype(np.uint16))
        else:
            paths.pop("instances")
        written.append(paths)
        if on_done:
            on_done(path, result)
    return written


def _refuse_clashes(images: Iterable[Path], out_dir: Path, overwrite: bool) -> None:
    stems: dict[str, Path] = {}
    for path in images:
        if path.stem in stems:
            raise OutputExistsError(f"{path} and {stems[path.stem]} would write the same output names")
        stems[path.stem] = path
        if not overwrite:
            existing = [p for p in output_paths(path, out_dir).values() if p.exists()]
            if existing:
                raise OutputExistsError(f"{existing[0]} exists; choose another --out or pass --overwrite")
