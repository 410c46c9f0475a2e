"""Safe image loading on real third-party files and generated edge cases."""

import numpy as np
import pytest
from PIL import Image

from d2i_desktop.core.errors import ImageError
from d2i_desktop.core.files.images import MIN_SIDE, LoadedImage, load_image, prepare_image, snap_size


def _pixels(loaded: LoadedImage) -> np.ndarray:
    return np.asarray(loaded.image, dtype=np.float64)


# --- orientation -------------------------------------------------------------------------------

def test_exif_orientation_6_turns_the_picture_upright(third_party_samples):
    turned = load_image(third_party_samples / "pillow_hopper_orientation_6.jpg")
    reference = load_image(third_party_samples / "pillow_hopper.jpg")
    assert "Rotated by its EXIF orientation." in turned.notes
    # Same picture as the upright original (JPEG noise aside), unlike the stored, rotated pixels.
    assert np.abs(_pixels(turned) - _pixels(reference)).mean() < 10
    assert np.abs(np.rot90(_pixels(turned)) - _pixels(reference)).mean() > 40


def test_exif_orientation_6_transposes_the_size(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "portrait.jpg"
    Image.new("RGB", (96, 64), "red").save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.image.size == (64, 96)
    assert loaded.original_size == (64, 96)


def test_orientation_is_applied_before_the_size_check(third_party_samples):
    with pytest.raises(ImageError) as caught:
        load_image(third_party_samples / "pillow_orientation_rectangle.jpg")  # stored 2x1, orientation 8
    assert "1x2" in caught.value.message
    assert f"{MIN_SIDE} px" in caught.value.message


def test_exif_orientation_in_a_png_raw_profile(third_party_samples):
    loaded = load_image(third_party_samples / "pillow_exif_imagemagick_orientation.png")
    assert "Rotated by its EXIF orientation." in loaded.notes


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_damaged_exif_does_not_block_the_picture(third_party_samples):
    loaded = load_image(third_party_samples / "pillow_hopper_bad_exif.jpg")
    assert loaded.image.mode == "RGB"
    assert loaded.original_size == (500, 500)


# --- colour modes ------------------------------------------------------------------------------

def test_cmyk_is_converted(third_party_samples):
    loaded = load_image(third_party_samples / "pillow_pil_sample_cmyk.jpg")
    assert loaded.image.mode == "RGB"
    assert "Converted from CMYK." in loaded.notes
    assert _pixels(loaded).std() > 10  # a real picture, not a blank


@pytest.mark.parametrize("name, kind", [("pillow_16bit.cropped.tif", "16-bit"),
                                        ("pillow_10ct_32bit_128.tiff", "32-bit float")])
def test_high_bit_depth_files_are_stretched_to_8_bit(third_party_samples, name, kind):
    loaded = load_image(third_party_samples / name)
    assert loaded.image.mode == "RGB"
    assert f"Converted {kind} to 8-bit." in loaded.notes
    pixels = _pixels(loaded)
    assert pixels.min() == 0 and pixels.max() == 255  # the actual value range fills 8 bits


def test_16_bit_png_is_stretched_to_8_bit(tmp_path):
    path = tmp_path / "grey16.png"
    ramp = np.tile(np.linspace(1000, 3000, 128), (64, 1)).astype(np.uint16)  # a narrow 16-bit range
    Image.fromarray(ramp).save(path)
    loaded = load_image(path)
    assert "Converted 16-bit to 8-bit." in loaded.notes
    row = _pixels(loaded)[0, :, 0]
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all()


@pytest.mark.parametrize("name", ["pillow_1_trns.png", "pillow_l_trns.png"])
def test_greyscale_with_transparency_is_flattened_on_white(third_party_samples, name):
    loaded = load_image(third_party_samples / name)
    assert loaded.image.mode == "RGB"
    assert "Transparent areas were filled with white." in loaded.notes


def test_palette_transparency_becomes_white(tmp_path):
    image = Image.new("P", (64, 64), 0)
    image.paste(1, (32, 0, 64, 64))
    image.putpalette([255, 0, 0, 0, 0, 255])  # 0: red (transparent), 1: blue
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    loaded = load_image(path)
    pixels = np.asarray(loaded.image)
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[0, 63]) == (0, 0, 255)
    assert "Transparent areas were filled with white." in loaded.notes


def test_la_alpha_is_composited_on_white(tmp_path):
    grey = np.zeros((64, 64), dtype=np.uint8)
    alpha = np.full((64, 64), 255, dtype=np.uint8)
    alpha[:, :32] = 0
    alpha[:, 32:48] = 128
    path = tmp_path / "la.png"
    Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)]).save(path)
    pixels = np.asarray(load_image(path).image)
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert abs(int(pixels[0, 40, 0]) - 127) <= 2  # half-transparent black on white is mid grey
    assert tuple(pixels[0, 60]) == (0, 0, 0)


def test_opaque_alpha_adds_no_note(tmp_path):
    path = tmp_path / "opaque.png"
    Image.new("RGBA", (64, 64), (10, 20, 30, 255)).save(path)
    assert load_image(path).notes == ()


def test_multi_frame_file_uses_the_first_frame(third_party_samples):
    loaded = load_image(third_party_samples / "pillow_mode_16bit.png")  # an animated PNG
    assert loaded.image.size == (128, 64)
    assert "Used the first frame of a multi-frame file." in loaded.notes


# --- size policy -------------------------------------------------------------------------------

def test_huge_image_is_scaled_down(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (4032, 3024), "green").save(path, compress_level=1)
    loaded = load_image(path)
    assert loaded.image.size == (1024, 768)
    assert loaded.original_size == (4032, 3024)
    assert loaded.notes == ("Scaled from 4032x3024 to 1024x768 (working size limit 1024 px).",)


def _large_jpeg(path, size, exif=None):
    """A smooth picture (a draft's scaled decode keeps it) saved as a JPEG."""
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    pixels = np.stack([xs * 255 // size[0], ys * 255 // size[1], (xs + ys) * 255 // sum(size)], axis=-1)
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90, **({"exif": exif} if exif else {}))
    return path


@pytest.fixture
def resized_from(monkeypatch):
    """The sizes of the images Pillow was asked to resize, in order."""
    sizes, real = [], Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, *args, **kwargs: sizes.append(self.size) or real(
        self, *args, **kwargs))
    return sizes


def test_a_large_jpeg_decodes_at_the_smallest_scale_still_above_its_working_size(tmp_path, resized_from):
    path = _large_jpeg(tmp_path / "huge.jpg", (4032, 3024))
    loaded = load_image(path)
    assert resized_from == [(2016, 1512)]  # 1/2 scale: 1/4 (1008x756) would be under the 1024x768 working size
    assert loaded.image.size == (1024, 768) and loaded.original_size == (4032, 3024)
    assert loaded.notes == ("Scaled from 4032x3024 to 1024x768 (working size limit 1024 px).",)
    with Image.open(path) as full:
        reference = full.convert("RGB").resize((1024, 768), Image.Resampling.LANCZOS, reducing_gap=3.0)
    assert np.abs(_pixels(loaded) - np.asarray(reference, dtype=np.float64)).mean() < 2


def test_a_jpeg_drafted_to_exactly_its_working_size_is_not_resized_again(tmp_path, resized_from):
    loaded = load_image(_large_jpeg(tmp_path / "huge.jpg", (4096, 3072)), max_side=512)
    assert resized_from == [] and loaded.image.size == (512, 384)
    assert loaded.notes == ("Scaled from 4096x3072 to 512x384 (working size limit 512 px).",)


def test_a_drafted_jpeg_turned_by_exif_reports_its_upright_full_size(tmp_path, resized_from):
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = load_image(_large_jpeg(tmp_path / "portrait.jpg", (3000, 2000), exif))
    assert resized_from == [(1000, 1500)]  # decoded at 1/2, then turned
    assert loaded.image.size == (680, 1024) and loaded.original_size == (2000, 3000)
    assert loaded.notes == ("Rotated by its EXIF orientation.",
                            "Scaled from 2000x3000 to 680x1024 (working size limit 1024 px).")


def test_sides_are_snapped_to_the_nearest_multiple_of_8(tmp_path):
    path = tmp_path / "odd.png"
    Image.new("RGB", (513, 301), "blue").save(path)
    loaded = load_image(path)
    assert loaded.image.size == (512, 304)
    assert loaded.notes == ("Resized from 513x301 to 512x304 so both sides are multiples of 8.",)


def test_working_size_needs_no_note(third_party_samples):
    loaded = load_image(third_party_samples / "pillow_hopper.png")
    assert loaded.image.size == (128, 128)
    assert loaded.notes == ()


@pytest.mark.parametrize("size, max_side, expected", [
    ((4032, 3024), 1024, (1024, 768)),
    ((513, 301), 1024, (512, 304)),
    ((3024, 4032), 768, (576, 768)),
    ((2000, 126), 1024, (1024, MIN_SIDE)),  # squeezed to 65 px, the nearest multiple of 8 is the minimum
    ((1020, 500), 1020, (1016, 504)),  # never above max_side, even when it is not a multiple of 8
    ((64, 64), 1024, (64, 64)),
])
def test_snap_size(size, max_side, expected):
    assert snap_size(*size, max_side) == expected


@pytest.mark.parametrize("size", [(20000, 100), (2000, 64), (100, 20000)])
def test_an_image_its_fit_would_squeeze_under_the_minimum_is_refused_not_stretched(tmp_path, size):
    path = tmp_path / "strip.png"
    Image.new("RGB", size, "white").save(path)
    with pytest.raises(ImageError, match=f"short side at \\d+ px, under the {MIN_SIDE} px minimum"):
        load_image(path)


def test_working_size_limit_below_minimum_is_refused():
    with pytest.raises(ImageError, match="at least|minimum"):
        snap_size(512, 512, 32)


def test_too_small_image_is_refused(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (63, 200)).save(path)
    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert "63x200" in caught.value.message and "64 px" in caught.value.message
    assert caught.value.hint


# --- files that cannot be used -----------------------------------------------------------------

@pytest.mark.parametrize("name, words", [
    ("pillow_broken.png", "not an image"),
    ("pillow_broken_data_stream.png", "damaged"),
    ("sdparsers_empty_file.png", "empty"),
    ("pillow_decompression_bomb.gif", "too many"),
])
def test_unusable_sample_files_raise_image_error(third_party_samples, name, words):
    with pytest.raises(ImageError) as caught:
        load_image(third_party_samples / name)
    assert name in caught.value.message and words in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".jpg", "JPEG")])
def test_truncated_file_is_detected(tmp_path, suffix, fmt):
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(noise).save(whole, format=fmt)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError, match="damaged or incomplete"):
        load_image(cut)


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="No file"):
        load_image(tmp_path / "absent.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_count_above_pillow_warning_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(path)
    # 4096 pixels is between the limit and twice the limit, where Pillow itself only warns.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    with pytest.raises(ImageError, match="too many"):
        load_image(path)


# --- pasted images -----------------------------------------------------------------------------

def test_prepare_image_applies_the_same_policy():
    pasted = Image.new("RGBA", (100, 70), (0, 0, 0, 0))
    loaded = prepare_image(pasted, source_notes=("Pasted from the clipboard.",))
    assert loaded.image.mode == "RGB" and loaded.image.size == (104, 72)
    assert loaded.notes[0] == "Pasted from the clipboard."
    assert "Transparent areas were filled with white." in loaded.notes
    assert loaded.original_size == (100, 70)


def test_prepare_image_refuses_non_images():
    with pytest.raises(ImageError, match="not an image"):
        prepare_image(b"\x89PNG")  # type: ignore[arg-type]
