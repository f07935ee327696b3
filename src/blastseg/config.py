"""Typed configuration: YAML files validated into objects; unknown keys name the valid ones.

>>> cfg = SegmentConfig.model_validate({"method": "otsu", "target": "cell"})
>>> cfg.method, cfg.params
('otsu', {})
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from blastseg.errors import ConfigError
from blastseg.postprocess import InstanceConfig


def construct(cls: type, params: dict[str, Any], what: str) -> Any:
    """Build dataclass ``cls`` from ``params``; an unknown parameter is a :class:`ConfigError`."""
    valid = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} for {what}; valid: {', '.join(valid) or 'none'}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"bad parameters for {what}: {error}") from None


class StrictModel(BaseModel):
    """A config section whose unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class SegmentConfig(StrictModel):
    """A classical segmentation recipe: preprocessing steps, a method and its parameters."""

    method: str = "kmeans"
    target: Literal["nucleus", "cell", "multiclass"] = "nucleus"
    params: dict[str, Any] = Field(default_factory=dict)
    preprocess: list[str | dict[str, Any]] = Field(default_factory=list)
    instances: InstanceConfig = Field(default_factory=InstanceConfig)


class InstancesFile(StrictModel):
    """A YAML file with one ``instances:`` section (``blastseg predict --instances``)."""

    instances: InstanceConfig = Field(default_factory=InstanceConfig)


def _valid_keys(model: type[BaseModel], path: tuple) -> list[str]:
    """The keys valid at a location inside ``model`` (nested models and dataclasses followed)."""
    keys = list(model.model_fields)
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = getattr(field, "annotation", None)
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            return [f.name for f in dataclasses.fields(inner) if f.init]
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            break
        model, keys = inner, list(inner.model_fields)
    return keys


def _explain(error: ValidationError, model: type[BaseModel], source: str) -> ConfigError:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        valid = ", ".join(_valid_keys(model, first["loc"][:-1]))
        return ConfigError(f"{source}: unknown key {where!r}; valid keys: {valid}")
    return ConfigError(f"{source}: {where}: {first['msg']}")


def load_config(path: str | Path, model: type[BaseModel] = SegmentConfig) -> BaseModel:
    """Read a YAML file into ``model``; every mistake is a one-line :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _explain(error, model, str(path)) from None
