import numpy as np
import pytest
import tifffile
from PIL import Image

from blastseg.errors import ImageReadError
from blastseg.io import atomic_path, read_image, read_mask, write_csv, write_json, write_png

RGB = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".jpg", ".tif"])
def test_rgb_round_trip_every_format(tmp_path, suffix):
    path = tmp_path / f"im{suffix}"
    big = np.kron(RGB, np.ones((8, 8, 1), np.uint8))  # blocks survive JPEG
    if suffix == ".tif":
        tifffile.imwrite(path, big)
    else:
        Image.fromarray(big).save(path, quality=100, subsampling=0)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    tolerance = 12 if suffix == ".jpg" else 0
    assert np.abs(out.astype(int) - big.astype(int)).max() <= tolerance


def test_written_pngs_read_back_exactly(tmp_path):
    noisy = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    labels = np.random.default_rng(1).integers(0, 3, (37, 53), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(write_png(tmp_path / "rgb.png", noisy)), noisy)
    np.testing.assert_array_equal(read_mask(write_png(tmp_path / "mask.png", labels)), labels)


def test_grey_becomes_three_equal_channels(tmp_path):
    Image.fromarray(np.array([[0, 100], [200, 255]], np.uint8)).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (2, 2, 3)
    assert out[1, 0].tolist() == [200, 200, 200]


def test_sixteen_bit_scales_to_full_range(tmp_path):
    tifffile.imwrite(tmp_path / "d.tif", np.array([[0, 65535], [32768, 257]], np.uint16))
    out = read_image(tmp_path / "d.tif")
    assert out[..., 0].tolist() == [[0, 255], [128, 1]]
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tmp_path / "d.png")
    assert read_image(tmp_path / "d.png")[0, :, 0].tolist() == [0, 255]


def test_rgba_drops_alpha_and_palette_expands(tmp_path):
    rgba = np.dstack([RGB, np.full((2, 2), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(read_image(tmp_path / "a.png"), RGB)
    Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    assert np.array_equal(read_image(tmp_path / "p.png"), RGB)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello, not an image"), "not a readable"),
    ],
)
def test_bad_files_raise_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert "bad.png" in str(info.value)


def test_truncated_image_is_an_error(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="t.png"):
        read_image(tmp_path / "t.png")


def test_read_mask_grey_and_colour(tmp_path):
    Image.fromarray(np.array([[0, 128]], np.uint8)).save(tmp_path / "g.png")
    assert read_mask(tmp_path / "g.png").tolist() == [[0, 128]]
    Image.fromarray(np.dstack([np.array([[7, 9]], np.uint8)] * 3)).save(tmp_path / "rgbgrey.png")
    assert read_mask(tmp_path / "rgbgrey.png").shape == (1, 2)
    Image.fromarray(RGB).save(tmp_path / "c.png")
    assert read_mask(tmp_path / "c.png").shape == (2, 2, 3)


def test_sixteen_bit_label_mask_keeps_its_values_and_float_images_scale(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.array([[0, 1, 2]], np.uint16))
    assert read_mask(tmp_path / "m.tif").tolist() == [[0, 1, 2]]
    tifffile.imwrite(tmp_path / "f.tif", np.array([[0.0, 0.5, 1.0]], np.float32))
    assert read_image(tmp_path / "f.tif")[0, :, 0].tolist() == [0, 128, 255]
    tifffile.imwrite(tmp_path / "f255.tif", np.array([[0.0, 127.5, 255.0]], np.float32))
    assert read_image(tmp_path / "f255.tif")[0, :, 0].tolist() == [0, 128, 255]


def test_writers_are_atomic_and_leave_no_temp_files(tmp_path):
    write_png(tmp_path / "m.png", np.array([[0, 255]], np.uint8))
    write_json(tmp_path / "s.json", {"x": np.float32(0.5)})
    write_csv(tmp_path / "t.csv", [{"a": 1, "b": 0.25}])
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,0.25\n"
    assert '"x": 0.5' in (tmp_path / "s.json").read_text()
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "s.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert '"x": 0.5' in (tmp_path / "s.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "s.json", "t.csv"]
