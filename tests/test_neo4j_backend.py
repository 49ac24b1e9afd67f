"""The Neo4j backend without a server.

Every statement the backend would send is validated by Neo4j's own Cypher parser and semantic
analysis (``tests/cypher/lint.mjs``, npm ``@neo4j-cypher/language-support``). The only stand-in
is the server itself: a recording fake driver that keeps every statement and transaction and
answers reads from a real embedded catalog holding the same data, so that the writer and the
query functions take the same paths they take on a real server.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import neo4j
import neo4j.exceptions as nex
import numpy as np
import pandas as pd
import pytest
import yaml

from motifcat.catalog import neo4j as n4
from motifcat.catalog.schema import NODE_TABLES, REL_TABLES, neo4j_ddl, primary_key
from motifcat.catalog.store import BulkNodes, BulkRels, Statement
from motifcat.errors import CatalogError, MotifcatError, QueryError

try:
    from cypher_lint import lint_cypher, lint_unavailable
except ImportError:  # tests/ collected as a package
    from tests.cypher_lint import lint_cypher, lint_unavailable

REPO = Path(__file__).resolve().parents[1]
SECRET = "Sup3r-s3cret-pw!"

needs_linter = pytest.mark.skipif(
    lint_unavailable() is not None, reason=f"Cypher linter unavailable: {lint_unavailable()}"
)


def assert_clean(statements: list[Any]) -> None:
    problems = lint_cypher(statements)
    assert not problems, "Neo4j's parser rejects:\n" + "\n".join(map(str, problems))


# --------------------------------------------------------------------------------------------
# The stand-in for the server
# --------------------------------------------------------------------------------------------


class RecordingServer:
    """Records every statement; answers ``created`` counts and, optionally, reads.

    ``reads_from``: a GraphStore (the embedded catalog) that answers read transactions, so
    that callers see a realistic catalog; a statement it cannot run answers no rows.
    """

    def __init__(self, reads_from: Any = None) -> None:
        self.reads_from = reads_from
        self.statements: list[tuple[str, dict, str]] = []  # (cypher, params, "read"/"write")
        self.transactions: list[tuple[str, int]] = []  # (mode, number of statements)
        self.sessions: list[dict] = []
        self.driver_calls: list[tuple[str, Any]] = []
        self.raise_on_run: Exception | None = None
        self.created_shortfall = 0  # answer fewer ``created`` than rows (missing endpoints)

    def driver(self, uri: str, auth: Any = None, **config: Any) -> FakeDriver:
        self.driver_calls.append((uri, auth))
        return FakeDriver(self)

    def answer(self, cypher: str, params: dict, mode: str) -> list[dict]:
        if self.raise_on_run is not None:
            raise self.raise_on_run
        if re.search(r"\bAS created\s*$", cypher):
            return [{"created": len(params["rows"]) - self.created_shortfall}]
        if mode == "read" and self.reads_from is not None:
            try:
                return self.reads_from.read(cypher, params)
            except MotifcatError:
                return []
        return []


class FakeResult:
    def __init__(self, rows: list[dict]) -> None:
        self._records = [neo4j.Record(r.items()) for r in rows]

    def __iter__(self):
        return iter(self._records)

    def keys(self) -> list[str]:
        return list(self._records[0].keys()) if self._records else []

    def consume(self) -> None:
        self._records = []

    def single(self, strict: bool = False) -> neo4j.Record:
        assert len(self._records) == 1 or not strict
        return self._records[0]


class FakeTx:
    def __init__(self, server: RecordingServer, mode: str) -> None:
        self.server, self.mode, self.count = server, mode, 0

    def run(self, cypher: str, parameters: dict | None = None, **kw: Any) -> FakeResult:
        params = dict(parameters or {}, **kw)
        self.server.statements.append((cypher, params, self.mode))
        self.count += 1
        return FakeResult(self.server.answer(cypher, params, self.mode))


class FakeSession:
    def __init__(self, server: RecordingServer, config: dict) -> None:
        self.server = server
        server.sessions.append(config)

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _execute(self, mode: str, fn, *args, **kwargs):
        tx = FakeTx(self.server, mode)
        out = fn(tx, *args, **kwargs)
        self.server.transactions.append((mode, tx.count))
        return out

    def execute_read(self, fn, *args, **kwargs):
        return self._execute("read", fn, *args, **kwargs)

    def execute_write(self, fn, *args, **kwargs):
        return self._execute("write", fn, *args, **kwargs)


class FakeDriver:
    def __init__(self, server: RecordingServer) -> None:
        self.server = server
        self.closed = False

    def verify_connectivity(self) -> None:
        if self.server.raise_on_run is not None:
            raise self.server.raise_on_run

    def session(self, **config: Any) -> FakeSession:
        return FakeSession(self.server, config)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> RecordingServer:
    srv = RecordingServer()
    monkeypatch.setattr(neo4j.GraphDatabase, "driver", srv.driver)
    monkeypatch.setenv("NEO4J_USER", "neo4j")
    monkeypatch.setenv("NEO4J_PASSWORD", SECRET)
    return srv


def all_table_ops() -> list:
    """One BulkNodes per label and one BulkRels per type, with schema-typed values."""
    ops: list = []
    for label, cols in NODE_TABLES.items():
        row = {}
        for name, typ in cols:
            if name == primary_key(label):
                row[name] = f"{label.lower()}-1"
            elif typ == "DOUBLE[]":
                row[name] = [0.5, 0.25, 0.125]
            elif typ == "DOUBLE":
                row[name] = 1.5
            elif typ == "INT64":
                row[name] = 2
            else:
                row[name] = "text"
        ops.append(BulkNodes(label, pd.DataFrame([row])))
    for rel, (src, dst, cols) in REL_TABLES.items():
        row = {"src": f"{src.lower()}-1", "dst": f"{dst.lower()}-1"}
        row |= {name: 1.0 if typ == "DOUBLE" else 3 for name, typ in cols}
        ops.append(BulkRels(rel, src, dst, pd.DataFrame([row])))
    return ops


# --------------------------------------------------------------------------------------------
# Pure statement building
# --------------------------------------------------------------------------------------------


def test_bulk_statements_text():
    assert n4.bulk_node_statement("Image") == "UNWIND $rows AS r CREATE (n:Image) SET n = r"
    text = n4.bulk_rel_statement("CONTAINS", "Image", "Motif", ["count"])
    assert text == (
        "UNWIND $rows AS r MATCH (a:Image {id: r.src}) MATCH (b:Motif {id: r.dst}) "
        "CREATE (a)-[e:CONTAINS]->(b) SET e.count = r.count RETURN count(e) AS created"
    )
    # Material's key is its name, not an id.
    assert "MATCH (b:Material {name: r.dst})" in n4.bulk_rel_statement(
        "OF_MATERIAL", "Sample", "Material"
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: n4.bulk_node_statement("Atom"), "unknown node label 'Atom'"),
        (lambda: n4.bulk_rel_statement("BONDED", "Instance", "Instance"), "unknown relationship"),
        (lambda: n4.bulk_rel_statement("CONTAINS", "Motif", "Image"), "goes from Image to Motif"),
        (lambda: n4.bulk_rel_statement("NEAR", "Instance", "Instance", ["w"]), r"\['w'\]"),
        (lambda: n4.bulk_node_statement("Image) DETACH DELETE (x"), "unknown node label"),
    ],
)
def test_statement_builders_validate(call, match):
    with pytest.raises(CatalogError, match=match):
        call()


def test_write_plan_batches_and_converts():
    n = 25
    nodes = pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(n)],
            "x_A": np.linspace(0, 1, n),
            "y_A": np.r_[np.nan, np.ones(n - 1)],
            "level": np.ones(n, dtype=np.int64),
        }
    )
    rels = pd.DataFrame({"src": nodes["id"][:-1], "dst": nodes["id"][1:].to_numpy(), "d_A": 2.5})
    motif = pd.DataFrame({"id": ["m"], "descriptor": [np.array([0.5, 0.25])], "level": [1]})
    stmt = Statement("MATCH (m:Motif {id: $id}) RETURN m.key AS key", {"id": np.str_("m")})
    plan = n4.write_plan(
        [
            BulkNodes("Instance", nodes),
            BulkRels("NEAR", "Instance", "Instance", rels),
            BulkNodes("Motif", motif),
            stmt,
        ],
        batch_size=10,
    )
    assert [len(q.params.get("rows", ())) for q in plan] == [10, 10, 5, 10, 10, 4, 1, 0]
    assert [q.expect for q in plan[3:6]] == [10, 10, 4]
    first = plan[0].params["rows"][0]
    assert first == {"id": "i0", "x_A": 0.0, "y_A": None, "level": 1}
    assert type(first["level"]) is int and type(plan[1].params["rows"][0]["x_A"]) is float
    assert plan[6].params["rows"][0]["descriptor"] == [0.5, 0.25]
    assert plan[7].params == {"id": "m"} and type(plan[7].params["id"]) is str
    # Row order and content survive batching.
    ids = [r["id"] for q in plan[:3] for r in q.params["rows"]]
    assert ids == list(nodes["id"])


@pytest.mark.parametrize(
    "op, match",
    [
        (BulkNodes("Image", pd.DataFrame({"id": ["a"], "colour": ["red"]})), "colour"),
        (BulkNodes("Image", pd.DataFrame({"path": ["a"]})), "key column 'id'"),
        (BulkRels("NEAR", "Instance", "Instance", pd.DataFrame({"src": ["a"]})), "'dst'"),
        ("CREATE (n)", "not a Statement"),
    ],
)
def test_write_plan_rejects_bad_ops(op, match):
    with pytest.raises(CatalogError, match=match):
        n4.write_plan([op])


def test_to_plain_converts_driver_values():
    from neo4j.spatial import CartesianPoint
    from neo4j.time import Date, DateTime, Duration

    value = {
        "d": Date(2024, 5, 17),
        "t": DateTime(2024, 5, 17, 10, 30, 0),
        "p": CartesianPoint((1.0, 2.0)),
        "dur": Duration(days=2, hours=3),
        "l": [1, (2, "x")],
    }
    plain = n4.to_plain(value)
    assert str(plain["d"]) == "2024-05-17" and plain["t"].hour == 10
    assert plain["p"] == [1.0, 2.0]
    assert plain["dur"] == "P2DT3H"
    assert plain["l"] == [1, [2, "x"]]
    # Graph values, as the driver hydrates them from a server answer.
    from neo4j.graph import Graph, Node
    from neo4j.graph import Path as GraphPath

    graph = Graph()
    a = Node(graph, "4:x:1", 1, ["Instance"], {"id": "i1", "x_A": 1.5})
    b = Node(graph, "4:x:2", 2, ["Instance"], {"id": "i2", "x_A": 2.5})
    near = graph.relationship_type("NEAR")(graph, "5:x:1", 1, {"d_A": 3.1})
    near._start_node, near._end_node = a, b
    assert n4.to_plain(a) == {"_LABEL": "Instance", "id": "i1", "x_A": 1.5}
    assert n4.to_plain(near) == {"_LABEL": "NEAR", "d_A": 3.1}
    path = n4.to_plain(GraphPath(a, near))
    assert [n["id"] for n in path["_NODES"]] == ["i1", "i2"] and path["_RELS"][0]["d_A"] == 3.1


# --------------------------------------------------------------------------------------------
# The store against the recording stand-in
# --------------------------------------------------------------------------------------------


def test_write_is_one_transaction_and_schema_first(server):
    store = n4.Neo4jStore("bolt://db.example:7687", batch_size=2)
    ops = all_table_ops()
    store.write(ops)
    # Schema: one transaction per DDL statement (Neo4j does not mix schema and data changes).
    n_ddl = len(neo4j_ddl()) + 1
    assert server.transactions[:n_ddl] == [("write", 1)] * n_ddl
    # Then exactly one write transaction with every data statement, in order.
    assert server.transactions[n_ddl:] == [("write", len(ops))]
    sent = [c for c, _, _ in server.statements[n_ddl:]]
    assert sent[0] == "UNWIND $rows AS r CREATE (n:Material) SET n = r"
    assert all(c.startswith("UNWIND $rows AS r") for c in sent)
    # The schema is created once per store, not on every write.
    store.write(ops[:1])
    assert len(server.transactions) == n_ddl + 2
    assert server.driver_calls == [("bolt://db.example:7687", ("neo4j", SECRET))]
    store.close()
    store.close()  # idempotent
    with pytest.raises(CatalogError, match="closed"):
        store.read("RETURN 1 AS x")


def test_missing_endpoint_aborts_the_transaction(server):
    store = n4.Neo4jStore("neo4j://db.example")
    store.ensure_schema()
    server.created_shortfall = 1
    rels = pd.DataFrame({"src": ["a", "b"], "dst": ["c", "d"], "d_A": [1.0, 2.0]})
    with pytest.raises(CatalogError, match="only 1 of 2 NEAR relationships"):
        store.write([BulkRels("NEAR", "Instance", "Instance", rels)])


def test_read_paths_use_read_mode_and_plain_values(server):
    store = n4.Neo4jStore("bolt://db.example:7687", database="catalog")
    server.reads_from = type("R", (), {"read": lambda self, c, p: [{"n": 3, "xs": (1, 2)}]})()
    assert store.read("MATCH (m:Motif) RETURN count(m) AS n") == [{"n": 3, "xs": [1, 2]}]
    assert store.read_only("MATCH (m) RETURN m LIMIT $k", {"k": np.int64(5)})
    assert server.statements[-1][1] == {"k": 5} and type(server.statements[-1][1]["k"]) is int
    assert [m for m, _ in server.transactions] == ["read", "read"]
    assert all(s["default_access_mode"] == neo4j.READ_ACCESS for s in server.sessions)
    assert all(s["database"] == "catalog" for s in server.sessions)


@pytest.mark.parametrize(
    "exc, cls, match",
    [
        (nex.ServiceUnavailable("connection refused"), CatalogError, "cannot reach Neo4j"),
        (nex.AuthError("unauthorized"), CatalogError, "refused the credentials"),
    ],
)
def test_connection_errors_name_the_uri(server, exc, cls, match):
    server.raise_on_run = exc
    with pytest.raises(cls, match=match) as info:
        n4.Neo4jStore("bolt://db.example:7687")
    assert "bolt://db.example:7687" in str(info.value)
    assert SECRET not in str(info.value)


def test_server_refusals_become_query_errors(server):
    store = n4.Neo4jStore("bolt://db.example:7687")
    store.ensure_schema()
    refusal = nex.Neo4jError._hydrate_neo4j(
        code="Neo.ClientError.Statement.AccessMode",
        message="Writing in read access mode not allowed.",
    )
    server.raise_on_run = refusal
    with pytest.raises(QueryError, match="read-only session"):
        store.read_only("CREATE (n:Motif) RETURN n")
    server.raise_on_run = nex.Neo4jError._hydrate_neo4j(
        code="Neo.ClientError.Statement.SyntaxError", message="Invalid input 'RETRUN'"
    )
    with pytest.raises(QueryError, match="SyntaxError: Invalid input"):
        store.read_only("RETRUN 1")
    with pytest.raises(CatalogError, match="failed while writing"):
        store.write([Statement("CREATE (n:Material {name: 'x'})")])


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------


def test_credentials_never_shown(server, monkeypatch):
    store = n4.Neo4jStore(f"neo4j://alice:{SECRET}@db.example:7687", database="cat")
    assert server.driver_calls[-1] == ("neo4j://db.example:7687", ("alice", SECRET))
    for text in (repr(store), str(store), store.location, store.uri):
        assert SECRET not in text and "alice" not in text
    assert store.location == "neo4j://db.example:7687 (database cat)"
    # Environment credentials are used but never echoed, even in a server error message.
    store = n4.Neo4jStore("bolt://db.example:7687")
    assert server.driver_calls[-1][1] == ("neo4j", SECRET)
    server.raise_on_run = nex.ServiceUnavailable(f"boom {SECRET}")
    with pytest.raises(CatalogError) as info:
        store.read("RETURN 1 AS x")
    assert SECRET not in str(info.value) and "***" in str(info.value)
    # No password: no authentication at all (server started with NEO4J_AUTH=none).
    monkeypatch.delenv("NEO4J_PASSWORD")
    server.raise_on_run = None
    n4.Neo4jStore("bolt://db.example:7687")
    assert server.driver_calls[-1][1] is None


def test_real_driver_unreachable_server_message_has_no_secret():
    # A real driver (no stand-in) against a closed local port: fails at once, names the URI.
    with pytest.raises(CatalogError, match=r"cannot reach Neo4j at bolt://127\.0\.0\.1:9") as e:
        n4.Neo4jStore(f"bolt://neo4j:{SECRET}@127.0.0.1:9", password=None)
    assert SECRET not in str(e.value)
    assert SECRET not in repr(e.value.__cause__)


@pytest.mark.parametrize(
    "uri, match",
    [
        ("http://db.example:7474", "not a Neo4j URI"),
        ("./motifcat-catalog", "not a Neo4j URI"),
        ("bolt://", "no host"),
        (f"bolt://neo4j:{SECRET}@db.example:port", "port is not a number"),
    ],
)
def test_bad_uris(uri, match):
    with pytest.raises(CatalogError, match=match) as info:
        n4.Neo4jStore(uri)
    assert SECRET not in str(info.value)


# --------------------------------------------------------------------------------------------
# Neo4j's parser on every statement
# --------------------------------------------------------------------------------------------


def ddl_statements() -> list[str]:
    return neo4j_ddl()


def bulk_statements() -> list[tuple[str, dict]]:
    statements = [(n4.bulk_node_statement(label), {"rows": []}) for label in NODE_TABLES]
    statements += [
        (n4.bulk_rel_statement(rel, src, dst, [p for p, _ in props]), {"rows": []})
        for rel, (src, dst, props) in REL_TABLES.items()
    ]
    return statements


def broken_statements() -> tuple[str, list]:
    """A clean statement and variants that Neo4j would refuse or that break the schema."""
    good = n4.bulk_rel_statement("NEAR", "Instance", "Instance", ["d_A"])
    return good, [
        good.replace("MATCH (b:", "MATCH b:"),  # syntax
        (good, {}),  # $rows used but not sent
        good.replace(":Instance {", ":Instanse {"),  # label not in the schema
        "MATCH (i:Instance)-[:INSTANCE_OF]->(m:Motif) RETURN array_distance(m.descriptor, $q)",
        "MATCH (m:Motif)-[:CONTAINS]->(i:Image) RETURN m.id",  # edge the wrong way round
        "MATCH (m:Motif) RETURN m; MATCH (i:Image) RETURN i",  # two statements
    ]


@pytest.fixture(scope="module")
def prelinted() -> None:
    """Lint the fixed statements of the next tests in ONE Node run (start-up costs seconds)."""
    good, broken = broken_statements()
    lint_cypher([*ddl_statements(), *bulk_statements(), good, *broken])


@needs_linter
def test_ddl_lints_clean(prelinted):
    assert_clean(ddl_statements())


@needs_linter
def test_bulk_statements_lint_clean(prelinted):
    assert_clean(bulk_statements())


@needs_linter
def test_linter_can_fail(prelinted):
    good, broken = broken_statements()
    problems = lint_cypher([good, *broken])
    flagged = {p.index for p in problems}
    assert flagged == set(range(1, len(broken) + 1)), "\n".join(map(str, problems))
    assert any("array_distance" in p.message for p in problems)


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@pytest.fixture
def synthetic_analysis(analysed):
    """A small synthetic TMD analysis by seed (~2 s once; shared with test_neo4j_live)."""
    from motifcat.ingest import AnalysisParams

    return lambda seed=0: analysed("tmd", (160, 160), AnalysisParams(max_classes=4), seed=seed)


def _embedded(tmp_path: Path):
    store_mod = importlib.import_module("motifcat.catalog.store")
    if not hasattr(store_mod, "open_catalog"):
        pytest.skip("motifcat.catalog.store.open_catalog not yet present")
    return store_mod.open_catalog(str(tmp_path / "embedded"))


def _query_args(fn, ids: dict[str, Any], optional: bool) -> dict[str, Any] | None:
    """Plausible values for a query function's required parameters (and, with ``optional``,
    for its optional ones named like an id, to reach the filtered variants), or None."""
    kwargs = {}
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        required = p.default is inspect.Parameter.empty
        match = [value for key, value in ids.items() if key in p.name.lower()]
        if match and (required or optional):
            # A parameter named "..._ids" takes a sequence of ids.
            kwargs[p.name] = [match[0]] if p.name.lower().endswith("_ids") else match[0]
        elif not required:
            continue
        elif "int" in str(p.annotation):
            kwargs[p.name] = 1
        elif "float" in str(p.annotation):
            kwargs[p.name] = 0.5
        else:
            return None
    return kwargs


@needs_linter
def test_writer_statements_lint_clean(server, tmp_path, synthetic_analysis):
    writer = _module("motifcat.catalog.writer")
    if writer is None:
        pytest.skip("motifcat.catalog.writer not yet present")
    analysis = synthetic_analysis()
    embedded = _embedded(tmp_path)
    server.reads_from = embedded  # empty: the writer takes the full first-write path
    store = n4.Neo4jStore("bolt://db.example:7687")
    writer.write_analysis(store, analysis, sample="tmd-a", material="MoSe2")
    n_first = len(server.statements)
    written = {c for c, _, m in server.statements if m == "write"}
    creates = [c for c in written if "CREATE" in c and "CONSTRAINT" not in c and "INDEX" not in c]
    for label in set(NODE_TABLES) - {"Reference"}:  # a material's reference: store_reference
        assert any(re.search(rf"\(\w*:{label}\b", c) for c in creates), f"no {label} written"
    for rel in ("IN_IMAGE", "INSTANCE_OF", "NEAR", "CONTAINS", "OF_SAMPLE", "OF_MATERIAL"):
        assert any(f":{rel}]" in c for c in creates), f"no {rel} written"
    # Every data statement of the image went in ONE transaction (plus the schema's own).
    data_tx = [n for mode, n in server.transactions if mode == "write"][len(neo4j_ddl()) + 1 :]
    assert len(data_tx) == 1, server.transactions
    # With the image in the (embedded) catalog, re-ingesting through Neo4j writes nothing.
    writer.write_analysis(embedded, analysis, sample="tmd-a", material="MoSe2")
    writer.write_analysis(store, analysis, sample="tmd-a", material="MoSe2")
    again = [c for c, _, m in server.statements[n_first:] if m == "write"]
    assert not [c for c in again if "CREATE" in c], "re-ingesting an image must write nothing"
    # A second material: the vocabulary-matching reads see an existing catalog.
    other = synthetic_analysis(seed=1)
    writer.write_analysis(store, other, sample="tmd-b", material="MoSe2")
    assert_clean([(c, p) for c, p, _ in server.statements])


@needs_linter
def test_reference_statements_lint_clean(server, tmp_path):
    """A material's reference crystal (motifcat.catalog.store_reference) through Neo4j."""
    from motifcat.catalog import store_reference

    server.reads_from = _embedded(tmp_path)
    store = n4.Neo4jStore("bolt://db.example:7687")
    store_reference(store, "MoSe2", "{}", "proto:mx2:formula=MoSe2", "ase.build.mx2")
    creates = [c for c, _, m in server.statements if m == "write" and "CREATE (" in c]
    assert any(":Reference {" in c for c in creates)
    assert any(":HAS_REFERENCE]" in c for c in creates)
    assert_clean([(c, p) for c, p, _ in server.statements])


@needs_linter
def test_query_statements_lint_clean(server, tmp_path, synthetic_analysis):
    queries = _module("motifcat.query.queries")
    if queries is None:
        pytest.skip("motifcat.query.queries not yet present")
    embedded = _embedded(tmp_path)
    writer, analysis = _module("motifcat.catalog.writer"), synthetic_analysis()
    if writer is not None and analysis is not None:
        writer.write_analysis(embedded, analysis, sample="tmd-a", material="MoSe2")
    else:  # a minimal hand-made catalog: one node per label, one edge per type
        embedded.write(all_table_ops())
    server.reads_from = embedded
    store = n4.Neo4jStore("bolt://db.example:7687")
    motif = embedded.read("MATCH (m:Motif) RETURN m.id AS id, m.key AS key ORDER BY m.id")[0]
    image = embedded.read("MATCH (i:Image) RETURN i.id AS id")[0]
    material = embedded.read("MATCH (m:Material) RETURN m.name AS name")[0]["name"]
    sample = embedded.read("MATCH (s:Sample) RETURN s.name AS name")[0]["name"]
    ids = {
        "key": motif["key"], "motif": motif["id"], "image": image["id"],
        "material": material, "sample": sample, "level": 1,
    }  # fmt: skip
    called, silent, uncallable = [], [], []
    for name, fn in inspect.getmembers(queries, inspect.isfunction):
        if name.startswith("_") or not fn.__module__.startswith("motifcat.query."):
            continue
        if next(iter(inspect.signature(fn).parameters), "") != "store":
            continue
        calls = [_query_args(fn, ids, optional) for optional in (False, True)]
        if calls[0] is None:
            uncallable.append(name)
            continue
        before = len(server.statements)
        for kwargs in calls[:1] if calls[1] == calls[0] else calls:
            try:
                fn(store, **kwargs)
            except MotifcatError:
                pass  # what was sent is linted; some argument combinations are refused
        (called if len(server.statements) > before else silent).append(name)
    assert not uncallable, f"cannot call {uncallable}: teach _query_args their parameters"
    assert called and not silent, f"sent nothing: {silent}"
    assert all(mode == "read" for _, _, mode in server.statements)
    assert_clean([(c, p) for c, p, _ in server.statements])


# --------------------------------------------------------------------------------------------
# docker compose
# --------------------------------------------------------------------------------------------


def test_compose_file():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    neo, app = compose["services"]["neo4j"], compose["services"]["app"]
    assert neo["image"] == "neo4j:5.26-community"
    # Published on this host's loopback only (the ports need not be open to the network).
    ports = {p.removeprefix("127.0.0.1:") for p in neo["ports"]}
    assert {"7474:7474", "7687:7687"} <= ports
    auth = neo["environment"]["NEO4J_AUTH"]
    assert re.fullmatch(r"\$\{NEO4J_USER[^}]*\}/\$\{NEO4J_PASSWORD[^}]*\}", auth)
    volume = neo["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose["volumes"]  # a named volume
    test = " ".join(neo["healthcheck"]["test"])
    assert "cypher-shell" in test and "$${NEO4J_AUTH" in test  # expanded in the container
    assert app["depends_on"]["neo4j"]["condition"] == "service_healthy"
    assert "motifcat app --catalog bolt://neo4j:7687" in " ".join(app["command"])
    assert app["environment"]["NEO4J_PASSWORD"].startswith("${NEO4J_PASSWORD")
    text = (REPO / "docker-compose.yml").read_text()
    assert "change-me" not in text and SECRET not in text


def test_env_example():
    lines = (REPO / ".env.example").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert env == {"NEO4J_USER": "neo4j", "NEO4J_PASSWORD": "change-me-please"}
    assert len(env["NEO4J_PASSWORD"]) >= 8  # Neo4j 5 refuses shorter initial passwords
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_make_node_deps_uses_the_lock():
    lock = (REPO / "tests" / "cypher" / "package-lock.json").read_text()
    pkg = (REPO / "tests" / "cypher" / "package.json").read_text()
    version = re.search(r'"@neo4j-cypher/language-support": "([^"]+)"', pkg).group(1)
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", version), "pin an exact version"
    assert f'"version": "{version}"' in lock


def test_open_catalog_dispatches_to_neo4j(server):
    from motifcat.catalog.store import open_catalog

    store = open_catalog("neo4j+s://db.example:7687", read_only=True)
    assert isinstance(store, n4.Neo4jStore) and store.backend == "neo4j"
    assert server.driver_calls[-1] == ("neo4j+s://db.example:7687", ("neo4j", SECRET))
    with pytest.raises(CatalogError, match="opened read-only"):
        store.write([BulkNodes("Material", pd.DataFrame({"name": ["x"]}))])
    with pytest.raises(CatalogError, match="opened read-only"):
        store.ensure_schema()
    assert not any(mode == "write" for _, _, mode in server.statements)
    store.close()
