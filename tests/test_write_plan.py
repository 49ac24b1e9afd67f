"""The writer's plan on a real analysis, without a database: operations, counts, conflicts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from motifcat.catalog.store import BulkNodes, BulkRels, Statement
from motifcat.catalog.writer import CatalogState, motif_ids, plan_analysis
from motifcat.errors import CatalogError

AT = "2026-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def analysis(analysed):
    return analysed("tmd", (192, 192), seed=3)  # as test_pipeline's save/load test


@pytest.fixture(scope="module")
def motifs(analysis):
    return motif_ids(analysis, [f"L1-{k + 1:04d}" for k in range(len(analysis.classes))])


def plan(analysis, motifs, state=CatalogState(), **kw):
    kw = {"sample": "s1", "material": "MoSe2", "ingested_at": AT, **kw}
    return plan_analysis(analysis, motifs, state, **kw)


def statements(p):
    return [op.cypher for op in p.ops if isinstance(op, Statement)]


def bulk(p, name):
    ops = [op for op in p.ops if (op.label if isinstance(op, BulkNodes) else
                                  getattr(op, "type", None)) == name]
    return ops[0].rows if ops else None


def test_ids_of_every_level_in_the_global_vocabulary(analysis, motifs):
    assert [lev.level for lev in motifs.levels] == [1, 2, 3]
    assert motifs.levels[0].ids == {c.label: f"L1-{c.label + 1:04d}" for c in analysis.classes}
    # level-2/3 keys name the global level-1 ids, never the local letters
    keys = [c.key for lev in motifs.levels[1:] for c in lev.classes]
    assert keys and all("L1-" in k for k in keys)
    assert len(motifs.all_ids) == len(set(motifs.all_ids)) == sum(len(lev.ids)
                                                                   for lev in motifs.levels)


def test_new_catalog_creates_everything(analysis, motifs):
    p = plan(analysis, motifs)
    n_inst = int((analysis.labels >= 0).sum()) + sum(
        len(lev.instance_class) for lev in analysis.hierarchy.levels)
    assert p.n_instances == n_inst == len(bulk(p, "Instance"))
    assert sorted(p.new_motifs) == motifs.all_ids and p.matched_motifs == []
    cy = statements(p)
    assert cy[0].startswith("CREATE (:Material") and cy[1].startswith("CREATE (:Sample")
    assert cy[3].startswith("CREATE (:Image") and "CREATE (:Motif" in cy[5]
    # statements first, then the bulk operations (their endpoints must exist)
    kinds = [isinstance(op, Statement) for op in p.ops]
    assert kinds == sorted(kinds, reverse=True)
    assert p.n_nodes == 3 + len(motifs.all_ids) + n_inst  # material, sample, image
    rels = sum(len(op.rows) for op in p.ops if isinstance(op, BulkRels))
    assert p.n_rels == rels + 2  # OF_MATERIAL, OF_SAMPLE
    contains = bulk(p, "CONTAINS")
    assert contains["count"].sum() == n_inst and set(contains["dst"]) == set(motifs.all_ids)
    assert len(bulk(p, "IN_IMAGE")) == len(bulk(p, "INSTANCE_OF")) == n_inst
    part = bulk(p, "PART_OF")
    assert part["pos"].min() >= -1 and (part["pos"] == -1).sum() < len(part)
    assert len(bulk(p, "NEAR")) > 0 and (bulk(p, "NEAR")["d_A"] > 0).all()


def test_known_motifs_are_counted_up_not_created(analysis, motifs):
    state = CatalogState(sample_known=True, sample_material="MoSe2", material_known=True,
                         existing_motifs=frozenset(motifs.all_ids))
    p = plan(analysis, motifs, state)
    cy = statements(p)
    assert not any("CREATE (:Motif" in c or "CREATE (:Sample" in c or "CREATE (:Material" in c
                   for c in cy)
    assert p.new_motifs == [] and p.matched_motifs == motifs.all_ids
    (inc,) = [op for op in p.ops if isinstance(op, Statement) and "SET m.n_instances" in op.cypher]
    assert sum(r["n"] for r in inc.params["rows"]) == p.n_instances
    assert len(bulk(p, "COMPOSED_OF")) == 0  # only a new motif gets COMPOSED_OF edges
    assert p.n_nodes == 1 + p.n_instances  # the image and its instances


def test_known_material_is_not_created_again(analysis, motifs):
    p = plan(analysis, motifs, CatalogState(material_known=True))
    cy = statements(p)
    assert not any(c.startswith("CREATE (:Material") for c in cy)
    assert cy[0].startswith("CREATE (:Sample")


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (CatalogState(sample_known=True, sample_material="WS2"),
         "'s1' is already a sample of material 'WS2', not 'MoSe2'"),
        (CatalogState(sample_known=True, sample_material=None), "has no material"),
    ],
)
def test_sample_conflicts_are_refused(analysis, motifs, state, message):
    with pytest.raises(CatalogError, match=message):
        plan(analysis, motifs, state)


def test_bad_input_is_refused_and_names_the_file(analysis, motifs):
    bare = dataclasses.replace(
        analysis, micrograph=dataclasses.replace(analysis.micrograph, pixel_size_A=None),
        params=dataclasses.replace(analysis.params, pixel_size_A=None),
    )
    with pytest.raises(CatalogError, match="x.npy: no pixel size"):
        plan(bare, motifs, path="x.npy")
    with pytest.raises(CatalogError, match="sample must be a non-empty string"):
        plan(analysis, motifs, sample=" ")
    n = len(analysis.classes)
    with pytest.raises(CatalogError, match=f"{n + 1} level-1 ids for {n} level-1 classes"):
        motif_ids(analysis, [f"L1-{k:04d}" for k in range(n + 1)])


def test_the_plan_is_a_function_of_its_inputs(analysis, motifs):
    a, b = plan(analysis, motifs), plan(analysis, motifs)
    assert statements(a) == statements(b)
    assert [op.params for op in a.ops if isinstance(op, Statement)] == [
        op.params for op in b.ops if isinstance(op, Statement)]
    np.testing.assert_array_equal(bulk(a, "Instance")["x_A"], bulk(b, "Instance")["x_A"])
