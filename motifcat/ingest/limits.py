"""Refuse images too large to analyse *before* their pixels are loaded.

A 20000² px mostly-empty TIFF (a few MB on disk) made ``analyze`` grow past 12 GB and be
killed from outside. :func:`image_shape` reads only a file's header; :func:`check_image_size`
compares the pixel count with a limit derived from the memory the analysis needs.

Memory model (measured here with ``ru_maxrss`` on synthetic MoSe2 images, one BLAS thread):
``analyze`` peaked at 356 MB for 1024² px and 549 MB for 2048² px, i.e. ~50-95 bytes per pixel
above a ~300 MB interpreter-and-libraries base. :data:`BYTES_PER_PIXEL` = 100 and
:data:`BASE_BYTES` = 400 MB are rounded up from those figures, so the estimate errs high.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from ..errors import ImageTooLargeError

#: Peak bytes ``analyze`` needs per pixel of the analysed frame (measured, rounded up; above).
BYTES_PER_PIXEL = 100
#: Bytes of a worker process before any image (Python, NumPy, SciPy, scikit-learn).
BASE_BYTES = 400 * 2**20
#: Share of the machine's RAM that all concurrent analyses together may use.
RAM_SHARE = 0.7


def total_ram_bytes() -> int:
    """Physical memory of this machine in bytes (8 GiB if it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def estimate_peak_bytes(n_pixels: int) -> int:
    """Estimated peak memory in bytes of analysing one frame of ``n_pixels`` pixels.

    Examples
    --------
    >>> round(estimate_peak_bytes(2048 * 2048) / 2**20)  # MB for a 2048² px image
    800
    """
    return BASE_BYTES + BYTES_PER_PIXEL * int(n_pixels)


def default_max_megapixels(workers: int = 1) -> float:
    """Largest frame (in megapixels) that ``workers`` concurrent analyses fit in memory.

    ``$MOTIFCAT_MAX_MEGAPIXELS`` overrides it. Worker count and memory are considered
    together: each of the ``workers`` analyses gets ``RAM_SHARE / workers`` of the RAM.

    Examples
    --------
    >>> default_max_megapixels(2) > default_max_megapixels(4) > 0
    True
    """
    env = os.environ.get("MOTIFCAT_MAX_MEGAPIXELS")
    if env:
        return float(env)
    per_worker = RAM_SHARE * total_ram_bytes() / max(1, int(workers))
    return max(1.0, (per_worker - BASE_BYTES) / BYTES_PER_PIXEL / 1e6)


def _npy_shape(path: Path) -> tuple[int, ...]:
    import numpy as np

    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        start = fh.tell()
    shape = tuple(int(n) for n in shape)
    if start + _n_elements(shape) * dtype.itemsize > path.stat().st_size:
        raise ValueError("truncated .npy")  # corrupt, not large: the reader says so
    return shape


def _png_shape(path: Path) -> tuple[int, ...]:
    with open(path, "rb") as fh:
        head = fh.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError("not a PNG header")
    width, height = struct.unpack(">II", head[16:24])
    return (int(height), int(width))


#: Bytes per voxel of the MRC modes.
_MRC_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}


def _mrc_shape(path: Path) -> tuple[int, ...]:
    with open(path, "rb") as fh:
        head = fh.read(1024)
    # MRC2014: nx, ny, nz, mode int32 at bytes 0-15, the extended-header size at 92; the
    # machine stamp at 212 says the byte order.
    order = ">" if head[212:213] == b"\x11" else "<"
    nx, ny, nz, mode = struct.unpack(order + "4i", head[:16])
    (next_,) = struct.unpack(order + "i", head[92:96])
    nbytes = _MRC_MODE_BYTES.get(mode)
    # An uncompressed format: a header whose data would not fit the file is corrupt, not
    # large (the reader proper says so).
    if (
        min(nx, ny, nz) < 1
        or nbytes is None
        or 1024 + max(next_, 0) + nx * ny * nz * nbytes > path.stat().st_size
    ):
        raise ValueError("inconsistent MRC header")
    return (int(nz), int(ny), int(nx)) if nz > 1 else (int(ny), int(nx))


def _tiff_shape(path: Path) -> tuple[int, ...]:
    import tifffile

    with tifffile.TiffFile(path) as tif:  # parses the IFDs only, never the strips
        return tuple(int(n) for n in tif.series[0].shape)


def _jpeg_shape(path: Path) -> tuple[int, ...]:
    from PIL import Image  # imageio's dependency; Image.open reads the header only

    with Image.open(path) as im:
        return (int(im.height), int(im.width))


def _rsciio_shape(path: Path) -> tuple[int, ...]:
    ext = path.suffix.lower().lstrip(".")
    if ext in ("dm3", "dm4"):
        from rsciio.digitalmicrograph import file_reader
    elif ext == "emd":
        from rsciio.emd import file_reader
    elif ext in ("hspy", "hdf5"):
        from rsciio.hspy import file_reader
    elif ext == "zspy":
        from rsciio.zspy import file_reader
    else:
        from rsciio.tia import file_reader
    signals = file_reader(str(path), lazy=True)  # dask arrays: the header, no pixels
    return max((tuple(int(n) for n in s["data"].shape) for s in signals), key=_n_elements)


def _n_elements(shape: tuple[int, ...]) -> int:
    n = 1
    for k in shape:
        n *= int(k)
    return n


_SHAPE_READERS = {
    "npy": _npy_shape,
    "png": _png_shape,
    "mrc": _mrc_shape,
    "tif": _tiff_shape,
    "tiff": _tiff_shape,
    "jpg": _jpeg_shape,
    "jpeg": _jpeg_shape,
    "dm3": _rsciio_shape,
    "dm4": _rsciio_shape,
    "emd": _rsciio_shape,
    "ser": _rsciio_shape,
    "hspy": _rsciio_shape,
    "hdf5": _rsciio_shape,
    "zspy": _rsciio_shape,
}


def image_shape(path: str | os.PathLike) -> tuple[int, ...] | None:
    """The array shape a file holds, read from its header without loading the pixels.

    Returns None when the header cannot be read (the reader proper then reports the problem).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> np.save(f, np.zeros((30, 40), np.float32))
    >>> image_shape(f)
    (30, 40)
    """
    p = Path(os.fspath(path))
    reader = _SHAPE_READERS.get(p.suffix.lower().lstrip("."))
    if reader is None:
        return None
    try:
        return reader(p)
    except Exception:  # noqa: BLE001 - a bad header is the full reader's to report
        return None


def frame_pixels(shape: tuple[int, ...]) -> int:
    """Pixels of the one frame analysed: the two largest axes (stacks and colour excluded)."""
    dims = sorted((int(n) for n in shape if n > 1), reverse=True)
    return dims[0] * dims[1] if len(dims) >= 2 else _n_elements(shape)


def check_image_size(path: str | os.PathLike, max_megapixels: float | None = None) -> None:
    """Refuse a file whose frame exceeds ``max_megapixels``, reading only its header.

    Parameters
    ----------
    path : str or path-like
        The image file.
    max_megapixels : float, optional
        Limit on the analysed frame's pixel count, in 10^6 px; default
        :func:`default_max_megapixels` for one worker. ``0`` or a negative value disables it.

    Raises
    ------
    ImageTooLargeError
        Naming the file, its size, the limit, the memory the analysis would need, and how to
        raise the limit (``--max-megapixels`` / ``$MOTIFCAT_MAX_MEGAPIXELS``).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "big.npy")
    >>> np.lib.format.open_memmap(f, mode="w+", dtype=np.uint8, shape=(3000, 3000)).flush()
    >>> try:
    ...     check_image_size(f, max_megapixels=4)
    ... except ImageTooLargeError as exc:
    ...     print(str(exc)[:48])
    big.npy: image of 3000 x 3000 px (9.0 megapixels
    """
    limit = default_max_megapixels(1) if max_megapixels is None else float(max_megapixels)
    if limit <= 0:
        return
    shape = image_shape(path)
    # No header we can read, or one that is not a shape (negative or zero axes of a corrupt
    # file): the full reader is the one to say what is wrong with the file.
    if shape is None or any(int(k) <= 0 for k in shape):
        return
    n = frame_pixels(shape)
    # A stack is loaded whole before one frame is taken: bound its elements too (float64).
    n_all = _n_elements(shape)
    if n <= limit * 1e6 and n_all * 8 <= RAM_SHARE * total_ram_bytes():
        return
    dims = " x ".join(str(k) for k in shape)
    need = estimate_peak_bytes(n) / 2**30
    raise ImageTooLargeError(
        f"{Path(os.fspath(path)).name}: image of {dims} px ({n / 1e6:.1f} megapixels) is over "
        f"the limit of {limit:.1f} megapixels (analysing it needs ~{need:.1f} GB; this machine "
        f"has {total_ram_bytes() / 2**30:.0f} GB). Crop or bin it, or raise the limit with "
        "--max-megapixels N (or MOTIFCAT_MAX_MEGAPIXELS=N; fewer --workers leave each more "
        "memory)"
    )
