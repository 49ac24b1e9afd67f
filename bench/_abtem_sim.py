"""Shared pieces of the abTEM benchmark simulations (runs in ``.bench-venv``, never in motifcat).

Each set is simulated configuration by configuration: the frozen-phonon displacements are drawn
here (not inside abTEM) so that every configuration's displaced positions are known and the
ground truth can carry ``phonon_xy`` and ``floor_rmse_px`` (see the data contract in
``bench/data/README.md``). The ADF image of one configuration is a PRISM scan at the probe's
Nyquist sampling, Fourier-interpolated to the target pixel size (exact for the band-limited ADF
signal of a periodic cell); the configuration mean is blurred by the source size and scaled so
that dose 1 has a mean of 100 counts/px.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

DOSES = np.array([1, 1 / 2, 1 / 5, 1 / 10, 1 / 20, 1 / 50, 1 / 100], dtype=np.float64)
MEAN_COUNTS_AT_DOSE_1 = 100.0


@dataclass(frozen=True)
class Microscope:
    """Probe, detector and sampling of one simulation (angles in mrad, lengths in Å)."""

    energy_eV: float = 80e3
    semiangle_mrad: float = 25.0
    detector_mrad: tuple[float, float] = (80.0, 200.0)
    potential_sampling_A: float = 0.068  # antialias limit 204 mrad at 80 kV
    slice_thickness_A: float = 1.0
    prism_window_A: float = 10.5  # PRISM interpolation: probe window of at least this size
    pixel_size_A: float = 0.12
    source_sigma_A: float = 0.4
    parametrization: str = "lobato"


@dataclass
class Site:
    """Per-site ground truth while a structure is built (positions in Å)."""

    xy_A: np.ndarray  # (N, 2)
    cls: np.ndarray  # (N,) int
    site: np.ndarray  # (N,) int
    present: np.ndarray  # (N,) bool
    class_names: list[str]
    site_names: list[str]
    extra: dict = field(default_factory=dict)


def wavelength_A(energy_eV: float) -> float:
    """Relativistic electron wavelength in Å."""
    m0c2 = 510998.95
    return 12.2642598 / math.sqrt(energy_eV * (1 + energy_eV / (2 * m0c2)))


def displaced_configs(positions, numbers, sigmas_A: dict[int, float], n_cfg: int, seed: int):
    """Frozen-phonon displacements: isotropic Gaussian, sigma per atomic number (Å, per axis)."""
    rng = np.random.default_rng(seed)
    sig = np.array([sigmas_A[int(z)] for z in numbers])[:, None]
    return [positions + rng.normal(size=positions.shape) * sig for _ in range(n_cfg)]


def adf_config(atoms, mic: Microscope, out_gpts: tuple[int, int]):
    """PRISM ADF image (fraction of the incident beam) of one configuration, shape (nx, ny).

    Axis 0 is x as in abTEM; callers transpose to (y, x).
    """
    import abtem

    cell = atoms.cell.lengths()
    f = tuple(max(1, int(c // mic.prism_window_A)) for c in cell[:2])
    gpts = tuple(int(math.ceil(c / mic.potential_sampling_A / fi) * fi)
                 for c, fi in zip(cell[:2], f, strict=True))
    potential = abtem.Potential(
        atoms,
        gpts=gpts,
        slice_thickness=mic.slice_thickness_A,
        parametrization=mic.parametrization,
        projection="infinite",
    )
    s_matrix = abtem.SMatrix(
        potential=potential,
        energy=mic.energy_eV,
        semiangle_cutoff=mic.semiangle_mrad,
        interpolation=f,
    )
    # ADF intensity is band-limited to 2*alpha/lambda: the probe's Nyquist step suffices.
    nyquist = wavelength_A(mic.energy_eV) / (4 * mic.semiangle_mrad * 1e-3)
    scan_gpts = tuple(int(math.ceil(c / nyquist)) for c in cell[:2])
    scan = abtem.GridScan(start=(0, 0), end=tuple(cell[:2]), gpts=scan_gpts, endpoint=False)
    detector = abtem.AnnularDetector(inner=mic.detector_mrad[0], outer=mic.detector_mrad[1])
    measurement = s_matrix.scan(scan=scan, detectors=detector).compute(
        scheduler="threads", num_workers=2, progress_bar=False
    )
    measurement = measurement.interpolate(gpts=out_gpts, method="fft")
    return np.asarray(measurement.array, dtype=np.float64)


def simulate(configs_atoms, mic: Microscope, out_gpts: tuple[int, int], log=print):
    """Configuration-mean ADF image (y, x) blurred by the source size, and per-config seconds."""
    from scipy.ndimage import gaussian_filter

    acc = None
    seconds = []
    for i, atoms in enumerate(configs_atoms):
        t0 = time.perf_counter()
        adf = adf_config(atoms, mic, out_gpts)
        seconds.append(time.perf_counter() - t0)
        acc = adf if acc is None else acc + adf
        log(f"  config {i + 1}/{len(configs_atoms)}: {seconds[-1]:.1f} s")
    mean = (acc / len(configs_atoms)).T  # (y, x)
    cell = configs_atoms[0].cell.lengths()
    px = (cell[0] / out_gpts[0], cell[1] / out_gpts[1])  # (x, y) Å/px
    sigma_px = (mic.source_sigma_A / px[1], mic.source_sigma_A / px[0])
    mean = gaussian_filter(mean, sigma_px, mode="wrap")
    return mean, seconds


def dose_series(adf: np.ndarray, seed: int):
    """Clean image at dose 1 (mean 100 counts/px) and its Poisson draws at ``DOSES``."""
    scale = MEAN_COUNTS_AT_DOSE_1 / adf.mean()
    clean = adf * scale
    rng = np.random.default_rng(seed)
    image = np.stack([rng.poisson(clean * d) for d in DOSES]).astype(np.float32)
    return clean.astype(np.float32), image


def dose_meta(adf: np.ndarray, pixel_size_A: float) -> dict:
    """The dose definition: counts/px at dose 1 and the equivalent incident e/Å²."""
    frac = float(adf.mean())
    e_per_px = MEAN_COUNTS_AT_DOSE_1 / frac
    return {
        "dose_1_mean_counts_per_px": MEAN_COUNTS_AT_DOSE_1,
        "adf_mean_fraction_of_beam": frac,
        "dose_1_incident_e_per_A2": e_per_px / pixel_size_A**2,
        "relative_doses": DOSES.tolist(),
        "definition": "image[d] = Poisson(clean * d); clean = configuration-mean ADF fraction "
        "scaled to a mean of 100 counts/px; one detected electron = one count",
    }


def write_set(path, *, clean, image, pixel_size_A, sites: Site, px_xy, phonon_xy_px, meta):
    """Write one benchmark set per the data contract (float32 images, compressed)."""
    present = sites.present
    with np.errstate(invalid="ignore"):
        mean_cfg = np.nanmean(phonon_xy_px[:, present], axis=0)
    d = np.linalg.norm(mean_cfg - px_xy[present], axis=1)
    floor = float(np.sqrt(np.mean(d**2)))
    np.savez_compressed(
        path,
        image=image.astype(np.float32),
        doses=DOSES,
        clean=clean.astype(np.float32),
        pixel_size_A=np.float64(pixel_size_A),
        xy=px_xy.astype(np.float64),
        cls=sites.cls.astype(np.int64),
        class_names=np.array(sites.class_names),
        site=sites.site.astype(np.int64),
        site_names=np.array(sites.site_names),
        present=present.astype(bool),
        phonon_xy=phonon_xy_px.astype(np.float64),
        floor_rmse_px=np.float64(floor),
        meta_json=np.array(json.dumps(meta, indent=1, default=_json_default)),
    )
    return floor


def microscope_meta(mic: Microscope) -> dict:
    d = asdict(mic)
    d["wavelength_A"] = wavelength_A(mic.energy_eV)
    d["method"] = "abTEM PRISM, infinite projection, configuration-mean ADF, source-size blur"
    return d


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def counts_table(sites: Site) -> dict:
    """Counts per class and presence, for the meta data and the README."""
    out = {}
    for k, name in enumerate(sites.class_names):
        sel = sites.cls == k
        out[name] = {"n": int(sel.sum()), "present": int((sel & sites.present).sum())}
    return out


def pick_isolated(rng, candidates_xy, n, taken_xy, min_dist_A, box_A, margin_A):
    """Pick ``n`` candidate indices at random, none within ``min_dist_A`` of each other or of
    ``taken_xy`` (periodic distance in ``box_A``), and at least ``margin_A`` from the edges."""
    box = np.asarray(box_A, float)
    order = rng.permutation(len(candidates_xy))
    chosen = []
    taken = [np.asarray(t, float) for t in taken_xy]
    for i in order:
        p = candidates_xy[i]
        if np.any(p < margin_A) or np.any(p > box - margin_A):
            continue
        if taken:
            d = np.asarray(taken) - p
            d -= box * np.round(d / box)
            if np.min(np.hypot(d[:, 0], d[:, 1])) < min_dist_A:
                continue
        chosen.append(i)
        taken.append(p)
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise RuntimeError(f"could only place {len(chosen)} of {n} isolated defects")
    return np.array(chosen, dtype=np.int64), taken
