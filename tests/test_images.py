"""cae.images without a model: finding inputs, reading and writing every mode, tiling, batching."""

from pathlib import Path

import numpy as np
import pytest
from image_files import gray, save
from PIL import Image

from cae.errors import CaeError
from cae.images import (
    ImageError,
    Picture,
    Source,
    collect_inputs,
    process,
    read_image,
    tiled_apply,
    window,
    write_image,
)


def identity(batch):
    return batch


# --- inputs ---------------------------------------------------------------------------


def test_files_folders_globs_in_order_without_repeats(tmp_path):
    a = save(tmp_path / "in/a.png", gray(8, 8))
    save(tmp_path / "in/b.JPG", gray(8, 8))
    save(tmp_path / "in/sub/c.tif", gray(8, 8))
    (tmp_path / "in/notes.txt").write_text("not an image")
    save(tmp_path / "in/.hidden.png", gray(8, 8))
    flat = collect_inputs([str(tmp_path / "in"), str(a)])
    assert [s.name.as_posix() for s in flat] == ["a.png", "b.JPG"]
    deep = collect_inputs([str(tmp_path / "in")], recursive=True)
    assert [s.name.as_posix() for s in deep] == ["a.png", "b.JPG", "sub/c.tif"]
    globbed = collect_inputs([str(tmp_path / "in/**/*.tif"), str(tmp_path / "in/*")])
    assert [s.name.as_posix() for s in globbed] == ["c.tif", "a.png", "b.JPG"]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("empty", "no images in this folder .* add --recursive"),
        ("empty/*.png", "the pattern matches no images"),
        ("missing.png", "no such file or folder"),
    ],
)
def test_an_argument_that_yields_no_image_is_an_error(tmp_path, arg, message):
    (tmp_path / "empty/sub").mkdir(parents=True)
    (tmp_path / "empty/readme.txt").write_text("x")
    with pytest.raises(CaeError, match=message):
        collect_inputs([str(tmp_path / arg)])


# --- reading and writing --------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".jpg"])
def test_uint8_round_trip_keeps_format_mode_and_values(tmp_path, suffix):
    src = save(tmp_path / f"x{suffix}", gray(13, 9))
    pic = read_image(src, 1)
    assert pic.pixels.shape == (13, 9, 1) and pic.pixels.dtype == np.float32 and pic.bits == 8
    out = tmp_path / f"out/x{suffix}"
    write_image(out, pic, pic.pixels)
    with Image.open(src) as a, Image.open(out) as b:
        assert (b.format, b.mode, b.size) == (a.format, a.mode, a.size)
        if suffix != ".jpg":  # lossless formats come back bit for bit
            assert np.array_equal(np.asarray(a), np.asarray(b))
    assert sorted(p.name for p in out.parent.iterdir()) == [f"x{suffix}"], "no temporary file may remain"


def test_colour_and_grayscale_must_match_the_model_unless_converted(tmp_path):
    rgb = save(tmp_path / "rgb.png", np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match=r"RGB image, but the model takes grayscale .* add --convert"):
        read_image(rgb, 1)
    assert read_image(rgb, 1, convert=True).pixels.shape == (6, 7, 1)
    g = save(tmp_path / "g.png", gray(6, 7))
    with pytest.raises(ImageError, match=r"grayscale image, but the model takes RGB .* --convert"):
        read_image(g, 3)
    pic = read_image(g, 3, convert=True)
    assert pic.pixels.shape == (6, 7, 3) and np.array_equal(pic.pixels[..., 0], pic.pixels[..., 2])


def test_alpha_is_set_aside_and_put_back(tmp_path):
    la = np.stack([gray(5, 5), gray(5, 5, seed=1)], axis=-1)
    src = save(tmp_path / "la.png", la, mode="LA")
    pic = read_image(src, 1)
    assert pic.pixels.shape == (5, 5, 1) and np.array_equal(pic.alpha, la[..., 1])
    write_image(tmp_path / "out.png", pic, pic.pixels)
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "LA" and np.array_equal(np.asarray(im), la)


def test_palette_images_are_grayscale_or_colour_by_their_palette(tmp_path):
    gray_palette = save(tmp_path / "gp.png", gray(6, 6)).parent / "gp.png"
    Image.open(gray_palette).convert("P").save(gray_palette)
    assert read_image(gray_palette, 1).pixels.shape == (6, 6, 1)
    colour = Image.new("RGB", (6, 6), (200, 10, 10)).convert("P")
    colour.save(tmp_path / "cp.png")
    with pytest.raises(ImageError, match="--convert"):
        read_image(tmp_path / "cp.png", 1)
    assert read_image(tmp_path / "cp.png", 3).pixels.shape == (6, 6, 3)


def test_16_bit_grayscale_keeps_its_depth(tmp_path):
    deep = (np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 541).astype(np.uint16)
    src = save(tmp_path / "d.png", deep)
    pic = read_image(src, 1)
    assert pic.bits == 16
    write_image(tmp_path / "o.png", pic, pic.pixels)
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "I;16" and np.array_equal(np.asarray(im), deep)


def test_unsupported_mode_needs_convert(tmp_path):
    Image.new("CMYK", (4, 4), (0, 50, 100, 0)).save(tmp_path / "c.jpg")
    with pytest.raises(ImageError, match=r"CMYK images are not supported .* --convert"):
        read_image(tmp_path / "c.jpg", 3)
    assert read_image(tmp_path / "c.jpg", 3, convert=True).pixels.shape == (4, 4, 3)


def test_corrupt_truncated_and_foreign_files_are_image_errors(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    good = save(tmp_path / "good.png", gray(64, 64))
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:200])
    Image.new("L", (4, 4)).save(tmp_path / "x.gif")
    for name, message in [("junk.png", "unreadable"), ("cut.png", "unreadable or corrupt"), ("x.gif", "GIF")]:
        with pytest.raises(ImageError, match=message):
            read_image(tmp_path / name, 1)


@pytest.mark.parametrize("limit", [6000, 4000, 1000])  # under 2× the limit Pillow only warns
def test_pixel_limit_is_an_error_never_a_warning(tmp_path, limit):
    src = save(tmp_path / "big.png", gray(100, 100))
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match=f"10,000 pixels, over the limit of {limit:,} \\(--max-pixels\\)"):
        read_image(src, 1, max_pixels=limit)
    assert read_image(src, 1, max_pixels=10_000).pixels.shape == (100, 100, 1)
    assert pillow_limit == Image.MAX_IMAGE_PIXELS, "Pillow's global limit is restored"


def test_existing_output_is_not_replaced_without_overwrite(tmp_path):
    out = save(tmp_path / "o.png", gray(4, 4))
    pic = Picture(np.zeros((4, 4, 1), np.float32), "PNG")
    with pytest.raises(ImageError, match="already exists; add --overwrite"):
        write_image(out, pic, pic.pixels)
    write_image(out, pic, pic.pixels, overwrite=True)
    with Image.open(out) as im:
        assert not np.asarray(im).any()


# --- tiling ---------------------------------------------------------------------------


def test_window_is_positive_and_sums_to_one_at_half_overlap():
    w = window(28)
    assert (w > 0).all()
    np.testing.assert_allclose(w[:14] + w[14:], 1.0, atol=1e-6)


@pytest.mark.parametrize("shape", [(50, 37, 1), (37, 50, 3), (28, 28, 1), (5, 3, 1), (1, 1, 1), (100, 29, 2)])
def test_tiling_the_identity_gives_the_image_back(shape):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    calls = []

    def f(batch):
        calls.append(batch.shape)
        return batch

    y = tiled_apply(f, x, (8, 8), batch_size=16)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-6)
    assert all(c[0] <= 16 and c[1:] == (8, 8, shape[2]) for c in calls)
    as_uint8 = np.rint(x * 255) / 255
    assert np.array_equal(np.rint(tiled_apply(f, as_uint8, (8, 8)) * 255), np.rint(as_uint8 * 255))


def test_constant_image_stays_constant_and_tile_offsets_leave_no_seams():
    flat = np.full((50, 37, 1), 0.3, np.float32)
    np.testing.assert_allclose(tiled_apply(identity, flat, (8, 8)), 0.3, atol=1e-6)
    # A "model" whose error grows across each tile (0 at its left edge, 0.1 at its right):
    # side-by-side tiles would show a 0.1 step at every tile border; blended, neighbouring
    # pixels differ by less than the error changes from one pixel to the next inside a tile.
    bias = np.linspace(0, 0.1, 8, dtype=np.float32)[None, None, :, None]
    seams = tiled_apply(lambda b: b + bias, flat, (8, 8), stride=(8, 8))
    assert np.abs(np.diff(seams, axis=1)).max() > 0.09
    blended = tiled_apply(lambda b: b + bias, flat, (8, 8))
    assert np.abs(np.diff(blended, axis=1)).max() < 0.1 / 7
    assert np.abs(np.diff(blended, axis=0)).max() < 1e-6


# --- batches of files -----------------------------------------------------------------


def test_process_batches_tiles_resizes_and_carries_on_after_failures(tmp_path):
    for i in range(5):
        save(tmp_path / f"in/{i}.png", gray(8, 8, seed=i))
    save(tmp_path / "in/big.png", gray(21, 13))
    save(tmp_path / "in/rgb.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "in/bad.png").write_bytes(b"junk")
    save(tmp_path / "other/0.png", gray(8, 8))
    sources = collect_inputs([str(tmp_path / "in"), str(tmp_path / "other/0.png")])
    batches, done = [], []

    def f(batch):
        batches.append(len(batch))
        return batch

    outcomes, timing = process(sources, f, (8, 8, 1), out_dir=tmp_path / "out", batch_size=3, progress=done.append)
    errors = {o.source.path.name: o.error for o in outcomes if o.error}
    assert set(errors) == {"bad.png", "rgb.png", "0.png"}
    assert "unreadable" in errors["bad.png"] and "--convert" in errors["rgb.png"]
    assert "same output file" in errors["0.png"]
    assert sum(done) == len(sources) == 9
    assert max(batches) <= 3
    for name in ["0.png", "1.png", "4.png", "big.png"]:
        with Image.open(tmp_path / "in" / name) as a, Image.open(tmp_path / "out" / name) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b)), name
    assert all(o.score is not None and o.score < 1e-10 for o in outcomes if not o.error)
    assert timing.model > 0

    again, _ = process(sources[:1], f, (8, 8, 1), out_dir=tmp_path / "out")
    assert "already exists" in again[0].error
    resized, _ = process(
        [Source(tmp_path / "in/big.png", Path("big.png"))],
        f,
        (8, 8, 1),
        out_dir=tmp_path / "resized",
        resize_to_model=True,
    )
    with Image.open(tmp_path / "resized/big.png") as im:
        assert im.size == (13, 21)
    assert resized[0].score == 0.0, "scored at the model's size, on what the model saw"
