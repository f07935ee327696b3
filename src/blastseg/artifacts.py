"""Model files, shared by segmentation networks and cell classifiers: a weights file plus a JSON card.

A model is the pair ``NAME.safetensors`` (numbers only) + ``NAME.json`` (a validated card that says
how to rebuild and feed it). It is named by either file, by its stem, by a run folder (its
``run_stem`` pair), or by ``default`` (the pair bundled with the package). Nothing a user hands
in is ever unpickled: ``.pth`` weights are read with ``weights_only=True``. Every broken, foreign
or mismatched file is a one-line :class:`~blastseg.errors.ModelFileError`.

torch is imported only by the functions that move tensors, so reading a card stays light.
"""

from __future__ import annotations

import json
import pickle
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from blastseg.config import validate
from blastseg.errors import ModelFileError, first_line
from blastseg.io import write_bytes, write_json

if TYPE_CHECKING:
    import torch

DEFAULT = "default"
CardT = TypeVar("CardT", bound=BaseModel)


def bundled(*parts: str) -> Path:
    """A file shipped inside the package (``assets/...``)."""
    return Path(str(files("blastseg").joinpath("assets", *parts)))


def example_image_path() -> Path:
    """Path of the bundled example field (BCCD, MIT licence)."""
    return bundled("example_field.jpg")


def paired_files(path: str | Path, bundled_stem: str, run_stem: str, what: str) -> tuple[Path, Path]:
    """The (``.safetensors``, ``.json``) pair that ``path`` names (see the module docstring)."""
    if str(path) == DEFAULT:
        path = bundled("models", bundled_stem)
    path = Path(path)
    if path.is_dir():
        path = path / run_stem
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    weights, card = stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")
    for needed in (weights, card):
        if not needed.is_file():
            raise ModelFileError(f"{what} {path}: {needed} not found (a {what} is NAME.safetensors + NAME.json)")
    return weights, card


def read_card(path: Path, model: type[CardT], fmt: str, what: str) -> CardT:
    """Read and validate a JSON card; one that another program wrote is refused with one line."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: not a readable {what} card ({error})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: not a {what} card (nested too deeply)") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        found = data.get("format") if isinstance(data, dict) else None
        raise ModelFileError(f"{path}: not a blastseg {what} (format {found!r})")
    return validate(model, data, f"{path}: bad {what} card", error=ModelFileError)


def write_pair(stem: str | Path, weights: bytes, card: BaseModel) -> Path:
    """Write ``stem.safetensors`` and ``stem.json``, each atomically."""
    stem = Path(stem)
    write_bytes(stem.with_name(stem.name + ".safetensors"), weights)
    write_json(stem.with_name(stem.name + ".json"), card.model_dump(mode="json"))
    return stem


def read_weights(path: str | Path, what: str = "weights") -> dict[str, torch.Tensor]:
    """A state dict of tensors from ``.safetensors`` or a plain tensor ``.pt``/``.pth`` file."""
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} {path}: no such file")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's own message advises weights_only=False, which would run the file's code
        raise ModelFileError(
            f"{what} {path}: holds Python objects besides tensors, which blastseg never unpickles; "
            "save a plain state dict (torch.save(model.state_dict(), ...)) or a .safetensors file"
        ) from None
    except Exception as error:
        raise ModelFileError(f"{what} {path}: cannot read ({type(error).__name__}: {first_line(error)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{what} {path}: expected a state dict of tensors")
    return state


def load_state(module: torch.nn.Module, state: dict[str, Any], source: str | Path, describe: str, skip: str | None = None) -> None:
    """Load ``state`` into ``module`` when its keys and shapes match exactly, else refuse in one line.

    Keys starting with ``skip`` (a classification head sized per task) are neither needed nor loaded;
    batch-norm step counters (``num_batches_tracked``) may be absent, as torch allows.
    """

    def kept(keys):
        return {k for k in keys if not (skip and k.startswith(skip))}

    expected = module.state_dict()
    missing = sorted(k for k in kept(expected) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(kept(state) - set(expected))
    reshaped = sorted(k for k in kept(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or reshaped:
        example = (missing or unexpected or reshaped)[0]
        raise ModelFileError(
            f"{source} holds weights of another architecture than {describe} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape, e.g. {example})"
        )
    loaded = {k: state[k].to(expected[k].dtype) for k in kept(expected) & set(state)}
    module.load_state_dict(loaded, strict=skip is None)
