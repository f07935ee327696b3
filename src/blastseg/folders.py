"""Where a batch's files come from and go: the images that file and folder arguments name
(:func:`find_images`), output folders made and checked writable before any work starts, stale
temporary files cleared, and the refuse-to-overwrite rule of the commands that write named files
into ``--out`` (segment, predict, evaluate). Run folders add their ownership rule in
:mod:`blastseg.training.runs`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from blastseg.errors import ImageReadError, OutputError, OutputExistsError
from blastseg.io import IMAGE_SUFFIXES, remove_stale_temps

HINT = "choose another --out or pass --overwrite"


@dataclass(frozen=True)
class ImageInput:
    """One image of a batch: its ``path``, and the ``name`` its outputs and rows go under (the
    file name, or for an image found in a folder its path relative to that folder, ``/``-separated)."""

    path: Path
    name: str

    @property
    def stem(self) -> PurePosixPath:
        """The name without its extension: where the image's outputs go, relative to ``--out``."""
        return PurePosixPath(self.name).with_suffix("")


def find_images(paths: Sequence[str | Path | ImageInput], glob: str | None = None, exclude: str | Path | None = None) -> list[ImageInput]:
    """The images that file and folder arguments name, in order: a file is itself; a folder is
    searched recursively for files matching ``glob`` (default: every image extension blastseg
    reads), sorted, skipping hidden files and anything under ``exclude`` (the output folder).

    >>> find_images(["smear.jpg"])  # doctest: +SKIP
    [ImageInput(path=PosixPath('smear.jpg'), name='smear.jpg')]
    """
    found: list[ImageInput] = []
    for item in paths:
        if isinstance(item, ImageInput):
            found.append(item)
            continue
        path = Path(item)
        if not path.is_dir():
            if not path.exists():
                raise ImageReadError(f"{path}: no such file or folder")
            found.append(ImageInput(path, path.name))
            continue
        inside = folder_images(path, glob, Path(exclude) if exclude else None)
        if not inside:
            wanted = f"matching --glob {glob!r}" if glob else f"({', '.join(IMAGE_SUFFIXES)})"
            raise ImageReadError(f"{path}: no image files {wanted} in this folder or below")
        found += inside
    return found


def folder_images(folder: Path, glob: str | None, exclude: Path | None) -> list[ImageInput]:
    """The images of :func:`find_images` in one folder and its subfolders."""
    skip = exclude.resolve() if exclude else None
    images = []
    for path in sorted(folder.rglob(glob or "*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if glob is None and path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        images.append(ImageInput(path, relative.as_posix()))
    return images


def prepare_folder(folder: str | Path) -> Path:
    """Make ``folder`` (and its parents) and prove it writable, or raise :class:`OutputError` in one line;
    temporary files a killed run left there are deleted."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--out {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OutputError(f"cannot write to --out {folder}: {error.strerror or error}") from None
    remove_stale_temps(folder)
    return folder


def refuse_existing(paths: Iterable[Path], overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` naming the first of ``paths`` that exists, unless ``overwrite``."""
    if overwrite:
        return
    existing = next((path for path in paths if path.exists()), None)
    if existing is not None:
        raise OutputExistsError(f"{existing} exists; {HINT}")
