"""Live tests against a real Neo4j 5 server (``make test-neo4j`` starts one with docker compose).

They run only when ``MOTIFCAT_TEST_NEO4J_URI`` is set (credentials from ``NEO4J_USER`` /
``NEO4J_PASSWORD``). They need a throwaway database: they delete everything they wrote, and
refuse (skip) to touch a database holding anything but their own data.
"""

from __future__ import annotations

import importlib
import os
import uuid

import pandas as pd
import pytest

from motifcat.catalog.schema import NODE_TABLES, REL_TABLES, primary_key
from motifcat.catalog.store import BulkNodes, BulkRels
from motifcat.errors import CatalogError, QueryError

URI = os.environ.get("MOTIFCAT_TEST_NEO4J_URI")
PREFIX = "motifcat-live-test-"

pytestmark = [
    pytest.mark.neo4j,
    pytest.mark.skipif(not URI, reason="set MOTIFCAT_TEST_NEO4J_URI to run against a live Neo4j"),
]


def counts(store) -> dict[str, int]:
    out = {}
    for label in NODE_TABLES:
        out[label] = store.read(f"MATCH (n:{label}) RETURN count(n) AS c")[0]["c"]
    for rel in REL_TABLES:
        out[rel] = store.read(f"MATCH ()-[e:{rel}]->() RETURN count(e) AS c")[0]["c"]
    return out


def wipe(store) -> None:
    store.write([_statement("MATCH (n) DETACH DELETE n")])


def _statement(cypher: str, params: dict | None = None):
    from motifcat.catalog.store import Statement

    return Statement(cypher, params or {})


@pytest.fixture
def store():
    from motifcat.catalog.neo4j import Neo4jStore

    s = Neo4jStore(URI)
    foreign = s.read(
        "MATCH (m:Material) WHERE NOT m.name STARTS WITH $p RETURN count(m) AS c", {"p": PREFIX}
    )[0]["c"]
    if foreign:
        s.close()
        pytest.skip(f"{s.location} holds a catalog that is not test data; use a throwaway Neo4j")
    s.ensure_schema()
    wipe(s)
    yield s
    wipe(s)
    s.close()


@pytest.fixture(scope="module")
def analysis(analysed):
    from motifcat.ingest import AnalysisParams

    return analysed("tmd", (160, 160), AnalysisParams(max_classes=4), seed=0)


def test_schema_constraints(store):
    store.ensure_schema()  # idempotent
    rows = store.read(
        "SHOW CONSTRAINTS YIELD type, labelsOrTypes, properties RETURN type, labelsOrTypes, "
        "properties"
    )
    unique = {(r["labelsOrTypes"][0], r["properties"][0]) for r in rows if "UNIQUE" in r["type"]}
    assert {(label, primary_key(label)) for label in NODE_TABLES} <= unique
    names = {r["name"] for r in store.read("SHOW INDEXES YIELD name RETURN name")}
    assert "motif_level_key" in names


def test_write_analysis_round_trip_and_reingest(store, analysis, tmp_path):
    writer = pytest.importorskip("motifcat.catalog.writer")
    writer.write_analysis(store, analysis, sample=PREFIX + "a", material=PREFIX + "MoSe2")
    got = counts(store)
    # The same analysis in the embedded catalog must give the same graph on Neo4j.
    open_catalog = importlib.import_module("motifcat.catalog.store").open_catalog
    with open_catalog(str(tmp_path / "embedded")) as embedded:
        writer.write_analysis(embedded, analysis, sample=PREFIX + "a", material=PREFIX + "MoSe2")
        assert got == counts(embedded)
    assert got["Image"] == 1 and got["Instance"] >= len(analysis.columns)
    image = store.read("MATCH (i:Image) RETURN i.id AS id, i.width AS w")[0]
    assert image["id"] == analysis.micrograph.sha256
    assert image["w"] == analysis.micrograph.shape[1]
    # Writing the same image again adds nothing.
    writer.write_analysis(store, analysis, sample=PREFIX + "a", material=PREFIX + "MoSe2")
    assert counts(store) == got


def test_transaction_is_all_or_nothing(store):
    ids = [f"{PREFIX}{uuid.uuid4()}" for _ in range(3)]
    nodes = pd.DataFrame({"id": ids, "x_A": [0.0, 1.0, 2.0], "y_A": 0.0, "level": 1})
    rels = pd.DataFrame({"src": [ids[0], ids[1]], "dst": [ids[1], "missing"], "d_A": 1.0})
    with pytest.raises(CatalogError, match="1 of 2 NEAR"):
        store.write([BulkNodes("Instance", nodes), BulkRels("NEAR", "Instance", "Instance", rels)])
    assert counts(store)["Instance"] == 0
    store.write([BulkNodes("Instance", nodes)])
    assert counts(store)["Instance"] == 3
    with pytest.raises(CatalogError, match="already exists|ConstraintValidation"):
        store.write([BulkNodes("Instance", nodes.iloc[:1])])  # uniqueness constraint


def test_read_only_session_refuses_writes(store):
    with pytest.raises(QueryError, match="read-only|AccessMode|not allowed"):
        store.read_only(f"CREATE (m:Material {{name: '{PREFIX}x'}}) RETURN m.name AS name")
    assert counts(store)["Material"] == 0
    assert store.read_only("RETURN $x + 1 AS y", {"x": 1}) == [{"y": 2}]


def test_wrong_password_is_a_clear_error():
    from motifcat.catalog.neo4j import Neo4jStore

    with pytest.raises(CatalogError, match="refused the credentials") as info:
        Neo4jStore(URI, password="definitely-wrong-password")
    assert "definitely-wrong-password" not in str(info.value)
