"""Reading micrographs: every format writable here, real files, values asserted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from make_fixtures import (
    DATA_DIR,
    fixture_image,
    write_dm,
    write_mrc,
    write_ncem_emd,
    write_ser,
    write_velox_emd,
)
from skimage.color import rgb2gray

from motifcat.errors import ImageReadError, InvalidImageError, MotifcatError
from motifcat.ingest.io import (
    MIN_SIDE_PX,
    READERS,
    SUPPORTED_EXTENSIONS,
    check_size,
    load_image,
    micrograph_from_array,
    pixel_size_to_A,
)
from motifcat.ingest.model import Micrograph

IMG = fixture_image()  # 48 x 64 float32 lattice
COMMON_KEYS = {
    "original_format",
    "voltage_kV",
    "detector",
    "dwell_time_s",
    "signal_type",
    "original_units",
    "original_scale",
    "pixel_size_source",
}


def _check(m: Micrograph, expected: np.ndarray, px: float | None, fmt: str) -> None:
    assert isinstance(m, Micrograph)
    assert m.data.dtype == np.float32 and m.data.shape == expected.shape
    np.testing.assert_array_equal(m.data, expected.astype(np.float32))
    if px is None:
        assert m.pixel_size_A is None
    else:
        assert m.pixel_size_A == pytest.approx(px, rel=1e-6)
    assert COMMON_KEYS <= set(m.metadata)
    assert m.metadata["original_format"] == fmt
    json.dumps(m.metadata)  # stored in the catalog as JSON
    assert len(m.sha256) == 64


# ------------------------------------------------------------------------------------------
# units
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (2e-11, "m", 0.2),
        (2e-11, "meters", 0.2),
        (2e-8, "mm", 0.2),
        (2e-5, "\u00b5m", 0.2),  # MICRO SIGN
        (2e-5, "\u03bcm", 0.2),  # GREEK SMALL LETTER MU
        (2e-5, "um", 0.2),
        (2e-5, "micron", 0.2),
        (0.02, "nm", 0.2),
        (0.02, "NM", 0.2),
        (0.2, "\u00c5", 0.2),
        (0.2, "\u212b", 0.2),  # ANGSTROM SIGN
        (0.2, "A", 0.2),
        (0.2, "angstrom", 0.2),
        (0.2, "\\u00C5", 0.2),  # ImageJ's escaped form
        (20.0, "pm", 0.2),
    ],
)
def test_pixel_size_to_A_units(value, unit, expected):
    assert pixel_size_to_A(value, unit) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (1.0, "px"),
        (1.0, "pixel"),
        (0.5, "1/nm"),
        (1.0, ""),
        (1.0, None),
        (0.0, "nm"),
        (-1.0, "nm"),
        (float("nan"), "nm"),
    ],
)
def test_pixel_size_to_A_not_a_length(value, unit):
    assert pixel_size_to_A(value, unit) is None


# ------------------------------------------------------------------------------------------
# micrograph_from_array and sha256
# ------------------------------------------------------------------------------------------


def test_from_array_validates_and_freezes():
    src = IMG.astype(np.float64)
    m = micrograph_from_array(src, pixel_size_A=0.2, path="x.npy", metadata={"n": np.int64(3)})
    assert m.data.dtype == np.float32 and m.pixel_size_A == 0.2 and m.path == "x.npy"
    assert m.metadata == {"n": 3} and type(m.metadata["n"]) is int
    src[0, 0] = -1e6  # the micrograph holds its own copy ...
    assert m.data[0, 0] == IMG[0, 0]
    with pytest.raises(ValueError):  # ... and it is read-only: its sha256 is its identity
        m.data[0, 0] = 0


def test_sha256_definition_and_stability():
    m = micrograph_from_array(IMG)
    expected = hashlib.sha256(IMG.astype("<f4").tobytes() + b"48x64").hexdigest()
    assert m.sha256 == expected
    assert micrograph_from_array(IMG.astype(np.float64)).sha256 == expected  # dtype-independent
    assert micrograph_from_array(IMG, pixel_size_A=0.3).sha256 == expected  # pixels only
    other = IMG.copy()
    other[10, 10] += 1
    assert micrograph_from_array(other).sha256 != expected
    # Same bytes, other shape: a different image.
    assert micrograph_from_array(IMG.reshape(64, 48)).sha256 != expected


def test_sha256_same_across_formats(tmp_path):
    np.save(tmp_path / "a.npy", IMG)
    write_mrc(tmp_path / "a.mrc", IMG, 0.2)
    write_dm(tmp_path / "a.dm3", IMG, 0.02)
    tifffile.imwrite(tmp_path / "a.tif", IMG)
    shas = {load_image(tmp_path / f"a.{e}").sha256 for e in ("npy", "mrc", "dm3", "tif")}
    assert shas == {micrograph_from_array(IMG).sha256}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.full((40, 40), np.nan, np.float32), "1600 NaN, 0 Inf"),
        (np.where(np.eye(40) > 0, np.inf, 1.0), "0 NaN, 40 Inf"),
        (np.full((40, 40), 7.0), "constant"),
        (np.ones((31, 64)), "too small"),
        (np.ones((64, 31)), "too small"),
        (np.ones(64), "2-D"),
        (np.ones((40, 40), np.complex64), "real part"),
    ],
)
def test_from_array_rejects(data, match):
    with pytest.raises(InvalidImageError, match=match) as info:
        micrograph_from_array(data, path="/some/where/bad.npy")
    assert str(info.value).startswith("bad.npy: ")


@pytest.mark.parametrize("px", [0.0, -0.2, float("nan"), "abc"])
def test_from_array_rejects_bad_pixel_size(px):
    with pytest.raises(InvalidImageError, match="pixel_size_A"):
        micrograph_from_array(IMG, pixel_size_A=px)


def test_min_side_is_32():
    assert MIN_SIDE_PX == 32
    img = np.random.default_rng(1).random((32, 32))
    assert micrograph_from_array(img).shape == (32, 32)


# ------------------------------------------------------------------------------------------
# npy, png, jpg
# ------------------------------------------------------------------------------------------


def test_npy(tmp_path):
    np.save(tmp_path / "img.npy", IMG)
    m = load_image(tmp_path / "img.npy")
    _check(m, IMG, None, "npy")
    assert m.path == str(tmp_path / "img.npy") and m.metadata["pixel_size_source"] is None
    m2 = load_image(str(tmp_path / "img.npy"), pixel_size_A=0.25)
    assert m2.pixel_size_A == 0.25 and m2.metadata["pixel_size_source"] == "argument"
    assert m2.sha256 == m.sha256


def test_npy_integer_and_stack(tmp_path):
    stack = np.stack([np.round(IMG).astype(np.int16) + k for k in range(3)])
    np.save(tmp_path / "s.npy", stack)
    m = load_image(tmp_path / "s.npy", frame=2)
    _check(m, stack[2], None, "npy")
    assert m.metadata["frame"] == 2 and m.metadata["n_frames"] == 3


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_gray(tmp_path, dtype):
    top = np.iinfo(dtype).max
    data = np.round((IMG - IMG.min()) / np.ptp(IMG) * top).astype(dtype)
    iio.imwrite(tmp_path / "g.png", data)
    m = load_image(tmp_path / "g.png")
    _check(m, data, None, "png")
    assert m.metadata["bit_depth"] == 8 * np.dtype(dtype).itemsize
    assert m.data.max() == top


@pytest.mark.parametrize("channels", [3, 4])
def test_png_color_to_luminance(tmp_path, channels):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (40, 50, channels), dtype=np.uint8)
    iio.imwrite(tmp_path / "c.png", rgb)
    m = load_image(tmp_path / "c.png")
    expected = rgb2gray(rgb[..., :3].astype(np.float32))
    np.testing.assert_allclose(m.data, expected, rtol=1e-6)
    # Rec. 709 weights on the raw values: intensity scale is kept, not rescaled to [0, 1].
    np.testing.assert_allclose(
        m.data, rgb[..., :3].astype(np.float64) @ [0.2125, 0.7154, 0.0721], rtol=1e-5
    )
    assert m.metadata["converted_from"].startswith("RGBA" if channels == 4 else "RGB ")


def test_png_gray_saved_as_rgb_is_unchanged(tmp_path):
    g = np.round((IMG - IMG.min()) / np.ptp(IMG) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "g3.png", np.repeat(g[..., None], 3, axis=-1))
    np.testing.assert_allclose(load_image(tmp_path / "g3.png").data, g, atol=1e-3)


def test_jpeg(tmp_path):
    g = np.round((IMG - IMG.min()) / np.ptp(IMG) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "g.jpg", g, quality=95)
    m = load_image(tmp_path / "g.jpg")
    assert m.shape == g.shape and m.pixel_size_A is None
    assert np.abs(m.data - g).mean() < 3  # lossy, but the same image
    assert m.metadata["original_format"] == "jpg"
    assert load_image(_copy(tmp_path / "g.jpg", tmp_path / "G.JPEG")).sha256 == m.sha256


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


# ------------------------------------------------------------------------------------------
# TIFF
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "size_in_unit", "expected_A"),
    [("nm", 0.02, 0.2), ("\\u00C5", 0.25, 0.25), ("micron", 2.5e-5, 0.25), ("A", 0.5, 0.5)],
)
def test_tiff_imagej_calibration(tmp_path, unit, size_in_unit, expected_A):
    f = tmp_path / "ij.tif"
    tifffile.imwrite(
        f,
        IMG,
        imagej=True,
        resolution=(1 / size_in_unit, 1 / size_in_unit),
        metadata={"unit": unit},
    )
    m = load_image(f)
    _check(m, IMG, expected_A, "tif")
    assert m.metadata["calibration_source"] == "ImageJ"
    assert m.metadata["original_units"] == unit
    assert m.metadata["original_scale"] == pytest.approx(size_in_unit, rel=1e-6)


@pytest.mark.parametrize(
    ("meta", "expected_A"),
    [
        (
            {
                "PhysicalSizeX": 0.25,
                "PhysicalSizeXUnit": "\u00c5",
                "PhysicalSizeY": 0.25,
                "PhysicalSizeYUnit": "\u00c5",
            },
            0.25,
        ),
        (
            {
                "PhysicalSizeX": 0.03,
                "PhysicalSizeXUnit": "nm",
                "PhysicalSizeY": 0.03,
                "PhysicalSizeYUnit": "nm",
            },
            0.3,
        ),
        ({"PhysicalSizeX": 2.5e-5, "PhysicalSizeY": 2.5e-5}, 0.25),  # OME default unit: µm
    ],
)
def test_tiff_ome_calibration(tmp_path, meta, expected_A):
    tifffile.imwrite(tmp_path / "o.ome.tif", IMG, ome=True, metadata=meta)
    m = load_image(tmp_path / "o.ome.tif")
    _check(m, IMG, expected_A, "tif")
    assert m.metadata["calibration_source"] == "OME"


def test_tiff_fei_calibration_and_instrument(tmp_path):
    ini = (
        "[User]\r\nDate=01/01/2020\r\n[Beam]\r\nHV=300000\r\n[Scan]\r\nPixelWidth=2e-11\r\n"
        "PixelHeight=2e-11\r\nDwelltime=1e-06\r\n[Detectors]\r\nName=HAADF\r\n"
    )
    tifffile.imwrite(tmp_path / "fei.tif", IMG, extratags=[(34682, "s", 0, ini, True)])
    m = load_image(tmp_path / "fei.tif")
    _check(m, IMG, 0.2, "tif")
    assert m.metadata["voltage_kV"] == 300.0
    assert m.metadata["dwell_time_s"] == 1e-6
    assert m.metadata["detector"] == "HAADF"


def test_tiff_resolution_tags(tmp_path):
    # 4e7 px/cm = 2.5 Å per pixel: a physical calibration.
    tifffile.imwrite(tmp_path / "cm.tif", IMG, resolution=(4e7, 4e7), resolutionunit="CENTIMETER")
    assert load_image(tmp_path / "cm.tif").pixel_size_A == pytest.approx(2.5)
    # 72 dpi is a print resolution, not a pixel size.
    tifffile.imwrite(tmp_path / "dpi.tif", IMG, resolution=(72, 72), resolutionunit="INCH")
    m = load_image(tmp_path / "dpi.tif")
    assert m.pixel_size_A is None and m.metadata["calibration_source"] is None


def test_tiff_override_pixel_size(tmp_path):
    tifffile.imwrite(
        tmp_path / "ij.tif", IMG, imagej=True, resolution=(50, 50), metadata={"unit": "nm"}
    )
    m = load_image(tmp_path / "ij.tif", pixel_size_A=0.31)
    assert m.pixel_size_A == 0.31
    assert m.metadata["pixel_size_source"] == "argument"
    assert m.metadata["file_pixel_size_A"] == pytest.approx(0.2)


def test_tiff_rgb(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    m = load_image(tmp_path / "rgb.tif")
    np.testing.assert_allclose(m.data, rgb2gray(rgb.astype(np.float32)), rtol=1e-6)
    assert "luminance" in m.metadata["converted_from"]


def test_tiff_stack(tmp_path):
    stack = np.stack([IMG + 10 * k for k in range(5)]).astype(np.float32)
    f = tmp_path / "stack.tif"
    tifffile.imwrite(
        f, stack, imagej=True, resolution=(50, 50), metadata={"unit": "nm", "axes": "ZYX"}
    )
    with pytest.raises(InvalidImageError) as info:
        load_image(f)
    assert str(info.value) == (
        "stack.tif: 3-D stack of shape (5, 48, 64); pass frame=<0..4> (--frame N), "
        "or average=True (--average) for a drift-corrected mean"
    )
    m = load_image(f, frame=3)
    _check(m, stack[3], 0.2, "tif")
    assert m.metadata["frame"] == 3 and m.metadata["n_frames"] == 5
    assert load_image(f, frame=0).sha256 != m.sha256
    for bad in (5, -1):
        with pytest.raises(InvalidImageError, match=r"stack\.tif: frame=.* out of range"):
            load_image(f, frame=bad)
    with pytest.raises(InvalidImageError, match="integer"):
        load_image(f, frame=1.0)


def test_frame_on_single_image(tmp_path):
    np.save(tmp_path / "one.npy", IMG)
    assert load_image(tmp_path / "one.npy", frame=0).shape == IMG.shape
    with pytest.raises(InvalidImageError, match="one.npy: frame=2 given but the file holds a"):
        load_image(tmp_path / "one.npy", frame=2)


# ------------------------------------------------------------------------------------------
# MRC
# ------------------------------------------------------------------------------------------


def test_mrc(tmp_path):
    write_mrc(tmp_path / "a.mrc", IMG, pixel_size_A=0.2)
    m = load_image(tmp_path / "a.mrc")
    _check(m, IMG, 0.2, "mrc")
    assert m.metadata["mrc_mode"] == 2


def test_mrc_uncalibrated_and_stack(tmp_path):
    write_mrc(tmp_path / "u.mrc", IMG, pixel_size_A=None)
    assert load_image(tmp_path / "u.mrc").pixel_size_A is None
    stack = np.stack([IMG, IMG * 2, IMG * 3])
    write_mrc(tmp_path / "s.mrc", stack, pixel_size_A=1.5)
    with pytest.raises(InvalidImageError, match=r"s\.mrc: 3-D stack of shape \(3, 48, 64\)"):
        load_image(tmp_path / "s.mrc")
    _check(load_image(tmp_path / "s.mrc", frame=1), stack[1], 1.5, "mrc")


# ------------------------------------------------------------------------------------------
# DM3 / DM4 / SER (files written by tests/make_fixtures.py to the published layouts)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["dm3", "dm4"])
@pytest.mark.parametrize(
    ("scale", "unit", "expected_A"),
    [(0.02, "nm", 0.2), (20.0, "pm", 0.2), (2e-5, "\u00b5m", 0.2), (0.5, "\u00c5", 0.5)],
)
def test_dm(tmp_path, ext, scale, unit, expected_A):
    f = tmp_path / f"img.{ext}"
    write_dm(f, IMG, pixel_size=scale, units=unit, voltage_V=200e3, dwell_us=4.0, name="ADF 1")
    m = load_image(f)
    _check(m, IMG, expected_A, ext)
    assert m.metadata["voltage_kV"] == pytest.approx(200.0)
    assert m.metadata["dwell_time_s"] == pytest.approx(4e-6)
    assert m.metadata["title"] == "ADF 1" and m.metadata["detector"] == "ADF"
    assert m.metadata["original_units"] == unit


def test_dm_uncalibrated(tmp_path):
    write_dm(tmp_path / "u.dm3", IMG, pixel_size=None)
    m = load_image(tmp_path / "u.dm3")
    _check(m, IMG, None, "dm3")
    assert m.metadata["voltage_kV"] is None and m.metadata["dwell_time_s"] is None


def test_ser(tmp_path):
    write_ser(tmp_path / "a.ser", IMG, pixel_size_m=3e-11)
    _check(load_image(tmp_path / "a.ser"), IMG, 0.3, "ser")


# ------------------------------------------------------------------------------------------
# EMD
# ------------------------------------------------------------------------------------------


def test_emd_ncem_single(tmp_path):
    write_ncem_emd(tmp_path / "n.emd", [("HAADF", IMG, 0.025, "nm")], voltage=300000.0)
    m = load_image(tmp_path / "n.emd")
    _check(m, IMG, 0.25, "emd")
    assert m.metadata["emd_variant"] == "ncem"
    assert m.metadata["voltage_kV"] == pytest.approx(300.0)
    assert m.metadata["detector"] == "HAADF"


def test_emd_ncem_several_signals_picks_haadf(tmp_path):
    spectrum = np.linspace(0, 1, 100).astype(np.float32)
    bf = (IMG.max() - IMG).astype(np.float32)
    write_ncem_emd(
        tmp_path / "multi.emd",
        [
            ("A_spectrum", spectrum, 1.0, "eV"),
            ("B_BF", bf, 0.02, "nm"),
            ("C_HAADF", IMG, 0.02, "nm"),
        ],
    )
    m = load_image(tmp_path / "multi.emd")
    _check(m, IMG, 0.2, "emd")
    assert m.metadata["title"] == "C_HAADF"
    assert m.metadata["signal_index"] == 2
    assert [s.split()[0] for s in m.metadata["signals"]] == ["A_spectrum", "B_BF", "C_HAADF"]


def test_emd_ncem_first_image_without_haadf(tmp_path):
    other = (IMG * 2).astype(np.float32)
    write_ncem_emd(tmp_path / "two.emd", [("A_BF", other, 0.02, "nm"), ("B_DF", IMG, 0.02, "nm")])
    m = load_image(tmp_path / "two.emd")
    np.testing.assert_array_equal(m.data, other)
    assert m.metadata["signal_index"] == 0 and m.metadata["detector"] == "BF"


def test_emd_without_image(tmp_path):
    write_ncem_emd(tmp_path / "spec.emd", [("EELS", np.linspace(0, 1, 100), 1.0, "eV")])
    with pytest.raises(InvalidImageError, match=r"spec\.emd: no 2-D image signal .*EELS \(100,\)"):
        load_image(tmp_path / "spec.emd")


def test_emd_velox(tmp_path):
    bf = (IMG.max() - IMG).astype(np.float32)
    write_velox_emd(
        tmp_path / "v.emd",
        [("BF", bf), ("HAADF", IMG)],
        pixel_size_m=2.5e-11,
        voltage_V=80e3,
        dwell_s=1e-6,
    )
    m = load_image(tmp_path / "v.emd")
    _check(m, IMG, 0.25, "emd")
    md = m.metadata
    assert md["emd_variant"] == "velox" and md["detector"] == "HAADF" and md["signal_index"] == 1
    assert md["voltage_kV"] == pytest.approx(80.0) and md["dwell_time_s"] == pytest.approx(1e-6)


def test_emd_velox_stack(tmp_path):
    stack = np.stack([IMG, IMG + 1, IMG + 2]).astype(np.float32)
    write_velox_emd(tmp_path / "vs.emd", [("HAADF", stack)])
    with pytest.raises(InvalidImageError, match=r"vs\.emd: 3-D stack of shape \(3, 48, 64\)"):
        load_image(tmp_path / "vs.emd")
    _check(load_image(tmp_path / "vs.emd", frame=2), stack[2], 0.2, "emd")


# ------------------------------------------------------------------------------------------
# committed fixtures
# ------------------------------------------------------------------------------------------

FIXTURES = {
    "lattice.dm3": 0.2,
    "lattice.dm4": 0.2,
    "lattice.ser": 0.2,
    "lattice.mrc": 0.2,
    "lattice_velox.emd": 0.2,
    "lattice_imagej.tif": 0.2,
    "lattice.npy": None,
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_committed_fixtures(name):
    m = load_image(DATA_DIR / name)
    _check(m, IMG, FIXTURES[name], name.rsplit(".", 1)[1])
    assert m.sha256 == micrograph_from_array(IMG).sha256


def test_committed_png_fixture():
    m = load_image(DATA_DIR / "lattice_16bit.png")
    _check(m, np.round(IMG * 100).astype(np.uint16), None, "png")


def test_fixtures_are_small():
    assert sum(f.stat().st_size for f in DATA_DIR.iterdir()) < 1_000_000


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------


def test_registry():
    assert set(SUPPORTED_EXTENSIONS) == {
        "dm3",
        "dm4",
        "emd",
        "ser",
        "mrc",
        "tif",
        "tiff",
        "png",
        "jpg",
        "jpeg",
        "npy",
        "hspy",
        "hdf5",
        "zspy",
    }
    assert READERS["dm3"] is READERS["dm4"]


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"nothere\.dm3: no such file"):
        load_image(tmp_path / "nothere.dm3")


def test_directory(tmp_path):
    (tmp_path / "dir.tif").mkdir()
    with pytest.raises(ImageReadError, match=r"dir\.tif: not a regular file"):
        load_image(tmp_path / "dir.tif")


@pytest.mark.parametrize("name", ["img.bmp", "img", "img.dm5"])
def test_unsupported_extension(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00" * 100)
    with pytest.raises(ImageReadError) as info:
        load_image(tmp_path / name)
    msg = str(info.value)
    assert name in msg and "unsupported file extension" in msg
    assert "dm3, dm4, emd, ser, mrc, tif" in msg


CORRUPT = {
    "dm3": "DigitalMicrograph DM3",
    "dm4": "DigitalMicrograph DM4",
    "ser": "TIA SER",
    "mrc": "MRC",
    "emd": "EMD",
    "tif": "TIFF",
    "png": "PNG",
    "npy": "NumPy .npy",
}
SOURCES = {
    "dm3": "lattice.dm3",
    "dm4": "lattice.dm4",
    "ser": "lattice.ser",
    "mrc": "lattice.mrc",
    "emd": "lattice_velox.emd",
    "tif": "lattice_imagej.tif",
    "png": "lattice_16bit.png",
    "npy": "lattice.npy",
}


@pytest.mark.parametrize("ext", sorted(CORRUPT))
@pytest.mark.parametrize("damage", ["half", "header", "garbage", "empty"])
def test_corrupt_files(tmp_path, ext, damage):
    good = (DATA_DIR / SOURCES[ext]).read_bytes()
    content = {
        "half": good[: len(good) // 2],
        "header": good[:40],
        "garbage": np.random.default_rng(4).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "empty": b"",
    }[damage]
    f = tmp_path / f"bad_{damage}.{ext}"
    f.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        load_image(f)
    assert str(info.value).startswith(f"{f}: cannot read as {CORRUPT[ext]}: ")
    if damage == "empty":  # said in plain words, not in the library's
        assert str(info.value).endswith(": the file is empty (0 bytes)")
    else:
        assert info.value.__cause__ is not None  # the reader's own exception is kept


def test_jpeg_corrupt(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    with pytest.raises(ImageReadError, match=r"bad\.jpg: cannot read as JPEG"):
        load_image(tmp_path / "bad.jpg")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.where(np.eye(48, 64) > 0, np.nan, IMG), r"non-finite pixels \(48 NaN, 0 Inf\)"),
        (np.where(np.eye(48, 64) > 0, -np.inf, IMG), r"non-finite pixels \(0 NaN, 48 Inf\)"),
        (np.zeros((48, 64)), "constant"),
        (IMG[:20], "20x64 px is too small"),
        (
            np.zeros((2, 3, 48, 64)),
            r"expected a 2-D image or a 3-D stack, got shape \(2, 3, 48, 64\)",
        ),
        (IMG[0], r"expected a 2-D image or a 3-D stack, got shape \(64,\)"),
        (IMG.astype(np.complex64), "not real-valued"),
    ],
)
def test_invalid_pixels(tmp_path, data, match):
    np.save(tmp_path / "bad.npy", data)
    with pytest.raises(InvalidImageError, match=match) as info:
        load_image(tmp_path / "bad.npy")
    assert str(info.value).startswith("bad.npy: ")


def test_small_image_in_a_real_format(tmp_path):
    write_dm(tmp_path / "small.dm3", IMG[:16, :16], pixel_size=0.02)
    with pytest.raises(InvalidImageError, match=r"small\.dm3: image of 16x16 px is too small"):
        load_image(tmp_path / "small.dm3")


def test_errors_are_one_family():
    assert issubclass(ImageReadError, MotifcatError)
    assert issubclass(InvalidImageError, MotifcatError)


# ------------------------------------------------------------------------------------------
# check_size
# ------------------------------------------------------------------------------------------


def test_check_size(tmp_path):
    np.save(tmp_path / "lat.npy", IMG)
    m = load_image(tmp_path / "lat.npy")
    check_size(m, period_px=8.0)  # 48 px = 6 periods
    check_size(m, period_px=12.0)  # exactly 4 periods
    with pytest.raises(InvalidImageError) as info:
        check_size(m, period_px=16.0)
    msg = str(info.value)
    assert msg.startswith("lat.npy: image of 48x64 px")
    assert "3.0 lattice periods of 16 px" in msg and "at least 4 needed (>= 64 px)" in msg
    check_size(m, period_px=16.0, min_periods=3)
    with pytest.raises(InvalidImageError, match="lattice period must be a positive"):
        check_size(m, period_px=0)
