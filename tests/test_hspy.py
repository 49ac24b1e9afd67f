"""HyperSpy files (.hspy, .hdf5, .zspy) and in-memory signals, written by RosettaSciIO here."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from make_fixtures import fixture_image

from motifcat.errors import ImageReadError, ImageTooLargeError, InvalidImageError
from motifcat.ingest.io import load_image
from motifcat.ingest.limits import check_image_size, image_shape

IMG = fixture_image()  # 48 x 64


def hspy_signal(data, scale=0.02, units="nm", title="HAADF", n_signal_axes=2):
    """A RosettaSciIO signal dictionary as HyperSpy hands it to the hspy/zspy writers."""
    data = np.asarray(data)
    names = ["frame", "y", "x"][-data.ndim :]
    axes = []
    for i, (name, size) in enumerate(zip(names, data.shape, strict=True)):
        navigate = i < data.ndim - n_signal_axes
        axes.append(
            {
                "name": name,
                "size": int(size),
                "scale": 1.0 if navigate else scale,
                "offset": 0.0,
                "units": "<undefined>" if navigate else units,
                "navigate": navigate,
            }
        )
    return {
        "data": data,
        "axes": axes,
        "metadata": {"General": {"title": title}, "Signal": {"signal_type": ""}},
        "original_metadata": {},
        "tmp_parameters": {},
        "learning_results": {},
        "models": {},
        "attributes": {"_lazy": False},
        "package_info": {"name": "hyperspy", "version": "2.0"},
    }


def write_hspy(path, data, **kw):
    from rsciio.hspy import file_writer

    file_writer(str(path), hspy_signal(data, **kw))


@pytest.mark.parametrize(
    ("ext", "scale", "units", "expected_A"),
    [
        ("hspy", 0.02, "nm", 0.2),
        ("hdf5", 0.25, "\u00c5", 0.25),
        ("hspy", 25.0, "pm", 0.25),
        ("hdf5", 2e-5, "\u00b5m", 0.2),
    ],
)
def test_hspy_pixel_size_from_axis_units(tmp_path, ext, scale, units, expected_A):
    f = tmp_path / f"img.{ext}"
    write_hspy(f, IMG, scale=scale, units=units)
    m = load_image(f)
    np.testing.assert_array_equal(m.data, IMG)
    assert m.pixel_size_A == pytest.approx(expected_A)
    assert m.metadata["pixel_size_source"] == "file"
    assert m.metadata["original_units"] == units
    assert m.metadata["original_format"] == ext
    assert m.metadata["title"] == "HAADF" and m.metadata["detector"] == "HAADF"


def test_hspy_without_units_asks_for_pixel_size(tmp_path):
    f = tmp_path / "raw.hspy"
    write_hspy(f, IMG, scale=1.0, units="<undefined>")
    with pytest.raises(InvalidImageError, match=r"raw\.hspy: .*no units.*--pixel-size"):
        load_image(f)
    m = load_image(f, pixel_size_A=0.3)
    assert m.pixel_size_A == 0.3 and m.metadata["pixel_size_source"] == "argument"


def test_hspy_with_non_length_units_is_refused(tmp_path):
    f = tmp_path / "fft.hspy"
    write_hspy(f, IMG, scale=0.1, units="1/nm")
    with pytest.raises(InvalidImageError, match=r"fft\.hspy: .*units '1/nm'.*--pixel-size"):
        load_image(f)


def test_plain_hdf5_is_refused_clearly(tmp_path):
    f = tmp_path / "other.hdf5"
    with h5py.File(f, "w") as h:
        h.create_dataset("table", data=np.arange(10.0))
    with pytest.raises(ImageReadError, match=r"other\.hdf5: HDF5 file not written by HyperSpy"):
        load_image(f)


def test_hspy_spectrum_is_not_an_image(tmp_path):
    f = tmp_path / "spec.hspy"
    write_hspy(f, np.random.default_rng(0).random((40, 200)), n_signal_axes=1, units="eV")
    with pytest.raises(InvalidImageError, match=r"spec\.hspy: no 2-D image signal"):
        load_image(f)


def test_hspy_size_guard_reads_the_header(tmp_path):
    f = tmp_path / "big.hspy"
    write_hspy(f, np.zeros((600, 700), np.float32))
    assert image_shape(f) == (600, 700)
    with pytest.raises(ImageTooLargeError, match=r"big\.hspy: image of 600 x 700 px"):
        check_image_size(f, max_megapixels=0.1)
    with pytest.raises(ImageTooLargeError):
        load_image(f, max_megapixels=0.1)


def test_hspy_stack_takes_a_frame(tmp_path):
    f = tmp_path / "stack.hspy"
    stack = np.stack([IMG, IMG * 2, IMG * 3])
    write_hspy(f, stack)
    with pytest.raises(InvalidImageError, match=r"stack\.hspy: 3-D stack"):
        load_image(f)
    m = load_image(f, frame=2)
    np.testing.assert_allclose(m.data, IMG * 3)
    assert m.pixel_size_A == pytest.approx(0.2)


def test_zspy(tmp_path):
    pytest.importorskip("zarr")
    from rsciio.zspy import file_writer

    f = tmp_path / "img.zspy"
    file_writer(str(f), hspy_signal(IMG, scale=0.03, units="nm"))
    m = load_image(f)
    assert m.pixel_size_A == pytest.approx(0.3)
    np.testing.assert_array_equal(m.data, IMG)


def test_hspy_file_analyses_with_its_pixel_size(tmp_path):
    from motifcat.datasets import make_tmd
    from motifcat.ingest import AnalysisParams, analyze

    syn = make_tmd((192, 192), seed=3)
    image = syn.micrograph().data
    f = tmp_path / "tmd.hspy"
    write_hspy(f, image, scale=0.021, units="nm")
    result = analyze(load_image(f), AnalysisParams(hierarchy=False))
    assert result.micrograph.pixel_size_A == pytest.approx(0.21)
    assert len(result.columns) > 50


@pytest.mark.parametrize("damage", ["half", "empty"])
def test_corrupt_hspy(tmp_path, damage):
    good = tmp_path / "good.hspy"
    write_hspy(good, IMG)
    content = good.read_bytes()
    f = tmp_path / f"bad_{damage}.hspy"
    f.write_bytes(content[: len(content) // 2] if damage == "half" else b"")
    with pytest.raises(ImageReadError, match=r"bad_\w+\.hspy: cannot read as (HDF5|HyperSpy): "):
        load_image(f)


# ------------------------------------------------------------------------------------------
# In-memory signals
# ------------------------------------------------------------------------------------------


class _Axis:
    def __init__(self, size, scale, units):
        self.size, self.scale, self.units = size, scale, units


class _AxesManager:
    def __init__(self, shape, scale, units):
        # HyperSpy's order: signal axes fastest first, (x, y).
        self.signal_axes = (_Axis(shape[-1], scale, units), _Axis(shape[-2], scale, units))


class LookAlikeSignal:
    """Not HyperSpy: only ``data``, ``axes_manager.signal_axes`` and a ``metadata`` dict."""

    def __init__(self, data, scale=0.02, units="nm", title="HAADF"):
        self.data = np.asarray(data)
        self.axes_manager = _AxesManager(self.data.shape, scale, units)
        self.metadata = {"General": {"title": title}}


def test_look_alike_signal_loads_with_its_pixel_size():
    m = load_image(LookAlikeSignal(IMG, scale=25.0, units="pm"))
    np.testing.assert_array_equal(m.data, IMG)
    assert m.pixel_size_A == pytest.approx(0.25)
    assert m.metadata["original_format"] == "signal" and m.metadata["detector"] == "HAADF"


def test_look_alike_signal_without_units_asks_for_pixel_size():
    with pytest.raises(InvalidImageError, match=r"HAADF: .*no units.*--pixel-size"):
        load_image(LookAlikeSignal(IMG, scale=1.0, units="<undefined>"))
    assert load_image(LookAlikeSignal(IMG, 1.0, None), pixel_size_A=0.2).pixel_size_A == 0.2


def test_look_alike_stack_takes_a_frame():
    sig = LookAlikeSignal(np.stack([IMG, 2 * IMG]))
    with pytest.raises(InvalidImageError, match="3-D stack"):
        load_image(sig)
    np.testing.assert_allclose(load_image(sig, frame=1).data, 2 * IMG)


def test_analyze_accepts_a_look_alike_signal():
    from motifcat.datasets import make_tmd
    from motifcat.ingest import AnalysisParams, analyze

    image = make_tmd((192, 192), seed=3).micrograph().data
    result = analyze(
        LookAlikeSignal(image, scale=0.022, units="nm"), AnalysisParams(hierarchy=False)
    )
    assert result.micrograph.pixel_size_A == pytest.approx(0.22)
    assert len(result.columns) > 50


def test_real_hyperspy_signal2d(tmp_path):
    hs = pytest.importorskip("hyperspy.api")
    from motifcat.datasets import make_tmd
    from motifcat.ingest import AnalysisParams, analyze

    image = make_tmd((192, 192), seed=3).micrograph().data
    s = hs.signals.Signal2D(image)
    s.metadata.General.title = "HAADF image"
    for axis in s.axes_manager.signal_axes:
        axis.scale, axis.units = 21.0, "pm"
    m = load_image(s)
    assert m.pixel_size_A == pytest.approx(0.21) and m.metadata["detector"] == "HAADF"
    result = analyze(s, AnalysisParams(hierarchy=False))
    assert result.micrograph.pixel_size_A == pytest.approx(0.21)
    assert len(result.columns) > 50
    # HyperSpy's own save, read back through the file reader.
    s.save(tmp_path / "saved.hspy")
    assert load_image(tmp_path / "saved.hspy").pixel_size_A == pytest.approx(0.21)
    uncalibrated = hs.signals.Signal2D(image)
    with pytest.raises(InvalidImageError, match="--pixel-size"):
        analyze(uncalibrated)


# ------------------------------------------------------------------------------------------
# Multi-image files: choose by name; stacks: a frame or a drift-corrected mean
# (Velox EMD written with h5py in the layout RosettaSciIO's Velox reader reads: its emd
# writer writes only the NCEM variant.)
# ------------------------------------------------------------------------------------------


def _lattice(shape=(96, 96), shift=(0.0, 0.0)):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    yy, xx = yy - shift[0], xx - shift[1]
    return (2 + np.cos(2 * np.pi * xx / 8.3) * np.cos(2 * np.pi * yy / 7.1)).astype(np.float32)


def test_velox_multi_image_choose_by_name(tmp_path):
    from make_fixtures import write_velox_emd

    haadf, df, bf = IMG, IMG[::-1].copy(), IMG[:, ::-1].copy()
    f = tmp_path / "multi.emd"
    write_velox_emd(f, [("BF", bf), ("HAADF", haadf), ("DF4", df)], pixel_size_m=2.5e-11)
    m = load_image(f)  # HAADF by default
    np.testing.assert_array_equal(m.data, haadf)
    assert [s.split(" ")[0] for s in m.metadata["signals"]] == ["BF", "HAADF", "DF4"]
    for name, data in (("df4", df), ("BF", bf), ("HAADF", haadf)):
        m = load_image(f, signal=name)
        np.testing.assert_array_equal(m.data, data)
        assert m.pixel_size_A == pytest.approx(0.25)
    with pytest.raises(InvalidImageError, match=r"multi\.emd: no signal is named 'ABF'.*BF"):
        load_image(f, signal="ABF")


def test_signal_name_on_a_single_image_file_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", IMG)
    with pytest.raises(InvalidImageError, match=r"a\.npy: signal='HAADF' given but a npy"):
        load_image(tmp_path / "a.npy", signal="HAADF", pixel_size_A=0.2)


def test_velox_stack_drift_corrected_mean(tmp_path):
    from make_fixtures import write_velox_emd

    from motifcat.datasets import make_tmd

    # A drifting field of view: windows of one larger synthetic crystal (with its vacancies).
    scene = make_tmd((160, 160), seed=5).micrograph().data.astype(float)
    scene = 50 * (scene - scene.min()) / (scene.max() - scene.min()) + 5
    drift = np.array([[0, 0], [2, -1], [3, -3], [5, -4], [6, -6]])  # (dy, dx) px per frame
    rng = np.random.default_rng(1)
    frames = np.stack(
        [rng.poisson(scene[10 + dy : 138 + dy, 10 + dx : 138 + dx]) for dy, dx in drift]
    ).astype(np.float32)
    f = tmp_path / "series.emd"
    write_velox_emd(f, [("HAADF", frames)], pixel_size_m=2e-11)
    assert load_image(f, frame=2).shape == (128, 128)
    m = load_image(f, average=True)
    shifts = np.array(m.metadata["frame_shifts_px"])
    # Content moved by (dy, dx) px is registered back by (+dy, +dx): window i starts dy later.
    np.testing.assert_allclose(shifts, drift, atol=0.25)
    assert m.metadata["n_frames"] == 5 and m.pixel_size_A == pytest.approx(0.2)
    top, bottom, left, right = m.metadata["frame_crop_px"]
    assert (top, bottom, left, right) == (6, 0, 0, 6) and m.shape == (122, 122)
    # The aligned mean is closer to the noiseless window of frame 0 than the plain mean.
    clean = scene[10:138, 10:138][top : 128 - bottom, left : 128 - right]
    plain = frames.mean(axis=0)[top : 128 - bottom, left : 128 - right]
    assert np.abs(m.data - clean).mean() < 0.6 * np.abs(plain - clean).mean()
    with pytest.raises(InvalidImageError, match="frame or average, not both"):
        load_image(f, frame=1, average=True)


def test_single_image_average_is_refused(tmp_path):
    write_hspy(tmp_path / "one.hspy", IMG)
    with pytest.raises(InvalidImageError, match=r"one\.hspy: average asked for"):
        load_image(tmp_path / "one.hspy", average=True)
