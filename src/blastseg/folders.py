"""Output folders: what blastseg refuses to overwrite. One rule for every command that writes."""

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
