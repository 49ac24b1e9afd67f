"""Read micrographs from microscope and image files into a :class:`Micrograph`.

One entry point, :func:`load_image`, dispatches on the file extension through a small registry
(``READERS``, in the manner of ``ase.io``): Gatan DigitalMicrograph (``.dm3``, ``.dm4``), EMD
(Velox and NCEM/Berkeley, ``.emd``), FEI/Thermo TIA (``.ser``), MRC (``.mrc``) and HyperSpy
(``.hspy``, ``.hdf5``, ``.zspy``; the pixel size from the axes' units, refused without them)
through RosettaSciIO; TIFF through tifffile (ImageJ, OME and FEI pixel sizes, resolution
tags); PNG and JPEG through imageio; NumPy ``.npy``. Every reader hands back the pixels, the
pixel size with its unit and the metadata that matters; the common part converts the pixel
size to Å, turns colour into luminance, selects a frame of a stack and validates the result.

Errors are motifcat's own: :class:`~motifcat.errors.ImageReadError` when a file cannot be read
(missing, unsupported, truncated, corrupt), :class:`~motifcat.errors.InvalidImageError` when it
was read but cannot be analysed (NaN/Inf, constant, too small, a stack without ``frame``).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from motifcat.errors import ImageReadError, InvalidImageError
from motifcat.ingest.model import Micrograph

__all__ = [
    "MIN_SIDE_PX",
    "READERS",
    "SUPPORTED_EXTENSIONS",
    "check_size",
    "is_signal",
    "load_image",
    "micrograph_from_array",
    "micrograph_from_signal",
    "pixel_size_to_A",
]

#: Smallest accepted image side in pixels: below this no lattice period can be measured.
MIN_SIDE_PX = 32

# Å per unit. Keys are lower-case; the micro prefix comes as "u", MICRO SIGN (U+00B5) or GREEK
# SMALL LETTER MU (U+03BC), the ångström as LATIN CAPITAL A WITH RING (U+00C5, lower-cased to
# U+00E5) or ANGSTROM SIGN (U+212B, lower-cased to U+00E5 too).
_UNIT_TO_A: dict[str, float] = {
    "m": 1e10,
    "meter": 1e10,
    "meters": 1e10,
    "metre": 1e10,
    "metres": 1e10,
    "mm": 1e7,
    "um": 1e4,
    "\u00b5m": 1e4,
    "\u03bcm": 1e4,
    "micron": 1e4,
    "microns": 1e4,
    "micrometer": 1e4,
    "micrometre": 1e4,
    "nm": 10.0,
    "nanometer": 10.0,
    "nanometre": 10.0,
    "a": 1.0,
    "\u00e5": 1.0,
    "angstrom": 1.0,
    "angstroms": 1.0,
    "\u00e5ngstr\u00f6m": 1.0,
    "pm": 0.01,
    "picometer": 0.01,
    "picometre": 0.01,
}

# Detector names recognised in signal titles (EMD, DM), most specific first.
_DETECTOR_RE = re.compile(
    r"(?<![A-Za-z])(HAADF|MAADF|LAADF|iDPC|dDPC|DPC|ABF|ADF|BF|DF\d*|SE|BSE)(?![A-Za-z])",
    re.IGNORECASE,
)


def pixel_size_to_A(value: float, unit: str | None) -> float | None:
    """Convert a pixel size given in a length unit to Å.

    Parameters
    ----------
    value : float
        Pixel size in ``unit``.
    unit : str or None
        Length unit as files write it: ``"m"``, ``"mm"``, ``"µm"``/``"um"``/``"micron"``,
        ``"nm"``, ``"Å"``/``"A"``/``"angstrom"``, ``"pm"`` (case-insensitive; ImageJ's
        ``"\\u00C5"`` escapes are understood).

    Returns
    -------
    float or None
        Pixel size in Å, or None when the unit is not a length (pixels, 1/nm, empty) or the
        value is not a positive finite number.

    Examples
    --------
    >>> pixel_size_to_A(0.02, "nm")
    0.2
    >>> pixel_size_to_A(2e-11, "m")
    0.2
    >>> pixel_size_to_A(1.0, "px") is None
    True
    """
    if unit is None or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    # ImageJ writes non-ASCII units as literal "\u00C5" escapes inside its ASCII description.
    key = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), str(unit))
    key = key.strip().lower().replace("\u212b", "\u00e5")
    factor = _UNIT_TO_A.get(key)
    # 12 significant digits drop the binary noise of the product (2e-11 m -> 0.2, not 0.19999...).
    return None if factor is None else float(f"{value * factor:.12g}")


# --------------------------------------------------------------------------------------------
# What a reader hands back
# --------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    """Pixels and calibration as one file gives them, before the common post-processing.

    ``data`` is 2-D (an image), 3-D with frames first (a stack) or, when ``color`` is True,
    (H, W, C) with colour channels last. ``scale`` is the x pixel size in ``units`` (``scale_y``
    the y one when the file gives it).
    """

    data: np.ndarray
    scale: float | None = None
    units: str | None = None
    scale_y: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    color: bool = False


Reader = Callable[[Path], _Raw]


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Turn a metadata value into plain JSON types (numbers, str, bool, None, lists, dicts)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if not (isinstance(value, float) and not math.isfinite(value)) else None
    if isinstance(value, np.generic):
        return _json_safe(value.item(), depth)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    if isinstance(value, np.ndarray):
        # Metadata describes an image; a large array in it is data, not metadata.
        return _json_safe(value.tolist(), depth) if value.size <= 64 else None
    if depth > 8:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value]
    return str(value)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = type(exc).__name__
    if kind == "error":  # struct.error, zlib.error ... say whose
        kind = f"{type(exc).__module__}.error"
    text = f"{kind}: {text}" if text else kind
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


# --------------------------------------------------------------------------------------------
# RosettaSciIO formats: dm3, dm4, emd, ser, mrc
# --------------------------------------------------------------------------------------------


def _get_path(tree: Any, dotted: str) -> Any:
    """Value at a dotted path of nested dicts; keys may be written with '_' for ' '."""
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        if part in node:
            node = node[part]
        elif part.replace("_", " ") in node:
            node = node[part.replace("_", " ")]
        else:
            return None
    return node


def _mapped(signal: Mapping[str, Any], *targets: str) -> Any:
    """Apply RosettaSciIO's own ``mapping`` (original metadata -> HyperSpy metadata) to find
    the first of ``targets``; the readers know their formats' tag names better than we do."""
    om = signal.get("original_metadata") or {}
    md = signal.get("metadata") or {}
    for target in targets:
        value = _get_path(md, target)
        if value not in (None, ""):
            return value
        for source, (dest, fn) in (signal.get("mapping") or {}).items():
            if dest != target:
                continue
            value = _get_path(om, source)
            if value in (None, "", "[]"):
                continue
            try:
                return fn(value) if fn is not None else value
            except Exception:  # a malformed tag is missing metadata, not an unreadable image
                continue
    return None


def _signal_title(signal: Mapping[str, Any]) -> str:
    title = _get_path(signal.get("metadata") or {}, "General.title")
    return str(title) if title else ""


def _signal_names(signals: list[dict[str, Any]]) -> list[str]:
    """``"<title> <shape>"`` of every signal, as error messages and metadata list them."""
    return [
        f"{_signal_title(s) or '?'} {tuple(int(n) for n in np.shape(s.get('data')))}"
        for s in signals
    ]


def _pick_signal(
    signals: list[dict[str, Any]], path: Path, name: str | None = None
) -> tuple[int, dict[str, Any]]:
    """The signal titled ``name`` (case-insensitive: the whole title, else the detector named
    in it); without a name the first 2-D image signal, HAADF first when titles say so, else
    the first image stack."""
    if name is not None:
        wanted = str(name).strip().lower()
        titles = [_signal_title(s).strip().lower() for s in signals]
        hits = [i for i, t in enumerate(titles) if t == wanted]
        if not hits:
            detectors = [_DETECTOR_RE.search(t) for t in titles]
            hits = [i for i, d in enumerate(detectors) if d and d.group(1).lower() == wanted]
        if len(hits) != 1:
            why = "no signal is" if not hits else f"{len(hits)} signals are"
            held = ", ".join(_signal_names(signals))
            raise InvalidImageError(f"{path.name}: {why} named {name!r}; the file holds: {held}")
        return hits[0], signals[hits[0]]

    def image_ndim(sig: Mapping[str, Any]) -> int:
        data = sig.get("data")
        shape = [n for n in getattr(data, "shape", ()) if n != 1]
        axes = sig.get("axes") or []
        # A spectrum or a spectrum image has one signal (non-navigation) axis; an image two.
        n_signal_axes = sum(1 for a in axes if not a.get("navigate", False))
        if data is None or getattr(data, "dtype", np.dtype("V")).kind not in "biuf":
            return 0
        if axes and n_signal_axes == 1 and len(shape) >= 2 and len(axes) == len(data.shape):
            return 0
        return len(shape)

    ndims = [image_ndim(s) for s in signals]
    for wanted in (2, 3):
        candidates = [i for i, nd in enumerate(ndims) if nd == wanted]
        if candidates:
            haadf = [i for i in candidates if "haadf" in _signal_title(signals[i]).lower()]
            index = (haadf or candidates)[0]
            return index, signals[index]
    found = ", ".join(
        f"{_signal_title(s) or '?'} {tuple(getattr(s.get('data'), 'shape', ()))}" for s in signals
    )
    raise InvalidImageError(
        f"{path.name}: no 2-D image signal in the file (found: {found or 'nothing'})"
    )


def _from_rsciio(
    signals: list[dict[str, Any]], path: Path, fmt: str, name: str | None = None
) -> _Raw:
    if not signals:
        raise ImageReadError(f"{path}: cannot read as {fmt}: the file holds no signal")
    index, sig = _pick_signal(signals, path, name)
    data = np.asarray(sig["data"])
    axes = [a for a in (sig.get("axes") or []) if int(a.get("size", 2) or 2) != 1]
    scale = units = scale_y = None
    if len(axes) >= 2:
        ax_y, ax_x = axes[-2], axes[-1]
        scale, units = _number(ax_x.get("scale")), ax_x.get("units")
        scale_y = _number(ax_y.get("scale"))
    om = sig.get("original_metadata") or {}
    title = _signal_title(sig)
    detector = _mapped(
        sig,
        "Acquisition_instrument.TEM.Detector.Camera.Name",
        "Acquisition_instrument.TEM.detector",
    )
    detector = detector or _get_path(om, "BinaryResult.Detector")  # Velox
    detector = detector or _get_path(om, "DetectorMetadata.DetectorName")  # Velox
    if not detector and title:
        match = _DETECTOR_RE.search(title)
        detector = match.group(1) if match else None
    instrument = ("Acquisition_instrument.TEM", "Acquisition_instrument.SEM")
    voltage = _number(_mapped(sig, *(f"{i}.beam_energy" for i in instrument)))
    if voltage is None:  # NCEM EMD keeps free-form microscope attributes
        for key, value in (om.get("microscope") or {}).items():
            if re.search(r"voltage|high.?tension", str(key), re.IGNORECASE) and _number(value):
                v = _number(value)
                voltage = v / 1e3 if v > 1e3 else v  # written in V or in kV
                break
    dwell = _number(_mapped(sig, *(f"{i}.dwell_time" for i in instrument)))
    if dwell is None:
        dwell = _number(_get_path(om, "Scan.DwellTime"))  # Velox, in s
    signal_type = _get_path(sig.get("metadata") or {}, "Signal.signal_type") or None
    metadata = {
        "title": title or None,
        "detector": detector or None,
        "voltage_kV": voltage,
        "dwell_time_s": dwell,
        "signal_type": signal_type,
    }
    if len(signals) > 1:
        metadata["signal_index"] = index
        metadata["signals"] = _signal_names(signals)
    return _Raw(data=data, scale=scale, units=units, scale_y=scale_y, metadata=metadata)


def _rsciio_call(fmt: str, fn: Callable[[], list[dict[str, Any]]], path: Path) -> list:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reader chatter; failures surface as exceptions
            return fn()
    except (ImageReadError, InvalidImageError):
        raise
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read as {fmt}: {_short(exc)}") from exc


def _read_dm(path: Path, signal: str | None = None) -> _Raw:
    from rsciio.digitalmicrograph import file_reader

    fmt = f"DigitalMicrograph {path.suffix.lstrip('.').upper()}"
    signals = _rsciio_call(fmt, lambda: file_reader(str(path), lazy=False), path)
    raw = _from_rsciio(signals, path, fmt, signal)
    if raw.data.dtype.names:  # RGBA DM images come as a structured array
        raw.data = np.stack([raw.data[c] for c in ("R", "G", "B")], axis=-1)
        raw.color = True
    return raw


def _read_emd(path: Path, signal: str | None = None) -> _Raw:
    try:
        import h5py  # noqa: F401  (RosettaSciIO's EMD reader needs it; say so plainly)
    except ImportError as exc:
        raise ImageReadError(f"{path}: reading EMD files needs h5py (pip install h5py)") from exc
    from rsciio.emd import file_reader

    # Velox image stacks come back frame by frame (frames first), so `frame` can select one.
    signals = _rsciio_call("EMD", lambda: file_reader(str(path), lazy=False), path)
    raw = _from_rsciio(signals, path, "EMD", signal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import h5py

            with h5py.File(path, "r") as f:
                raw.metadata["emd_variant"] = "velox" if "Version" in f else "ncem"
        except Exception:  # the file was just read; a second open failing is not fatal
            raw.metadata["emd_variant"] = None
    return raw


def _read_ser(path: Path, signal: str | None = None) -> _Raw:
    from rsciio.tia import file_reader

    signals = _rsciio_call("TIA SER", lambda: file_reader(str(path), lazy=False), path)
    return _from_rsciio(signals, path, "TIA SER", signal)


def _read_mrc(path: Path, signal: str | None = None) -> _Raw:
    from rsciio.mrc import file_reader

    # metadata_file=None: RosettaSciIO otherwise looks for Direct Electron side files whenever
    # the name contains "movie".
    signals = _rsciio_call(
        "MRC", lambda: file_reader(str(path), lazy=False, metadata_file=None), path
    )
    raw = _from_rsciio(signals, path, "MRC", signal)
    header = (signals[0].get("original_metadata") or {}).get("std_header") or {}
    has_fei = "fei_header" in (signals[0].get("original_metadata") or {})
    # RosettaSciIO reports 1 nm when the sampling MX is 0 and 0 nm when the cell is 0: both
    # mean "no calibration" in MRC2014, so do not invent one.
    if not has_fei and not (_number(header.get("Xlen")) and _number(header.get("MX"))):
        raw.scale = raw.units = raw.scale_y = None
    raw.metadata["mrc_mode"] = _json_safe(header.get("MODE"))
    return raw


def _read_hspy(path: Path, signal: str | None = None) -> _Raw:
    """HyperSpy's own HDF5 (``.hspy``, ``.hdf5``) and Zarr (``.zspy``) files."""
    ext = path.suffix.lower().lstrip(".")
    if ext == "zspy":
        try:
            import zarr  # noqa: F401  (RosettaSciIO's zspy reader needs it; say so plainly)
        except ImportError as exc:
            raise ImageReadError(
                f"{path}: reading .zspy files needs zarr (pip install zarr)"
            ) from exc
        from rsciio.zspy import file_reader
    else:
        _check_hyperspy_hdf5(path)
        from rsciio.hspy import file_reader
    signals = _rsciio_call("HyperSpy", lambda: file_reader(str(path), lazy=False), path)
    raw = _from_rsciio(signals, path, "HyperSpy", signal)
    raw.metadata["needs_length_units"] = True
    return raw


def _check_hyperspy_hdf5(path: Path) -> None:
    """Refuse, in plain words, an HDF5 file that HyperSpy did not write."""
    try:
        import h5py
    except ImportError as exc:
        raise ImageReadError(f"{path}: reading HDF5 files needs h5py (pip install h5py)") from exc
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("file_format")
            has_experiments = "Experiments" in f
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read as HDF5: {_short(exc)}") from exc
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", errors="replace")
    if str(fmt or "").lower() != "hyperspy" or not has_experiments:
        raise ImageReadError(
            f"{path}: HDF5 file not written by HyperSpy (no file_format='HyperSpy' attribute "
            "and /Experiments group); only HyperSpy HDF5 images are read (.hspy, .hdf5)"
        )


# --------------------------------------------------------------------------------------------
# TIFF (tifffile), PNG/JPEG (imageio), NPY (numpy)
# --------------------------------------------------------------------------------------------


def _rational(value: Any) -> float | None:
    if isinstance(value, tuple | list) and len(value) == 2:
        num, den = _number(value[0]), _number(value[1])
        return num / den if num and den else None
    return _number(value)


def _ome_pixel_size(xml: str) -> tuple[float | None, float | None, str | None]:
    """PhysicalSizeX/Y and unit of the first OME ``Pixels`` element (default unit µm)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, None, None
    for elem in root.iter():
        if elem.tag.rsplit("}", 1)[-1] == "Pixels":
            sx = _number(elem.get("PhysicalSizeX"))
            sy = _number(elem.get("PhysicalSizeY"))
            unit = elem.get("PhysicalSizeXUnit", "\u00b5m")
            return sx, sy, unit
    return None, None, None


def _read_tiff(path: Path) -> _Raw:
    import tifffile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                data = series.asarray()
                axes = series.axes
                page = tif.pages.first
                tags = {t.name: t.value for t in page.tags.values()}
                imagej = tif.imagej_metadata
                ome = tif.ome_metadata
                fei = tif.fei_metadata if tif.is_fei else None
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read as TIFF: {_short(exc)}") from exc

    metadata: dict[str, Any] = {"tiff_axes": axes}
    scale = scale_y = units = None
    source = None
    if ome:
        scale, scale_y, units = _ome_pixel_size(ome)
        source = "OME" if scale else None
    if scale is None and imagej and imagej.get("unit"):
        xres, yres = _rational(tags.get("XResolution")), _rational(tags.get("YResolution"))
        if xres:
            scale, scale_y, units = 1.0 / xres, (1.0 / yres if yres else None), imagej["unit"]
            source = "ImageJ"
    if scale is None and fei:
        scan = fei.get("Scan") or {}
        if _number(scan.get("PixelWidth")):
            scale, scale_y, units = scan["PixelWidth"], scan.get("PixelHeight"), "m"
            source = "FEI"
        beam = fei.get("Beam") or {}
        if _number(beam.get("HV")):
            metadata["voltage_kV"] = _number(beam["HV"]) / 1e3
        if _number(scan.get("Dwelltime")):
            metadata["dwell_time_s"] = _number(scan["Dwelltime"])
        detector = (fei.get("Detectors") or {}).get("Name")
        if detector:
            metadata["detector"] = detector
    if scale is None and "XResolution" in tags:
        # A plain resolution tag is usually a print resolution (72 dpi ...); take it as a
        # physical pixel size only when it says so in cm/inch and the pixel is sub-micrometre.
        unit_code = int(tags.get("ResolutionUnit", 2))
        xres = _rational(tags.get("XResolution"))
        yres = _rational(tags.get("YResolution"))
        per_unit = {2: ("inch", 2.54e8), 3: ("cm", 1e8)}.get(unit_code)
        if xres and per_unit and per_unit[1] / xres < 1e4:
            scale, units = per_unit[1] / xres, "\u00c5"
            scale_y = per_unit[1] / yres if yres else None
            metadata["tiff_resolution"] = f"{xres:g} px/{per_unit[0]}"
            source = "ResolutionUnit"
    metadata["calibration_source"] = source

    color = False
    if "S" in axes:
        # Colour samples: move them last; planar files have them first.
        data = np.moveaxis(data, axes.index("S"), -1)
        color = data.shape[-1] in (3, 4)
        if not color:  # e.g. grey + alpha: keep the grey channel
            data = data[..., 0]
    return _Raw(
        data=data, scale=scale, units=units, scale_y=scale_y, metadata=metadata, color=color
    )


def _read_imageio(path: Path) -> _Raw:
    import imageio.v3 as iio

    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.asarray(iio.imread(path))
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read as {fmt}: {_short(exc)}") from exc
    color = data.ndim == 3 and data.shape[-1] in (3, 4)
    if data.ndim == 3 and data.shape[-1] == 2:  # grey + alpha
        data = data[..., 0]
    return _Raw(data=data, metadata={"bit_depth": int(data.dtype.itemsize * 8)}, color=color)


def _read_npy(path: Path) -> _Raw:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read as NumPy .npy: {_short(exc)}") from exc
    if not isinstance(data, np.ndarray):
        raise ImageReadError(f"{path}: cannot read as NumPy .npy: not a single array")
    return _Raw(data=data)


#: Extension (lower case, no dot) -> reader. Each reader takes a Path and returns pixels plus
#: calibration; :func:`load_image` does the rest.
READERS: dict[str, Reader] = {
    "dm3": _read_dm,
    "dm4": _read_dm,
    "emd": _read_emd,
    "ser": _read_ser,
    "mrc": _read_mrc,
    "tif": _read_tiff,
    "tiff": _read_tiff,
    "png": _read_imageio,
    "jpg": _read_imageio,
    "jpeg": _read_imageio,
    "npy": _read_npy,
    "hspy": _read_hspy,
    "hdf5": _read_hspy,
    "zspy": _read_hspy,
}

# Format names as error messages give them.
_FORMAT_NAMES = {
    "dm3": "DigitalMicrograph DM3",
    "dm4": "DigitalMicrograph DM4",
    "emd": "EMD",
    "ser": "TIA SER",
    "mrc": "MRC",
    "tif": "TIFF",
    "tiff": "TIFF",
    "png": "PNG",
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "npy": "NumPy .npy",
    "hspy": "HyperSpy",
    "hdf5": "HyperSpy",
    "zspy": "HyperSpy",
}

#: Readers of files that may hold several signals, chosen by ``signal=`` (title).
_MULTI_SIGNAL_READERS = frozenset({_read_dm, _read_emd, _read_ser, _read_mrc, _read_hspy})

#: Supported file extensions, for help texts and file pickers.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(READERS)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _name(path: str | os.PathLike | None) -> str:
    return Path(path).name if path else "array"


def _sha256(data: np.ndarray) -> str:
    """Hex SHA-256 of little-endian float32 C-order pixel bytes, then ``b"<H>x<W>"``."""
    digest = hashlib.sha256(np.ascontiguousarray(data, dtype="<f4").tobytes())
    digest.update("x".join(str(n) for n in data.shape).encode("ascii"))
    return digest.hexdigest()


def micrograph_from_array(
    data: np.ndarray,
    pixel_size_A: float | None = None,
    path: str | os.PathLike | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Micrograph:
    """Validate a 2-D array and wrap it as a :class:`~motifcat.ingest.model.Micrograph`.

    Parameters
    ----------
    data : array_like, shape (H, W)
        Pixel intensities (any real numeric dtype); stored as a read-only float32 copy.
    pixel_size_A : float or None, optional
        Pixel size in Å (positive, finite); None when the image is not calibrated.
    path : str or path-like, optional
        Source file, kept for provenance and named in error messages.
    metadata : mapping, optional
        Extra information (``voltage_kV``, ``detector``...); made JSON-serialisable.

    Returns
    -------
    Micrograph
        With ``sha256`` = hex SHA-256 of the little-endian float32 C-order pixel bytes followed
        by the ASCII shape ``b"<H>x<W>"``: the image's identity in the catalog.

    Raises
    ------
    InvalidImageError
        If the array is not 2-D, not real-valued, smaller than ``MIN_SIDE_PX`` (32) pixels on a
        side, holds NaN/Inf, is constant, or ``pixel_size_A`` is not a positive number.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).random((64, 64))
    >>> m = micrograph_from_array(img, pixel_size_A=0.2)
    >>> m.shape, m.data.dtype, len(m.sha256)
    ((64, 64), dtype('float32'), 64)
    """
    name = _name(path)
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise InvalidImageError(
            f"{name}: pixel data of dtype {arr.dtype} is not real-valued numbers"
            + ("; take the modulus or the real part first" if arr.dtype.kind == "c" else "")
        )
    if arr.ndim != 2:
        raise InvalidImageError(f"{name}: expected a 2-D image, got an array of shape {arr.shape}")
    h, w = arr.shape
    if min(h, w) < MIN_SIDE_PX:
        raise InvalidImageError(
            f"{name}: image of {h}x{w} px is too small; at least {MIN_SIDE_PX} px per side needed"
        )
    arr = np.array(arr, dtype=np.float32, order="C")  # a private copy: the identity is frozen
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(arr.size - finite.sum()) - n_nan
        raise InvalidImageError(
            f"{name}: image contains non-finite pixels ({n_nan} NaN, {n_inf} Inf)"
        )
    if float(arr.max()) == float(arr.min()):
        raise InvalidImageError(f"{name}: image is constant (every pixel = {float(arr[0, 0]):g})")
    if pixel_size_A is not None:
        value = _number(pixel_size_A)
        if value is None or value <= 0:
            raise InvalidImageError(
                f"{name}: pixel_size_A must be a positive number of Å, got {pixel_size_A!r}"
            )
        pixel_size_A = value
    arr.flags.writeable = False
    return Micrograph(
        data=arr,
        pixel_size_A=pixel_size_A,
        path=str(path) if path is not None else None,
        sha256=_sha256(arr),
        metadata=_json_safe(dict(metadata or {})),
    )


def _select_frame(
    data: np.ndarray, frame: int | None, path: Path, average: bool = False
) -> tuple[np.ndarray, dict]:
    if average:
        if frame is not None:
            raise InvalidImageError(f"{path.name}: give frame or average, not both")
        if data.ndim != 3:
            raise InvalidImageError(
                f"{path.name}: average asked for but the image of shape {data.shape} is not a "
                "stack of frames"
            )
        from .stack import drift_corrected_mean

        aligned = drift_corrected_mean(data)
        return aligned.mean, {
            "n_frames": int(data.shape[0]),
            "frames": "drift-corrected mean (phase correlation)",
            "frame_shifts_px": np.round(aligned.shifts_px, 2).tolist(),
            "frame_crop_px": list(aligned.crop),
        }
    if data.ndim == 2:
        if frame not in (None, 0):
            raise InvalidImageError(
                f"{path.name}: frame={frame} given but the file holds a single 2-D image "
                f"of shape {data.shape}"
            )
        return data, {}
    if data.ndim != 3:
        raise InvalidImageError(
            f"{path.name}: expected a 2-D image or a 3-D stack, got shape {data.shape}"
        )
    n = data.shape[0]
    if frame is None:
        raise InvalidImageError(
            f"{path.name}: 3-D stack of shape {data.shape}; pass frame=<0..{n - 1}> "
            "(--frame N), or average=True (--average) for a drift-corrected mean"
        )
    if isinstance(frame, bool) or not isinstance(frame, int | np.integer):
        raise InvalidImageError(f"{path.name}: frame must be an integer, got {frame!r}")
    if not 0 <= frame < n:
        raise InvalidImageError(
            f"{path.name}: frame={frame} is out of range for a stack of {n} frames "
            f"(shape {data.shape}); pass frame=<0..{n - 1}>"
        )
    return data[int(frame)], {"frame": int(frame), "n_frames": int(n)}


def is_signal(obj: Any) -> bool:
    """True for a HyperSpy signal or any object with ``data`` and an ``axes_manager``.

    Examples
    --------
    >>> is_signal("image.tif"), is_signal(object())
    (False, False)
    """
    return hasattr(obj, "data") and hasattr(obj, "axes_manager")


def _signal_metadata(signal: Any) -> dict[str, Any]:
    """A signal's metadata tree as a plain dict (HyperSpy's DictionaryTreeBrowser or a dict)."""
    md = getattr(signal, "metadata", None)
    if hasattr(md, "as_dictionary"):
        md = md.as_dictionary()
    return dict(md) if isinstance(md, Mapping) else {}


def micrograph_from_signal(
    signal: Any,
    frame: int | None = None,
    pixel_size_A: float | None = None,
    average: bool = False,
) -> Micrograph:
    """Wrap an in-memory HyperSpy ``Signal2D`` (or any look-alike) as a Micrograph.

    Duck-typed, so HyperSpy is not needed: the object must have ``data`` (array_like, shape
    ``(..., H, W)``, navigation axes first as HyperSpy keeps them) and ``axes_manager`` with
    ``signal_axes``, a sequence of two axes ``(x, y)`` each with ``scale`` and ``units``.

    Parameters
    ----------
    signal : hyperspy.signals.Signal2D or look-alike
    frame : int, optional
        Navigation index of a stack (one navigation axis); required for stacks.
    pixel_size_A : float, optional
        Pixel size in Å; overrides the axes' calibration.
    average : bool, optional
        Average a stack after drift correction (as in :func:`load_image`).

    Returns
    -------
    Micrograph
        As :func:`load_image` gives it, with ``original_format`` = ``"signal"``.

    Raises
    ------
    InvalidImageError
        No two signal axes, axes without a length unit and no ``pixel_size_A``, or the pixels
        cannot be analysed (see :func:`micrograph_from_array`).

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace as NS
    >>> axes = (NS(scale=0.02, units="nm", size=80), NS(scale=0.02, units="nm", size=64))
    >>> sig = NS(data=np.random.default_rng(0).random((64, 80)),
    ...          axes_manager=NS(signal_axes=axes), metadata={"General": {"title": "HAADF"}})
    >>> m = micrograph_from_signal(sig)
    >>> m.shape, m.pixel_size_A, m.metadata["detector"]
    ((64, 80), 0.2, 'HAADF')
    """
    title = _get_path(_signal_metadata(signal), "General.title")
    name = str(title) if title else type(signal).__name__
    axes = list(getattr(signal.axes_manager, "signal_axes", None) or ())
    if len(axes) != 2:
        raise InvalidImageError(
            f"{name}: a 2-D image signal (Signal2D) is needed; this one has {len(axes)} signal "
            "axes"
        )
    ax_x, ax_y = axes
    units = getattr(ax_x, "units", None)
    units = None if units is None else str(units)
    scale, scale_y = _number(getattr(ax_x, "scale", None)), _number(getattr(ax_y, "scale", None))
    data = np.asarray(signal.data)
    data, frame_md = _select_frame(data, frame, Path(name), average)
    metadata: dict[str, Any] = {
        "original_format": "signal",
        "voltage_kV": None,
        "detector": None,
        "dwell_time_s": None,
        "signal_type": None,
        "title": str(title) if title else None,
        **frame_md,
    }
    md = _signal_metadata(signal)
    metadata["signal_type"] = _get_path(md, "Signal.signal_type") or None
    for inst in ("Acquisition_instrument.TEM", "Acquisition_instrument.SEM"):
        voltage = _number(_get_path(md, f"{inst}.beam_energy"))  # kV in HyperSpy
        metadata["voltage_kV"] = metadata["voltage_kV"] or voltage
    if title:
        match = _DETECTOR_RE.search(str(title))
        metadata["detector"] = match.group(1) if match else None
    file_px = pixel_size_to_A(scale, units) if scale is not None else None
    file_px = float(f"{file_px:.7g}") if file_px is not None else None
    metadata["original_units"] = units if units not in ("", None) else None
    metadata["original_scale"] = scale
    if file_px is not None and scale_y is not None:
        file_py = pixel_size_to_A(scale_y, units)
        if file_py is not None and abs(file_py - file_px) > 0.01 * file_px:
            metadata["pixel_size_yx_A"] = [float(f"{file_py:.7g}"), file_px]
    if pixel_size_A is None and file_px is None:
        _refuse_unitless(name, scale, units)
    metadata["pixel_size_source"] = "argument" if pixel_size_A is not None else "signal"
    if pixel_size_A is not None and file_px is not None:
        metadata["file_pixel_size_A"] = file_px
    px = pixel_size_A if pixel_size_A is not None else file_px
    return micrograph_from_array(data, pixel_size_A=px, path=None, metadata=metadata)


def load_image(
    path: str | os.PathLike,
    frame: int | None = None,
    pixel_size_A: float | None = None,
    *,
    max_megapixels: float | None = None,
    signal: str | None = None,
    average: bool = False,
) -> Micrograph:
    """Read a micrograph file into a :class:`~motifcat.ingest.model.Micrograph`.

    Parameters
    ----------
    path : str or path-like
        File with one of the extensions in ``SUPPORTED_EXTENSIONS``: ``dm3``, ``dm4``, ``emd``
        (Velox or NCEM), ``ser`` (TIA), ``mrc``, ``tif``/``tiff``, ``png``, ``jpg``/``jpeg``,
        ``npy``, ``hspy``/``hdf5``/``zspy`` (HyperSpy; an HDF5 file HyperSpy did not write is
        refused).
    frame : int, optional
        Index (0-based) of the frame to take from a 3-D stack (frames first); required for
        stacks, and only 0 or None is accepted for a single image.
    pixel_size_A : float, optional
        Pixel size in Å; overrides the file's calibration (PNG, JPEG and NPY carry none).
    max_megapixels : float, optional
        Refuse, from the file's header and before reading any pixel, a frame larger than
        this (10^6 px); default :func:`~motifcat.ingest.limits.default_max_megapixels` (what
        fits this machine's memory); 0 disables the check.
    signal : str, optional
        Title of the image to take from a file that holds several (Velox EMD: ``"HAADF"``,
        ``"DF4"``, ``"BF"``...; matched case-insensitively to the whole title, else to the
        detector named in it). Without it the HAADF image, else the first 2-D image, is
        taken; ``metadata["signals"]`` lists them all.
    average : bool, optional
        Average a stack after drift correction by phase correlation
        (:func:`~motifcat.ingest.stack.drift_corrected_mean`) instead of taking one
        ``frame``; ``metadata["frame_shifts_px"]`` holds each frame's (dy, dx) in px.

    Returns
    -------
    Micrograph
        ``data`` is float32 (H, W); colour images are reduced to luminance
        (Rec. 709 weights of ``skimage.color.rgb2gray``, alpha ignored). ``pixel_size_A`` is in Å
        from whatever unit the file used. ``metadata`` always has ``original_format``,
        ``voltage_kV``, ``detector``, ``dwell_time_s``, ``signal_type``, ``original_units``,
        ``original_scale`` and ``pixel_size_source`` (``"file"``, ``"argument"`` or None),
        None where the file does not say; plus format-specific entries such as ``title``,
        ``signal_index`` and ``signals`` (several signals in one EMD), ``frame`` and
        ``n_frames`` (stacks), ``converted_from`` (colour).

    Raises
    ------
    ImageReadError
        Missing file, unsupported extension, or a file the reader cannot parse (truncated or
        corrupt); the message names the file and the format.
    InvalidImageError
        The pixels cannot be analysed: a stack without ``frame`` or ``frame`` out of range,
        a HyperSpy image whose axes have no length unit and no ``pixel_size_A`` given,
        more than 3 dimensions, NaN/Inf, constant, smaller than 32 px on a side.
    ImageTooLargeError
        The frame is over ``max_megapixels`` (an ``InvalidImageError``).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "img.npy")
    >>> np.save(f, np.random.default_rng(0).random((64, 80)))
    >>> m = load_image(f, pixel_size_A=0.25)
    >>> m.shape, m.pixel_size_A, m.metadata["original_format"]
    ((64, 80), 0.25, 'npy')
    """
    if is_signal(path):
        return micrograph_from_signal(
            path, frame=frame, pixel_size_A=pixel_size_A, average=average
        )
    p = Path(os.fspath(path))
    # Existence first: a mistyped folder is "no such file", not "unsupported extension".
    if not p.exists():
        raise ImageReadError(f"{p}: no such file")
    if not p.is_file() and not (p.is_dir() and p.suffix.lower() == ".zspy"):  # zarr: a folder
        raise ImageReadError(f"{p}: not a regular file")
    ext = p.suffix.lower().lstrip(".")
    reader = READERS.get(ext)
    if reader is None:
        raise ImageReadError(
            f"{p}: unsupported file extension {p.suffix or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )

    if p.is_file() and p.stat().st_size == 0:  # libraries say odd things about no bytes
        fmt = _FORMAT_NAMES.get(ext, ext.upper())
        raise ImageReadError(f"{p}: cannot read as {fmt}: the file is empty (0 bytes)")

    from .limits import check_image_size

    check_image_size(p, max_megapixels)  # from the header, before any pixel is read
    if signal is not None and reader not in _MULTI_SIGNAL_READERS:
        raise InvalidImageError(
            f"{p.name}: signal={signal!r} given but a {ext} file holds one image; signals are "
            "chosen by name in emd, dm3/dm4, ser, mrc and HyperSpy files"
        )
    raw = reader(p, signal=signal) if signal is not None else reader(p)
    needs_units = bool(raw.metadata.pop("needs_length_units", False))
    data = np.asarray(raw.data)
    metadata: dict[str, Any] = {
        "original_format": {"tiff": "tif", "jpeg": "jpg"}.get(ext, ext),
        "voltage_kV": None,
        "detector": None,
        "dwell_time_s": None,
        "signal_type": None,
    }
    metadata.update(raw.metadata)

    if data.dtype.kind not in "biuf":
        raise InvalidImageError(
            f"{p.name}: pixel data of dtype {data.dtype} is not real-valued numbers"
        )
    if raw.color:
        from skimage.color import rgb2gray

        # rgb2gray on floats keeps the intensity scale (on integers it would rescale to [0, 1]).
        channels = "RGBA" if data.shape[-1] == 4 else "RGB"
        data = rgb2gray(data[..., :3].astype(np.float32))
        metadata["converted_from"] = f"{channels} (luminance, Rec. 709 weights)"
    # Singleton axes (a (1, H, W) "stack", a DM (H, W, 1)) carry nothing.
    if data.ndim > 2:
        data = data.reshape([n for n in data.shape if n != 1] or [1])
    data, frame_md = _select_frame(data, frame, p, average)
    metadata.update(frame_md)

    file_px = pixel_size_to_A(raw.scale, raw.units) if raw.scale is not None else None
    if file_px is not None:
        # Most formats store the calibration as float32: 0.02 nm reads back as 0.0199999995.
        # Seven significant digits is what float32 holds.
        file_px = float(f"{file_px:.7g}")
    metadata["original_units"] = raw.units if raw.units not in ("", None) else None
    metadata["original_scale"] = _number(raw.scale) if raw.scale is not None else None
    if file_px is not None and raw.scale_y is not None:
        file_py = pixel_size_to_A(raw.scale_y, raw.units)
        file_py = float(f"{file_py:.7g}") if file_py is not None else None
        if file_py is not None and abs(file_py - file_px) > 0.01 * file_px:
            # Non-square pixels distort the lattice; keep both so that the user can see it.
            metadata["pixel_size_yx_A"] = [file_py, file_px]
    if needs_units and file_px is None and pixel_size_A is None:
        _refuse_unitless(p.name, raw.scale, raw.units)
    if pixel_size_A is not None:
        metadata["pixel_size_source"] = "argument"
        if file_px is not None:
            metadata["file_pixel_size_A"] = file_px
        px = pixel_size_A
    else:
        metadata["pixel_size_source"] = "file" if file_px is not None else None
        px = file_px
    return micrograph_from_array(data, pixel_size_A=px, path=p, metadata=metadata)


def _refuse_unitless(name: str, scale: float | None, units: str | None) -> None:
    """HyperSpy axes without a length unit: the scale could be nm, Å or pixels; never guess."""
    shown = "no units" if units in (None, "", "<undefined>") else f"units {units!r}"
    raise InvalidImageError(
        f"{name}: the image axes carry {shown} (scale {scale if scale is not None else '?'}), "
        "so the pixel size is unknown; pass --pixel-size <Å> (pixel_size_A=...), or set the "
        "axes' units (nm, Å, pm, µm) in HyperSpy"
    )


def check_size(micrograph: Micrograph, period_px: float, min_periods: float = 4) -> None:
    """Refuse an image that spans fewer than ``min_periods`` lattice periods on a side.

    Parameters
    ----------
    micrograph : Micrograph
    period_px : float
        Dominant lattice period in pixels.
    min_periods : float, optional
        Fewest periods required along the shorter side (default 4): fewer leave too few
        complete two-period patches to learn motifs from.

    Raises
    ------
    InvalidImageError
        If ``min(H, W) < min_periods * period_px``, naming the file, the image size and the
        period; or if ``period_px`` is not a positive number.

    Examples
    --------
    >>> import numpy as np
    >>> m = micrograph_from_array(np.random.default_rng(0).random((64, 64)))
    >>> check_size(m, period_px=10.0)   # 64 px >= 4 x 10 px: fine
    >>> check_size(m, period_px=20.0)
    Traceback (most recent call last):
    ...
    motifcat.errors.InvalidImageError: array: image of 64x64 px spans only 3.2 lattice ...
    """
    name = _name(micrograph.path)
    period = _number(period_px)
    if period is None or period <= 0:
        raise InvalidImageError(
            f"{name}: lattice period must be a positive number of px, got {period_px!r}"
        )
    h, w = micrograph.shape
    if min(h, w) < min_periods * period:
        raise InvalidImageError(
            f"{name}: image of {h}x{w} px spans only {min(h, w) / period:.1f} lattice periods "
            f"of {period:g} px; at least {min_periods:g} needed "
            f"(>= {math.ceil(min_periods * period)} px)"
        )
