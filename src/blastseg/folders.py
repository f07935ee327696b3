"""Output folders: made and checked writable before any work starts, stale temporary files
cleared, and the refuse-to-overwrite rule of the commands that write named files into ``--out``
(segment, predict, evaluate). Run folders add their ownership rule in :mod:`blastseg.training.runs`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from blastseg.errors import OutputError, OutputExistsError
from blastseg.io import remove_stale_temps

HINT = "choose another --out or pass --overwrite"


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
