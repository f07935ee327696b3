"""Output files: the refuse-to-overwrite rule of the commands that write named files into ``--out``
(segment, predict, evaluate); run folders have theirs in :mod:`blastseg.training.runs`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from blastseg.errors import OutputExistsError

HINT = "choose another --out or pass --overwrite"


def refuse_existing(paths: Iterable[Path], overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` naming the first of ``paths`` that exists, unless ``overwrite``."""
    if overwrite:
        return
    existing = next((path for path in paths if path.exists()), None)
    if existing is not None:
        raise OutputExistsError(f"{existing} exists; {HINT}")
