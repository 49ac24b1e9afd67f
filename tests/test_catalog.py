"""The catalog core on the real embedded store (Ladybug in tmp_path): store, writer, ingest."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest

from motifcat.catalog import schema
from motifcat.catalog.embedded import LadybugStore
from motifcat.catalog.store import BulkNodes, BulkRels, Statement, open_catalog
from motifcat.catalog.writer import instance_ids, level_motif_id, write_analysis
from motifcat.errors import CatalogError, CatalogInUseError, QueryError
from motifcat.ingest.model import (
    Analysis,
    AnalysisParams,
    Columns,
    Lattice,
    MotifClass,
)


# -- a real Analysis built from arrays (no image analysis: fast and exactly known) ------------
def fake_analysis(
    n_side: int = 20, seed: int = 0, n_classes: int = 3, pixel_size_A: float | None = 0.2
) -> Analysis:
    """A square lattice of columns with ``n_classes`` level-1 classes and a border ring of -1.

    Descriptors are well-separated random unit vectors (one per class); the image id is the
    sha256 of a random image, so every seed is a different image.
    """
    rng = np.random.default_rng(seed)
    data = rng.random((64, 64)).astype(np.float32)
    from motifcat.ingest.io import micrograph_from_array

    mg = micrograph_from_array(data, pixel_size_A=pixel_size_A, path=f"fake-{seed}.npy")
    gx, gy = np.meshgrid(np.arange(n_side), np.arange(n_side))
    xy = np.column_stack([gx.ravel(), gy.ravel()]).astype(float) * 8.0 + 4.0
    n = len(xy)
    border = (gx.ravel() == 0) | (gy.ravel() == 0)
    labels = rng.integers(0, n_classes, n)
    labels[border] = -1
    basis = np.random.default_rng(1234).normal(size=(n_classes, 36))
    classes = [
        MotifClass(
            level=1,
            label=k,
            key=f"L1:{k}",
            count=int((labels == k).sum()),
            descriptor=basis[k] / np.linalg.norm(basis[k]) * 0.9,
            mean_image=rng.random((21, 21)),
            prototype_xy=np.zeros((1, 2)),
            prototype_labels=np.array([k]),
        )
        for k in range(n_classes)
    ]
    return Analysis(
        micrograph=mg,
        params=AnalysisParams(),
        lattice=Lattice(period_px=16.0, spacing_px=8.0),
        columns=Columns(xy=xy, intensity=np.ones(n)),
        has_patch=~border,
        features=np.zeros((int((~border).sum()), 36)),
        moments=None,
        labels=labels,
        classes=classes,
        hierarchy=None,
        software="motifcat test",
    )


def count(store, pattern: str) -> int:
    return store.read(f"MATCH {pattern} RETURN count(*) AS n")[0]["n"]


def snapshot(store) -> dict[str, int]:
    """Count of every node label and relationship type, plus the motif instance totals."""
    out = {label: count(store, f"(n:{label})") for label in schema.NODE_TABLES}
    out.update({rel: count(store, f"()-[r:{rel}]->()") for rel in schema.REL_TABLES})
    out["sum_n_instances"] = store.read(
        "MATCH (m:Motif) RETURN coalesce(sum(m.n_instances), 0) AS n"
    )[0]["n"]
    return out


@pytest.fixture
def store(tmp_path):
    s = open_catalog(tmp_path / "cat")
    yield s
    s.close()


# -- open_catalog ------------------------------------------------------------------------------
def test_open_catalog_forms(tmp_path, monkeypatch):
    p = tmp_path / "sub" / "cat"
    with open_catalog(p) as s:
        assert isinstance(s, LadybugStore) and s.backend == "ladybug"
        assert p.exists()
    with open_catalog(f"ladybug:{p}", read_only=True) as s:
        assert s.is_read_only and s.read("MATCH (i:Image) RETURN count(i) AS n") == [{"n": 0}]
    monkeypatch.setenv("MOTIFCAT_CATALOG", str(tmp_path / "env-cat"))
    with open_catalog() as s:
        assert s.path == tmp_path / "env-cat"
    with pytest.raises(CatalogError, match="unknown catalog scheme 'http'"):
        open_catalog("http://example.org/cat")
    # a "word:" prefix that is not ladybug: is refused, not taken for a file name
    monkeypatch.chdir(tmp_path)
    for bad in ("neo4j:/localhost:7687", "bolt:localhost", "sqlite:cat.db"):
        with pytest.raises(CatalogError, match=f"{bad}: unknown catalog scheme"):
            open_catalog(bad)
    assert not [p for p in tmp_path.rglob("*") if ":" in p.name]
    with pytest.raises(CatalogError, match="no path"):
        open_catalog("ladybug:")
    with pytest.raises(CatalogError, match="no catalog there"):
        open_catalog(tmp_path / "missing", read_only=True)
    with pytest.raises(CatalogError, match="is a directory"):
        open_catalog(tmp_path)


def test_open_catalog_neo4j_uri_uses_env_credentials(monkeypatch):
    """A Neo4j URI goes to Neo4jStore with the credentials of the environment only."""
    neo4j_mod = pytest.importorskip("motifcat.catalog.neo4j")
    seen = {}

    class Fake:  # the only mock: no Neo4j server can run here
        def __init__(self, uri, user=None, password=None, **kw):
            seen.update(uri=uri, user=user, password=password, **kw)

    monkeypatch.setattr(neo4j_mod, "Neo4jStore", Fake)
    monkeypatch.setenv("NEO4J_USER", "alice")
    monkeypatch.setenv("NEO4J_PASSWORD", "s3cret")
    assert isinstance(open_catalog("bolt+s://db.example:7687"), Fake)
    assert seen == {"uri": "bolt+s://db.example:7687", "user": "alice", "password": "s3cret"}


# -- the store's transaction ---------------------------------------------------------------------
def test_schema_created_and_ops_roundtrip(store):
    tables = {r["name"] for r in store.read("CALL show_tables() RETURN name")}
    assert set(schema.NODE_TABLES) | set(schema.REL_TABLES) <= tables
    store.write(
        [
            Statement("CREATE (:Image {id: $id, width: $w})", {"id": "img", "w": 5}),
            BulkNodes("Instance", pd.DataFrame({"id": ["a", "b"], "x_A": [1, 2], "level": 1})),
            BulkRels(
                "NEAR",
                "Instance",
                "Instance",
                pd.DataFrame({"src": ["a"], "dst": ["b"], "d_A": [2.5]}),
            ),
            BulkRels(
                "IN_IMAGE", "Instance", "Image", pd.DataFrame({"src": ["a", "b"], "dst": "img"})
            ),
        ]
    )
    rows = store.read(
        "MATCH (a:Instance)-[r:NEAR]->(b) RETURN a.id AS a, b.id AS b, "
        "r.d_A AS d, a.x_A AS x, a.y_A AS y, a.level AS lv"
    )
    assert rows == [{"a": "a", "b": "b", "d": 2.5, "x": 1.0, "y": None, "lv": 1}]
    assert count(store, "(:Instance)-[:IN_IMAGE]->(:Image {id: 'img'})") == 2


def test_catalog_written_before_families_gains_the_family_property(tmp_path, monkeypatch):
    old = [p for p in schema.NODE_TABLES["Motif"] if p[0] != "family"]
    with monkeypatch.context() as m:
        m.setitem(schema.NODE_TABLES, "Motif", old)
        m.setattr(schema, "ADDED_PROPERTIES", {"Instance": schema.ADDED_PROPERTIES["Instance"]})
        s = open_catalog(tmp_path / "old")
        s.write([Statement("CREATE (:Motif {id: 'L2-x', level: 2, key: 'k'})")])
        with pytest.raises(Exception, match="family"):
            s.read("MATCH (m:Motif) RETURN m.family AS f")
        s.close()
    s = open_catalog(tmp_path / "old")
    try:
        assert s.read("MATCH (m:Motif) RETURN m.family AS f") == [{"f": None}]
    finally:
        s.close()


def test_failed_write_leaves_catalog_unchanged(store):
    store.write([Statement("CREATE (:Material {name: 'MoS2'})")])
    before = snapshot(store)
    ops = [
        Statement("CREATE (:Material {name: 'WSe2'})"),
        BulkNodes("Instance", pd.DataFrame({"id": [f"i{k}" for k in range(1000)]})),
        # a relationship to a node that does not exist fails in the middle of the batch
        BulkRels("IN_IMAGE", "Instance", "Image", pd.DataFrame({"src": ["i1"], "dst": "nope"})),
        Statement("CREATE (:Material {name: 'never'})"),
    ]
    with pytest.raises(CatalogError, match="operation 3 of 4.*rolled back"):
        store.write(ops)
    assert snapshot(store) == before
    # the store is still usable after the failure
    store.write(ops[:2])
    assert count(store, "(i:Instance)") == 1000


def test_bulk_after_create_in_same_table_is_correct(store):
    """Ladybug 0.22 corrupts its PK index for CREATE + COPY into one table in one transaction;
    the store's bulk path (LOAD FROM ... CREATE) must keep lookups right in that order."""
    store.write(
        [
            Statement("CREATE (:Instance {id: 'first', level: 1})"),
            BulkNodes("Instance", pd.DataFrame({"id": ["x", "y"], "level": [1, 2]})),
            BulkRels(
                "PART_OF",
                "Instance",
                "Instance",
                pd.DataFrame({"src": ["first", "x"], "dst": ["y", "y"]}),
            ),
        ]
    )
    rows = store.read("MATCH (a)-[:PART_OF]->(b:Instance {id: 'y'}) RETURN a.id AS a ORDER BY a.id")
    assert [r["a"] for r in rows] == ["first", "x"]


def test_bad_ops_are_refused(store):
    with pytest.raises(CatalogError, match="unknown node label"):
        store.write([BulkNodes("Nope", pd.DataFrame({"id": ["a"]}))])
    with pytest.raises(CatalogError, match="unknown column"):
        store.write([BulkNodes("Instance", pd.DataFrame({"id": ["a"], "bogus": [1]}))])
    with pytest.raises(CatalogError, match="NEAR goes from Instance to Instance"):
        store.write([BulkRels("NEAR", "Image", "Instance", pd.DataFrame({"src": [], "dst": []}))])
    with pytest.raises(QueryError, match="query failed"):
        store.read("MATCH (n:NoSuchTable) RETURN n")


def test_read_only_path_refuses_writes_and_sees_new_data(store, tmp_path):
    with pytest.raises(QueryError, match="read-only"):
        store.read_only("CREATE (:Material {name: 'x'})")
    # multi-statement text cannot escape either
    with pytest.raises(QueryError):
        store.read_only("MATCH (n:Material) RETURN n; CREATE (:Material {name: 'y'})")
    assert count(store, "(m:Material)") == 0
    store.write([Statement("CREATE (:Material {name: 'MoS2'})")])
    assert store.read_only("MATCH (m:Material) RETURN m.name AS n") == [{"n": "MoS2"}]
    ro = open_catalog(store.path, read_only=True)
    try:
        with pytest.raises(CatalogError, match="read-only"):
            ro.write([Statement("CREATE (:Material {name: 'z'})")])
        assert ro.read_only("MATCH (m:Material) RETURN count(m) AS n") == [{"n": 1}]
    finally:
        ro.close()


def test_second_writer_in_same_process_is_refused(store):
    # Ladybug's lock is per process; the store keeps its own registry of writers.
    with pytest.raises(CatalogInUseError, match="catalog is in use by another store"):
        LadybugStore(store.path)
    LadybugStore(store.path, read_only=True).close()  # readers may coexist


def test_failed_schema_on_open_is_a_catalog_error_and_releases_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "ladybug_ddl", lambda: ["CREATE NODE TABLE Broken(x NOPE)"])
    with pytest.raises(CatalogError, match=r"cat: cannot prepare the catalog schema"):
        LadybugStore(tmp_path / "cat")
    monkeypatch.undo()
    # the path is not left "in use": the next writer opens it
    with LadybugStore(tmp_path / "cat") as s:
        assert s.read("MATCH (i:Image) RETURN count(i) AS n") == [{"n": 0}]


def test_close_is_idempotent_and_final(tmp_path):
    s = open_catalog(tmp_path / "c")
    s.close()
    s.close()
    with pytest.raises(CatalogError, match="closed"):
        s.read("RETURN 1 AS x")
    # the lock is released: a new writer opens
    open_catalog(tmp_path / "c").close()


# -- write_analysis ---------------------------------------------------------------------------
def test_write_analysis_level1_counts(store):
    a = fake_analysis(seed=1)
    rep = write_analysis(store, a, sample="s1", material="MoSe2")
    assert rep.written and rep.image_id == a.micrograph.sha256
    n_inst = int((a.labels >= 0).sum())
    snap = snapshot(store)
    assert snap["Material"] == 1 and snap["Sample"] == 1 and snap["Image"] == 1
    assert snap["Motif"] == 3 and snap["Instance"] == n_inst
    assert snap["IN_IMAGE"] == n_inst and snap["INSTANCE_OF"] == n_inst
    assert snap["CONTAINS"] == 3 and snap["sum_n_instances"] == n_inst
    assert snap["OF_SAMPLE"] == 1 and snap["OF_MATERIAL"] == 1
    assert rep.n_nodes == 1 + 1 + 1 + 3 + n_inst
    assert rep.n_rels == 1 + 1 + 2 * n_inst + 3
    assert sorted(rep.new_motifs) == ["L1-0001", "L1-0002", "L1-0003"] and not rep.matched_motifs

    img = store.read(
        "MATCH (i:Image) RETURN i.pixel_size_A AS px, i.width AS w, i.height AS h, "
        "i.n_columns AS n, i.params AS p, i.software AS sw, i.ingested_at AS t, "
        "i.path AS path"
    )[0]
    assert img["px"] == 0.2 and (img["w"], img["h"]) == (64, 64) and img["n"] == 400
    assert AnalysisParams.from_json(img["p"]) == a.params
    assert img["sw"] == "motifcat test" and img["t"].endswith("+00:00")
    assert img["path"] == "fake-1.npy"

    # positions in Å, ids as documented
    i0 = int(np.flatnonzero(a.labels >= 0)[0])
    iid = instance_ids(a.micrograph.sha256, 1, np.array([i0]))[0]
    row = store.read(
        "MATCH (i:Instance {id: $id})-[:INSTANCE_OF]->(m:Motif) "
        "RETURN i.x_A AS x, i.y_A AS y, i.level AS lv, m.id AS m",
        {"id": iid},
    )[0]
    assert row["x"] == pytest.approx(a.columns.xy[i0, 0] * 0.2)
    assert row["y"] == pytest.approx(a.columns.xy[i0, 1] * 0.2) and row["lv"] == 1

    # CONTAINS counts equal the instance counts, per motif
    rows = store.read(
        "MATCH (img:Image)-[c:CONTAINS]->(m:Motif) "
        "MATCH (i:Instance)-[:INSTANCE_OF]->(m) "
        "RETURN m.id AS m, c.count AS c, count(i) AS n, m.n_instances AS total"
    )
    assert len(rows) == 3 and all(r["c"] == r["n"] == r["total"] for r in rows)

    # the stored descriptor is the class centroid (image-scaled space); prototype and mean
    # image are JSON
    m = store.read(
        "MATCH (m:Motif {id: 'L1-0001'}) RETURN m.descriptor AS d, m.key AS k, "
        "m.prototype AS p, m.mean_image AS im"
    )[0]
    assert m["k"] == "L1:zernike-n10-image-w0.5-r1.5"
    from motifcat.catalog.vocabulary import normalize_descriptor

    assert np.allclose(m["d"], normalize_descriptor(a.classes[0].descriptor, m["k"][3:]))
    import json

    proto = json.loads(m["p"])
    assert proto["labels"] in (["L1-0001"], ["L1-0002"], ["L1-0003"]) and proto["xy_A"] == [[0, 0]]
    im = np.array(json.loads(m["im"]))
    assert im.shape == (21, 21) and im.min() == 0 and im.max() == 1


def test_reingest_adds_nothing(store):
    a = fake_analysis(seed=2)
    write_analysis(store, a, sample="s1", material="MoSe2")
    before = snapshot(store)
    rep = write_analysis(store, a, sample="s1", material="MoSe2")
    assert not rep.written and rep.n_nodes == rep.n_rels == 0
    assert "already in the catalog" in rep.message and "ignored" not in rep.message
    assert snapshot(store) == before
    # other sample, material and pixel size: still nothing written, and the message says so
    b = dataclasses.replace(
        a, micrograph=dataclasses.replace(a.micrograph, pixel_size_A=0.3), params=a.params
    )
    rep = write_analysis(store, b, sample="s9", material="WS2")
    assert not rep.written and snapshot(store) == before
    assert "as sample 's1' of material 'MoSe2'" in rep.message
    assert "ignored: sample 's9', material 'WS2', pixel size 0.3 Å (stored 0.2 Å)" in rep.message


def test_concurrent_duplicate_is_reported_as_duplicate(store, monkeypatch):
    """Another writer stored the image between the duplicate check and the transaction."""
    from motifcat.catalog import writer

    a = fake_analysis(seed=12)
    write_analysis(store, a, sample="s1", material="MoSe2")
    before = snapshot(store)
    checks = iter([False])  # the first check misses the image (the race), later ones see it
    real = writer._image_exists
    monkeypatch.setattr(writer, "_image_exists", lambda st, i: next(checks, None) or real(st, i))
    rep = write_analysis(store, a, sample="s1", material="MoSe2")
    assert not rep.written and "already in the catalog" in rep.message
    assert snapshot(store) == before


def test_sample_without_material_is_named(store):
    store.write([Statement("CREATE (:Sample {id: 'lone', name: 'lone'})")])
    with pytest.raises(CatalogError, match="sample 'lone' is in the catalog but has no material"):
        write_analysis(store, fake_analysis(seed=13), sample="lone", material="MoSe2")


def test_second_image_matches_motifs_and_counts_add(store):
    a, b = fake_analysis(seed=3), fake_analysis(seed=4)
    write_analysis(store, a, sample="s1", material="MoSe2")
    rep = write_analysis(store, b, sample="s2", material="MoSe2")
    assert rep.written and not rep.new_motifs
    assert rep.matched_motifs == ["L1-0001", "L1-0002", "L1-0003"]
    snap = snapshot(store)
    n = int((a.labels >= 0).sum() + (b.labels >= 0).sum())
    assert snap["Motif"] == 3 and snap["Instance"] == n and snap["sum_n_instances"] == n
    assert snap["Material"] == 1 and snap["Sample"] == 2 and snap["CONTAINS"] == 6


def test_sample_of_another_material_is_refused(store):
    write_analysis(store, fake_analysis(seed=5), sample="s1", material="MoSe2")
    before = snapshot(store)
    with pytest.raises(CatalogError, match="'s1' is already a sample of material 'MoSe2'"):
        write_analysis(store, fake_analysis(seed=6), sample="s1", material="WS2")
    assert snapshot(store) == before


def test_missing_pixel_size_is_refused_naming_the_file(store):
    with pytest.raises(CatalogError, match="fake-7.npy: no pixel size"):
        write_analysis(store, fake_analysis(seed=7, pixel_size_A=None), sample="s", material="m")
    assert snapshot(store)["Image"] == 0


def test_write_analysis_is_all_or_nothing(store, monkeypatch):
    """Force a failure in the middle of an image's operations: the catalog is as before."""
    write_analysis(store, fake_analysis(seed=8), sample="s1", material="MoSe2")
    before = snapshot(store)
    real_write = store.write

    def failing_write(ops):
        # the real ops, with a failing statement inserted in the middle
        ops = list(ops)
        mid = len(ops) // 2
        ops.insert(mid, Statement("MATCH (i:Image) CREATE (:Material {name: NULL})"))
        return real_write(ops)

    monkeypatch.setattr(store, "write", failing_write)
    with pytest.raises(CatalogError, match="rolled back"):
        write_analysis(store, fake_analysis(seed=9), sample="s2", material="WS2")
    monkeypatch.undo()
    assert snapshot(store) == before
    # and writing it for real afterwards works, with the same new ids it would have had
    rep = write_analysis(store, fake_analysis(seed=9), sample="s2", material="WS2")
    assert rep.written and snapshot(store)["Image"] == 2


def test_helpers():
    assert level_motif_id(2, "k") == level_motif_id(2, "k") != level_motif_id(3, "k")
    assert instance_ids("ab" * 20, 2, np.array([3]))[0] == "abababababababab-2-3"


def test_catalog_file_size_is_reported(store):
    write_analysis(store, fake_analysis(seed=10), sample="s", material="m")
    assert store.size_bytes() > 0 and os.path.exists(store.path)


# -- the real pipeline, with its hierarchy ------------------------------------------------------
@pytest.fixture(scope="module")
def real_analysis(analysed):
    return analysed("cairo", (320, 320), seed=21, path="cairo-21.npy")


def test_real_analysis_every_label_and_type(store, real_analysis, analysed):
    a = real_analysis
    h = a.hierarchy
    assert h is not None and len(h.levels) == 2 and len(h.levels[0]) > 0
    rep = write_analysis(store, a, sample="c1", material="MoVTeNbO")
    stored = a.labels >= 0
    n1, n2, n3 = int(stored.sum()), len(h.levels[0]), len(h.levels[1])
    lev2, lev3 = h.levels
    part_of = int(stored[lev2.members_indices].sum()) + len(lev3.members_indices)
    pairs = h.neighbour_pairs
    near = int((stored[pairs[:, 0]] & stored[pairs[:, 1]]).sum())
    snap = snapshot(store)
    assert snap["Instance"] == n1 + n2 + n3
    assert snap["IN_IMAGE"] == snap["INSTANCE_OF"] == n1 + n2 + n3
    assert snap["PART_OF"] == part_of and snap["NEAR"] == near > 0
    assert snap["sum_n_instances"] == n1 + n2 + n3
    assert snap["COMPOSED_OF"] > 0 and snap["CONTAINS"] == snap["Motif"]
    assert rep.n_nodes == sum(snap[k] for k in schema.NODE_TABLES)
    assert rep.n_rels == sum(snap[k] for k in schema.REL_TABLES)
    by_level = {
        r["l"]: r["n"] for r in store.read("MATCH (i:Instance) RETURN i.level AS l, count(*) AS n")
    }
    assert by_level == {1: n1, 2: n2, 3: n3}

    # CONTAINS counts equal instance counts for every motif of every level
    rows = store.read(
        "MATCH (img:Image)-[c:CONTAINS]->(m:Motif) MATCH (i:Instance)-[:INSTANCE_OF]->(m) "
        "RETURN m.id AS m, m.level AS l, c.count AS c, count(i) AS n"
    )
    assert rows and all(r["c"] == r["n"] for r in rows)
    assert {r["l"] for r in rows} == {1, 2, 3}
    # level-2 keys are written with global level-1 ids, ids derive from the keys
    for r in store.read("MATCH (m:Motif) WHERE m.level = 2 RETURN m.id AS id, m.key AS k"):
        assert r["id"] == level_motif_id(2, r["k"]) and "L1-" in r["k"]
    # families: a layer above the exact keys, in global level-1 ids (the vocabulary's column)
    from motifcat.query import vocabulary

    voc = vocabulary(store)
    assert (voc.loc[voc["level"] == 1, "family"] == "").all()
    upper = voc[voc["level"] > 1]
    frequent = upper["n_instances"] >= a.params.min_support
    assert (upper.loc[frequent, "family"] == upper.loc[frequent, "key"]).all()
    rare = upper.loc[~frequent, "family"]
    assert upper["family"].notna().all() and frequent.any()
    assert len(rare) <= h.support["level2"]["rare"] + h.support["level3"]["rare"]
    assert rare.str.contains("L1-").all() and not rare.str.contains(r"\[A,").any()
    assert rare.str.match(r"(variant of|rare|defect neighbourhood of|neighbourhood of) ").all()
    # COMPOSED_OF goes one level down, to existing motifs
    rows = store.read(
        "MATCH (a:Motif)-[c:COMPOSED_OF]->(b:Motif) "
        "RETURN a.level AS la, b.level AS lb, c.count AS c"
    )
    assert all(r["la"] == r["lb"] + 1 and r["c"] >= 1 for r in rows)
    # PART_OF: every level-3 instance contains level-2 instances of its own image
    assert count(store, "(a:Instance {level: 2})-[:PART_OF]->(b:Instance {level: 3})") == len(
        lev3.members_indices
    )
    # PART_OF.pos: ring position (canonical cyclic order) or -1 for a centre column (level 2),
    # index in the member list (level 3)
    s = h.structure
    sizes = np.diff(s.ring_indptr)
    iid = a.micrograph.sha256
    rows = store.read(
        "MATCH (c:Instance)-[p:PART_OF]->(u:Instance {level: 2}) "
        "RETURN c.id AS c, u.id AS u, p.pos AS pos"
    )
    got = {(r["u"], r["c"]): r["pos"] for r in rows}
    want = {}
    for u in range(len(lev2)):
        mem = lev2.members(u)
        for t, col in enumerate(mem):
            if stored[col]:
                pos = t if t < sizes[u] else -1
                want[(f"{iid[:16]}-2-{u}", f"{iid[:16]}-1-{col}")] = pos
    assert got == want
    filled = np.flatnonzero(np.diff(s.interior_indptr) > 0)
    assert any(v == -1 for v in got.values()) == bool(len(filled) and stored[s.interior].any())
    rows = store.read(
        "MATCH (c:Instance)-[p:PART_OF]->(u:Instance {level: 3}) "
        "RETURN c.id AS c, u.id AS u, p.pos AS pos"
    )
    want3 = {
        (f"{iid[:16]}-3-{u}", f"{iid[:16]}-2-{m}"): t
        for u in range(len(lev3))
        for t, m in enumerate(lev3.members(u))
    }
    assert {(r["u"], r["c"]): r["pos"] for r in rows} == want3

    # NEAR distances are in Å
    d = store.read("MATCH ()-[r:NEAR]->() RETURN avg(r.d_A) AS d")[0]["d"]
    assert d == pytest.approx(np.median(h.neighbour_dist_px) * a.pixel_size_A, rel=0.3)

    # a second image of the same specimen reuses motifs; COMPOSED_OF is created once per pair
    b = analysed("cairo", (320, 320), seed=21, dose=1.0, dose_seed=5)
    rep2 = write_analysis(store, b, sample="c2", material="MoVTeNbO")
    assert rep2.written and rep2.matched_motifs
    assert any(m.startswith("L2-") for m in rep2.matched_motifs)
    n_comp = count(store, "()-[r:COMPOSED_OF]->()")
    pairs = store.read(
        "MATCH (a:Motif)-[:COMPOSED_OF]->(b:Motif) RETURN count(DISTINCT a.id + '>' + b.id) AS n"
    )[0]["n"]
    assert n_comp == pairs > snap["COMPOSED_OF"] - 1
    snap2 = snapshot(store)
    assert snap2["sum_n_instances"] == snap2["Instance"]


# -- ingest_files ----------------------------------------------------------------------------------
def test_ingest_files_parallel_with_bad_file_and_duplicate(tmp_path, synthetic):
    from motifcat.batch import ingest_files

    d = tmp_path / "imgs"
    d.mkdir()
    syn = synthetic("tmd", (256, 256), seed=31)
    np.save(d / "a.npy", syn.image)
    np.save(d / "b.npy", syn.at_dose(0.5, seed=3).image)
    np.save(d / "a-copy.npy", syn.image)  # same pixels: one image
    (d / "broken.tif").write_bytes(b"not a tiff")
    seen = []
    s = ingest_files(
        [d, tmp_path / "nothing-*.npy"],
        sample="s1",
        material="MoSe2",
        catalog=tmp_path / "cat",
        pixel_size_A=0.15,
        workers=2,
        progress=lambda done, total, path: seen.append((done, total)),
    )
    assert len(s.written) == 2 and len(s.duplicates) == 1
    failed = dict(s.failed)
    assert set(failed) == {str(d / "broken.tif"), str(tmp_path / "nothing-*.npy")}
    assert "broken.tif" in failed[str(d / "broken.tif")]
    assert seen[-1] == (5, 5) and [k for k, _ in seen] == [1, 2, 3, 4, 5]
    # written in the order of the input list (whatever finished first): deterministic L1 ids
    # (sorted: a-copy.npy comes first and a.npy, the same pixels, is the duplicate)
    assert [r.path for r in s.written] == [str(d / "a-copy.npy"), str(d / "b.npy")]
    assert s.duplicates == [str(d / "a.npy")]
    assert "2 written, 1 skipped as duplicates, 2 failed" in str(s)
    with open_catalog(tmp_path / "cat", read_only=True) as store:
        assert count(store, "(i:Image)") == 2
        paths = {r["p"] for r in store.read("MATCH (i:Image) RETURN i.path AS p")}
        assert str(d / "b.npy") in paths
    # again: everything is recognised before analysis
    s2 = ingest_files(
        [d], sample="s1", material="MoSe2", catalog=tmp_path / "cat", pixel_size_A=0.15, workers=1
    )
    assert not s2.written and len(s2.duplicates) == 3 and len(s2.failed) == 1


def test_ingest_files_without_pixel_size_fails_each_file(tmp_path):
    from motifcat.batch import ingest_files

    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((64, 64)))
    s = ingest_files(
        [tmp_path / "x.npy"], sample="s", material="m", catalog=tmp_path / "cat", workers=1
    )
    assert not s.written and "no pixel size" in s.failed[0][1]
    # nothing to write: no catalog file was created
    assert not (tmp_path / "cat").exists()
    with pytest.raises(CatalogError, match="neo4j:/localhost:7687: unknown catalog scheme"):
        ingest_files(
            [tmp_path / "x.npy"], sample="s", material="m", catalog="neo4j:/localhost:7687"
        )


def test_batch_ingest_old_import_paths_still_work():
    # moved to motifcat.batch (issue 16); the old names re-export it for one release
    import motifcat.batch as batch
    import motifcat.catalog as catalog
    from motifcat.catalog.ingest import IngestSummary, expand_paths, ingest_files

    assert ingest_files is batch.ingest_files is catalog.ingest_files
    assert expand_paths is batch.expand_paths and IngestSummary is batch.IngestSummary
    with pytest.raises(AttributeError):
        catalog.no_such_name  # noqa: B018


def test_open_catalog_and_uri_old_import_paths_still_work():
    # open_catalog / URI parsing left store.py (issue 16: no store <-> backend import circle)
    import motifcat.catalog.opener as opener
    import motifcat.catalog.uri as uri
    from motifcat.catalog import store
    from motifcat.catalog.store import DEFAULT_CATALOG, open_catalog, parse_uri, resolve_uri

    assert open_catalog is opener.open_catalog
    assert (parse_uri, resolve_uri, DEFAULT_CATALOG) == (
        uri.parse_uri,
        uri.resolve_uri,
        uri.DEFAULT_CATALOG,
    )
    with pytest.raises(AttributeError):
        store.no_such_name  # noqa: B018
