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

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from blastseg.errors import BlastsegError, ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """A schema whose unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


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


def validate(model: type[ModelT], data: Any, source: str, error: type[BlastsegError] = ConfigError) -> ModelT:
    """``model`` built from ``data``; any mistake becomes one line of ``error`` naming ``source``."""
    try:
        return model.model_validate(data)
    except ValidationError as problem:
        raise error(explain(problem, model, source)) from None


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
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return validate(model, data, str(path))
