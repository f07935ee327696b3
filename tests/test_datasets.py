import numpy as np
import pytest
import tifffile
from PIL import Image

from blastseg.datasets.layouts import detect_layout, scan_dataset
from blastseg.datasets.masks import decode_mask, guess_encoding
from blastseg.errors import DatasetError, MaskError, UnknownNameError
from blastseg.labels import target_mask


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tif":
        tifffile.imwrite(path, array)
    else:
        Image.fromarray(array).save(path)


def rgb(h=8, w=8):
    return np.full((h, w, 3), 200, np.uint8)


def test_decode_zheng_snaps_antialiased_values():
    mask = np.array([[0, 3, 120, 135, 250, 255, 190]], np.uint8)
    assert decode_mask(mask, "zheng").tolist() == [[0, 0, 1, 1, 2, 2, 1]]


def test_decode_allidb2_grey_and_rgb():
    assert decode_mask(np.array([[0, 150, 160, 255]], np.uint8), "allidb2_grey").tolist() == [[0, 1, 1, 2]]
    colours = np.array([[[255, 255, 255], [0, 0, 255], [0, 255, 255], [10, 240, 250]]], np.uint8)
    assert decode_mask(colours, "allidb2_rgb").tolist() == [[0, 1, 2, 2]]


def test_guess_encoding_and_binary():
    assert guess_encoding(np.array([[0, 128, 255]], np.uint8)) == "zheng"
    assert guess_encoding(np.array([[0, 155, 255]], np.uint8)) == "allidb2_grey"
    assert guess_encoding(np.zeros((2, 2, 3), np.uint8)) == "allidb2_rgb"
    for values in ([[0, 1, 1]], [[0, 255, 255]]):
        binary = decode_mask(np.array(values, np.uint8))
        assert target_mask(binary, "nucleus").tolist() == target_mask(binary, "cell").tolist() == [[False, True, True]]


def test_decode_refuses_wrong_kind_and_names():
    with pytest.raises(MaskError, match="RGB"):
        decode_mask(np.zeros((2, 2), np.uint8), "allidb2_rgb")
    with pytest.raises(UnknownNameError, match="valid: allidb2_grey, allidb2_rgb, binary, zheng"):
        decode_mask(np.zeros((2, 2), np.uint8), "nope")


def test_targets_from_label_map():
    labels = np.array([[0, 1, 2]], np.uint8)
    assert target_mask(labels, "nucleus").tolist() == [[False, False, True]]
    assert target_mask(labels, "cell").tolist() == [[False, True, True]]


def test_zheng_layout_with_labels_and_gaps(tmp_path):
    root = tmp_path / "zheng"
    for folder, ids in (("Dataset1", ("001", "003")), ("Dataset2", ("002",))):
        for i in ids:
            save(root / folder / f"{i}.bmp", rgb())
            save(root / folder / f"{i}.png", np.full((8, 8), 128, np.uint8))
        (root / folder / "labels.csv").write_text("image_id,class_label\n1,2\n2,5\n3,1\n")
    samples = scan_dataset(root)
    assert detect_layout(root) == "zheng"
    assert [(s.group, s.name, s.label) for s in samples] == [
        ("Dataset1", "001", "lymphocyte"),
        ("Dataset1", "003", "neutrophil"),
        ("Dataset2", "002", "basophil"),
    ]
    image, labels = samples[0].load()
    assert image.shape == (8, 8, 3) and np.all(labels == 1)


def test_mask_of_wrong_size_is_an_error(tmp_path):
    save(tmp_path / "001.bmp", rgb(8, 8))
    save(tmp_path / "001.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(MaskError, match=r"001.png: mask is 9x8 but its image 001.bmp is 8x8"):
        scan_dataset(tmp_path)[0].load()


def test_allidb2_names_labels_and_masks(tmp_path):
    save(tmp_path / "Im001_1.tif", rgb())
    save(tmp_path / "Im002_0.tif", rgb())
    save(tmp_path / "notes.tif", rgb())
    save(tmp_path / "masks" / "Im001_1.png", np.full((8, 8), 155, np.uint8))
    rgb_mask = np.full((8, 8, 3), 255, np.uint8)
    rgb_mask[2:4, 2:4] = (0, 255, 255)
    save(tmp_path / "Im002_0_mask.png", rgb_mask)
    samples = scan_dataset(tmp_path)
    assert detect_layout(tmp_path) == "allidb2"
    assert [(s.name, s.label) for s in samples] == [("Im001_1", "blast"), ("Im002_0", "normal")]
    assert np.all(samples[0].load()[1] == 1)
    assert samples[1].load()[1].sum() == 4 * 2


def test_allidb1_fields_with_xyc(tmp_path):
    save(tmp_path / "Im001_1.jpg", rgb())
    (tmp_path / "Im001_1.xyc").write_text("3 4\n5 6\n")
    save(tmp_path / "Im002_0.jpg", rgb())
    samples = scan_dataset(tmp_path)
    assert detect_layout(tmp_path) == "allidb1"
    assert [(s.name, s.label, s.centroids.tolist()) for s in samples] == [
        ("Im001_1", "ALL", [[3, 4], [5, 6]]),
        ("Im002_0", "healthy", []),
    ]


def test_bccd_layout(tmp_path):
    save(tmp_path / "JPEGImages" / "BloodImage_00001.jpg", rgb())
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "BloodImage_00001.xml").write_text(
        "<annotation><object><name>WBC</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>6</ymax></bndbox></object></annotation>"
    )
    (sample,) = scan_dataset(tmp_path)
    assert [b.label for b in sample.boxes] == ["WBC"]


def test_generic_images_masks_and_class_folders(tmp_path):
    save(tmp_path / "a" / "images" / "x.png", rgb())
    save(tmp_path / "a" / "masks" / "x.png", np.full((8, 8), 255, np.uint8))
    save(tmp_path / "a" / "images" / "y.png", rgb())
    samples = scan_dataset(tmp_path / "a", encoding="binary")
    assert [(s.name, s.mask is not None) for s in samples] == [("x", True), ("y", False)]
    assert np.all(samples[0].load()[1] == 2)
    save(tmp_path / "b" / "blast" / "p.png", rgb())
    save(tmp_path / "b" / "normal" / "q.png", rgb())
    assert [(s.name, s.label) for s in scan_dataset(tmp_path / "b")] == [("p", "blast"), ("q", "normal")]


def test_empty_or_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no images found"):
        scan_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        scan_dataset(tmp_path / "missing")
    with pytest.raises(UnknownNameError, match="valid: allidb1, allidb2, bccd, folder, zheng"):
        scan_dataset(tmp_path, layout="coco")
