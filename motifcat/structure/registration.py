"""Registration of a motif's projected columns to a reference crystal's projected columns.

The model is ``q ≈ s·R·p + t``: motif column ``p`` (Å, as measured) maps onto reference column
``q`` by a rotation (or a rotation after a mirror: the crystal may be seen from either side),
a scale ``s`` within a tolerance of 1 (pixel-size and lattice-constant mismatch) and a
translation. Candidates come from the lattice: the motif's most central column and its nearest
neighbour are put on every reference column and each of its neighbours at a compatible
distance (both mirror senses); each candidate is refined by nearest-column matching
(:class:`scipy.spatial.cKDTree`; distinct columns by least-cost assignment where two would share
a site, as around a vacancy whose neighbours were detected off their sites) and a similarity
Procrustes fit on the matched pairs. Geometry alone cannot tell a honeycomb's two sublattices
apart, so among the candidates whose residual
is near the best the one whose columns' chemistry (predicted Z-contrast of each motif column)
agrees best with the reference columns they land on wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..errors import ExportError
from .projection import ProjectedCrystal

#: Scale tolerance: |s - 1| <= SCALE_TOLERANCE (pixel size and lattice constant agree to a few %).
SCALE_TOLERANCE = 0.05

#: A seed placement with a residual below this (Å) ends the search for further seeds (a tenth
#: of the shortest projected column spacing of MX2/ABO3 along [001]; chosen by hand).
GOOD_RMS_A = 0.2


@dataclass(frozen=True, eq=False)
class Registration:
    """How a motif's columns sit on a reference's projected columns.

    Attributes
    ----------
    rotation : ndarray (2, 2)
        Maps motif coordinates into the reference plane (determinant -1 when mirrored).
    scale : float
    translation : ndarray (2,)
        Å.
    column : ndarray of int (K,)
        Reference basis column each motif column matched.
    shift : ndarray of int (K, 2)
        Its in-plane lattice translation.
    site_xy : ndarray (K, 2)
        The matched reference sites (Å, reference plane).
    mapped_xy : ndarray (K, 2)
        The motif columns after the transform (Å, reference plane).
    rms_A : float
        RMS distance between ``mapped_xy`` and ``site_xy`` (Å).
    chemistry : float
        Fraction of columns with a predicted contrast whose nearest reference kind is the kind
        they landed on (NaN when no contrast was given).
    """

    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    column: np.ndarray
    shift: np.ndarray
    site_xy: np.ndarray
    mapped_xy: np.ndarray
    rms_A: float
    chemistry: float

    @property
    def mirrored(self) -> bool:
        return bool(np.linalg.det(self.rotation) < 0)


def _similarity(p: np.ndarray, q: np.ndarray, tol: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Proper rotation, scale (clipped to 1 ± tol) and translation minimising |s R p + t - q|."""
    mp, mq = p.mean(0), q.mean(0)
    x, y = p - mp, q - mq
    u, sv, vt = np.linalg.svd(x.T @ y)
    d = np.diag([1.0, np.sign(np.linalg.det(vt.T @ u.T)) or 1.0])
    r = vt.T @ d @ u.T
    var = float((x**2).sum())
    s = float(np.trace(np.diag(sv) @ d) / var) if var > 0 else 1.0
    s = float(np.clip(s, 1 - tol, 1 + tol))
    return r, s, mq - s * r @ mp


def _assign(tree: cKDTree, sites: np.ndarray, q: np.ndarray, k_near: int = 6
            ) -> tuple[np.ndarray, np.ndarray]:
    """Each mapped column's reference site: the nearest one, or, when two columns would share
    a site (a prototype distorted around a defect, where detected columns are pulled off their
    sites), the assignment of distinct sites with the least total distance
    (:func:`scipy.optimize.linear_sum_assignment` over each column's ``k_near`` nearest
    sites). Returns site indices and distances (Å)."""
    d, idx = tree.query(q)
    if len(np.unique(idx)) == len(q):
        return idx, d
    _, nb = tree.query(q, k=min(k_near, len(sites)))
    cand = np.unique(nb)
    if len(cand) < len(q):
        cand = np.arange(len(sites))
    cost = np.linalg.norm(q[:, None, :] - sites[cand][None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    idx = cand[cols[np.argsort(rows)]]
    return idx, np.linalg.norm(q - sites[idx], axis=1)


def _rot(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def register(
    xy_A: np.ndarray,
    crystal: ProjectedCrystal,
    contrast: np.ndarray | None = None,
    scale_tolerance: float = SCALE_TOLERANCE,
    iterations: int = 6,
) -> Registration:
    """Register a motif's columns (Å) to a projected reference crystal.

    Parameters
    ----------
    xy_A : ndarray (K, 2)
        Motif column positions (Å), any origin and orientation.
    crystal : ProjectedCrystal
        From :func:`motifcat.structure.project`.
    contrast : ndarray (K,), optional
        Predicted HAADF contrast (``sum Z^1.7`` units) of each motif column; NaN = unknown.
    scale_tolerance : float
        Allowed |scale - 1|.
    iterations : int
        Match-and-fit rounds per candidate.

    Returns
    -------
    Registration

    Raises
    ------
    ExportError
        If no candidate matches every column to a distinct reference column.

    Examples
    --------
    >>> from ase.build import mx2
    >>> from motifcat.structure import project
    >>> pc = project(mx2("MoS2", a=3.18, vacuum=None))
    >>> ang = np.deg2rad(17.0)
    >>> rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    >>> tiles, col, _ = pc.tiled(4.0)
    >>> near = np.argsort(np.linalg.norm(tiles - tiles.mean(0), axis=1))[:7]
    >>> motif = (tiles[near] @ rot.T) * 1.02 + [5.0, -3.0]
    >>> reg = register(motif, pc, contrast=pc.contrast[col[near]])
    >>> round(reg.rms_A, 6), round(reg.scale * 1.02, 3), bool(np.all(reg.column == col[near]))
    (0.0, 1.0, True)
    """
    p = np.asarray(xy_A, dtype=float).reshape(-1, 2)
    k = len(p)
    if k == 0:
        raise ExportError("registration: the motif has no columns")
    con = None if contrast is None else np.asarray(contrast, dtype=float).reshape(-1)
    kinds_contrast = np.array([crystal.contrast[crystal.kind == u][0]
                               for u in range(int(crystal.kind.max()) + 1)])

    def chemistry(cols: np.ndarray) -> float:
        if con is None or not np.isfinite(con).any():
            return float("nan")
        ok = np.isfinite(con)
        nearest = np.argmin(np.abs(con[ok, None] - kinds_contrast[None, :]), axis=1)
        return float(np.mean(nearest == crystal.kind[cols[ok]]))

    centre = p.mean(0)
    extent = float(np.linalg.norm(p - centre, axis=1).max()) if k > 1 else 0.0
    tiles, tcol, tshift = crystal.tiled(extent * (1 + scale_tolerance) + 4.0)
    tiles_c = tiles - 0.0
    tree = cKDTree(tiles_c)

    if k == 1:
        # One column: its site is the reference column whose contrast is nearest (any, if none).
        if con is not None and np.isfinite(con[0]):
            j = int(np.argmin(np.abs(crystal.contrast - con[0])))
        else:
            j = 0
        t = crystal.xy[j] - p[0]
        return Registration(np.eye(2), 1.0, t, np.array([j]), np.zeros((1, 2), int),
                            crystal.xy[[j]], p + t, 0.0, chemistry(np.array([j])))

    window = 0.15 + scale_tolerance
    results = []
    # Seed pairs: the most central column and its nearest neighbour; when that seed gives no
    # good placement (a column pulled off its site beside a defect makes the pair's spacing
    # wrong), the next central columns with theirs.
    order = np.argsort(np.linalg.norm(p - centre, axis=1), kind="stable")
    pair = np.linalg.norm(p[:, None] - p[None], axis=-1)
    np.fill_diagonal(pair, np.inf)
    typical = float(np.median(pair.min(1)))  # the motif's typical column spacing
    seeds = [(int(order[0]), int(np.argmin(pair[order[0]])))]
    for a in order[:3]:
        seeds.append((int(a), int(np.argmin(np.abs(pair[a] - typical)))))
    seeds = list(dict.fromkeys(seeds))
    for a0, b0 in seeds:
        for mirror in (False, True):
            pm = p * np.array([1.0, -1.0]) if mirror else p
            v = pm[b0] - pm[a0]
            lv = float(np.linalg.norm(v))
            for j in range(len(crystal.xy)):
                w = tiles_c - crystal.xy[j]
                lw = np.linalg.norm(w, axis=1)
                for wv in w[(lw > lv * (1 - window)) & (lw < lv * (1 + window))]:
                    r = _rot(np.arctan2(wv[1], wv[0]) - np.arctan2(v[1], v[0]))
                    s = float(np.clip(np.linalg.norm(wv) / lv, 1 - scale_tolerance,
                                      1 + scale_tolerance))
                    t = crystal.xy[j] - s * r @ pm[a0]
                    for _ in range(iterations):
                        q = pm @ (s * r).T + t
                        idx, _ = _assign(tree, tiles_c, q)
                        r, s, t = _similarity(pm, tiles_c[idx], scale_tolerance)
                    q = pm @ (s * r).T + t
                    idx, d = _assign(tree, tiles_c, q)
                    rms = float(np.sqrt(np.mean(d**2)))
                    unique = len(np.unique(idx)) == k
                    full = r @ np.diag([1.0, -1.0]) if mirror else r
                    results.append((rms, unique, full, s, t, idx, q))
        if any(res[1] and res[0] < GOOD_RMS_A for res in results):
            break
    valid = [res for res in results if res[1]]
    if not valid:
        raise ExportError("registration: no placement puts every motif column on its own "
                          "reference column (wrong reference or zone axis, or a prototype "
                          "whose mean positions are not a lattice fragment)")
    best = min(res[0] for res in valid)
    near = [res for res in valid if res[0] <= best + max(0.05, 0.3 * best)]
    scored = [(chemistry(tcol[res[5]]), res) for res in near]
    if any(np.isfinite(c) for c, _ in scored):
        top = max(c for c, _ in scored if np.isfinite(c))
        near = [res for c, res in scored if np.isfinite(c) and c >= top - 1e-9]
    rms, _, rot, s, t, idx, q = min(near, key=lambda res: res[0])
    return Registration(rot, float(s), np.asarray(t), tcol[idx], tshift[idx], tiles_c[idx], q,
                        rms, chemistry(tcol[idx]))
