"""Synthetic micrographs: geometry, contrast, defects, noise and ground truth, checked by value."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from motifcat.datasets import (
    SyntheticImage,
    SynthParameterError,
    canonical_cycle_key,
    make_cairo,
    make_tmd,
    poisson_dose,
    render_columns,
)
from motifcat.errors import MotifcatError
from motifcat.ingest.lattice import lattice_period
from motifcat.ingest.model import Micrograph


@pytest.fixture(scope="module")
def tmd(synthetic) -> SyntheticImage:
    # A larger frame with generous defect fractions so that every kind is well represented.
    return synthetic(
        "tmd",
        (768, 768),
        defects={"chalcogen_single": 0.04, "chalcogen_double": 0.02, "metal_vacancy": 0.01,
                 "antisite": 0.01},
        rotation_deg=12.0,
        seed=5,
    )


def _com(img: np.ndarray, xy: np.ndarray, radius: int) -> np.ndarray:
    """Centre of mass of ``img`` in a disk of ``radius`` px around the rounded positions."""
    cen = np.rint(xy).astype(int)
    off = np.arange(-radius, radius + 1)
    yy, xx = np.meshgrid(off, off, indexing="ij")
    disk = (yy**2 + xx**2) <= radius**2
    win = img[cen[:, 1, None, None] + yy, cen[:, 0, None, None] + xx] * disk
    tot = win.sum(axis=(1, 2))
    return cen + np.stack([(win * xx).sum((1, 2)) / tot, (win * yy).sum((1, 2)) / tot], 1)


# ---------------------------------------------------------------------------------- TMD


def test_tmd_class_counts_match_defect_fractions(tmd):
    counts = np.bincount(tmd.column_class, minlength=4)
    dc = tmd.truth["defect_counts"]
    assert counts[2] == dc["chalcogen_single"] and counts[3] == dc["antisite"]
    n_chalc_sites = counts[1] + counts[2] + counts[3] + dc["chalcogen_double"]
    n_metal_sites = counts[0] + dc["metal_vacancy"]
    # Honeycomb: as many metal as chalcogen sites, up to the frame edge.
    assert abs(n_metal_sites - n_chalc_sites) <= 0.03 * n_chalc_sites
    assert counts[2] == round(0.04 * n_chalc_sites)
    assert dc["chalcogen_double"] == round(0.02 * n_chalc_sites)
    assert counts[3] == round(0.01 * n_chalc_sites)
    assert dc["metal_vacancy"] == round(0.01 * n_metal_sites)
    assert counts[2] > 50
    # Removed columns are absent: no true column sits at a vacancy.
    kinds = tmd.truth["defect_kind"]
    gone = tmd.truth["defect_xy"][np.isin(kinds, ["chalcogen_double", "metal_vacancy"])]
    d, _ = cKDTree(tmd.xy).query(gone)
    assert d.min() > 0.9 * tmd.truth["nn_distance_px"]
    # Defect columns point at the right class.
    col = tmd.truth["defect_column"]
    assert np.all(tmd.column_class[col[kinds == "chalcogen_single"]] == 2)
    assert np.all(tmd.column_class[col[kinds == "antisite"]] == 3)
    assert np.all(col[np.isin(kinds, ["chalcogen_double", "metal_vacancy"])] == -1)
    assert np.all(tmd.site[tmd.column_class == 0] == 0)
    assert np.all(tmd.site[tmd.column_class != 0] == 1)


def test_tmd_geometry_and_period(tmd):
    nn_expected = 3.288 / np.sqrt(3) / 0.15
    assert tmd.truth["nn_distance_px"] == pytest.approx(nn_expected)
    d, _ = cKDTree(tmd.xy).query(tmd.xy, k=2)
    assert np.median(d[:, 1]) == pytest.approx(nn_expected, rel=1e-9)
    # Every metal's nearest neighbours are chalcogen-site columns (alternating honeycomb).
    _, j = cKDTree(tmd.xy).query(tmd.xy[tmd.site == 0], k=2)
    assert np.all(tmd.site[j[:, 1]] == 1)
    cell = tmd.truth["lattice_vectors_px"]
    assert np.linalg.norm(cell, axis=1) == pytest.approx([3.288 / 0.15] * 2)
    assert np.degrees(np.arctan2(cell[0, 1], cell[0, 0])) == pytest.approx(12.0)
    # The expected period is the one the lattice module measures on the image.
    assert lattice_period(tmd.image) == pytest.approx(tmd.truth["period_px"], rel=0.02)
    # Inside the frame only.
    h, w = tmd.shape
    assert tmd.xy[:, 0].min() >= -0.5 and tmd.xy[:, 0].max() < w - 0.5
    assert tmd.xy[:, 1].min() >= -0.5 and tmd.xy[:, 1].max() < h - 0.5


def test_tmd_peaks_at_true_positions(tmd):
    h, w = tmd.shape
    xy = tmd.xy
    ok = (xy[:, 0] > 12) & (xy[:, 0] < w - 13) & (xy[:, 1] > 12) & (xy[:, 1] < h - 13)
    sample = xy[ok][:: max(1, ok.sum() // 200)]
    est = _com(tmd.clean - tmd.params["background"], sample, radius=6)
    assert np.abs(est - sample).max() < 0.2
    # The brightest pixel of each column is the pixel that contains the true centre.
    cen = np.rint(sample).astype(int)
    off = np.arange(-2, 3)
    win = tmd.clean[cen[:, 1, None, None] + off[:, None], cen[:, 0, None, None] + off[None, :]]
    assert np.all(win.reshape(len(cen), -1).argmax(axis=1) == 12)


def test_tmd_contrast_follows_z17():
    s = make_tmd((128, 128), defects={}, noise=False, background=0.0, dose=300.0, seed=2)
    peaks = s.clean[np.rint(s.xy[:, 1]).astype(int), np.rint(s.xy[:, 0]).astype(int)]
    # Peak of an isolated Gaussian equals its amplitude; neighbours add a little tail, and the
    # pixel grid takes a little off: a few per cent.
    m = np.median(peaks[s.column_class == 0])
    x2 = np.median(peaks[s.column_class == 1])
    assert m == pytest.approx(300.0, rel=0.05)
    assert x2 / m == pytest.approx(2 * 34**1.7 / 42**1.7, rel=0.03)


def test_tmd_near_defect_and_defect_records(tmd):
    near = tmd.truth["near_defect"]
    nn = tmd.truth["nn_distance_px"]
    d, _ = cKDTree(tmd.truth["defect_xy"]).query(tmd.xy)
    assert np.array_equal(near, d < 1.05 * nn)
    rec = tmd.truth["defects"]
    assert len(rec) == len(tmd.truth["defect_kind"]) == sum(tmd.truth["defect_counts"].values())
    interior = [
        r for r in rec
        if nn + 2 < r["xy"][0] < tmd.shape[1] - nn - 2
        and nn + 2 < r["xy"][1] < tmd.shape[0] - nn - 2
    ]
    # Every defect site of the honeycomb has three nearest neighbours.
    assert all(len(r["neighbours"]) == 3 for r in interior)
    # Defects are at least sqrt(7) nn apart by default.
    dd, _ = cKDTree(tmd.truth["defect_xy"]).query(tmd.truth["defect_xy"], k=2)
    assert dd[:, 1].min() > 2.6 * nn


def test_tmd_faces_match_hierarchy_rules(tmd):
    faces = tmd.truth["faces"]
    hier = tmd.truth["hierarchy"]
    kc = faces["key_counts"]
    nn = tmd.truth["nn_distance_px"]
    h, w = tmd.shape
    xy = tmd.truth["defect_xy"]
    margin = 2 * nn + 1
    interior = (xy[:, 0] > margin) & (xy[:, 0] < w - margin) & (xy[:, 1] > margin) & (
        xy[:, 1] < h - margin
    )
    kinds = tmd.truth["defect_kind"]
    n_int = {k: int(np.count_nonzero(interior & (kinds == k))) for k in hier["per_defect"]}
    n_all = tmd.truth["defect_counts"]
    per = hier["per_defect"]
    x1_key = next(iter(per["chalcogen_single"]["added"]))
    anti_key = next(iter(per["antisite"]["added"]))
    big_key = next(iter(per["metal_vacancy"]["added"]))
    assert per["chalcogen_double"]["added"] == {big_key: 1}
    assert big_key == "-".join(["M", "X2"] * 6)
    assert x1_key == "M-X1-M-X2-M-X2" and anti_key == "M-X2-M-X2-M-antisite"
    assert 3 * n_int["chalcogen_single"] <= kc[x1_key] <= 3 * n_all["chalcogen_single"]
    assert 3 * n_int["antisite"] <= kc[anti_key] <= 3 * n_all["antisite"]
    n_big_int = n_int["chalcogen_double"] + n_int["metal_vacancy"]
    n_big = n_all["chalcogen_double"] + n_all["metal_vacancy"]
    assert n_big_int <= kc[big_key] <= n_big
    assert set(kc) == {hier["perfect_key"], x1_key, anti_key, big_key}
    # Faces are listed counter-clockwise by column index, and have the sizes of their keys.
    sizes = np.diff(faces["indptr"])
    assert np.all(sizes == np.array([k.count("-") + 1 for k in faces["key"]]))
    assert np.all(faces["indices"] >= 0)


def test_tmd_determinism_and_seed():
    a = make_tmd((96, 96), seed=7)
    b = make_tmd((96, 96), seed=7)
    c = make_tmd((96, 96), seed=8)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.xy, b.xy)
    assert np.array_equal(a.column_class, b.column_class)
    assert not np.array_equal(a.image, c.image)
    assert a.micrograph().sha256 == b.micrograph().sha256 != c.micrograph().sha256


def test_tmd_noise_flag_and_micrograph():
    s = make_tmd((64, 80), noise=False, seed=1)
    assert s.image.dtype == np.float32 and s.clean.dtype == np.float64
    assert np.allclose(s.image, s.clean, rtol=1e-6)
    m = s.micrograph(path="synthetic/mose2.tif")
    assert isinstance(m, Micrograph)
    assert m.shape == (64, 80) and m.pixel_size_A == pytest.approx(0.15)
    assert m.path == "synthetic/mose2.tif" and len(m.sha256) == 64
    assert s.material == "MoSe2"


def test_tmd_rejects_bad_parameters():
    with pytest.raises(SynthParameterError, match="unknown defect"):
        make_tmd((64, 64), defects={"sulphur_vacancy": 0.1})
    with pytest.raises(SynthParameterError, match="pixel_size_A"):
        make_tmd((64, 64), pixel_size_A=-1.0)
    with pytest.raises(SynthParameterError, match="shape"):
        make_tmd((8, 64))
    with pytest.raises(MotifcatError, match="separated sites"):
        make_tmd((128, 128), defects={"chalcogen_single": 0.5})


# ---------------------------------------------------------------------------------- noise


def test_poisson_dose_mean_and_variance():
    clean = np.full((200, 200), 40.0)
    clean[:, 100:] = 400.0
    for d in (1.0, 0.1, 0.02):
        counts = poisson_dose(clean, d, rng=3)
        assert counts.dtype == np.float32
        assert np.all(counts == np.round(counts))
        for sl in (np.s_[:, :100], np.s_[:, 100:]):
            lam = clean[sl][0, 0] * d
            assert counts[sl].mean() == pytest.approx(lam, rel=0.03, abs=0.02)
            assert counts[sl].var() == pytest.approx(lam, rel=0.06, abs=0.03)
    with pytest.raises(SynthParameterError, match="relative_dose"):
        poisson_dose(clean, 0.0)
    with pytest.raises(SynthParameterError, match="non-negative"):
        poisson_dose(-clean, 1.0)


def test_at_dose_scales_the_clean_image():
    s = make_tmd((128, 128), seed=4)
    low = s.at_dose(1 / 20, seed=1)
    assert low.image.mean() == pytest.approx(s.clean.mean() / 20, rel=0.02)
    assert low.clean is s.clean and low.truth is s.truth
    assert low.params["relative_dose"] == pytest.approx(0.05)


def test_render_columns_is_exact_gaussian():
    xy = np.array([[10.3, 12.7], [30.0, 5.5], [-3.0, 20.0]])
    amp = np.array([100.0, 50.0, 80.0])
    img = render_columns((32, 40), xy, amp, 1.7, background=5.0)
    yy, xx = np.mgrid[:32, :40]
    ref = 5.0 + sum(
        a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.7**2))
        for (x, y), a in zip(xy, amp, strict=True)
    )
    assert np.abs(img - ref).max() < 1e-3 * amp.max()


def test_canonical_cycle_key():
    assert canonical_cycle_key(["X2", "M", "X1", "M", "X2", "M"]) == "M-X1-M-X2-M-X2"
    assert canonical_cycle_key(["b", "a", "c"]) == canonical_cycle_key(["a", "c", "b"]) == "a-b-c"
    # Reflection: a-b-b-c-c and its mirror image share one key; a different order does not.
    assert canonical_cycle_key("abbcc") == canonical_cycle_key("ccbba") == "a-b-b-c-c"
    assert canonical_cycle_key("abcbc") != canonical_cycle_key("abbcc")


# ---------------------------------------------------------------------------------- Cairo


@pytest.fixture(scope="module")
def cairo(synthetic) -> SyntheticImage:
    return synthetic("cairo", (640, 640), rotation_deg=-20.0, seed=11)


def test_cairo_pentagons_are_equilateral_convex_and_distinct(cairo):
    pent = cairo.truth["pentagons"]
    assert pent.shape[1] == 5 and len(pent) > 400
    assert np.all(np.sort(pent, axis=1)[:, 1:] != np.sort(pent, axis=1)[:, :-1])
    assert np.all(cairo.site[pent] == 0)
    p = cairo.xy[pent]
    e = np.roll(p, -1, axis=1) - p
    length = np.linalg.norm(e, axis=2)
    assert length == pytest.approx(np.full(length.shape, 3.8 / 0.2))
    en = np.roll(e, -1, axis=1)
    cross = e[:, :, 0] * en[:, :, 1] - e[:, :, 1] * en[:, :, 0]
    assert np.all(cross > 0) or np.all(cross < 0)  # convex, same orientation for all
    # Two right angles per pentagon, at the 4-valent vertices.
    cosang = -(e * np.roll(e, 1, axis=1)).sum(axis=2) / length**2
    right = np.abs(cosang) < 1e-9
    assert np.all(right.sum(axis=1) == 2)
    assert np.all(cairo.truth["vertex_valence"][pent[right]] == 4)
    assert cairo.truth["nn_distance_px"] == pytest.approx(19.0)
    d, _ = cKDTree(cairo.xy[cairo.site == 0]).query(cairo.xy[cairo.site == 0], k=2)
    assert np.median(d[:, 1]) == pytest.approx(19.0)


def test_cairo_vertex_valence(cairo):
    val = cairo.truth["vertex_valence"]
    assert np.array_equal(val == 4, cairo.column_class == 1)
    assert np.array_equal(val == 3, cairo.column_class == 0)
    assert np.all(val[cairo.column_class == 2] == 0)
    # Interior vertices belong to exactly `valence` pentagons; none to more anywhere.
    counts = np.bincount(cairo.truth["pentagons"].ravel(), minlength=len(cairo.xy))
    h, w = cairo.shape
    m = 2.5 * cairo.truth["edge_px"]
    interior = (cairo.xy[:, 0] > m) & (cairo.xy[:, 0] < w - m) & (cairo.xy[:, 1] > m) & (
        cairo.xy[:, 1] < h - m
    )
    vert = cairo.site == 0
    assert np.array_equal(counts[interior & vert], val[interior & vert])
    assert np.all(counts[vert] <= val[vert])
    # Two 3-valent vertices per 4-valent one in the Cairo tiling.
    n3, n4 = np.count_nonzero(interior & (val == 3)), np.count_nonzero(interior & (val == 4))
    assert n3 / n4 == pytest.approx(2.0, rel=0.1)


def test_cairo_centres_and_fill_fraction(cairo):
    t = cairo.truth
    filled, cc = t["filled"], t["centre_column"]
    assert np.all(cc[filled] >= 0) and np.all(cc[~filled] == -1)
    assert np.allclose(cairo.xy[cc[filled]], t["pentagon_centroid"][filled])
    assert np.allclose(t["pentagon_centroid"], cairo.xy[t["pentagons"]].mean(axis=1))
    assert np.all(cairo.column_class[cc[filled]] == 2)
    assert t["fill_fraction"] == pytest.approx(0.5, abs=0.005)
    assert filled.mean() == pytest.approx(0.5, abs=0.06)
    assert np.all(np.char.endswith(t["pentagon_key"][filled], "+centre"))
    assert len(set(t["pentagon_key"][~filled])) == 1
    for f in (0.0, 0.3, 1.0):
        s = make_cairo((256, 256), fill_fraction=f, noise=False, seed=2)
        assert s.truth["fill_fraction"] == pytest.approx(f, abs=0.01)
        if f == 0.0:
            assert np.count_nonzero(s.column_class == 2) == 0
        if f == 1.0:
            assert s.truth["filled"].all()


def _agreement(s: SyntheticImage) -> tuple[float, float]:
    f, adj = s.truth["filled"], s.truth["pentagon_adjacency"]
    p = f.mean()
    return float((f[adj[:, 0]] == f[adj[:, 1]]).mean()), float(p**2 + (1 - p) ** 2)


def test_cairo_spatial_correlation():
    # Every interior pentagon shares its 5 edges with 5 others.
    s = make_cairo((768, 768), correlation=6.0, noise=False, seed=3)
    adj = s.truth["pentagon_adjacency"]
    assert np.bincount(adj.ravel()).max() == 5
    agree, chance = _agreement(s)
    assert agree > chance + 0.12
    indep = make_cairo((768, 768), correlation=0.0, noise=False, seed=3)
    agree0, chance0 = _agreement(indep)
    assert abs(agree0 - chance0) < 0.05
    # Correlated filling makes the uniform groups ("0" and "4") recur more than chance.
    uni = sum(s.truth["pattern_counts"][k] for k in ("0", "4")) / len(s.truth["groups_4"])
    uni0 = sum(indep.truth["pattern_counts"][k] for k in ("0", "4")) / len(indep.truth["groups_4"])
    assert uni > uni0 + 0.1


def test_cairo_groups_of_four(cairo):
    t = cairo.truth
    g, gv = t["groups_4"], t["group_vertex"]
    assert len(g) > 50 and g.shape[1] == 4
    assert np.all(t["vertex_valence"][gv] == 4)
    assert np.all((t["pentagons"][g] == gv[:, None, None]).any(axis=2))
    assert np.array_equal(t["group_filled"], t["filled"][g])
    # Cyclic order: consecutive pentagons of a group share an edge.
    adj = {tuple(sorted(p)) for p in t["pentagon_adjacency"].tolist()}
    assert all(
        tuple(sorted((int(r[k]), int(r[(k + 1) % 4])))) in adj for r in g for k in range(4)
    )
    # Pattern names by brute force over the 8 symmetries of the square.
    names = {(0, 0, 0, 0): "0", (0, 0, 0, 1): "1", (0, 0, 1, 1): "2-adjacent",
             (0, 1, 0, 1): "2-opposite", (0, 1, 1, 1): "3", (1, 1, 1, 1): "4"}
    for row, name in zip(t["group_filled"].astype(int), t["group_pattern"], strict=True):
        forms = [tuple(np.roll(r, k)) for r in (row, row[::-1]) for k in range(4)]
        assert names[min(forms)] == name
    assert sum(t["pattern_counts"].values()) == len(g)
    assert all(t["pattern_counts"][k] > 0 for k in ("0", "1", "2-adjacent", "3", "4"))


def test_cairo_image_peaks_period_and_determinism(cairo):
    h, w = cairo.shape
    xy = cairo.xy
    ok = (xy[:, 0] > 12) & (xy[:, 0] < w - 13) & (xy[:, 1] > 12) & (xy[:, 1] < h - 13)
    est = _com(cairo.clean - cairo.params["background"], xy[ok], radius=6)
    assert np.abs(est - xy[ok]).max() < 0.2
    assert lattice_period(cairo.image) == pytest.approx(cairo.truth["period_px"], rel=0.02)
    cell = cairo.truth["lattice_vectors_px"]
    assert np.degrees(np.arctan2(cell[0, 1], cell[0, 0])) == pytest.approx(-20.0)
    again = make_cairo((640, 640), rotation_deg=-20.0, seed=11)
    assert np.array_equal(again.image, cairo.image)
    assert np.array_equal(again.truth["filled"], cairo.truth["filled"])
    other = make_cairo((640, 640), rotation_deg=-20.0, seed=12)
    assert not np.array_equal(other.truth["filled"], cairo.truth["filled"])
    # Centre columns are brighter than vertex columns by the documented contrast.
    clean = make_cairo((256, 256), noise=False, background=0.0, seed=1)
    pk = clean.clean[np.rint(clean.xy[:, 1]).astype(int), np.rint(clean.xy[:, 0]).astype(int)]
    ratio = np.median(pk[clean.column_class == 2]) / np.median(pk[clean.column_class == 0])
    assert ratio == pytest.approx(1.25, rel=0.05)
    assert clean.material == "MoVTeNbO-cairo"


def test_cairo_rejects_bad_parameters():
    with pytest.raises(SynthParameterError, match="fill_fraction"):
        make_cairo((64, 64), fill_fraction=1.5)
    with pytest.raises(SynthParameterError, match="correlation"):
        make_cairo((64, 64), correlation=-1.0)
    with pytest.raises(SynthParameterError, match="unknown contrast"):
        make_cairo((64, 64), contrast={"vertex5": 1.0})


def test_tmd_position_jitter():
    s = make_tmd((384, 384), defects={}, jitter_A=0.03, noise=False, seed=9)
    sigma = 0.03 / 0.15
    nn = s.truth["nn_distance_px"]
    pairs = cKDTree(s.xy).query_pairs(1.3 * nn, output_type="ndarray")
    d = np.linalg.norm(s.xy[pairs[:, 0]] - s.xy[pairs[:, 1]], axis=1)
    assert np.median(d) == pytest.approx(nn, rel=0.01)
    # A bond length varies by the difference of two independent displacements along it.
    assert d.std() == pytest.approx(np.sqrt(2) * sigma, rel=0.15)


def test_old_import_path_still_gives_the_same_images():
    # motifcat.ingest.synth re-exports motifcat.datasets for one release, under the old names.
    from motifcat.ingest import synth

    old = synth.tmd_image((64, 64), seed=3)
    new = make_tmd((64, 64), seed=3)
    np.testing.assert_array_equal(old.image, new.image)
    assert synth.cairo_image is make_cairo
