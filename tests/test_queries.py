"""The query layer on a real embedded catalog: a hand-built one whose answers are known exactly,
and a synthetic one written by the real pipeline and writer. Every Cypher text is also checked
with Neo4j's own parser (the same text runs on both backends)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from motifcat.catalog.embedded import LadybugStore
from motifcat.catalog.store import BulkNodes, BulkRels
from motifcat.errors import QueryError
from motifcat.query import (
    CYPHER,
    composition,
    composition_edges,
    image_instances,
    image_units,
    list_images,
    list_materials,
    list_samples,
    mean_images,
    motif_detail,
    persistence_score,
    persistent_motifs,
    recurring_motifs,
    sample_summary,
    similar_motifs,
    spatial_context,
    vocabulary,
)

NN_A = 3.288 / np.sqrt(3.0)  # MoSe2 nearest-neighbour (M-X2) projected distance

# Two hexagons of a honeycomb sharing one edge: 10 columns, 11 NEAR edges, 2 level-2 units.
_ANG = np.deg2rad(30 + 60 * np.arange(6))
_HEX1 = np.column_stack([np.cos(_ANG), np.sin(_ANG)])


def _columns() -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Positions (units of nn), site (0 = metal, 1 = chalcogen) and the two hexagons."""
    hex2 = _HEX1 + [np.sqrt(3.0), 0.0]
    xy = np.vstack([_HEX1, hex2[[0, 1, 4, 5]]])  # hex2's 30, 90, 270, 330 degree vertices
    site = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    # hex2 ring (counter-clockwise from 30°): 6, 7, 0, 5, 8, 9 (0 = hex1's 30°, 5 = hex1's 330°)
    return xy, site, [[0, 1, 2, 3, 4, 5], [6, 7, 0, 5, 8, 9]]


def _ring_edges(ring: list[int]) -> set[tuple[int, int]]:
    return {tuple(sorted((ring[k], ring[(k + 1) % 6]))) for k in range(6)}


MOTIFS = pd.DataFrame(
    {
        "id": ["L1-0001", "L1-0002", "L1-0003", "L2-0001", "L2-0002", "L3-0001"],
        "level": [1, 1, 1, 2, 2, 3],
        "key": ["L1:zernike-n10"] * 3 + ["hex", "hex-X1", "pair"],
        "descriptor": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.9, 0.1], [], [], []],
        "n_instances": [20, 19, 1, 7, 1, 1],
        "prototype": [
            json.dumps({"xy_A": [[0.0, 0.0]], "labels": ["L1-0001"]}),
            json.dumps({"xy_A": [[0.0, 0.0]], "labels": ["L1-0002"]}),
            "",
            json.dumps(
                {
                    "xy_A": (_HEX1 * NN_A).round(4).tolist(),
                    "labels": ["L1-0001", "L1-0002"] * 3,
                    "periodic": False,
                }
            ),
            "",
            "",
        ],
        "mean_image": [json.dumps(np.eye(3).tolist()), "", "", "", "", ""],
    }
)
COMPOSED = pd.DataFrame(
    {
        "src": ["L2-0001", "L2-0001", "L2-0002", "L2-0002", "L2-0002", "L3-0001", "L3-0001"],
        "dst": ["L1-0001", "L1-0002", "L1-0001", "L1-0002", "L1-0003", "L2-0001", "L2-0002"],
        "count": [3, 3, 3, 2, 1, 1, 1],
    }
)
# image -> (sample, material, defect?)
IMAGES = {
    "img1": ("S1", "MoSe2", False),
    "img2": ("S1", "MoSe2", False),
    "img3": ("S2", "MoSe2", True),
    "img4": ("S3", "WS2", False),
}


def build_toy_catalog(store: LadybugStore) -> None:
    """Write the hand-built catalog through the store's bulk path (one transaction)."""
    xy, site, rings = _columns()
    edges = sorted(_ring_edges(rings[0]) | _ring_edges(rings[1]))
    inst, near, part, inst_of, in_img, contains = [], [], [], [], [], []
    for n, (img, (_, _, defect)) in enumerate(IMAGES.items()):
        offset = np.array([100.0 * n, 0.0])
        motif = np.where(site == 0, "L1-0001", "L1-0002")
        if defect:
            motif[3] = "L1-0003"  # an X1 column in hexagon 1
        cid = [f"{img}-1-{k}" for k in range(len(xy))]
        for k in range(len(xy)):
            x, y = xy[k] * NN_A + offset
            inst.append({"id": cid[k], "x_A": x, "y_A": y, "level": 1})
            inst_of.append({"src": cid[k], "dst": motif[k]})
        near += [{"src": cid[a], "dst": cid[b], "d_A": NN_A} for a, b in edges]
        units = ["L2-0002" if defect else "L2-0001", "L2-0001"]
        uid = [f"{img}-2-{u}" for u in range(2)]
        for u, ring in enumerate(rings):
            cx, cy = xy[ring].mean(axis=0) * NN_A + offset
            inst.append({"id": uid[u], "x_A": cx, "y_A": cy, "level": 2})
            inst_of.append({"src": uid[u], "dst": units[u]})
            # pos: ring position in cyclic order (the writer's PART_OF.pos)
            part += [{"src": cid[k], "dst": uid[u], "pos": p} for p, k in enumerate(ring)]
        ids_here = list(motif) + units
        if defect:
            tid = f"{img}-3-0"
            inst.append({"id": tid, "x_A": offset[0], "y_A": 0.0, "level": 3})
            inst_of.append({"src": tid, "dst": "L3-0001"})
            part += [{"src": u, "dst": tid, "pos": p} for p, u in enumerate(uid)]
            ids_here.append("L3-0001")
        in_img += [{"src": r["id"], "dst": img} for r in inst if r["id"].startswith(img)]
        vals, counts = np.unique(ids_here, return_counts=True)
        contains += [
            {"src": img, "dst": v, "count": int(c)} for v, c in zip(vals, counts, strict=True)
        ]
    images = pd.DataFrame(
        {
            "id": list(IMAGES),
            "path": [f"/data/{i}.tif" for i in IMAGES],
            "pixel_size_A": 0.15,
            "width": 256,
            "height": 256,
            "n_columns": 10,
            "params": "{}",
            "metadata": "{}",
            "software": "motifcat test",
            "ingested_at": [f"2025-01-0{k + 1}T00:00:00Z" for k in range(len(IMAGES))],
        }
    )
    samples = sorted({s for s, _, _ in IMAGES.values()})
    store.write(
        [
            BulkNodes("Material", pd.DataFrame({"name": ["MoSe2", "WS2"]})),
            BulkNodes("Sample", pd.DataFrame({"id": samples, "name": samples})),
            BulkNodes("Image", images),
            BulkNodes("Motif", MOTIFS),
            BulkNodes("Instance", pd.DataFrame(inst)),
            BulkRels("OF_MATERIAL", "Sample", "Material", pd.DataFrame(
                {"src": ["S1", "S2", "S3"], "dst": ["MoSe2", "MoSe2", "WS2"]})),
            BulkRels("OF_SAMPLE", "Image", "Sample", pd.DataFrame(
                {"src": list(IMAGES), "dst": [s for s, _, _ in IMAGES.values()]})),
            BulkRels("IN_IMAGE", "Instance", "Image", pd.DataFrame(in_img)),
            BulkRels("INSTANCE_OF", "Instance", "Motif", pd.DataFrame(inst_of)),
            BulkRels("NEAR", "Instance", "Instance", pd.DataFrame(near)),
            BulkRels("PART_OF", "Instance", "Instance", pd.DataFrame(part)),
            BulkRels("COMPOSED_OF", "Motif", "Motif", COMPOSED),
            BulkRels("CONTAINS", "Image", "Motif", pd.DataFrame(contains)),
        ]
    )


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    store = LadybugStore(tmp_path_factory.mktemp("toy") / "catalog.lbug")
    build_toy_catalog(store)
    yield store
    store.close()


# ------------------------------------------------------------------------------ listings


def test_list_materials_and_samples(toy):
    mats = list_materials(toy)
    assert mats.to_dict("records") == [
        {"material": "MoSe2", "n_samples": 2, "n_images": 3},
        {"material": "WS2", "n_samples": 1, "n_images": 1},
    ]
    samples = list_samples(toy).set_index("sample")
    assert samples.loc["S1", "n_images"] == 2
    assert samples.loc["S1", "material"] == "MoSe2"
    # 10 columns + 2 units per image; img3 also one level-3 composite
    assert samples.loc["S1", "n_instances"] == 24
    assert samples.loc["S2", "n_instances"] == 13
    assert samples.loc["S3", "n_instances"] == 12


def test_list_images(toy):
    all_images = list_images(toy)
    assert sorted(all_images["image_id"]) == sorted(IMAGES)
    s1 = list_images(toy, "S1")
    assert list(s1["image_id"]) == ["img1", "img2"]  # ordered by ingestion time
    assert list(s1.columns) == ["image_id", "path", "sample", "material", "width", "height",
                                "pixel_size_A", "n_columns", "ingested_at"]
    assert s1["pixel_size_A"].tolist() == [0.15, 0.15]
    with pytest.raises(QueryError, match="no sample 'nope'"):
        list_images(toy, "nope")


def test_vocabulary_and_edges(toy):
    voc = vocabulary(toy)
    assert voc["motif_id"].tolist() == MOTIFS["id"].tolist()
    assert voc.set_index("motif_id").loc["L2-0001", "n_images"] == 4
    assert vocabulary(toy, level=3)["motif_id"].tolist() == ["L3-0001"]
    edges = composition_edges(toy)
    assert len(edges) == len(COMPOSED)
    assert edges.set_index(["parent", "child"]).loc[("L2-0002", "L1-0003"), "count"] == 1
    with pytest.raises(QueryError, match="level"):
        vocabulary(toy, level=4)


# -------------------------------------------------------------------------- cross-sample


def test_recurring_motifs(toy):
    rec = recurring_motifs(toy)  # at least 2 materials
    assert rec["motif_id"].tolist() == ["L1-0001", "L1-0002", "L2-0001"]
    first = rec.iloc[0]
    assert (first.n_materials, first.n_samples, first.n_images, first.n_instances) == (2, 3, 4, 20)
    assert first.materials == ["MoSe2", "WS2"]
    assert first.per_material == {"MoSe2": 15, "WS2": 5}
    assert rec.iloc[1].per_material == {"MoSe2": 14, "WS2": 5}
    hexes = rec.set_index("motif_id").loc["L2-0001"]
    assert hexes.per_material == {"MoSe2": 5, "WS2": 2}
    # one material, several samples: the defect motifs are only in sample S2
    one = recurring_motifs(toy, min_materials=1, min_samples=2)
    assert set(one["motif_id"]) == {"L1-0001", "L1-0002", "L2-0001"}
    assert set(recurring_motifs(toy, min_materials=1)["motif_id"]) == set(MOTIFS["id"])
    assert recurring_motifs(toy, level=2)["motif_id"].tolist() == ["L2-0001"]
    assert recurring_motifs(toy, min_materials=3).empty
    with pytest.raises(QueryError, match="min_materials"):
        recurring_motifs(toy, min_materials=-1)


def test_persistent_motifs_ranked_by_documented_score(toy):
    per = persistent_motifs(toy, min_images=2, min_instances=10)
    assert per["motif_id"].tolist() == ["L1-0001", "L1-0002"]  # L2-0001 has only 7 instances
    assert per["score"].iloc[0] == pytest.approx(4 * np.log(21) * 1.5)
    assert per["score"].iloc[1] == pytest.approx(4 * np.log(20) * 1.5)
    low = persistent_motifs(toy, min_images=1, min_instances=1)
    assert len(low) == len(MOTIFS)
    assert low["score"].is_monotonic_decreasing
    # a motif seen in 10 images beats one seen 1000 times in a single image
    assert persistence_score(10, 20, 1) > persistence_score(1, 1000, 1)


def test_sample_summary(toy):
    s = sample_summary(toy, "S2")
    assert s.material == "MoSe2" and s.n_images == 1
    levels = s.levels.set_index("level")
    assert levels.loc[1, "n_motifs"] == 3 and levels.loc[1, "n_instances"] == 10
    assert levels.loc[2, "n_motifs"] == 2 and levels.loc[3, "n_instances"] == 1
    top1 = s.top_motifs[s.top_motifs["level"] == 1]
    assert top1["motif_id"].tolist() == ["L1-0001", "L1-0002", "L1-0003"]
    assert top1["share"].tolist() == pytest.approx([0.5, 0.4, 0.1])
    with pytest.raises(QueryError, match="sample"):
        sample_summary(toy, "S9")


# ------------------------------------------------------------------------------ per motif


def test_composition_both_directions(toy):
    c = composition(toy, "L2-0002")
    assert c.parts.set_index("motif_id")["count"].to_dict() == {
        "L1-0001": 3, "L1-0002": 2, "L1-0003": 1}
    assert c.part_of.to_dict("records") == [
        {"motif_id": "L3-0001", "level": 3, "key": "pair", "count": 1}]
    leaf = composition(toy, "L1-0003")
    assert leaf.parts.empty
    assert leaf.part_of["motif_id"].tolist() == ["L2-0002"]
    with pytest.raises(QueryError, match="no motif 'L9-9999'"):
        composition(toy, "L9-9999")


def test_spatial_context(toy):
    # Every metal column's NEAR neighbours are chalcogen columns: 11 M-X edges per image,
    # and in the defect image one of them goes to the X1 column (2 of its 2 edges).
    ctx = spatial_context(toy, "L1-0001")
    counts = ctx.set_index("motif_id")["count"].to_dict()
    assert counts == {"L1-0002": 4 * 11 - 2, "L1-0003": 2}
    assert ctx["share"].sum() == pytest.approx(1.0)
    # Units: the two hexagons of an image share an edge (2 columns) -> one neighbour each.
    ctx2 = spatial_context(toy, "L2-0001").set_index("motif_id")["count"].to_dict()
    # 3 images with two hex units (2 pairs each) + img3 (hex next to hex-X1: 1 pair)
    assert ctx2 == {"L2-0001": 6, "L2-0002": 1}
    assert spatial_context(toy, "L3-0001").empty  # a single composite: no neighbours


def test_similar_motifs(toy):
    sim = similar_motifs(toy, "L1-0002", k=2)
    assert sim["motif_id"].tolist() == ["L1-0003", "L1-0001"]
    assert sim["distance"].iloc[0] == pytest.approx(np.hypot(0.1, 0.1))
    by_vec = similar_motifs(toy, descriptor=[1.0, 0.05, 0.0], k=1, space="zernike-n10")
    assert by_vec["motif_id"].tolist() == ["L1-0001"]
    # level 2: by composition fractions; the hexagon and the hexagon with an X1 column
    lvl2 = similar_motifs(toy, "L2-0001", k=5)
    assert lvl2["motif_id"].tolist() == ["L2-0002"]
    assert lvl2["distance"].iloc[0] == pytest.approx(np.sqrt(2 * (1 / 6) ** 2))
    with pytest.raises(QueryError, match="exactly one"):
        similar_motifs(toy)
    with pytest.raises(QueryError, match="length"):
        similar_motifs(toy, descriptor=[1.0, 2.0], space="zernike-n10")


def test_similar_motifs_stay_in_one_descriptor_space(tmp_path):
    """Descriptors of different spaces (the level-1 key) never compare, even of equal length."""
    from motifcat.catalog.vocabulary import descriptor_distances
    from motifcat.query import DEFAULT_SPACE

    store = LadybugStore(tmp_path / "spaces.lbug")
    store.write([BulkNodes("Motif", pd.DataFrame({
        "id": ["L1-0001", "L1-0002", "L1-0003", "L1-0004"],
        "level": [1, 1, 1, 1],
        "key": [f"L1:{DEFAULT_SPACE}"] * 2 + ["L1:pca-img1", "L1:zernike-n10-patch"],
        "descriptor": [[1.0, 0.0], [0.0, 2.0], [1.0, 0.01], [0.6, 0.8]],
    }))])
    try:
        near = similar_motifs(store, "L1-0001", k=5)
        assert near["motif_id"].tolist() == ["L1-0002"]  # L1-0003 is closer, but PCA space
        assert near["distance"].iloc[0] == pytest.approx(np.sqrt(5.0))
        # a raw descriptor: default space, brought to the stored form (in the default ring
        # space the cross-section entry is weighted), distance as the vocabulary computes it
        from motifcat.catalog.vocabulary import normalize_descriptor

        raw = similar_motifs(store, descriptor=[0.9, 0.1], k=5)
        assert raw["motif_id"].tolist() == ["L1-0001", "L1-0002"]
        query = normalize_descriptor([0.9, 0.1], DEFAULT_SPACE)
        np.testing.assert_allclose(
            raw["distance"], descriptor_distances(query, [[1.0, 0.0], [0.0, 2.0]])[0]
        )
        # a patch-scaled space: the raw descriptor is brought to unit norm first
        patch = similar_motifs(store, descriptor=[3.0, 4.0], space="zernike-n10-patch")
        assert patch["motif_id"].tolist() == ["L1-0004"]
        assert patch["distance"].iloc[0] == pytest.approx(0.0, abs=1e-12)
        with pytest.raises(QueryError, match="no level-1 motif in descriptor space"):
            similar_motifs(store, descriptor=[1.0, 0.0], space="zernike-n12-image")
        with pytest.raises(QueryError, match="only with descriptor"):
            similar_motifs(store, "L1-0001", space="pca-img1")
    finally:
        store.close()


def test_mean_images_in_one_query(toy):
    got = mean_images(toy, ["L1-0001", "L2-0001", "no-such-motif"])
    assert list(got) == ["L1-0001", "L2-0001"]
    np.testing.assert_array_equal(got["L1-0001"], np.eye(3))
    assert got["L2-0001"] is None
    assert mean_images(toy, []) == {}
    with pytest.raises(QueryError, match="one string"):
        mean_images(toy, "L1-0001")


def test_motif_detail(toy):
    d = motif_detail(toy, "L1-0001")
    assert (d.level, d.key, d.n_instances) == (1, "L1:zernike-n10", 20)
    assert d.samples == ["S1", "S2", "S3"] and d.materials == ["MoSe2", "WS2"]
    assert d.images == sorted(IMAGES)
    np.testing.assert_array_equal(d.descriptor, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(d.mean_image, np.eye(3))
    assert d.prototype == {"xy_A": [[0.0, 0.0]], "labels": ["L1-0001"]}
    h = motif_detail(toy, "L2-0001")
    assert h.descriptor.size == 0 and h.mean_image is None
    xy, labels = h.prototype_columns()
    np.testing.assert_allclose(xy, (_HEX1 * NN_A).round(4))
    assert labels == ["L1-0001", "L1-0002"] * 3 and h.prototype_cell() is None
    # no prototype (a level-1 motif stored without one): empty, not an error
    assert motif_detail(toy, "L1-0003").prototype_columns()[1] == []


# ------------------------------------------------------------------------------ per image


def test_image_instances_and_units(toy):
    cols = image_instances(toy, "img3")
    assert len(cols) == 10
    assert (cols["motif_id"] == "L1-0003").sum() == 1
    xy, _, rings = _columns()
    got = cols.set_index("instance_id")
    np.testing.assert_allclose(got.loc["img3-1-4", ["x_A", "y_A"]].to_numpy(float),
                               xy[4] * NN_A + [200.0, 0.0])
    units = image_units(toy, "img3")
    assert units["motif_id"].tolist() == ["L2-0002", "L2-0001"]
    poly = np.array(units["polygon"].iloc[0])
    assert poly.shape == (6, 2)
    # ordered by angle: consecutive vertices are one nn apart (the outline, not a star)
    d = np.linalg.norm(np.roll(poly, -1, axis=0) - poly, axis=1)
    np.testing.assert_allclose(d, NN_A, atol=1e-9)
    assert units["interior"].map(len).tolist() == [0, 0]  # hexagons: no centre column
    # the ring follows PART_OF.pos: vertex k is ring column k
    np.testing.assert_allclose(poly, xy[rings[0]] * NN_A + [200.0, 0.0])
    np.testing.assert_allclose(units[["x_A", "y_A"]].iloc[0].to_numpy(float),
                               xy[rings[0]].mean(axis=0) * NN_A + [200.0, 0.0])
    comp = image_units(toy, "img3", level=3)
    assert comp["motif_id"].tolist() == ["L3-0001"]
    assert comp["units"].iloc[0] == ["img3-2-0", "img3-2-1"]  # in PART_OF.pos order
    hull = np.array(comp["polygon"].iloc[0])
    assert len(hull) == 8  # convex hull of the 10 columns: 8 corners
    from scipy.spatial import ConvexHull

    pts = xy * NN_A + [200.0, 0.0]
    ref = pts[ConvexHull(pts).vertices]
    assert sorted(map(tuple, hull.round(9))) == sorted(map(tuple, ref.round(9)))
    e1, e2 = np.roll(hull, -1, axis=0) - hull, np.roll(hull, -2, axis=0) - hull
    cross = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    assert (cross > 0).all()  # a convex, counter-clockwise outline
    bare = image_units(toy, "img3", level=3, outline=False)
    assert bare["polygon"].iloc[0] is None and bare["units"].iloc[0] == comp["units"].iloc[0]
    with pytest.raises(QueryError, match="no image"):
        image_units(toy, "nope")
    with pytest.raises(QueryError, match="level 2 or 3"):
        image_units(toy, "img3", level=1)


def test_user_values_are_parameters(toy):
    """A hostile id is data, not Cypher: it finds nothing and changes nothing."""
    evil = "x' OR 1=1 WITH 1 AS a MATCH (n) DETACH DELETE n //"
    with pytest.raises(QueryError, match="no motif"):
        composition(toy, evil)
    with pytest.raises(QueryError, match="no sample"):
        list_images(toy, evil)
    assert toy.read("MATCH (n:Motif) RETURN count(*) AS n")[0]["n"] == len(MOTIFS)
    for text in CYPHER.values():
        assert "'" not in text and '"' not in text  # no literal was formatted into a query


# ------------------------------------------------------------------- the same text on Neo4j


def test_every_query_passes_neo4js_parser():
    from cypher_lint import lint_cypher, lint_unavailable

    reason = lint_unavailable()
    if reason:
        pytest.skip(reason)
    problems = lint_cypher(list(CYPHER.values()))
    assert not [p for p in problems if p.severity == "error"], "\n".join(map(str, problems))


# ------------------------------------------------- a real catalog: pipeline + writer


@pytest.fixture(scope="module")
def real(small_catalog):
    """Three synthetic images of two materials, analysed and written for real: the catalog of
    the doctests (``small_catalog`` in the root conftest.py), shared read-only."""
    return small_catalog


def test_real_catalog_counts_agree_with_an_instance_scan(real):
    """The CONTAINS counts the queries use equal a brute-force scan of the instances."""
    from motifcat.query import run_readonly

    store, reports = real
    mats = list_materials(store).set_index("material")
    assert mats.loc["MoSe2", "n_samples"] == 2 and mats.loc["WS2", "n_images"] == 1
    everything = recurring_motifs(store, min_materials=1)
    scan = run_readonly(
        store,
        "MATCH (i:Instance)-[:INSTANCE_OF]->(m:Motif) "
        "MATCH (i)-[:IN_IMAGE]->(img:Image) MATCH (img)-[:OF_SAMPLE]->(s:Sample) "
        "MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "RETURN m.id AS motif_id, mat.name AS material, count(*) AS n",
    )
    per_material = {
        (row.motif_id, mat): n for row in everything.itertuples()
        for mat, n in row.per_material.items()
    }
    assert per_material == {(r.motif_id, r.material): r.n for r in scan.itertuples()}
    samples = list_samples(store).set_index("sample")
    n_written = {s: 0 for s in samples.index}
    for rep, s in zip(reports, ["mose2-a", "mose2-b", "ws2-a"], strict=True):
        n_written[s] += int(run_readonly(
            store, "MATCH (i:Instance)-[:IN_IMAGE]->(img:Image) WHERE img.id = $id "
            "RETURN count(*) AS n", {"id": rep.image_id})["n"].iloc[0])
    assert samples["n_instances"].to_dict() == n_written
    # every level-1 motif's Motif.n_instances is its total over images
    voc = vocabulary(store).set_index("motif_id")
    tot = everything.set_index("motif_id")["n_instances"]
    assert (voc.loc[tot.index, "n_instances"] == tot).all()


def test_real_catalog_per_motif_and_per_image(real):
    store, reports = real
    top = persistent_motifs(store, min_images=2, min_instances=10, level=1)
    assert len(top) >= 2  # the metal and chalcogen environments recur
    mid = top["motif_id"].iloc[0]
    d = motif_detail(store, mid)
    assert d.mean_image is not None and d.mean_image.ndim == 2
    assert len(d.images) >= 2 and d.descriptor.size > 0
    ctx = spatial_context(store, mid)
    assert ctx["count"].sum() > 0 and ctx["share"].sum() == pytest.approx(1.0)
    sim = similar_motifs(store, mid, k=3)
    assert mid not in sim["motif_id"].tolist() and sim["distance"].is_monotonic_increasing
    cols = image_instances(store, reports[0].image_id)
    assert len(cols) > 50 and cols["motif_id"].notna().all()
    units = image_units(store, reports[0].image_id)
    if len(units):  # level-2 units: closed polygons of at least 3 columns
        assert units["polygon"].map(len).min() >= 3
        c = composition(store, units["motif_id"].iloc[0])
        assert c.parts["level"].eq(1).all() and c.parts["count"].sum() >= 3
    summary = sample_summary(store, "mose2-a")
    assert summary.material == "MoSe2" and summary.n_images == 1
    assert summary.levels.set_index("level").loc[1, "n_instances"] == len(cols)


def test_real_catalog_unit_and_composite_context_match_the_edges(real):
    """The level-2/3 context (deduplicated hop by hop for speed) counts exactly the distinct
    (instance, neighbour) pairs that share a column, computed here from the raw edges."""
    store, _ = real
    part = pd.DataFrame(store.read("MATCH (a:Instance)-[:PART_OF]->(b:Instance) "
                      "RETURN a.id AS a, b.id AS b, b.level AS level"))
    motif = pd.DataFrame(store.read("MATCH (i:Instance)-[:INSTANCE_OF]->(m:Motif) "
                       "RETURN i.id AS i, m.id AS motif_id")).set_index("i")["motif_id"]
    # column -> owner at each level (a column reaches composites through its units)
    col_unit = part[part["level"] == 2][["a", "b"]].rename(columns={"a": "col", "b": "owner"})
    unit_comp = part[part["level"] == 3][["a", "b"]].rename(columns={"a": "unit", "b": "owner"})
    col_comp = col_unit.rename(columns={"owner": "unit"}).merge(unit_comp, on="unit")[
        ["col", "owner"]].drop_duplicates()
    checked = 0
    for level, col_owner in ((2, col_unit), (3, col_comp)):
        voc = vocabulary(store, level).sort_values("n_instances", ascending=False)
        for mid in voc["motif_id"].head(2):
            mine = col_owner[col_owner["owner"].map(motif) == mid]
            pairs = mine.merge(col_owner, on="col", suffixes=("_u", "_v"))
            pairs = pairs[pairs["owner_u"] != pairs["owner_v"]][["owner_u", "owner_v"]]
            want = pairs.drop_duplicates()["owner_v"].map(motif).value_counts().to_dict()
            got = spatial_context(store, mid).set_index("motif_id")["count"].to_dict()
            assert got == want, (level, mid)
            checked += bool(want)
    assert checked >= 2  # the test saw neighbours at both levels, not only empty contexts


def test_filled_pentagons_outline_their_ring_and_list_their_centre(tmp_path, analysed):
    """Cairo tiling through the real pipeline and writer: a filled pentagon is a 5-gon whose
    centre column is reported as interior, not a sixth vertex; old catalogs (no pos) agree."""
    from motifcat.catalog.writer import write_analysis

    store = LadybugStore(tmp_path / "cairo.lbug")
    try:
        rep = write_analysis(store, analysed("cairo", (256, 256), seed=3),
                             sample="cairo", material="Cairo")
        units = image_units(store, rep.image_id)
        assert len(units) > 10
        inner = units[units["interior"].map(len) > 0]
        assert len(inner) > 3 and inner["interior"].map(len).eq(1).all()
        assert units["polygon"].map(len).max() <= 5
        full = units[units["polygon"].map(len) == 5]
        assert len(full) > 5
        for poly, centre in zip(inner["polygon"], inner["interior"], strict=True):
            ring = np.array(poly)
            # consecutive vertices are pentagon sides (short), never a diagonal
            side = np.linalg.norm(np.roll(ring, -1, axis=0) - ring, axis=1)
            diag = np.linalg.norm(np.roll(ring, -2, axis=0) - ring, axis=1)
            assert side.max() < diag.min()
            # the centre lies inside the ring
            assert np.linalg.norm(np.array(centre[0]) - ring.mean(axis=0)) < 0.5 * side.min()
        # a catalog without PART_OF.pos values: the angle-order fallback draws the same rings
        store.read("MATCH ()-[p:PART_OF]->() SET p.pos = NULL RETURN count(*) AS n")
        old = image_units(store, rep.image_id)
        assert old["interior"].map(len).tolist() == units["interior"].map(len).tolist()
        for a, b in zip(old["polygon"], units["polygon"], strict=True):
            a, b = np.round(a, 6).tolist(), np.round(b, 6).tolist()
            turns = [b[k:] + b[:k] for k in range(len(b))]
            assert a in turns or a[::-1] in turns
        comp = image_units(store, rep.image_id, level=3)
        assert comp["units"].map(len).min() >= 2 and comp["polygon"].map(len).min() >= 3
    finally:
        store.close()
