"""Alignment of instances into a canonical frame: prototypes and mean images of classes.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.optimize import linear_sum_assignment

from ..canonical import (
    candidate_order,
    dihedral_canonical,
)
from .structure import STAR, HierarchyStructure

# ---------------------------------------------------------------------------------------------
# Alignment and prototypes
# ---------------------------------------------------------------------------------------------


def _rotate(p: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Rotate points p (M, k, 2) by angles theta (M,) counter-clockwise (in x, y)."""
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    x, y = p[..., 0], p[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


def _align_cycles(pts: np.ndarray, tie: np.ndarray, fixed: np.ndarray | None = None):
    """Align M point cycles (M, n, 2) (relative to their centres) under dihedral ties.

    Every candidate reading order allowed by ``tie`` (M, 2n) is tried against a reference (the
    first instance, then the mean) and the best rotation (2-D Kabsch) kept; backward readings
    are mirrored (y -> -y) first. ``fixed`` (M, f, 2) are extra points with fixed
    correspondence (e.g. a star's centre). Returns the chosen candidate (M,), mirrored flag,
    rotation angle (M,) such that ``aligned = R(theta) F p``, and the aligned cycle points.
    """
    m, n, _ = pts.shape
    orders = candidate_order(n, np.arange(2 * n))  # (2n, n)
    cand = pts[:, orders]  # (M, 2n, n, 2)
    mirror = np.arange(2 * n) >= n
    cand[:, mirror, :, 1] *= -1
    if fixed is not None and fixed.shape[1]:
        fx = np.repeat(fixed[:, None], 2 * n, axis=1).copy()
        fx[:, mirror, :, 1] *= -1
        cand = np.concatenate([cand, fx], axis=2)
    ref = cand[0, int(np.argmax(tie[0]))]
    for _ in range(2):  # align to the first instance, then to the mean of that alignment
        dot = np.einsum("mcki,ki->mc", cand, ref)
        crs = np.einsum("mcki,ki->mc", cand[..., [1, 0]] * np.array([-1.0, 1.0]), ref)
        # Sum |R p - r|^2 = |p|^2 + |r|^2 - 2 sqrt(dot^2 + cross^2) at the best rotation.
        resid = -np.hypot(dot, crs)
        resid[~tie] = np.inf
        choice = np.argmin(resid, axis=1)
        rows = np.arange(m)
        theta = np.arctan2(crs[rows, choice], dot[rows, choice])
        aligned = _rotate(cand[rows, choice], theta)
        ref = aligned.mean(axis=0)
    return choice, mirror[choice], theta, aligned


def _transform(pts: np.ndarray, centre: np.ndarray, mirrored: np.ndarray, theta: np.ndarray):
    """Image points (M, k, 2) -> canonical frame: R(theta) F (p - centre)."""
    rel = pts - centre[:, None, :]
    rel[..., 1] = np.where(mirrored[:, None], -rel[..., 1], rel[..., 1])
    return _rotate(rel, theta)


def _sample(rows: np.ndarray, cap: int) -> np.ndarray:
    if len(rows) <= cap:
        return rows
    return rows[np.linspace(0, len(rows) - 1, cap).astype(np.int64)]


def _unit_prototype(s, rows, size, tie_info, centroid):
    """Mean aligned ring (+ interior) of one level-2 class; transform of a sample for images."""
    all_rows, tie = tie_info
    tie_rows = tie[np.searchsorted(all_rows, rows)]
    idx = s.ring_indptr[rows][:, None] + np.arange(size)
    cyc = s.ring[idx]
    c = centroid[rows]
    choice, mirrored, theta, aligned = _align_cycles(s.xy[cyc] - c[:, None, :], tie_rows)
    order = np.take_along_axis(cyc, candidate_order(size, choice), axis=1)
    proto = aligned.mean(axis=0)
    lab = s.labels[order[0]]
    n_int = int(s.interior_indptr[rows[0] + 1] - s.interior_indptr[rows[0]])
    if n_int:
        ii = s.interior[s.interior_indptr[rows][:, None] + np.arange(n_int)]
        inner = _transform(s.xy[ii], c, mirrored, theta)
        if n_int > 1:  # order by label, then by angle in the canonical frame
            ang = np.arctan2(inner[..., 1], inner[..., 0])
            o = np.lexsort((ang, s.labels[ii]), axis=-1)
            inner = np.take_along_axis(inner, o[..., None], axis=1)
            ii = np.take_along_axis(ii, o, axis=1)
        proto = np.concatenate([proto, inner.mean(axis=0)])
        lab = np.concatenate([lab, s.labels[ii[0]]])
    pick = _sample(np.arange(len(rows)), s.params.get("max_images", 32))
    return proto, lab.astype(np.int64), (c[pick], mirrored[pick], theta[pick])


#: Largest side (samples) of a mean image: wider crops are sampled every k-th pixel.
MEAN_IMAGE_MAX_SIDE = 64


def _mean_image(s: HierarchyStructure, xform, proto_xy: np.ndarray) -> np.ndarray | None:
    """Average of crops around instances, resampled in the canonical frame (bilinear).

    At most ``s.params["max_images"]`` instances (evenly spread over ``xform``'s) are
    averaged, on a grid of at most :data:`MEAN_IMAGE_MAX_SIDE` samples per side (step k px,
    the smallest integer that fits; k = 1 for crops up to that side): the cost per class is
    bounded whatever its count.
    """
    if s.image is None or proto_xy is None or len(proto_xy) == 0:
        return None
    centre, mirrored, theta = xform
    pick = _sample(np.arange(len(theta)), s.params.get("max_images", 32))
    centre, mirrored, theta = centre[pick], mirrored[pick], theta[pick]
    half = int(np.ceil(np.abs(proto_xy).max() + 0.75 * s.spacing_px))
    step = -(-(2 * half + 1) // MEAN_IMAGE_MAX_SIDE)
    m = half // step
    q = step * np.arange(-m, m + 1, dtype=np.float64)
    gy, gx = np.meshgrid(q, q, indexing="ij")
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)  # canonical frame points (x, y)
    # p = centre + F R(-theta) q, for every sampled instance at once.
    rel = _rotate(np.broadcast_to(grid, (len(theta),) + grid.shape), -theta)
    rel[..., 1] = np.where(mirrored[:, None], -rel[..., 1], rel[..., 1])
    pts = rel + centre[:, None, :]
    vals = map_coordinates(s.image, [pts[..., 1].ravel(), pts[..., 0].ravel()], order=1,
                           mode="constant", cval=np.nan).reshape(len(centre), -1)
    inside = np.isfinite(vals)
    n_in = inside.sum(axis=0)
    if not n_in.any():
        return None
    total = np.where(inside, vals, 0.0).sum(axis=0)
    # Pixels no crop reached (beyond the image border) get the mean of the others.
    mean = np.where(n_in > 0, total / np.maximum(n_in, 1), total.sum() / n_in.sum())
    return mean.reshape(gy.shape).astype(np.float32)


def _align_stars(s, sample, units_all, centres, ucent, ucls, key_rank):
    """Alignment (centre, mirrored, theta) of sampled stars: centre + unit centroids."""
    uu = np.stack([units_all[r] for r in sample])  # canonical order already
    c = s.xy[np.array([centres[r] for r in sample])]
    k = uu.shape[1]
    # All readings that give the same canonical sequence are equivalent: re-derive the ties in
    # the canonical order (relative to the first reading).
    _, _, _, tie = dihedral_canonical(key_rank[ucls[uu]])
    pts = ucent[uu] - c[:, None, :]
    _, mirrored, theta, _ = _align_cycles(pts, tie, fixed=np.zeros((len(uu), 1, 2)))
    del k
    return c, mirrored, theta


def _align_graphs(sample, meta_all, ucent):
    """Alignment of sampled plane-graph composites over their automorphic numberings."""
    ref = None
    out_c, out_m, out_t = [], [], []
    for r in sample:
        group, orders, _ = meta_all[r]
        c = ucent[group].mean(axis=0)
        best = None
        for order, mirrored in orders:
            p = ucent[group[order]] - c
            if mirrored:
                p = p * np.array([1.0, -1.0])
            if ref is None:
                best = (0.0, mirrored, 0.0, p)
                break
            dot = float(np.sum(p * ref))
            crs = float(np.sum(p[:, 0] * ref[:, 1] - p[:, 1] * ref[:, 0]))
            score = -np.hypot(dot, crs)
            if best is None or score < best[0]:
                theta = np.arctan2(crs, dot)
                best = (score, mirrored, theta, p)
        _, mirrored, theta, p = best
        if ref is None:
            ref = p
        out_c.append(c)
        out_m.append(mirrored)
        out_t.append(theta)
    return np.array(out_c), np.array(out_m, dtype=bool), np.array(out_t)


def _composite_prototype(s, sample, units_all, meta_all, kinds, xform, level2):
    """Mean aligned columns of sampled composites, matched to the first one's columns."""
    c, mirrored, theta = xform
    ref_xy = ref_lab = None
    acc = cnt = None
    l2 = level2
    for k, r in enumerate(sample):
        units = units_all[r]
        cols = np.unique(np.concatenate([l2.members(int(u)) for u in units]))
        if kinds[r] == STAR:
            cols = np.union1d(cols, [meta_all[r]])
        q = _transform(s.xy[cols][None], c[k:k + 1], mirrored[k:k + 1], theta[k:k + 1])[0]
        lab = s.labels[cols]
        if ref_xy is None:
            ref_xy, ref_lab = q, lab
            acc, cnt = q.copy(), np.ones(len(q))
            continue
        cost = np.linalg.norm(ref_xy[:, None] - q[None], axis=2)
        cost += 1e3 * (ref_lab[:, None] != lab[None])  # match like with like
        i, j = linear_sum_assignment(cost)
        good = cost[i, j] < 0.5 * s.spacing_px
        acc[i[good]] += q[j[good]]
        cnt[i[good]] += 1
    if ref_xy is None:
        return None, None
    return acc / cnt[:, None], ref_lab.astype(np.int64)
