"""The classical segmentation recipe (``blastseg segment/evaluate --config``), validated when loaded.

>>> cfg = SegmentConfig.model_validate({"method": "otsu", "target": "cell"})
>>> cfg.kind, cfg.method, cfg.params
('classical', 'otsu', {})
>>> SegmentConfig(method="magenta").target, SegmentConfig(method="otsu").target  # without one: the method's own
('multiclass', 'nucleus')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from blastseg.config import StrictModel, as_value_error, load_config, validate
from blastseg.io import MAX_PIXELS
from blastseg.postprocess import InstanceRules
from blastseg.preprocess import Pipeline
from blastseg.segment.classical import SEGMENTERS, ClassicalSegmenter, create_segmenter


class SegmentConfig(StrictModel):
    """Preprocessing steps, a classical method and its parameters, and how masks become cells."""

    kind: Literal["classical"] = "classical"
    method: str = "kmeans"
    target: Literal["nucleus", "cell", "multiclass"] | None = Field(default=None, description="what to find (default: the method's own, nucleus for most)")
    params: dict[str, Any] = Field(default_factory=dict)
    preprocess: list[str | dict[str, Any]] = Field(default_factory=list)
    instances: InstanceRules = Field(default_factory=InstanceRules)
    max_pixels: int = Field(default=MAX_PIXELS, ge=1, description="larger images are refused before they are decoded")

    @model_validator(mode="after")
    def _buildable(self) -> SegmentConfig:
        if self.target is None:
            method = SEGMENTERS.get(self.method)
            self.target = method.model_fields["target"].default if method else "nucleus"
        as_value_error(self.segmenter)  # an unknown method, target or parameter is refused now, naming the file
        as_value_error(Pipeline.from_config, self.preprocess)
        return self

    @classmethod
    def from_options(
        cls,
        path: str | Path | None = None,
        method: str | None = None,
        target: str | None = None,
        params: dict[str, Any] | None = None,
        max_pixels: int | None = None,
    ) -> SegmentConfig:
        """A recipe file's values (the defaults without one), overridden by those given, validated again.

        >>> SegmentConfig.from_options(method="otsu", params={"open_size": 5}).params
        {'open_size': 5}
        """
        base = load_config(path, cls).model_dump() if path else {}  # without a file, unset keys take the defaults (a method's own target)
        updates = {"method": method, "target": target, "max_pixels": max_pixels}
        merged = {**base, **{k: v for k, v in updates.items() if v}, "params": {**base.get("params", {}), **(params or {})}}
        return validate(cls, merged, str(path or "command line"))

    def segmenter(self) -> ClassicalSegmenter:
        return create_segmenter(self.method, target=self.target, **self.params)

    def provenance(self) -> dict[str, Any]:
        """What ``summary.json`` records of this recipe."""
        return self.model_dump(mode="json", exclude={"kind", "instances", "max_pixels"})
