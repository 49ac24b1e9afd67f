"""The read-only console: harmless queries run, everything that could write is refused before
it runs, and afterwards nothing in the catalog or on disk has changed."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motifcat.catalog.embedded import LadybugStore
from motifcat.catalog.store import Statement
from motifcat.errors import QueryError
from motifcat.query import check_readonly, run_readonly
from motifcat.query.console import tokenize


def _counts(store) -> tuple[int, ...]:
    return tuple(
        store.read(f"MATCH (n:{label}) RETURN count(*) AS n")[0]["n"]
        for label in ("Material", "Sample", "Motif")
    )


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    store = LadybugStore(root / "catalog.lbug")
    store.write(
        [
            Statement("CREATE (:Material {name: $m})", {"m": "MoSe2"}),
            Statement("CREATE (:Sample {id: 'S1', name: 'S1'})"),
            Statement(
                "UNWIND $rows AS r CREATE (:Motif {id: r.id, level: r.level, key: r.key, "
                "n_instances: r.n})",
                {"rows": [
                    {"id": "L1-0001", "level": 1, "key": "CREATE", "n": 5},
                    {"id": "L1-0002", "level": 1, "key": "it's; DROP", "n": 7},
                ]},
            ),
        ]
    )
    yield store, root
    store.close()


@pytest.fixture()
def unchanged(catalog):
    """Yields the store; afterwards, asserts no node and no file was added."""
    store, root = catalog
    before = (_counts(store), sorted(os.listdir(root)))
    yield store, root
    assert (_counts(store), sorted(os.listdir(root))) == before


# ------------------------------------------------------------------------ what must pass

HARMLESS = [
    ("MATCH (m:Motif) WHERE m.key = 'CREATE' RETURN m.id AS id", [{"id": "L1-0001"}]),
    ("MATCH (m:Motif) WHERE m.key = \"it's; DROP\" RETURN m.id AS id", [{"id": "L1-0002"}]),
    ("MATCH (m:Motif) WHERE m.key = 'it\\'s; DROP' RETURN m.id AS id", [{"id": "L1-0002"}]),
    ("// DELETE everything? no.\nMATCH (m:Motif) RETURN count(*) AS n", [{"n": 2}]),
    ("match (m:Motif) /* SET m.x = 1 */ return m.n_instances as `SET` order by `SET`",
     [{"SET": 5}, {"SET": 7}]),
    ("MATCH (m:Motif) WHERE m.level = $lvl RETURN sum(m.n_instances) AS n;", [{"n": 12}]),
    ("WITH 'COPY TO /tmp/x' AS s RETURN size(s) AS n", [{"n": 14}]),
    ("UNWIND [1, 2] AS x RETURN x", [{"x": 1}, {"x": 2}]),
]


@pytest.mark.parametrize("cypher, expected", HARMLESS)
def test_harmless_queries_run(unchanged, cypher, expected):
    store, _ = unchanged
    df = run_readonly(store, cypher, {"lvl": 1} if "$lvl" in cypher else None)
    assert df.to_dict("records") == expected


def test_allowed_call(unchanged):
    store, _ = unchanged
    tables = run_readonly(store, "CALL show_tables() RETURN name ORDER BY name")
    assert "Motif" in tables["name"].tolist()


def test_engine_errors_become_query_errors(unchanged):
    store, _ = unchanged
    with pytest.raises(QueryError, match="failed"):
        run_readonly(store, "MATCH (m:NoSuchLabel) RETURN m")


# ---------------------------------------------------------------------- what is refused

REFUSED = [
    ("CREATE (:Material {name: 'x'})", "CREATE"),
    ("cReAtE (:Material {name: 'x'})", "CREATE"),
    ("MATCH (m:Motif) /* hi */ DETACH DELETE m", "DETACH"),
    ("MATCH (m:Motif)\n// comment\nSET m.key = 'x'", "SET"),
    ("MATCH (m:Motif) REMOVE m.key", "REMOVE"),
    ("MERGE (:Material {name: 'x'})", "MERGE"),
    ("UNWIND [1] AS x CREATE (:Material {name: 'y'})", "CREATE"),
    # a keyword after a string that contains an (escaped) quote
    ("RETURN 'it\\'s' AS a CREATE (:Material {name: 'z'})", "CREATE"),
    ("RETURN \"a'b\" AS a CREATE (:Material {name: 'z'})", "CREATE"),
    ("RETURN 'a\\\\' AS a CREATE (:Material {name: 'z'})", "CREATE"),
    # several statements
    ("MATCH (m:Motif) RETURN m; CREATE (:Material {name: 'w'})", "';'"),
    ("RETURN 'x;' AS a; MATCH (n:Material) DELETE n", "';'"),
    ("RETURN 1 AS x;;", "';'"),
    # the file system
    ("COPY (MATCH (m:Motif) RETURN m.id) TO '{root}/out.csv'", "COPY"),
    ("EXPORT DATABASE '{root}/exported'", "EXPORT"),
    ("IMPORT DATABASE '{root}/exported'", "IMPORT"),
    ("LOAD FROM '/etc/passwd' RETURN *", "LOAD"),
    ("LOAD EXTENSION json", "LOAD"),
    ("INSTALL json", "INSTALL"),
    ("ATTACH '{root}/other.lbug' AS o (dbtype lbug)", "ATTACH"),
    ("USE o", "USE"),
    ("CHECKPOINT", "CHECKPOINT"),
    ("BEGIN TRANSACTION", "BEGIN"),
    ("COMMIT", "COMMIT"),
    ("DROP TABLE Motif", "DROP"),
    ("ALTER TABLE Motif ADD x INT64", "ALTER"),
    # CALL of anything but the read-only catalog functions
    ("CALL threads = 1", "CALL threads"),
    ("CALL read_csv('/etc/passwd') RETURN *", "READ_CSV"),
    ("CALL project_graph('g', ['Motif'], []) RETURN *", "PROJECT_GRAPH"),
    ("CALL clear_warnings() RETURN *", "CLEAR_WARNINGS"),
    ("CALL apoc.export.csv.all('/tmp/x.csv', {})", "CALL apoc.export.csv.all"),
    ("CALL { CREATE (:Material {name: 'q'}) }", "CALL"),
    # Unicode tricks: full-width letters, zero-width space, a Unicode line separator ending a
    # comment for the engine but not for a naive checker
    ("ＣＲＥＡＴＥ (:Material {name: 'u'})", "U+FF23"),
    ("CRE\u200bATE (:Material {name: 'u'})", "U+200B"),
    ("MATCH (m:Motif) RETURN m.id // x\u2028CREATE (:Material {name: 'u'})", "U+2028"),
    ("MATCH (m:Motif) RETURN m.id // x\rCREATE (:Material {name: 'u'})", "CREATE"),
    ("RETURN 1 AS x\u00a0", "U+00A0"),
    # a comment hiding nothing: the keyword after its end is seen
    ("RETURN 1 /* /* */ CREATE (:Material {name: 'v'}) /* */", "CREATE"),
    # not a read query at all
    ("'CREATE'", "no statement"),
    ("SHOW_TABLES()", "starts with"),
    ("", "empty"),
    ("RETURN 'unterminated", "unterminated"),
]


@pytest.mark.parametrize("cypher, keyword", REFUSED)
def test_refused_before_running_and_nothing_written(unchanged, cypher, keyword):
    store, root = unchanged
    cypher = cypher.replace("{root}", str(root))
    with pytest.raises(QueryError, match="(?i)" + re.escape(keyword)):
        run_readonly(store, cypher)


def test_engine_refuses_writes_on_the_read_only_path(unchanged):
    """Layer 2: even a write that slipped past the check fails on the read-only handle."""
    store, _ = unchanged
    with pytest.raises(QueryError):
        store.read_only("CREATE (:Material {name: 'engine'})")


def test_params_must_be_a_mapping(unchanged):
    store, _ = unchanged
    with pytest.raises(QueryError, match="params"):
        run_readonly(store, "RETURN $x AS x", ["x"])


def test_string_escape_conventions_all_checked():
    # Under Cypher's rule the quote is escaped and CREATE is inside the string; were an engine
    # to read backslashes literally, CREATE would be outside. Both readings are checked.
    with pytest.raises(QueryError, match="CREATE"):
        check_readonly("RETURN 'a\\' AS x, CREATE (:Material {name: 1}) //'")
    # ... while Cypher's own reading of it is a harmless string
    assert [t.kind for t in tokenize("RETURN 'a\\' AS x, CREATE (:Material {name: 1}) //'")] == [
        "word", "string"]


# ------------------------------------------------------------------ property-based probes

_SEPARATORS = st.sampled_from([" ", "\n", "\t", " /* c */ ", "/**/", "  // c\n", "\r\n"])
_WRITES = st.sampled_from(["create", "merge", "delete", "set", "copy", "drop", "load", "detach"])


@settings(max_examples=150, deadline=None)
@given(kw=_WRITES, flips=st.lists(st.booleans(), min_size=6, max_size=6), a=_SEPARATORS,
       b=_SEPARATORS)
def test_any_case_and_spacing_of_a_write_keyword_is_refused(kw, flips, a, b):
    word = "".join(c.upper() if f else c for c, f in zip(kw, flips + [False] * 6, strict=False))
    with pytest.raises(QueryError, match=kw.upper()):
        check_readonly(f"MATCH (n:Motif){a}{word}{b}(n)")


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.characters(blacklist_characters="'\\", codec="utf-8"), max_size=40))
def test_anything_inside_a_string_is_harmless(text):
    check_readonly(f"MATCH (m:Motif) WHERE m.key = '{text} CREATE DELETE ; //' RETURN m.id")


class _RecordingNeo4j:
    """Stands in for a Neo4j server (none can run here): records what reaches it, and how."""

    backend = "neo4j"
    location = "bolt://example:7687"

    def __init__(self):
        self.calls = []

    def read(self, cypher, params=None):
        self.calls.append(("read", cypher))
        return []

    def read_only(self, cypher, params=None):
        self.calls.append(("read_only", cypher))
        return [{"n": 1}]


def test_neo4j_uses_the_read_access_path_and_refused_text_never_reaches_it():
    store = _RecordingNeo4j()
    for cypher, _ in REFUSED:
        with pytest.raises(QueryError):
            run_readonly(store, cypher.replace("{root}", "/tmp"))
    assert store.calls == []
    df = run_readonly(store, "MATCH (m:Motif) RETURN count(*) AS n")
    assert df["n"].tolist() == [1]
    assert store.calls == [("read_only", "MATCH (m:Motif) RETURN count(*) AS n")]
