"""Image loading: a corpus of bad and odd files generated here, each with its documented result."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixcolor import io as pio
from pixcolor.io import ImageLoadError, iter_images, load_rgb, load_thumbnail, save_png


def _png_bytes(width: int, height: int, depth: int, color_type: int, rows: bytes) -> bytes:
    """A minimal PNG written by hand (lets us make 16-bit RGB and lying headers)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def _jpeg_bytes(rgb: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


def _expect_error(path: Path, fragment: str, **kw) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_rgb(path, **kw)
    err = info.value
    assert isinstance(err, ValueError)
    assert str(path) in str(err) and fragment in err.reason.lower()
    return err


# --- bad files -------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.jpg", "not found")


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    err = _expect_error(p, "empty")
    assert "delete" in str(err)  # says what to do


def test_truncated_jpeg(tmp_path, photo):
    raw = _jpeg_bytes(photo)
    for i, cut in enumerate([len(raw) // 2, len(raw) - 20]):
        p = tmp_path / f"cut{i}.jpg"
        p.write_bytes(raw[:cut])
        _expect_error(p, "truncated")
        with pytest.raises(ImageLoadError, match="truncated"):
            load_thumbnail(p, max_side=32)  # reduced-scale decoding still reads all data


def test_text_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a photo\n" * 10)
    _expect_error(p, "not an image")


def test_corrupt_png_data(tmp_path):
    # Valid header, garbage compressed data.
    p = tmp_path / "garbage.png"
    good = _png_bytes(4, 4, 8, 2, b"\x00" + bytes(12) * 4)
    p.write_bytes(good.replace(zlib.compress(b"\x00" + bytes(12) * 4), b"\x78\x9c" + b"\xff" * 30))
    with pytest.raises(ImageLoadError):
        load_rgb(p)


def test_over_limit_checked_from_header(tmp_path):
    # The header claims 9000 x 9000 = 81 MP (under PIL's own limit) but holds almost no data:
    # the error must come from the size check, not from decoding.
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_bytes(9000, 9000, 8, 0, b"\x00" * 10))
    _expect_error(p, "over the limit", max_pixels=pio.DEFAULT_MAX_PIXELS)
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100), "red").save(small)
    assert load_rgb(small, max_pixels=10_000).shape == (100, 100, 3)
    _expect_error(small, "over the limit", max_pixels=9_999)


@pytest.mark.parametrize("pil_limit", [6_000, 1_000])  # PIL warning range, PIL error range
def test_pil_bomb_checks_become_image_load_error(tmp_path, monkeypatch, pil_limit):
    p = tmp_path / "img.png"
    Image.new("RGB", (100, 100), "red").save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pil_limit)
    _expect_error(p, "decompression bomb", max_pixels=None)


def test_error_pickles(tmp_path):
    err = ImageLoadError(tmp_path / "x.jpg", "truncated file", "re-download it")
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.reason, back.hint, str(back)) == (err.path, err.reason, err.hint,
                                                              str(err))


# --- odd but valid files ---------------------------------------------------------------------

def test_plain_rgb_png_round_trip(tmp_path, photo):
    p = save_png(tmp_path / "sub" / "a.png", photo)
    out = load_rgb(p)
    assert out.dtype == np.uint8 and out.shape == photo.shape and out.flags.writeable
    np.testing.assert_array_equal(out, photo)
    assert [q.name for q in p.parent.iterdir()] == ["a.png"]  # no temp file left behind


def test_save_png_is_atomic_with_normal_permissions(tmp_path, photo, monkeypatch):
    old = os.umask(0o022)
    try:
        p = save_png(tmp_path / "p.png", photo[:8, :8])
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644
    target = tmp_path / "keep.png"
    save_png(target, photo[:4, :4])

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        save_png(target, photo[:8, :8])
    np.testing.assert_array_equal(load_rgb(target), photo[:4, :4])  # old file intact
    assert sorted(q.name for q in tmp_path.iterdir()) == ["keep.png", "p.png"]  # no temp left


def test_save_png_rejects_float(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_png(tmp_path / "f.png", np.zeros((4, 4, 3), np.float32))
    assert not list(tmp_path.iterdir())


def test_grayscale_modes(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray, "L").save(tmp_path / "l.png")
    Image.fromarray(gray, "L").convert("LA").save(tmp_path / "la.png")
    Image.fromarray(gray > 100).save(tmp_path / "one.png")
    for name in ("l.png", "la.png"):
        out = load_rgb(tmp_path / name)
        assert out.shape == (8, 8, 3)
        np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, -1))
    out = load_rgb(tmp_path / "one.png")
    np.testing.assert_array_equal(out[..., 0], np.where(gray > 100, 255, 0))


def test_16bit_gray_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = load_rgb(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 128, 255])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_16bit_rgb_png(tmp_path):
    values = np.array([[[65535, 32768, 25700], [0, 1000, 65280]]], dtype=np.uint16)
    rows = b"\x00" + values[0].astype(">u2").tobytes()
    (tmp_path / "c16.png").write_bytes(_png_bytes(2, 1, 16, 2, rows))
    out = load_rgb(tmp_path / "c16.png").astype(int)
    assert np.abs(out - values / 257.0).max() <= 1.0  # scaled (clipping would give 255s)


def test_float_and_int32_modes():
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")
    np.testing.assert_array_equal(pio.to_rgb_array(f)[0, :, 0], [0, 128, 255])
    i32 = Image.fromarray(np.array([[0, 65535, 70000]], np.int32), "I")
    np.testing.assert_array_equal(pio.to_rgb_array(i32)[0, :, 0], [0, 255, 255])


def test_palette_gif_with_and_without_transparency(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :3] = (200, 30, 40)
    rgb[:, 3:] = (10, 20, 230)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    pal.save(tmp_path / "p.gif")
    out = load_rgb(tmp_path / "p.gif")
    assert out.shape == (4, 6, 3)
    assert np.abs(out.astype(int) - rgb).max() <= 2
    blue_index = pal.getpixel((5, 0))
    pal.save(tmp_path / "pt.gif", transparency=blue_index)
    out = load_rgb(tmp_path / "pt.gif")
    np.testing.assert_array_equal(out[:, 3:], 255)  # transparent -> white
    assert np.abs(out[:, :3].astype(int) - rgb[:, :3]).max() <= 2


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = (100, 0, 50)
    rgba[..., 3] = [[0, 255, 128], [0, 255, 128]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    np.testing.assert_array_equal(out[:, 0], 255)  # fully transparent -> white
    np.testing.assert_array_equal(out[:, 1], [[100, 0, 50]] * 2)  # opaque kept
    np.testing.assert_allclose(out[0, 2], [100 * 128 / 255 + 127, 127, 50 * 128 / 255 + 127],
                               atol=1)


def test_cmyk_jpeg(tmp_path):
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[:, :8] = (0, 255, 255, 0)  # red
    cmyk[:, 8:] = (255, 255, 0, 0)  # blue
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = load_rgb(tmp_path / "c.jpg").astype(int)
    assert np.abs(out[:, :6] - [255, 0, 0]).max() <= 12
    assert np.abs(out[:, 10:] - [0, 0, 255]).max() <= 12


def test_one_pixel_image(tmp_path):
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "px.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "px.png"), [[[1, 2, 3]]])


def test_exif_orientation_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # 20 tall, 40 wide
    stored[:, :20] = (255, 0, 0)  # left half red
    stored[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    (tmp_path / "rot.jpg").write_bytes(_jpeg_bytes(stored, exif=exif.tobytes()))
    out = load_rgb(tmp_path / "rot.jpg").astype(int)
    assert out.shape == (40, 20, 3)
    assert np.abs(out[:15] - [255, 0, 0]).max() < 40  # the left edge is now on top
    assert np.abs(out[25:] - [0, 0, 255]).max() < 40
    thumb, size = load_thumbnail(tmp_path / "rot.jpg", max_side=10)
    assert size == (40, 20) and thumb.shape == (10, 5, 3)


def test_thumbnail_of_large_jpeg(tmp_path, photo):
    (tmp_path / "a.jpg").write_bytes(_jpeg_bytes(photo))
    thumb, size = load_thumbnail(tmp_path / "a.jpg", max_side=64)
    assert size == (512, 512) and thumb.shape == (64, 64, 3) and thumb.dtype == np.uint8
    ref = np.asarray(Image.fromarray(photo).resize((64, 64), Image.Resampling.BOX))
    assert np.abs(thumb.astype(int) - ref).mean() < 8


def test_iter_images_order_and_filter(tmp_path):
    for rel in ["b/2.JPEG", "b/1.png", "a/x.Jpg", "top.webp", "a/deep/z.tif", "notes.txt",
                "a/.hidden.jpg", ".cache/y.png", "c.TIFF", "d.gif", "e.bmp", "f.jpeg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    rel = [p.relative_to(tmp_path).as_posix() for p in iter_images(tmp_path)]
    assert rel == ["c.TIFF", "d.gif", "e.bmp", "f.jpeg", "top.webp", "a/x.Jpg", "a/deep/z.tif",
                   "b/1.png", "b/2.JPEG"]
    flat = [p.name for p in iter_images(tmp_path, recursive=False)]
    assert flat == ["c.TIFF", "d.gif", "e.bmp", "f.jpeg", "top.webp"]
    with pytest.raises(NotADirectoryError):
        list(iter_images(tmp_path / "missing"))
