"""HAADF-like images of any crystal seen along a zone axis: the projected columns of a
reference (:func:`motifcat.structure.project`) drawn as Gaussian probe spots of height
``sum(Z^1.7)``, with empty columns at random. Test and benchmark data for the exporter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synthetic import poisson_dose, render_columns


@dataclass(frozen=True, eq=False)
class ProjectedImage:
    """A counted image of a projected crystal and its truth.

    Attributes
    ----------
    image : ndarray float32 (H, W)
    pixel_size_A : float
    xy : ndarray (N, 2)
        Column positions (x, y) in px (every column of the tiling, inside or not).
    column : ndarray of int (N,)
        Index of each column in ``crystal.xy`` (its site).
    present : ndarray of bool (N,)
        False for an emptied column.
    """

    image: np.ndarray
    pixel_size_A: float
    xy: np.ndarray
    column: np.ndarray
    present: np.ndarray


def make_projected(crystal, shape=(256, 256), *, pixel_size_A: float = 0.15,
                   probe_fwhm_A: float = 0.9, dose: float = 300.0, background: float = 30.0,
                   empty_fraction: dict[int, float] | None = None,
                   rotation_deg: float | None = None,
                   seed: int = 0) -> ProjectedImage:
    """An image of ``crystal`` (a :class:`~motifcat.structure.ProjectedCrystal`).

    Parameters
    ----------
    crystal : ProjectedCrystal
    shape : (int, int)
    pixel_size_A, probe_fwhm_A : float
        Å per pixel; probe FWHM in Å.
    dose : float
        Peak counts above background of the brightest column kind.
    background : float
        Counts per pixel.
    empty_fraction : dict, optional
        Column kind -> fraction of those columns (inside the frame) left empty.
    rotation_deg : float, optional
        Lattice rotation (random when None); the origin is shifted at random too.
    seed : int

    Returns
    -------
    ProjectedImage

    Examples
    --------
    >>> from motifcat.structure import load_reference, project
    >>> pc = project(load_reference("proto:perovskite:formula=SrTiO3").atoms, (0, 0, 1))
    >>> img = make_projected(pc, (64, 64), seed=1)
    >>> img.image.shape, bool(img.present.all())
    ((64, 64), True)
    """
    rng = np.random.default_rng(seed)
    c2 = crystal.cell2 / pixel_size_A
    n = int(max(shape) / np.min(np.linalg.norm(c2, axis=1))) + 4
    r = np.arange(-n, n + 1)
    sh = np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)
    ang = np.deg2rad(rng.uniform(0, 360) if rotation_deg is None else rotation_deg)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    xy = ((crystal.xy / pixel_size_A)[None] + (sh @ c2)[:, None]).reshape(-1, 2) @ rot.T
    xy += np.array(shape[::-1]) / 2 + rng.uniform(0, 5, 2)
    col = np.tile(np.arange(len(crystal.xy)), len(sh))
    amp = crystal.contrast[col] / crystal.contrast.max()
    inside = np.all((xy > 0) & (xy < np.array(shape[::-1])), axis=1)
    present = np.ones(len(xy), dtype=bool)
    for kind, frac in (empty_fraction or {}).items():
        cand = np.flatnonzero(inside & (crystal.kind[col] == kind))
        k = int(round(frac * len(cand)))
        if k:
            present[rng.choice(cand, k, replace=False)] = False
    sigma = probe_fwhm_A / 2.3548 / pixel_size_A
    clean = render_columns(shape, xy, dose * amp * present, sigma, background=background)
    image = poisson_dose(clean, 1.0, rng=rng).astype(np.float32)
    return ProjectedImage(image, float(pixel_size_A), xy, col, present)
