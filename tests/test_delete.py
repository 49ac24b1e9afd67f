"""`motifcat delete` on the real embedded catalog: the vocabulary's counts stay right."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from motifcat.catalog import delete_images, open_catalog, resolve_images, write_analysis
from motifcat.cli import app
from motifcat.datasets import make_tmd
from motifcat.errors import CatalogError
from motifcat.ingest import analyze

runner = CliRunner()


@pytest.fixture(scope="module")
def analyses():
    with threadpool_limits(1):
        return [analyze(make_tmd((224, 224), seed=s).micrograph()) for s in (11, 12, 13)]


def snapshot(store):
    motifs = {
        r["id"]: r["n"] for r in store.read("MATCH (m:Motif) RETURN m.id AS id, m.n_instances AS n")
    }
    contains = {
        (r["i"], r["m"]): r["c"]
        for r in store.read(
            "MATCH (i:Image)-[c:CONTAINS]->(m:Motif) RETURN i.id AS i, m.id AS m, c.count AS c"
        )
    }
    counted = {
        r["m"]: r["n"]
        for r in store.read(
            "MATCH (x:Instance)-[:INSTANCE_OF]->(m:Motif) RETURN m.id AS m, count(x) AS n"
        )
    }
    names = store.read("MATCH (n) RETURN labels(n) AS label, count(n) AS n ORDER BY n")
    return motifs, contains, counted, sorted(str(r) for r in names)


def test_delete_image_leaves_the_catalog_as_without_it(tmp_path, analyses):
    a, b, c = analyses
    with open_catalog(str(tmp_path / "ref")) as ref:
        write_analysis(ref, a, sample="s1", material="MoSe2")
        write_analysis(ref, c, sample="s1", material="MoSe2")
        expected = snapshot(ref)
    with open_catalog(str(tmp_path / "cat")) as store:
        write_analysis(store, a, sample="s1", material="MoSe2")
        rep_b = write_analysis(store, b, sample="s2", material="WS2")
        # c after b: its motifs that b created keep their ids, so compare by counts only
        write_analysis(store, c, sample="s1", material="MoSe2")
        before = snapshot(store)
        out = delete_images(store, resolve_images(store, rep_b.image_id[:10]))
        after = snapshot(store)
    assert out.image_ids == (rep_b.image_id,) and out.n_instances > 0
    assert out.deleted_samples == ("s2",)
    # n_instances agrees with the instances left, motif by motif.
    motifs, contains, counted, labels = after
    assert motifs == {m: counted.get(m, 0) for m in motifs}
    assert all(n > 0 for n in motifs.values())
    assert not any(i == rep_b.image_id for i, _ in contains)
    assert sum(contains.values()) == sum(counted.values())
    assert sum(before[0].values()) - sum(motifs.values()) == out.n_instances
    # The same totals as a catalog that never held b (and no WS2 material left behind).
    assert sorted(motifs.values()) == sorted(expected[0].values())
    assert labels == expected[3]


def test_delete_sample_from_the_cli(tmp_path, analyses):
    a, b, _ = analyses
    cat = str(tmp_path / "cat")
    with open_catalog(cat) as store:
        write_analysis(store, a, sample="keep", material="MoSe2")
        write_analysis(store, b, sample="gone", material="MoSe2")
    result = runner.invoke(app, ["delete", "gone", "-c", cat])
    assert result.exit_code == 0, result.output
    assert "deleted 1 image(s)" in result.output and "sample(s) gone" in result.output
    with open_catalog(cat, read_only=True) as store:
        samples = [r["s"] for r in store.read("MATCH (s:Sample) RETURN s.name AS s")]
        _, _, counted, _ = snapshot(store)
        motifs = snapshot(store)[0]
    assert samples == ["keep"] and motifs == {m: counted.get(m, 0) for m in motifs}
    missing = runner.invoke(app, ["delete", "nothing-like-it", "-c", cat])
    assert missing.exit_code == 1 and "no sample, image id or image path" in missing.output


def test_delete_unknown_image_changes_nothing(tmp_path, analyses):
    with open_catalog(str(tmp_path / "cat")) as store:
        write_analysis(store, analyses[0], sample="s", material="MoSe2")
        before = snapshot(store)
        with pytest.raises(CatalogError, match="not in the catalog; nothing deleted"):
            delete_images(store, ["f" * 64])
        assert snapshot(store) == before


def test_reingest_says_what_differs_and_replace_stores_it_again(tmp_path):
    import numpy as np

    f = tmp_path / "img.npy"
    np.save(f, make_tmd((224, 224), seed=21).micrograph().data)
    cat = str(tmp_path / "cat")

    def ingest(*extra):
        with threadpool_limits(1):
            return runner.invoke(app, ["ingest", str(f), "-c", cat, "-j", "1", *extra])

    first = ingest("-s", "S1", "-m", "MoSe2", "--pixel-size", "0.2")
    assert first.exit_code == 0, first.output
    again = ingest("-s", "S2", "-m", "WS2", "--pixel-size", "0.25")
    assert again.exit_code == 0, again.output
    assert "0 written, 1 skipped as duplicates" in again.output
    for said in ("sample 'S2'", "material 'WS2'", "pixel size 0.25 Å (stored 0.2 Å)", "--replace"):
        assert said in again.output
    replaced = ingest("-s", "S2", "-m", "WS2", "--pixel-size", "0.25", "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert "1 written" in replaced.output and "replaced" in replaced.output
    with open_catalog(cat, read_only=True) as store:
        rows = store.read(
            "MATCH (i:Image)-[:OF_SAMPLE]->(s:Sample)-[:OF_MATERIAL]->(m:Material) "
            "RETURN s.name AS s, m.name AS m, i.pixel_size_A AS px"
        )
        assert rows == [{"s": "S2", "m": "WS2", "px": 0.25}]
        assert [r["m"] for r in store.read("MATCH (m:Material) RETURN m.name AS m")] == ["WS2"]
        motifs, _, counted, _ = snapshot(store)
        assert motifs == {m: counted.get(m, 0) for m in motifs}
