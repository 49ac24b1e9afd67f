"""Small writers for micrograph file formats, used to build real test files.

RosettaSciIO reads DM3/DM4, TIA SER and Velox EMD but cannot write them, and no real file can
be downloaded here, so these writers produce minimal but structurally valid files following the
published layouts (Gatan DM3/DM4 tag trees, the TIA series format, the Velox EMD HDF5 layout,
MRC2014). They write only what the readers need: one image, its calibration and a few
instrument tags. MRC and NCEM EMD are written the same way for symmetry (NCEM through
RosettaSciIO's own writer).

Run ``python tests/make_fixtures.py`` to (re)write the small committed files in ``tests/data``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"


def fixture_image(shape: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    """A deterministic float32 test image: a square lattice of Gaussian columns plus noise."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 100 + 400 * (np.cos(2 * np.pi * xx / 8) * np.cos(2 * np.pi * yy / 8)) ** 2
    img += np.random.default_rng(seed).normal(0, 5, shape)
    return img.astype(np.float32)


# ------------------------------------------------------------------------------------------
# MRC2014
# ------------------------------------------------------------------------------------------


def write_mrc(path, data: np.ndarray, pixel_size_A: float | None = None) -> None:
    """Write a 2-D image or a 3-D stack (frames first) as MRC2014, mode 2 (float32).

    The pixel size is stored, as MRC2014 says, as cell length / sampling (Å); None writes a
    zero cell (no calibration).
    """
    data = np.asarray(data, dtype="<f4")
    stack = data if data.ndim == 3 else data[np.newaxis]
    nz, ny, nx = stack.shape
    header = bytearray(1024)
    struct.pack_into("<4i", header, 0, nx, ny, nz, 2)  # NX NY NZ MODE
    struct.pack_into("<3i", header, 28, nx, ny, nz)  # MX MY MZ (sampling)
    ps = pixel_size_A or 0.0
    struct.pack_into("<3f", header, 40, nx * ps, ny * ps, nz * ps)  # cell lengths (Å)
    struct.pack_into("<3f", header, 52, 90.0, 90.0, 90.0)  # cell angles
    struct.pack_into("<3i", header, 64, 1, 2, 3)  # MAPC MAPR MAPS
    struct.pack_into("<3f", header, 76, stack.min(), stack.max(), stack.mean())
    struct.pack_into("<i", header, 88, 0)  # ISPG: image / image stack
    header[208:212] = b"MAP "
    header[212:216] = bytes([0x44, 0x44, 0, 0])  # MACHST: little endian
    struct.pack_into("<f", header, 216, stack.std())
    Path(path).write_bytes(bytes(header) + stack.tobytes())


# ------------------------------------------------------------------------------------------
# Gatan DigitalMicrograph DM3 / DM4
# ------------------------------------------------------------------------------------------


class _DMWriter:
    """Gatan tag-file writer: big-endian structure, little-endian tag data."""

    def __init__(self, version: int):
        if version not in (3, 4):
            raise ValueError("version must be 3 or 4")
        self.version = version

    def _n(self, value: int) -> bytes:  # lengths and type codes: 4 bytes in DM3, 8 in DM4
        return struct.pack(">Q" if self.version == 4 else ">I", value)

    def tag(self, name: str, body: bytes, group: bool) -> bytes:
        raw = name.encode("latin-1")
        head = struct.pack(">BH", 20 if group else 21, len(raw)) + raw
        if self.version == 4:
            head += struct.pack(">Q", len(body))
        return head + body

    def group(self, tags: list[bytes]) -> bytes:
        return struct.pack(">BB", 0, 0) + self._n(len(tags)) + b"".join(tags)

    def simple(self, value, code: int, fmt: str) -> bytes:
        return b"%%%%" + self._n(1) + self._n(code) + struct.pack("<" + fmt, value)

    def array(self, payload: bytes, code: int, n: int) -> bytes:
        return b"%%%%" + self._n(3) + self._n(20) + self._n(code) + self._n(n) + payload

    def ustring(self, text: str) -> bytes:  # DM stores strings as arrays of uint16
        chars = np.array([ord(c) for c in text], dtype="<u2")
        return self.array(chars.tobytes(), 4, len(text))

    # convenience
    def data(self, name, body):
        return self.tag(name, body, group=False)

    def sub(self, name, tags):
        return self.tag(name, self.group(tags), group=True)


def write_dm(
    path,
    data: np.ndarray,
    pixel_size: float | None = None,
    units: str = "nm",
    version: int | None = None,
    voltage_V: float | None = None,
    dwell_us: float | None = None,
    name: str = "HAADF image",
) -> None:
    """Write a float32 2-D image as a Gatan DM3 or DM4 file (version from the extension).

    ``pixel_size`` is in ``units`` (DM's own calibration); None leaves the image uncalibrated
    (scale 1, no unit). ``voltage_V`` goes to ``Microscope Info/Voltage`` and ``dwell_us`` to
    ``DigiScan/Sample Time``, where the microscope software puts them.
    """
    path = Path(path)
    version = version or (4 if path.suffix.lower() == ".dm4" else 3)
    w = _DMWriter(version)
    img = np.asarray(data, dtype="<f4")
    h, wd = img.shape
    scale, unit = (pixel_size, units) if pixel_size else (1.0, "")
    dim_cal = [
        w.sub(
            "",
            [
                w.data("Origin", w.simple(0.0, 6, "f")),
                w.data("Scale", w.simple(scale, 6, "f")),
                w.data("Units", w.ustring(unit)),
            ],
        )
        for _ in range(2)
    ]
    image_data = w.sub(
        "ImageData",
        [
            w.sub(
                "Calibrations",
                [
                    w.sub(
                        "Brightness",
                        [
                            w.data("Origin", w.simple(0.0, 6, "f")),
                            w.data("Scale", w.simple(1.0, 6, "f")),
                            w.data("Units", w.ustring("")),
                        ],
                    ),
                    w.sub("Dimension", dim_cal),
                ],
            ),
            w.data("Data", w.array(img.tobytes(), 6, img.size)),
            w.data("DataType", w.simple(2, 3, "i")),  # 2 = float32
            w.sub(
                "Dimensions", [w.data("", w.simple(wd, 5, "I")), w.data("", w.simple(h, 5, "I"))]
            ),
            w.data("PixelDepth", w.simple(4, 5, "I")),
        ],
    )
    image_tags = []
    if voltage_V is not None:
        image_tags.append(
            w.sub("Microscope Info", [w.data("Voltage", w.simple(voltage_V, 6, "f"))])
        )
    if dwell_us is not None:
        image_tags.append(w.sub("DigiScan", [w.data("Sample Time", w.simple(dwell_us, 7, "d"))]))
    image = w.sub("", [image_data, w.sub("ImageTags", image_tags), w.data("Name", w.ustring(name))])
    root = w.group([w.sub("ImageList", [image])])
    body = root + b"\x00" * 8  # DM files end with 8 zero bytes
    if version == 4:
        head = struct.pack(">IQI", 4, len(body) + 16, 1)
    else:
        head = struct.pack(">III", 3, len(body) + 12, 1)
    path.write_bytes(head + body)


# ------------------------------------------------------------------------------------------
# FEI/Thermo TIA series (.ser)
# ------------------------------------------------------------------------------------------


def write_ser(path, data: np.ndarray, pixel_size_m: float = 1.0) -> None:
    """Write a float32 2-D image as a single-element TIA series file (version 0x0210).

    TIA calibrates in metres and stores rows bottom-up.
    """
    img = np.asarray(data, dtype="<f4")
    h, w = img.shape
    desc, unit = b"Number", b""
    dims = struct.pack("<Iddi", 1, 0.0, 1.0, 0) + struct.pack("<I", len(desc)) + desc
    dims += struct.pack("<I", len(unit)) + unit
    header_len = 30 + len(dims)
    offset_array_at = header_len
    data_at = offset_array_at + 8
    element = struct.pack("<ddIddIHII", 0.0, pixel_size_m, 0, 0.0, pixel_size_m, 0, 7, w, h)
    element += img[::-1].tobytes()
    tag_at = data_at + len(element)
    tag = struct.pack("<HHI", 0x4152, 0, 1_600_000_000)
    header = struct.pack("<HHHIIII", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, 1, 1)
    header += struct.pack("<II", offset_array_at, 1)
    offsets = struct.pack("<II", data_at, tag_at)
    Path(path).write_bytes(header + dims + offsets + element + tag)


# ------------------------------------------------------------------------------------------
# EMD: Velox (Thermo Fisher) and NCEM (Berkeley)
# ------------------------------------------------------------------------------------------


def write_velox_emd(
    path,
    images: list[tuple[str, np.ndarray]],
    pixel_size_m: float = 2e-11,
    voltage_V: float = 300e3,
    dwell_s: float = 2e-6,
) -> None:
    """Write a Velox EMD (format version 11) with one image dataset per ``(detector, data)``.

    Data may be 2-D or a 3-D stack (frames first); Velox stores (y, x, frame) and its metadata
    as a JSON string in a uint8 column. Datasets are stored in the order given (their group
    names sort that way).
    """
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset(
            "Version", data=np.array([json.dumps({"format": "Velox", "version": "11"}).encode()])
        )
        detectors = {
            f"Detector-{i}": {"DetectorName": det, "DetectorType": "ScanningDetector"}
            for i, (det, _) in enumerate(images)
        }
        for i, (det, img) in enumerate(images):
            arr = np.asarray(img)
            arr = arr[np.newaxis] if arr.ndim == 2 else arr
            group = f.create_group(f"Data/Image/{i:02d}c0ffee{i:024d}")
            group.create_dataset("Data", data=np.moveaxis(arr, 0, -1))
            meta = {
                "BinaryResult": {
                    "PixelSize": {"width": repr(pixel_size_m), "height": repr(pixel_size_m)},
                    "PixelUnitX": "m",
                    "PixelUnitY": "m",
                    "Offset": {"x": "0", "y": "0"},
                    "DetectorIndex": str(i),
                    "Detector": det,
                },
                "Detectors": detectors,
                "Optics": {"AccelerationVoltage": repr(voltage_V)},
                "Scan": {"DwellTime": repr(dwell_s), "FrameTime": "1.0"},
                "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1600000000"}},
                "CustomProperties": {},
            }
            raw = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
            group.create_dataset("Metadata", data=raw[:, np.newaxis])


def write_ncem_emd(path, signals: list[tuple[str, np.ndarray, float, str]], **microscope) -> None:
    """Write an NCEM (Berkeley) EMD with one signal per ``(title, data, scale, units)``.

    Uses RosettaSciIO's NCEM writer for each signal and gathers them in one file; 1-D data is
    written as a spectrum (one signal axis), 2-D as an image. ``microscope`` attributes (for
    example ``voltage=300000``) go to the ``/microscope`` group.
    """
    import h5py
    from rsciio.emd import file_writer

    path = Path(path)
    with h5py.File(path, "w") as out:
        out.attrs["version_major"] = 0
        out.attrs["version_minor"] = 2
        grp = out.create_group("signals")
        grp.attrs["emd_group_type"] = 1
        mic = out.create_group("microscope")
        for key, value in microscope.items():
            mic.attrs[key] = value
        for i, (title, data, scale, units) in enumerate(signals):
            names = ["y", "x"][-data.ndim :]
            axes = [
                {
                    "name": n,
                    "size": s,
                    "scale": scale,
                    "offset": 0.0,
                    "units": units,
                    "navigate": False,
                }
                for n, s in zip(names, data.shape, strict=True)
            ]
            sig = {
                "data": data,
                "axes": axes,
                "metadata": {"General": {"title": title}, "Signal": {}},
                "original_metadata": {},
            }
            tmp = path.with_name(f".{path.stem}-{i}.emd")
            file_writer(str(tmp), sig)
            with h5py.File(tmp, "r") as src:
                src.copy(src["signals"][title], grp, name=title)
            tmp.unlink()


def main() -> None:
    """Write the committed fixtures of tests/data (each a 48 x 64 float32 lattice image)."""
    import imageio.v3 as iio
    import tifffile

    DATA_DIR.mkdir(exist_ok=True)
    img = fixture_image()
    write_dm(
        DATA_DIR / "lattice.dm3", img, pixel_size=0.02, units="nm", voltage_V=200e3, dwell_us=4.0
    )
    write_dm(DATA_DIR / "lattice.dm4", img, pixel_size=20.0, units="pm", voltage_V=300e3)
    write_ser(DATA_DIR / "lattice.ser", img, pixel_size_m=2e-11)
    write_mrc(DATA_DIR / "lattice.mrc", img, pixel_size_A=0.2)
    write_velox_emd(DATA_DIR / "lattice_velox.emd", [("HAADF", img)])
    tifffile.imwrite(
        DATA_DIR / "lattice_imagej.tif",
        img,
        imagej=True,
        resolution=(50.0, 50.0),
        metadata={"unit": "nm"},
    )
    u16 = np.round(img * 100).astype(np.uint16)
    iio.imwrite(DATA_DIR / "lattice_16bit.png", u16)
    np.save(DATA_DIR / "lattice.npy", img)


if __name__ == "__main__":
    main()
