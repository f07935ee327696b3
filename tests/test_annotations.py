"""Annotation files: ALL-IDB1 .xyc centroids and Pascal VOC boxes, and their one-line errors."""

import pytest

from blastseg.annotations import read_voc, read_xyc
from blastseg.errors import AnnotationError


def test_read_xyc(tmp_path):
    (tmp_path / "Im001_1.xyc").write_text("10 20\n  30\t40.5 \n\n")
    assert read_xyc(tmp_path / "Im001_1.xyc").tolist() == [[10, 20], [30, 40.5]]
    (tmp_path / "Im002_0.xyc").write_text("")
    assert read_xyc(tmp_path / "Im002_0.xyc").shape == (0, 2)
    (tmp_path / "bad.xyc").write_text("1 2\nx y\n")
    with pytest.raises(AnnotationError, match="bad.xyc:2"):
        read_xyc(tmp_path / "bad.xyc")


def test_read_voc(tmp_path):
    (tmp_path / "a.xml").write_text(
        "<annotation><object><name>WBC</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax>"
        "<ymax>40</ymax></bndbox></object><object><name>RBC</name><bndbox><xmin>5</xmin><ymin>6</ymin>"
        "<xmax>7</xmax><ymax>8</ymax></bndbox></object></annotation>"
    )
    boxes = read_voc(tmp_path / "a.xml")
    assert [(b.label, b.xmin, b.ymax) for b in boxes] == [("WBC", 1, 40), ("RBC", 5, 8)]
    (tmp_path / "b.xml").write_text("<annotation><object>")
    with pytest.raises(AnnotationError, match="b.xml"):
        read_voc(tmp_path / "b.xml")
