"""The one config idiom: strict pydantic models, validated whole when loaded.

Every schema in blastseg (recipes, preprocessing steps, losses, segmenter parameters, instance
rules, model cards) derives from :class:`StrictModel`, so an unknown key is an error that names
the valid ones, and every value is checked before any work starts.

>>> class Blur(StrictModel):
...     kernel: int = 3
>>> validate(Blur, {"kernel": 5}, "blur").kernel
5
>>> validate(Blur, {"size": 5}, "blur")
Traceback (most recent call last):
...
blastseg.errors.ConfigError: blur: unknown key 'size'; valid keys: kernel
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from blastseg.errors import BlastsegError, ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """A schema whose unknown keys are errors and whose numbers are finite (no NaN or infinity)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _valid_keys(model: type[BaseModel], path: tuple) -> list[str]:
    """The keys valid at a location inside ``model`` (nested models followed)."""
    keys = list(model.model_fields)
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = getattr(field, "annotation", None)
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            break
        model, keys = inner, list(inner.model_fields)
    return keys


def explain(error: ValidationError, model: type[BaseModel], source: str) -> str:
    """One line for the first problem pydantic found, naming where it is and the valid keys."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        valid = ", ".join(_valid_keys(model, first["loc"][:-1])) or "none"
        return f"{source}: unknown key {where!r}; valid keys: {valid}"
    message = first["msg"].removeprefix("Value error, ")
    return f"{source}: {where}: {message}" if where else f"{source}: {message}"


def validate(model: type[ModelT], data: Any, source: str, error: type[BlastsegError] = ConfigError, base: Path | None = None) -> ModelT:
    """``model`` built from ``data``; any mistake becomes one line of ``error`` naming ``source``.
    Relative :data:`FilePath` values resolve against ``base`` (the recipe's folder; default the working directory)."""
    try:
        return model.model_validate(data, context={"base": base})
    except ValidationError as problem:
        raise error(explain(problem, model, source)) from None
    except RecursionError:
        raise error(f"{source}: nested too deeply") from None


Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
"""A random seed: what numpy, scikit-learn and torch all accept."""


def _absolute(value: str, info: ValidationInfo) -> str:
    if value == "default":  # the bundled model, not a file
        return value
    path = Path(value).expanduser()
    base = (info.context or {}).get("base") or Path.cwd()
    return os.path.normpath(path if path.is_absolute() else Path(base) / path)


FilePath = Annotated[str, AfterValidator(_absolute)]
"""A file or folder named in a recipe: stored absolute, a relative one taken from the recipe's
folder (so a run resumes the same wherever it is started); ``default`` stays the bundled model."""


def as_value_error(check, *args, **kwargs):
    """Run ``check`` inside a pydantic validator: a :class:`BlastsegError` becomes a ``ValueError``
    so that the file being loaded is named in the message."""
    try:
        return check(*args, **kwargs)
    except BlastsegError as problem:
        raise ValueError(str(problem)) from None


def checked_name(check: Callable[[str], str]) -> Any:
    """A ``str`` field type that runs ``check`` when the schema is validated (an unknown layout,
    encoding or device is then refused as the recipe loads, naming the file)."""
    return Annotated[str, AfterValidator(lambda name: as_value_error(check, name))]


def load_config(path: str | Path, model: type[ModelT]) -> ModelT:
    """Read a YAML file into ``model``; every mistake is a one-line :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as problem:
        raise ConfigError(f"{path}: not valid YAML ({str(problem).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError, RecursionError) as problem:
        raise ConfigError(f"{path}: not a readable YAML file ({type(problem).__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return validate(model, data, str(path), base=path.absolute().parent)
