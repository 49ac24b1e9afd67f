"""Synthetic ADF/HAADF-STEM micrographs with ground truth.

Two generators feed the demo, the tests and the benchmarks:

* :func:`make_tmd` -- a 2H transition-metal dichalcogenide monolayer (MoSe2 by default) seen
  along c, with chalcogen single/double vacancies, metal vacancies and antisites;
* :func:`make_cairo` -- a Cairo pentagonal tiling (type-4 monohedral, the Mo-V-Te-Nb oxide model
  of Dan et al., Sci. Adv. 8, eabk1005, 2022, Fig. 2) whose pentagons are filled or empty with a
  spatially correlated pattern, so that larger motifs recur.

Both render incoherent (Z-contrast) images: every atom column is a Gaussian probe spot whose
height is proportional to ``sum(Z**1.7)`` over its atoms, on a constant background, in *expected
counts at relative dose 1*. :func:`poisson_dose` draws the counted image at any lower dose.
Coordinates are (x, y) in pixels, x along axis 1 and y along axis 0, with pixel centres at integer
coordinates; a column is *inside* the image when ``-0.5 <= x < W - 0.5`` and likewise for y.

The ground truth is an **independent oracle** for the hierarchy: the faces and their keys in
``truth`` come from this module's own half-edge walk over the *ideal* lattice bonds
(:func:`_planar_faces`) and its own dihedral key (:func:`canonical_cycle_key`, plain
``"A-B-C"`` cycles), not from :mod:`motifcat.ingest.hierarchy`, which builds its graph from
*detected* columns and keys units as ``"n[a,b,...](c)"``. Reusing the hierarchy's face walk
and keys here would make the tests that compare the two agree by construction, bugs included.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase.data import atomic_numbers
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import MotifcatError
from ..ingest.model import Micrograph

__all__ = [
    "SynthParameterError",
    "SyntheticImage",
    "canonical_cycle_key",
    "make_cairo",
    "make_tmd",
    "poisson_dose",
    "render_columns",
]

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))

TMD_DEFECTS = ("chalcogen_single", "chalcogen_double", "metal_vacancy", "antisite")
TMD_CLASSES = ["M", "X2", "X1", "antisite"]
CAIRO_CLASSES = ["vertex3", "vertex4", "centre"]
CAIRO_PATTERNS = ("0", "1", "2-adjacent", "2-opposite", "3", "4")

# Equilateral Cairo tiling in a unit square cell: the 3-valent vertices come in pairs centred on
# the cell-edge midpoints, each pair spanning +-(u, u); equal edges need 6u^2 + u - 1/4 = 0.
_CAIRO_U = (np.sqrt(7.0) - 1.0) / 12.0
_CAIRO_EDGE = 2.0 * np.sqrt(2.0) * _CAIRO_U  # edge length in units of the cell side (0.3879)


class SynthParameterError(MotifcatError, ValueError):
    """A parameter of a synthetic-image generator is out of range."""


@dataclass(frozen=True, eq=False)
class SyntheticImage:
    """A synthetic micrograph and the ground truth it was drawn from.

    Attributes
    ----------
    clean : ndarray of float64, shape (H, W)
        Noise-free expected counts per pixel at relative dose 1 (background included).
    image : ndarray of float32, shape (H, W)
        A Poisson draw of ``clean`` (or ``clean`` itself when generated with ``noise=False``).
    pixel_size_A : float
        Å per pixel.
    xy : ndarray of float64, shape (N, 2)
        True positions (x, y) in pixels of the columns whose centre lies inside the image.
    column_class : ndarray of int, shape (N,)
        Ground-truth column type, an index into ``class_names``.
    class_names : list of str
    site : ndarray of int, shape (N,)
        Sublattice: 0 = metal site (TMD) or tiling vertex (Cairo), 1 = chalcogen site (TMD) or
        pentagon centre (Cairo).
    truth : dict
        Generator-specific ground truth; see :func:`make_tmd` and :func:`make_cairo`.
    material : str
        E.g. ``"MoSe2"`` or ``"MoVTeNbO-cairo"``.
    params : dict
        The generator's arguments (JSON-serialisable), for provenance.
    """

    clean: np.ndarray
    image: np.ndarray
    pixel_size_A: float
    xy: np.ndarray
    column_class: np.ndarray
    class_names: list[str]
    site: np.ndarray
    truth: dict[str, Any]
    material: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.clean.shape)  # type: ignore[return-value]

    def at_dose(self, relative_dose: float, seed: int | np.random.Generator | None = 0):
        """The same specimen imaged at a lower (or higher) dose.

        Parameters
        ----------
        relative_dose : float
            Dose relative to the generator's ``dose`` (1 = full dose, 0.02 = 1/50).
        seed : int, Generator or None
            Seed of the Poisson draw.

        Returns
        -------
        SyntheticImage
            A copy whose ``image`` is ``Poisson(clean * relative_dose)``; ``clean`` and the
            truth are shared with ``self``.

        Examples
        --------
        >>> s = make_tmd((64, 64), noise=False)
        >>> float(s.at_dose(0.1).image.mean()) < float(s.clean.mean())
        True
        """
        return dataclasses.replace(
            self,
            image=poisson_dose(self.clean, relative_dose, seed),
            params={**self.params, "relative_dose": float(relative_dose)},
        )

    def micrograph(self, path: str | None = None) -> Micrograph:
        """The noisy image as a :class:`~motifcat.ingest.model.Micrograph`.

        Parameters
        ----------
        path : str or None
            Recorded as the micrograph's source (provenance only; nothing is written).

        Returns
        -------
        Micrograph
            ``data`` is ``image`` (float32), calibrated with ``pixel_size_A``; the metadata say
            it is synthetic and name the material.

        Examples
        --------
        >>> m = make_tmd((64, 64)).micrograph()
        >>> m.shape, len(m.sha256)
        ((64, 64), 64)
        """
        metadata = {
            "signal_type": "synthetic HAADF-STEM",
            "original_format": "synthetic",
            "material": self.material,
            "generator": "motifcat.datasets",
        }
        data = np.ascontiguousarray(self.image, dtype=np.float32)
        try:
            from ..ingest.io import micrograph_from_array
        except ImportError:
            micrograph_from_array = None
        if micrograph_from_array is not None:
            return micrograph_from_array(
                data, pixel_size_A=self.pixel_size_A, path=path, metadata=metadata
            )
        # Same identity as io.micrograph_from_array: little-endian float32 bytes + b"<H>x<W>".
        digest = hashlib.sha256(data.astype("<f4").tobytes())
        digest.update(f"{data.shape[0]}x{data.shape[1]}".encode())
        return Micrograph(
            data=data,
            pixel_size_A=float(self.pixel_size_A),
            path=path,
            sha256=digest.hexdigest(),
            metadata=metadata,
        )


# --------------------------------------------------------------------------------------------
# Rendering and noise
# --------------------------------------------------------------------------------------------


def poisson_dose(
    clean: np.ndarray,
    relative_dose: float = 1.0,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Counted image at a relative dose: a Poisson draw with mean ``clean * relative_dose``.

    Parameters
    ----------
    clean : ndarray, shape (H, W)
        Expected counts per pixel at relative dose 1 (non-negative, finite).
    relative_dose : float
        Dose relative to the one ``clean`` was computed for (> 0).
    rng : int, Generator or None
        Seed or generator of the draw.

    Returns
    -------
    ndarray of float32, shape (H, W)
        Counts (integers stored as float32). Divide by ``relative_dose`` to compare with
        ``clean``.

    Raises
    ------
    SynthParameterError
        If ``relative_dose`` is not positive or ``clean`` has negative or non-finite values.

    Examples
    --------
    >>> counts = poisson_dose(np.full((100, 100), 50.0), 0.5, rng=0)
    >>> counts.dtype.name, round(float(counts.mean()))
    ('float32', 25)
    """
    clean = np.asarray(clean, dtype=np.float64)
    if not np.isfinite(relative_dose) or relative_dose <= 0:
        raise SynthParameterError(f"relative_dose must be > 0, got {relative_dose!r}")
    if clean.size and (not np.all(np.isfinite(clean)) or clean.min() < 0):
        raise SynthParameterError("clean image must be finite and non-negative (expected counts)")
    gen = np.random.default_rng(rng)
    return gen.poisson(clean * relative_dose).astype(np.float32)


def render_columns(
    shape: tuple[int, int],
    xy: np.ndarray,
    amplitude: np.ndarray,
    sigma_px: float,
    *,
    background: float = 0.0,
    truncate: float = 4.0,
) -> np.ndarray:
    """Incoherent image of atom columns: a sum of isotropic Gaussians sampled at pixel centres.

    Each column is evaluated exactly (no splatting) inside a square of half-width
    ``ceil(truncate * sigma_px)`` pixels. The Gaussians are separable, so a block of columns is
    rendered as outer products and accumulated with one ``bincount`` per band of rows; the cost
    is ``O(N * (2r + 1)**2)`` with no Python loop over columns.

    Parameters
    ----------
    shape : (int, int)
        Image shape (H, W).
    xy : ndarray, shape (N, 2)
        Column positions (x, y) in pixels; columns outside the frame contribute their tails.
    amplitude : ndarray, shape (N,)
        Peak height of each column (counts).
    sigma_px : float
        Standard deviation of the probe in pixels (FWHM / 2.3548).
    background : float
        Constant added to every pixel (counts).
    truncate : float
        Cut-off radius in units of ``sigma_px`` (4 keeps the error below 3.4e-4 of the peak).

    Returns
    -------
    ndarray of float64, shape (H, W)

    Examples
    --------
    >>> img = render_columns((21, 21), np.array([[10.0, 10.0]]), np.array([100.0]), 2.0)
    >>> float(img.max()), tuple(int(i) for i in np.unravel_index(img.argmax(), img.shape))
    (100.0, (10, 10))
    """
    h, w = (int(shape[0]), int(shape[1]))
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    amplitude = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (len(xy),))
    if not sigma_px > 0:
        raise SynthParameterError(f"sigma_px must be > 0, got {sigma_px!r}")
    out = np.full((h, w), float(background), dtype=np.float64)
    r = int(np.ceil(truncate * sigma_px))
    offsets = np.arange(-r, r + 1)
    size = len(offsets)
    # Keep only columns whose square reaches the frame.
    keep = (
        (xy[:, 0] > -r - 1)
        & (xy[:, 0] < w + r)
        & (xy[:, 1] > -r - 1)
        & (xy[:, 1] < h + r)
        & (amplitude != 0)
    )
    xy, amplitude = xy[keep], amplitude[keep]
    # Sorting by row makes each block cover a narrow band of rows, so that the bincount output
    # (and its allocation) stays small even for 4096^2 images.
    order = np.argsort(xy[:, 1], kind="stable")
    xy, amplitude = xy[order], amplitude[order]
    block = max(1, 4_000_000 // (size * size))
    inv2s2 = 1.0 / (2.0 * sigma_px * sigma_px)
    for start in range(0, len(xy), block):
        x = xy[start : start + block, 0]
        y = xy[start : start + block, 1]
        a = amplitude[start : start + block]
        px = np.rint(x).astype(np.int64)[:, None] + offsets
        py = np.rint(y).astype(np.int64)[:, None] + offsets
        gx = np.exp(-((px - x[:, None]) ** 2) * inv2s2) * ((px >= 0) & (px < w))
        gy = np.exp(-((py - y[:, None]) ** 2) * inv2s2) * ((py >= 0) & (py < h)) * a[:, None]
        y0 = max(int(py.min()), 0)
        y1 = min(int(py.max()) + 1, h)
        if y1 <= y0:
            continue
        pxc = np.clip(px, 0, w - 1)
        pyc = np.clip(py, y0, y1 - 1) - y0
        idx = pyc[:, :, None] * w + pxc[:, None, :]
        vals = gy[:, :, None] * gx[:, None, :]
        band = np.bincount(idx.ravel(), weights=vals.ravel(), minlength=(y1 - y0) * w)
        out[y0:y1] += band.reshape(y1 - y0, w)
    return out


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _check_shape(shape) -> tuple[int, int]:
    try:
        h, w = (int(shape[0]), int(shape[1]))
        ok = len(shape) == 2
    except (TypeError, ValueError, IndexError):
        ok = False
    if not ok or h < 16 or w < 16:
        raise SynthParameterError(f"shape must be two integers >= 16, got {shape!r}")
    return h, w


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, int | float | np.floating | np.integer) and np.isfinite(v) and v > 0):
            raise SynthParameterError(f"{name} must be a positive number, got {v!r}")


def _rotation(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _inside(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)


def _cell_range(
    cell: np.ndarray, origin: np.ndarray, shape: tuple[int, int], pad: float
) -> tuple[np.ndarray, np.ndarray]:
    """Integer cell coordinates (i, j) whose origin ``origin + i*cell[0] + j*cell[1]`` can fall
    inside the padded frame."""
    h, w = shape
    corners = np.array(
        [[-pad, -pad], [w + pad, -pad], [-pad, h + pad], [w + pad, h + pad]], dtype=np.float64
    )
    frac = np.linalg.solve(cell.T, (corners - origin).T).T
    lo = np.floor(frac.min(axis=0)).astype(int) - 1
    hi = np.ceil(frac.max(axis=0)).astype(int) + 1
    i, j = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    return i, j


def _expected_period(
    cell: np.ndarray, basis: np.ndarray, weight: np.ndarray, sigma_px: float, min_period: float
) -> float:
    """Period (px) of the strongest ring of the power spectrum of a blurred periodic crystal.

    Kinematic structure factors ``F(G) = sum_j w_j exp(2 pi i G.r_j)`` damped by the probe's
    transfer function, summed over each ring |G|: that is what ``lattice.lattice_period``
    measures (its frequency weighting cancels the ring circumference).
    """
    recip = np.linalg.inv(cell).T  # rows b1, b2 with a_i . b_j = delta_ij
    hk = np.stack(np.meshgrid(np.arange(-6, 7), np.arange(-6, 7)), -1).reshape(-1, 2)
    hk = hk[np.any(hk != 0, axis=1)]
    g = hk @ recip
    q = np.linalg.norm(g, axis=1)
    keep = q <= 1.0 / min_period
    g, q = g[keep], q[keep]
    f = (weight[None, :] * np.exp(2j * np.pi * (g @ basis.T))).sum(axis=1)
    power = np.abs(f) ** 2 * np.exp(-4.0 * np.pi**2 * sigma_px**2 * q**2)
    rings, inv = np.unique(np.round(q, 9), return_inverse=True)
    ring_power = np.bincount(inv, weights=power)
    return float(1.0 / rings[np.argmax(ring_power)])


def _canonical_codes(codes: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Dihedral canonical form of equal-length label cycles (rows of ``codes``).

    Returns the lexicographically smallest rotation/reflection of each row and its integer
    encoding (base ``base``), vectorised over rows.
    """
    n, length = codes.shape
    s = np.arange(length)
    rot = (s[None, :] + s[:, None]) % length  # (L, L) rotations
    variants = np.concatenate([rot, rot[:, ::-1]])  # + reflections
    allv = codes[:, variants]  # (n, 2L, L)
    enc = np.zeros(allv.shape[:2], dtype=np.int64)
    for k in range(length):  # Horner over the (short) cycle length, not over faces
        enc = enc * base + allv[:, :, k]
    best = np.argmin(enc, axis=1)
    return allv[np.arange(n), best], enc[np.arange(n), best]


def canonical_cycle_key(names: list[str] | tuple[str, ...]) -> str:
    """Canonical key of a cyclic label sequence, invariant to rotation and reflection.

    Parameters
    ----------
    names : sequence of str
        Labels around a polygon, in order.

    Returns
    -------
    str
        The lexicographically smallest rotation or reflection, joined by ``"-"``.

    Examples
    --------
    >>> canonical_cycle_key(["X2", "M", "X1", "M", "X2", "M"])
    'M-X1-M-X2-M-X2'
    """
    names = [str(n) for n in names]
    if not names:
        raise SynthParameterError("canonical_cycle_key needs at least one label")
    n = len(names)
    # One cycle: the 2n rotations/reflections compared as tuples (same order as the
    # vectorised _canonical_codes, whose codes are the ranks of the sorted names).
    forms = [tuple(seq[k:] + seq[:k]) for seq in (names, names[::-1]) for k in range(n)]
    return "-".join(min(forms))


def _planar_faces(
    xy: np.ndarray, edges: np.ndarray, max_size: int = 24
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounded faces of a plane straight-line graph, by half-edge traversal.

    Returns ``indptr, indices`` (CSR lists of the vertex cycle of each face, counter-clockwise
    in (x, y)) and the signed area of each face. Faces longer than ``max_size`` (the outer face)
    are dropped.
    """
    e = len(edges)
    if e == 0:
        return np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0)
    org = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    twin = (np.arange(2 * e) + e) % (2 * e)
    d = xy[dst] - xy[org]
    ang = np.arctan2(d[:, 1], d[:, 0])
    order = np.lexsort((ang, org))
    pos = np.empty(2 * e, np.int64)
    pos[order] = np.arange(2 * e)
    deg = np.bincount(org, minlength=len(xy))
    start = np.concatenate([[0], np.cumsum(deg)[:-1]])
    # The face to the left of u->v continues with the edge out of v that comes just before
    # v->u in counter-clockwise order (the sharpest left turn).
    t = twin
    v = dst
    rank = pos[t] - start[v]
    nxt = order[start[v] + (rank - 1) % deg[v]]
    graph = coo_matrix((np.ones(2 * e), (np.arange(2 * e), nxt)), shape=(2 * e, 2 * e))
    n_comp, comp = connected_components(graph, directed=True, connection="strong")
    sizes = np.bincount(comp, minlength=n_comp)
    _, first = np.unique(comp, return_index=True)
    keep = sizes <= max_size
    first, sizes = first[keep], sizes[keep]
    cur = first.copy()
    seq = np.full((len(first), max_size), -1, np.int64)
    for k in range(int(sizes.max(initial=0))):  # walk all faces in step, one vertex per step
        active = k < sizes
        seq[active, k] = org[cur[active]]
        cur = nxt[cur]
    indptr = np.concatenate([[0], np.cumsum(sizes)])
    indices = seq[seq >= 0] if len(seq) else np.zeros(0, np.int64)
    # Shoelace area per face, to drop the clockwise outer boundary.
    nxt_v = seq.copy()
    for s in np.unique(sizes):  # few distinct sizes
        rows = sizes == s
        nxt_v[rows, :s] = np.roll(seq[rows, :s], -1, axis=1)
    valid = seq >= 0
    xs = np.where(valid, xy[np.maximum(seq, 0), 0], 0.0)
    ys = np.where(valid, xy[np.maximum(seq, 0), 1], 0.0)
    xn = np.where(valid, xy[np.maximum(nxt_v, 0), 0], 0.0)
    yn = np.where(valid, xy[np.maximum(nxt_v, 0), 1], 0.0)
    area = 0.5 * (xs * yn - xn * ys).sum(axis=1)
    return indptr, indices, area


def _face_keys(
    indptr: np.ndarray, indices: np.ndarray, vertex_label: np.ndarray, names: list[str]
) -> np.ndarray:
    """Canonical key (str) of every face given integer vertex labels."""
    sizes = np.diff(indptr)
    keys = np.empty(len(sizes), dtype=object)
    alphabet_order = np.argsort(names)  # code = rank of the name, so keys sort like strings
    rank = np.empty(len(names), np.int64)
    rank[alphabet_order] = np.arange(len(names))
    sorted_names = [names[i] for i in alphabet_order]
    for s in np.unique(sizes):  # loop over distinct face sizes only
        rows = np.flatnonzero(sizes == s)
        cyc = indices[indptr[rows][:, None] + np.arange(s)]
        best, enc = _canonical_codes(rank[vertex_label[cyc]], len(names) + 1)
        uniq, first, inv = np.unique(enc, return_index=True, return_inverse=True)
        text = np.array(
            ["-".join(sorted_names[c] for c in best[f]) for f in first], dtype=object
        )
        keys[rows] = text[inv]
    return keys


def _independent_set(xy: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A random maximal set of points no two of which are closer than ``radius``.

    Luby's parallel rounds: a point joins when its random priority beats every undecided
    neighbour; its neighbours then drop out. Returns a boolean mask.
    """
    n = len(xy)
    pairs = cKDTree(xy).query_pairs(radius * (1 - 1e-9), output_type="ndarray")
    prio = rng.random(n)
    state = np.zeros(n, np.int8)  # 0 undecided, 1 in, -1 out
    while np.any(state == 0):
        und = (state[pairs[:, 0]] == 0) & (state[pairs[:, 1]] == 0)
        p = pairs[und]
        loser = np.where(prio[p[:, 0]] < prio[p[:, 1]], p[:, 0], p[:, 1])
        beaten = np.zeros(n, bool)
        beaten[loser] = True
        winners = (state == 0) & ~beaten
        state[winners] = 1
        touch = p[winners[p[:, 0]] | winners[p[:, 1]]]
        state[touch[(state[touch] == 0)]] = -1
    return state == 1


# --------------------------------------------------------------------------------------------
# TMD monolayer
# --------------------------------------------------------------------------------------------


def make_tmd(
    shape: tuple[int, int] = (512, 512),
    *,
    pixel_size_A: float = 0.15,
    a_A: float = 3.288,
    metal: str = "Mo",
    chalcogen: str = "Se",
    defects: dict[str, float] | None = None,
    probe_fwhm_A: float = 0.9,
    background: float = 30.0,
    dose: float = 300.0,
    z_exponent: float = 1.7,
    rotation_deg: float = 0.0,
    min_defect_separation: float = 2.5,
    jitter_A: float = 0.0,
    noise: bool = True,
    seed: int = 0,
) -> SyntheticImage:
    """HAADF-STEM image of a 2H TMD monolayer (MoSe2 by default) with point defects.

    Seen along c, the monolayer projects onto a honeycomb: metal columns (one atom) and
    chalcogen-pair columns (two atoms) alternate, the nearest M-X2 projected distance being
    ``a / sqrt(3)``. Each column is a Gaussian probe spot of height ``dose * sum(Z**g) /
    Z_metal**g`` (incoherent Z-contrast with ``g = z_exponent``) on a constant ``background``.

    Parameters
    ----------
    shape : (int, int)
        Image shape (H, W) in pixels.
    pixel_size_A : float
        Å per pixel.
    a_A : float
        In-plane lattice constant in Å (MoSe2: 3.288; MoS2: 3.160; WSe2: 3.282).
    metal, chalcogen : str
        Element symbols (they set Z and the material name).
    defects : dict or None
        Fraction of the relevant sites carrying each defect (default
        ``{"chalcogen_single": 0.02, "chalcogen_double": 0.01, "metal_vacancy": 0.005,
        "antisite": 0.005}``): ``chalcogen_single`` (X2 -> X1 column), ``chalcogen_double``
        (chalcogen column removed) and ``antisite`` (one metal atom on a chalcogen site) are
        fractions of the chalcogen sites, ``metal_vacancy`` of the metal sites. The counts
        are exact: ``round(fraction * sites inside the image)``; sites outside the frame (whose
        tails still reach it) are perfect. Missing keys mean 0.
    probe_fwhm_A : float
        Full width at half maximum of the Gaussian probe (Å).
    background : float
        Constant background at relative dose 1 (counts per pixel; amorphous support).
    dose : float
        Dose scale at relative dose 1: the peak height, in counts above the background, of an
        isolated perfect metal column. With the defaults a Mo column peaks at ~300 counts and an
        Se2 column at ~420 (Z^1.7 contrast) above 30 counts of background, a realistic HAADF
        frame; the dose benchmark divides it by 1 ... 100 with :func:`poisson_dose`.
    z_exponent : float
        Exponent of the Z-contrast.
    rotation_deg : float
        Rotation of the lattice about the image centre: the first lattice vector makes this
        angle with +x, measured towards +y (clockwise on screen, where y points down). The
        lattice origin is also shifted at random.
    min_defect_separation : float
        Smallest distance between two defects in nearest-neighbour distances. The default
        (2.5, i.e. at least sqrt(7) nn) keeps the faces each defect changes disjoint, so that
        the per-defect hierarchy counts in ``truth["hierarchy"]`` add up. 0 = independent.
    jitter_A : float
        Standard deviation of random column displacements (Å; thermal/scan noise). The true
        positions in ``xy`` include them.
    noise : bool
        Draw ``image`` from a Poisson distribution (otherwise ``image`` = ``clean``).
    seed : int
        Seed of every random choice; the same seed gives the same image and truth.

    Returns
    -------
    SyntheticImage
        ``class_names = ["M", "X2", "X1", "antisite"]``; ``site`` 0 = metal, 1 = chalcogen.
        ``truth`` holds:

        - ``defects``: list of dicts ``{"kind", "xy" (px), "column" (index into xy, -1 when the
          column is removed), "neighbours" (indices of the columns within one nn distance)}``;
          also as arrays ``defect_kind`` (D,), ``defect_xy`` (D, 2), ``defect_column`` (D,).
        - ``defect_counts``: kind -> number of defects inside the image.
        - ``near_defect``: (N,) bool, columns within one nn distance of a defect (the defect
          column itself included).
        - ``lattice_vectors_px``: (2, 2), rows a1, a2 in px; ``nn_distance_px``: a/sqrt(3) in px.
        - ``period_px``: period of the strongest ring of the image's power spectrum (the
          {100} or {110} ring, from the blurred structure factors).
        - ``faces``: the level-2 units, faces of the true column graph (edges between present
          columns one nn apart) lying entirely inside the image: ``indptr``/``indices`` (CSR,
          indices into xy, counter-clockwise), ``key`` (canonical label cycle of each face in
          terms of ``class_names``), ``key_counts`` (key -> count).
        - ``hierarchy``: what each isolated defect does to the level-2 faces (hexagons of
          alternating M and X2 columns): ``perfect_key`` and ``per_defect[kind] = {"removed":
          {key: n}, "added": {key: n}, "level3": description}``. A single vacancy or an
          antisite relabels the 3 hexagons around it; a removed column merges them into one
          dodecagon. Both vacancies give the same dodecagon key: only the level-1 classes
          of its columns (and the image) tell them apart.

    Raises
    ------
    SynthParameterError
        For a non-positive size, an unknown defect kind, fractions outside [0, 1) or too high
        for ``min_defect_separation``.

    Examples
    --------
    >>> s = make_tmd((128, 128), seed=1)
    >>> s.class_names
    ['M', 'X2', 'X1', 'antisite']
    >>> round(s.truth["nn_distance_px"], 2)
    12.66
    """
    h, w = _check_shape(shape)
    _check_positive(
        pixel_size_A=pixel_size_A, a_A=a_A, probe_fwhm_A=probe_fwhm_A, dose=dose,
        z_exponent=z_exponent,
    )
    if not (np.isfinite(background) and background >= 0):
        raise SynthParameterError(f"background must be >= 0 counts, got {background!r}")
    if not np.isfinite(rotation_deg):
        raise SynthParameterError(f"rotation_deg must be finite, got {rotation_deg!r}")
    if not (np.isfinite(jitter_A) and jitter_A >= 0):
        raise SynthParameterError(f"jitter_A must be >= 0 Å, got {jitter_A!r}")
    if not (np.isfinite(min_defect_separation) and min_defect_separation >= 0):
        raise SynthParameterError(
            f"min_defect_separation must be >= 0 nn distances, got {min_defect_separation!r}"
        )
    for name, sym in (("metal", metal), ("chalcogen", chalcogen)):
        if sym not in atomic_numbers:
            raise SynthParameterError(f"{name} must be an element symbol, got {sym!r}")
    if defects is None:
        defects = {
            "chalcogen_single": 0.02, "chalcogen_double": 0.01,
            "metal_vacancy": 0.005, "antisite": 0.005,
        }
    unknown = set(defects) - set(TMD_DEFECTS)
    if unknown:
        raise SynthParameterError(
            f"unknown defect kind(s) {sorted(unknown)}; expected some of {list(TMD_DEFECTS)}"
        )
    frac = {k: float(defects.get(k, 0.0)) for k in TMD_DEFECTS}
    for k, f in frac.items():
        if not (0.0 <= f < 1.0):
            raise SynthParameterError(f"defect fraction {k!r} must be in [0, 1), got {f!r}")
    if frac["chalcogen_single"] + frac["chalcogen_double"] + frac["antisite"] >= 1.0:
        raise SynthParameterError("chalcogen defect fractions must add up to less than 1")

    rng = np.random.default_rng(seed)
    a_px = a_A / pixel_size_A
    nn_px = a_px / np.sqrt(3.0)
    sigma_px = probe_fwhm_A * FWHM_TO_SIGMA / pixel_size_A
    rot = _rotation(rotation_deg)
    cell = (rot @ (a_px * np.array([[1.0, 0.0], [0.5, np.sqrt(3.0) / 2.0]])).T).T
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    origin = centre + rng.random(2) @ cell
    pad = 4.0 * sigma_px + 2.0
    ii, jj = _cell_range(cell, origin, (h, w), pad + a_px)
    r0 = origin + ii.reshape(-1, 1) * cell[0] + jj.reshape(-1, 1) * cell[1]
    x_off = (cell[0] + cell[1]) / 3.0  # chalcogen site, a/sqrt(3) from its metal
    sites = np.concatenate([r0, r0 + x_off])
    site = np.repeat(np.array([0, 1]), len(r0))
    near_frame = (
        (sites[:, 0] > -pad) & (sites[:, 0] < w + pad) & (sites[:, 1] > -pad)
        & (sites[:, 1] < h + pad)
    )
    sites, site = sites[near_frame], site[near_frame]
    if jitter_A > 0:
        sites = sites + rng.normal(0.0, jitter_A / pixel_size_A, sites.shape)
    inside = _inside(sites, (h, w))

    # ---- defects: exact counts among the sites inside the image, optionally kept apart
    cls = np.where(site == 0, 0, 1)  # 0 M, 1 X2, 2 X1, 3 antisite, -1 removed
    eligible = inside.copy()
    if min_defect_separation > 0:
        spaced = np.zeros(len(sites), bool)
        spaced[inside] = _independent_set(sites[inside], min_defect_separation * nn_px, rng)
        eligible &= spaced
    kind_of_site = np.full(len(sites), -1, np.int64)
    for sub, kinds in ((0, ("metal_vacancy",)), (1, ("chalcogen_single", "chalcogen_double",
                                                     "antisite"))):
        n_sub = int(np.count_nonzero(inside & (site == sub)))
        counts = [int(round(frac[k] * n_sub)) for k in kinds]
        pool = np.flatnonzero(eligible & (site == sub))
        if sum(counts) > len(pool):
            raise SynthParameterError(
                f"defect fractions {dict(zip(kinds, [frac[k] for k in kinds], strict=True))} "
                f"need {sum(counts)} separated sites but only {len(pool)} are available with "
                f"min_defect_separation={min_defect_separation}; lower one or the other"
            )
        chosen = rng.permutation(pool)[: sum(counts)]
        bounds = np.cumsum([0, *counts])
        for k, kind in enumerate(kinds):
            kind_of_site[chosen[bounds[k] : bounds[k + 1]]] = TMD_DEFECTS.index(kind)
    cls[kind_of_site == TMD_DEFECTS.index("chalcogen_single")] = 2
    cls[kind_of_site == TMD_DEFECTS.index("antisite")] = 3
    removed = np.isin(kind_of_site, [TMD_DEFECTS.index("chalcogen_double"),
                                     TMD_DEFECTS.index("metal_vacancy")])
    cls[removed] = -1

    # ---- contrast and rendering
    zm = float(atomic_numbers[metal]) ** z_exponent
    zx = float(atomic_numbers[chalcogen]) ** z_exponent
    weight = np.array([zm, 2 * zx, zx, zm]) / zm  # M, X2, X1, antisite
    present = cls >= 0
    amp = dose * weight[cls[present]]
    clean = render_columns((h, w), sites[present], amp, sigma_px, background=background)
    image = poisson_dose(clean, 1.0, rng) if noise else clean.astype(np.float32)

    # ---- ground truth of the columns inside the image
    col_mask = present & inside
    col_index = np.full(len(sites), -1, np.int64)
    col_index[col_mask] = np.arange(np.count_nonzero(col_mask))
    xy = sites[col_mask]
    tree = cKDTree(xy)
    dsite = np.flatnonzero(kind_of_site >= 0)
    d_xy = sites[dsite]
    d_kind = np.array([TMD_DEFECTS[k] for k in kind_of_site[dsite]], dtype=object)
    d_col = col_index[dsite]
    neigh = tree.query_ball_point(d_xy, 1.05 * nn_px) if len(dsite) else []
    near = np.zeros(len(xy), bool)
    if len(dsite):
        near = cKDTree(d_xy).query(xy, distance_upper_bound=1.05 * nn_px)[0] < 1.05 * nn_px
    defect_list = []
    for k in range(len(dsite)):  # one record per defect (a few per cent of the sites)
        nb = np.array(sorted(neigh[k]), dtype=np.int64)
        defect_list.append({
            "kind": str(d_kind[k]),
            "xy": d_xy[k].copy(),
            "column": int(d_col[k]),
            "neighbours": nb[nb != d_col[k]],
        })

    # ---- level-2 faces of the true column graph
    pairs = cKDTree(sites[present]).query_pairs(1.2 * nn_px, output_type="ndarray")
    pidx = np.flatnonzero(present)
    f_ptr, f_ind, f_area = _planar_faces(sites[present], pairs)
    f_ind_site = pidx[f_ind]
    f_sizes = np.diff(f_ptr)
    f_of = np.repeat(np.arange(len(f_sizes)), f_sizes)
    n_out = np.bincount(f_of, weights=~inside[f_ind_site], minlength=len(f_sizes))
    f_keep = (n_out == 0) & (f_area > 0)
    sizes = f_sizes[f_keep]
    ind = f_ind_site[f_keep[f_of]]
    face_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    face_ind = col_index[ind]
    face_key = _face_keys(face_ptr, face_ind, cls[col_mask], TMD_CLASSES)
    uk, uc = np.unique(face_key.astype(str), return_counts=True) if len(face_key) else ([], [])
    key_counts = {str(k): int(c) for k, c in zip(uk, uc, strict=True)}

    perfect = canonical_cycle_key(["M", "X2"] * 3)
    dodecagon = canonical_cycle_key(["M", "X2"] * 6)
    dodecagon_ring = "1 dodecagon (the 3 hexagons around the removed column merged), ringed by 9 "
    dodecagon_ring += "perfect hexagons"
    hierarchy = {
        "perfect_key": perfect,
        "per_defect": {
            "chalcogen_single": {
                "removed": {perfect: 3},
                "added": {canonical_cycle_key(["M", "X1"] + ["M", "X2"] * 2): 3},
                "level3": "3 modified hexagons sharing the X1 column",
            },
            "antisite": {
                "removed": {perfect: 3},
                "added": {canonical_cycle_key(["M", "antisite"] + ["M", "X2"] * 2): 3},
                "level3": "3 modified hexagons sharing the antisite column",
            },
            "chalcogen_double": {
                "removed": {perfect: 3}, "added": {dodecagon: 1}, "level3": dodecagon_ring,
            },
            "metal_vacancy": {
                "removed": {perfect: 3}, "added": {dodecagon: 1}, "level3": dodecagon_ring,
            },
        },
        "note": "per-defect counts hold for defects at least sqrt(7) nn apart "
                "(min_defect_separation >= 2.5) and two nn away from the border; keys are "
                "canonical label cycles in terms of class_names; truth['faces'] is exact",
    }
    truth = {
        "defects": defect_list,
        "defect_kind": d_kind.astype(str),
        "defect_xy": d_xy,
        "defect_column": d_col,
        "defect_counts": {k: int(np.count_nonzero(d_kind == k)) for k in TMD_DEFECTS},
        "near_defect": near,
        "lattice_vectors_px": cell,
        "nn_distance_px": float(nn_px),
        "period_px": _expected_period(
            cell, np.array([[0.0, 0.0], x_off]), np.array([1.0, 2 * zx / zm]), sigma_px, 3.0
        ),
        "sigma_px": float(sigma_px),
        "faces": {"indptr": face_ptr, "indices": face_ind, "key": face_key.astype(str),
                  "key_counts": key_counts},
        "hierarchy": hierarchy,
    }
    params = {
        "generator": "make_tmd", "shape": [h, w], "pixel_size_A": pixel_size_A, "a_A": a_A,
        "metal": metal, "chalcogen": chalcogen, "defects": frac, "probe_fwhm_A": probe_fwhm_A,
        "background": background, "dose": dose, "z_exponent": z_exponent,
        "rotation_deg": rotation_deg, "min_defect_separation": min_defect_separation,
        "jitter_A": jitter_A, "noise": noise, "seed": seed,
    }
    return SyntheticImage(
        clean=clean,
        image=image,
        pixel_size_A=float(pixel_size_A),
        xy=xy,
        column_class=cls[col_mask].astype(np.int64),
        class_names=list(TMD_CLASSES),
        site=site[col_mask].astype(np.int64),
        truth=truth,
        material=f"{metal}{chalcogen}2",
        params=params,
    )


# --------------------------------------------------------------------------------------------
# Cairo pentagonal tiling
# --------------------------------------------------------------------------------------------

# Fractional coordinates of the six vertices of one square cell: two 4-valent (A at the cell
# corner, B at its centre, the 4-fold axes of p4g) and two pairs of 3-valent vertices centred on
# the cell-edge midpoints, P along (1, 1) and Q along (-1, 1).
_U = _CAIRO_U
_CAIRO_BASIS = np.array(
    [[0.0, 0.0], [0.5, 0.5], [0.5 - _U, -_U], [0.5 + _U, _U], [_U, 0.5 - _U], [-_U, 0.5 + _U]]
)
_A, _B, _PM, _PP, _QM, _QP = range(6)
# The four pentagons of a cell, all around its vertex A, in cyclic order: (cell offset, vertex)
# for each of the 5 corners, in cyclic order too.
_CAIRO_PENTAGONS = (
    (((0, 0), _A), ((0, 0), _PM), ((0, 0), _PP), ((0, 0), _B), ((0, 0), _QM)),
    (((0, 0), _A), ((0, 0), _QM), ((0, 0), _QP), ((-1, 0), _B), ((-1, 0), _PP)),
    (((0, 0), _A), ((-1, 0), _PP), ((-1, 0), _PM), ((-1, -1), _B), ((0, -1), _QP)),
    (((0, 0), _A), ((0, -1), _QP), ((0, -1), _QM), ((0, -1), _B), ((0, 0), _PM)),
)
# The four pentagons around B of cell (i, j), in cyclic order: (cell offset, pentagon type).
_CAIRO_B_GROUP = (((0, 0), 0), ((1, 0), 1), ((1, 1), 2), ((0, 1), 3))


def _pattern_names(filled: np.ndarray) -> np.ndarray:
    """Name of the fill pattern of cyclically ordered groups of four, up to rotation and
    reflection: "0", "1", "2-adjacent", "2-opposite", "3", "4"."""
    n = filled.sum(axis=1)
    names = np.array(["0", "1", "2-adjacent", "3", "4"], dtype=object)[n]
    opposite = (n == 2) & (filled[:, 0] == filled[:, 2])
    names[opposite] = "2-opposite"
    return names.astype(str)


def make_cairo(
    shape: tuple[int, int] = (512, 512),
    *,
    pixel_size_A: float = 0.2,
    edge_A: float = 3.8,
    fill_fraction: float = 0.5,
    correlation: float = 4.0,
    dose: float = 300.0,
    background: float = 30.0,
    probe_fwhm_A: float = 1.0,
    contrast: dict[str, float] | None = None,
    rotation_deg: float = 0.0,
    noise: bool = True,
    seed: int = 0,
) -> SyntheticImage:
    """HAADF-STEM image of a Cairo pentagonal tiling with partly filled pentagons.

    The model of the Mo-V-Te-Nb oxide of Dan et al. (2022, Fig. 2): atom columns sit on the
    vertices of the equilateral Cairo tiling (type-4 monohedral pentagons, the dual of the
    snub square tiling 3^2.4.3.4), 3-valent and 4-valent, and some pentagons hold an extra
    column at their centroid. Which pentagons are filled is decided by thresholding a smoothed
    Gaussian random field sampled at the pentagon centroids, so filled and empty pentagons form
    domains and the patterns of the four pentagons around a 4-valent vertex recur.

    The square cell of side ``edge_A / 0.3879`` holds two 4-valent vertices (its corner and
    centre, the 4-fold axes of plane group p4g), four 3-valent vertices in two pairs, and four
    pentagons.

    Parameters
    ----------
    shape : (int, int)
        Image shape (H, W) in pixels.
    pixel_size_A : float
        Å per pixel.
    edge_A : float
        Edge length of the (equilateral) pentagons in Å, i.e. the nearest-neighbour vertex
        distance (~3.8 Å, corner-sharing metal-oxygen polyhedra).
    fill_fraction : float
        Fraction of the pentagons (with their centroid in the image) that hold a centre column,
        in [0, 1]; exact up to rounding.
    correlation : float
        Correlation length (Å) of the Gaussian random field deciding the filling; 0 fills the
        pentagons independently. Neighbouring pentagons are ~0.6 edge apart, so the default
        (about one edge) gives domains of a few pentagons.
    dose : float
        Peak height, in counts above background at relative dose 1, of an isolated column of
        contrast 1.
    background : float
        Constant background at relative dose 1 (counts per pixel).
    probe_fwhm_A : float
        FWHM of the Gaussian probe (Å).
    contrast : dict or None
        Relative peak height per column class; default ``{"vertex3": 1.0, "vertex4": 1.0,
        "centre": 1.25}``: the centre column of a filled pentagon (a Mo-rich pentagonal
        bipyramid column in the oxide) is brighter than the mixed Mo/V vertex columns, which
        are equally bright so that only their environment tells 3- and 4-valent apart.
    rotation_deg : float
        Rotation of the tiling about the image centre: the first cell vector makes this angle
        with +x, measured towards +y (clockwise on screen). The origin is also shifted at
        random.
    noise : bool
        Draw ``image`` from a Poisson distribution (otherwise ``image`` = ``clean``).
    seed : int
        Seed of every random choice.

    Returns
    -------
    SyntheticImage
        ``class_names = ["vertex3", "vertex4", "centre"]``; ``site`` 0 = vertex, 1 = centre.
        ``truth`` holds, for the pentagons whose five vertices are inside the image:

        - ``pentagons``: (P, 5) column indices, in cyclic order;
        - ``pentagon_centroid``: (P, 2) px; ``filled``: (P,) bool; ``centre_column``: (P,)
          column index of the centre column or -1;
        - ``pentagon_key``: (P,) canonical key of the vertex-class cycle, with ``"+centre"``
          when filled; ``pentagon_adjacency``: (E, 2) pairs of pentagons sharing an edge;
        - ``vertex_valence``: (N,) 3 or 4 for vertex columns, 0 for centre columns;
        - ``groups_4``: (G, 4) pentagon indices around each 4-valent vertex whose four pentagons
          are all inside, in cyclic order; ``group_vertex``: (G,) its column; ``group_filled``:
          (G, 4) bool; ``group_pattern``: (G,) one of ``"0", "1", "2-adjacent",
          "2-opposite", "3", "4"`` (filled count and arrangement up to rotation/reflection);
          ``pattern_counts``: pattern -> count;
        - ``lattice_vectors_px`` (2, 2), ``edge_px``, ``nn_distance_px`` (= ``edge_px``),
          ``period_px`` (strongest ring of the power spectrum), ``sigma_px``.

    Raises
    ------
    SynthParameterError
        For non-positive sizes, a fill fraction outside [0, 1], a negative correlation or an
        unknown contrast key.

    Examples
    --------
    >>> s = make_cairo((128, 128), seed=1)
    >>> s.class_names
    ['vertex3', 'vertex4', 'centre']
    >>> bool(np.all(np.isin(s.truth["vertex_valence"][s.site == 0], [3, 4])))
    True
    """
    h, w = _check_shape(shape)
    _check_positive(
        pixel_size_A=pixel_size_A, edge_A=edge_A, probe_fwhm_A=probe_fwhm_A, dose=dose
    )
    if not (np.isfinite(background) and background >= 0):
        raise SynthParameterError(f"background must be >= 0 counts, got {background!r}")
    if not (np.isfinite(fill_fraction) and 0.0 <= fill_fraction <= 1.0):
        raise SynthParameterError(f"fill_fraction must be in [0, 1], got {fill_fraction!r}")
    if not np.isfinite(rotation_deg):
        raise SynthParameterError(f"rotation_deg must be finite, got {rotation_deg!r}")
    if not (np.isfinite(correlation) and correlation >= 0):
        raise SynthParameterError(f"correlation must be >= 0 Å, got {correlation!r}")
    weights = {"vertex3": 1.0, "vertex4": 1.0, "centre": 1.25}
    if contrast is not None:
        unknown = set(contrast) - set(weights)
        if unknown:
            raise SynthParameterError(
                f"unknown contrast key(s) {sorted(unknown)}; expected some of {list(weights)}"
            )
        weights.update({k: float(v) for k, v in contrast.items()})
        if any(not (np.isfinite(v) and v >= 0) for v in weights.values()):
            raise SynthParameterError(f"contrast values must be >= 0, got {weights}")

    rng = np.random.default_rng(seed)
    edge_px = edge_A / pixel_size_A
    side_px = edge_px / _CAIRO_EDGE
    sigma_px = probe_fwhm_A * FWHM_TO_SIGMA / pixel_size_A
    cell = (_rotation(rotation_deg) @ (side_px * np.eye(2))).T
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    origin = centre + rng.random(2) @ cell
    pad = 4.0 * sigma_px + 2.0
    ii, jj = _cell_range(cell, origin, (h, w), pad + side_px)
    ni, nj = ii.shape
    n_cell = ni * nj

    # ---- vertices: global id 6 * cell + k, cell = i * nj + j on the local grid
    frac = np.stack([ii.ravel(), jj.ravel()], 1)[:, None, :] + _CAIRO_BASIS[None]
    vxy = (origin + frac.reshape(-1, 2) @ cell).reshape(-1, 2)
    vk = np.tile(np.arange(6), n_cell)
    valence = np.where(vk <= _B, 4, 3)

    gi, gj = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    gi, gj = gi.ravel(), gj.ravel()

    def cell_id(di: int, dj: int) -> np.ndarray:
        i2, j2 = gi + di, gj + dj
        ok = (i2 >= 0) & (i2 < ni) & (j2 >= 0) & (j2 < nj)
        return np.where(ok, i2 * nj + j2, -1)

    # ---- pentagons: global id 4 * cell + type, vertex ids in cyclic order (-1 off the grid)
    pent = np.empty((n_cell, 4, 5), np.int64)
    for t, corners in enumerate(_CAIRO_PENTAGONS):  # 4 types x 5 corners, vectorised over cells
        for c, ((di, dj), k) in enumerate(corners):
            cid = cell_id(di, dj)
            pent[:, t, c] = np.where(cid >= 0, 6 * cid + k, -1)
    pent = pent.reshape(-1, 5)
    p_ok = np.all(pent >= 0, axis=1)
    p_centroid = np.where(p_ok[:, None], vxy[np.maximum(pent, 0)].mean(axis=1), np.nan)

    # ---- filling: smoothed white noise on the pentagon centroids, thresholded
    z = np.full(len(pent), -np.inf)
    ok_idx = np.flatnonzero(p_ok)
    eps = rng.standard_normal(len(ok_idx))
    ell = correlation / pixel_size_A
    if ell > 0:
        tree = cKDTree(p_centroid[ok_idx])
        dist = tree.sparse_distance_matrix(tree, 3.0 * ell, output_type="coo_matrix")
        kernel = coo_matrix(
            (np.exp(-dist.data**2 / (2 * ell**2)), (dist.row, dist.col)), shape=dist.shape
        )
        z[ok_idx] = eps + kernel @ eps  # the sparse matrix omits the zero self-distance
    else:
        z[ok_idx] = eps
    c_inside = p_ok.copy()
    c_inside[ok_idx] = _inside(p_centroid[ok_idx], (h, w))
    zin = np.sort(z[c_inside])[::-1]
    k_fill = int(round(fill_fraction * len(zin)))
    if k_fill == 0:
        thresh = np.inf
    elif k_fill >= len(zin):
        thresh = -np.inf
    else:
        thresh = 0.5 * (zin[k_fill - 1] + zin[k_fill])
    filled_all = p_ok & (z > thresh)

    # ---- columns: every vertex, plus the centre of every filled pentagon
    all_xy = np.concatenate([vxy, p_centroid[filled_all]])
    all_cls = np.concatenate([
        np.where(valence == 4, 1, 0), np.full(np.count_nonzero(filled_all), 2)
    ])
    all_valence = np.concatenate([valence, np.zeros(np.count_nonzero(filled_all), np.int64)])
    amp = dose * np.array([weights[n] for n in CAIRO_CLASSES])[all_cls]
    clean = render_columns((h, w), all_xy, amp, sigma_px, background=background)
    image = poisson_dose(clean, 1.0, rng) if noise else clean.astype(np.float32)

    inside = _inside(all_xy, (h, w))
    col_index = np.full(len(all_xy), -1, np.int64)
    col_index[inside] = np.arange(np.count_nonzero(inside))
    xy = all_xy[inside]
    column_class = all_cls[inside].astype(np.int64)

    # ---- truth for the pentagons entirely inside
    v_col = col_index[: len(vxy)]
    full = p_ok & np.all(v_col[np.maximum(pent, 0)] >= 0, axis=1)
    p_sel = np.flatnonzero(full)
    p_new = np.full(len(pent), -1, np.int64)
    p_new[p_sel] = np.arange(len(p_sel))
    centre_global = np.full(len(pent), -1, np.int64)
    centre_global[filled_all] = len(vxy) + np.arange(np.count_nonzero(filled_all))
    centre_col = np.where(centre_global >= 0, col_index[np.maximum(centre_global, 0)], -1)
    pentagons = v_col[pent[p_sel]]
    filled = filled_all[p_sel]

    vertex_key = _face_keys(
        np.arange(0, 5 * len(p_sel) + 1, 5), pentagons.ravel(), column_class, CAIRO_CLASSES
    ).astype(str)
    pentagon_key = np.where(filled, np.char.add(vertex_key, "+centre"), vertex_key)

    # Pentagons sharing an edge: the same sorted vertex pair appears in two pentagons.
    pe = np.stack([pentagons, np.roll(pentagons, -1, axis=1)], -1).reshape(-1, 2)
    pe = np.sort(pe, axis=1)
    owner = np.repeat(np.arange(len(p_sel)), 5)
    order = np.lexsort((pe[:, 1], pe[:, 0]))
    pe, owner = pe[order], owner[order]
    same = np.all(pe[1:] == pe[:-1], axis=1)
    adjacency = np.stack([owner[:-1][same], owner[1:][same]], 1) if len(pe) else np.zeros((0, 2))

    # Groups of four around 4-valent vertices: A of every cell and B of every cell.
    groups = np.concatenate([
        4 * np.arange(n_cell)[:, None] + np.arange(4)[None, :],
        np.stack([
            np.where(cell_id(di, dj) >= 0, 4 * cell_id(di, dj) + t, -1)
            for (di, dj), t in _CAIRO_B_GROUP
        ], 1),
    ])
    g_vertex = np.concatenate([6 * np.arange(n_cell) + _A, 6 * np.arange(n_cell) + _B])
    g_ok = np.all(groups >= 0, axis=1)
    g_ok[g_ok] = np.all(full[groups[g_ok]], axis=1)
    groups_4 = p_new[groups[g_ok]]
    group_filled = filled[groups_4] if len(groups_4) else np.zeros((0, 4), bool)
    group_pattern = _pattern_names(group_filled)
    pattern_counts = {p: int(np.count_nonzero(group_pattern == p)) for p in CAIRO_PATTERNS}

    basis_px = _CAIRO_BASIS @ cell
    cent_frac = np.array([_CAIRO_BASIS[[0, 2, 3, 1, 4]].mean(axis=0)])  # type-0 pentagon
    # The four pentagon centroids of a cell are the type-0 one turned by k * 90 degrees about A.
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])
    cents = np.concatenate([cent_frac @ np.linalg.matrix_power(turn, k).T for k in range(4)])
    # Average crystal for the expected period: every vertex, and centres weighted by the
    # probability of being filled.
    basis_weight = np.array(
        [weights["vertex4"]] * 2 + [weights["vertex3"]] * 4
        + [fill_fraction * weights["centre"]] * 4
    )
    period = _expected_period(
        cell, np.concatenate([basis_px, cents @ cell]), basis_weight, sigma_px, 3.0
    )
    truth = {
        "pentagons": pentagons,
        "pentagon_centroid": p_centroid[p_sel],
        "filled": filled,
        "centre_column": centre_col[p_sel],
        "pentagon_key": pentagon_key,
        "pentagon_adjacency": adjacency,
        "vertex_valence": all_valence[inside].astype(np.int64),
        "groups_4": groups_4,
        "group_vertex": v_col[g_vertex[g_ok]],
        "group_filled": group_filled,
        "group_pattern": group_pattern,
        "pattern_counts": pattern_counts,
        "fill_fraction": float(filled_all[c_inside].mean()) if c_inside.any() else 0.0,
        "lattice_vectors_px": cell,
        "edge_px": float(edge_px),
        "nn_distance_px": float(edge_px),
        "period_px": period,
        "sigma_px": float(sigma_px),
    }
    params = {
        "generator": "make_cairo", "shape": [h, w], "pixel_size_A": pixel_size_A,
        "edge_A": edge_A, "fill_fraction": fill_fraction, "correlation": correlation,
        "dose": dose, "background": background, "probe_fwhm_A": probe_fwhm_A,
        "contrast": weights, "rotation_deg": rotation_deg, "noise": noise, "seed": seed,
    }
    return SyntheticImage(
        clean=clean,
        image=image,
        pixel_size_A=float(pixel_size_A),
        xy=xy,
        column_class=column_class,
        class_names=list(CAIRO_CLASSES),
        site=(column_class == 2).astype(np.int64),
        truth=truth,
        material="MoVTeNbO-cairo",
        params=params,
    )
