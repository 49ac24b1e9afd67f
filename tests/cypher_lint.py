"""Lint Cypher statements offline with Neo4j's own parser (for the tests).

No Neo4j server can run on the development machines, so every statement the Neo4j backend
sends is checked by the parser and semantic analysis of ``@neo4j-cypher/language-support``
(the engine of Neo4j's own editors) running under Node: ``tests/cypher/lint.mjs``. Node starts
once per batch (about 2 s), so lint many statements in one call.

``make node-deps`` (part of ``make test``) installs the pinned package with ``npm ci`` in
``tests/cypher``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CYPHER_DIR = Path(__file__).resolve().parent / "cypher"
LINT_SCRIPT = CYPHER_DIR / "lint.mjs"
PACKAGE_DIR = CYPHER_DIR / "node_modules" / "@neo4j-cypher" / "language-support"

#: Keys of the bulk-relationship rows. The package wrongly reports ``r.src`` in
#: ``MATCH (a:L {id: r.src})`` as an unknown node property (it attaches the key to ``a``), so
#: they are declared as property keys to keep that false positive out.
ROW_KEYS = ("src", "dst")


@dataclass(frozen=True)
class Problem:
    """One diagnostic of Neo4j's Cypher checker on one statement.

    Attributes
    ----------
    index : int
        Position of the statement in the batch given to :func:`lint_cypher`.
    cypher : str
        The statement.
    severity : {"error", "warning"}
    message : str
        The checker's message.
    offset : int or None
        Character offset of the problem in ``cypher``.
    """

    index: int
    cypher: str
    severity: str
    message: str
    offset: int | None = None

    def __str__(self) -> str:
        where = "" if self.offset is None else f" at offset {self.offset}"
        text = self.cypher if len(self.cypher) < 400 else self.cypher[:400] + " ..."
        return f"[{self.index}] {self.severity}{where}: {self.message}\n    {text}"


def lint_unavailable() -> str | None:
    """Why the linter cannot run here (for ``pytest.skip``), or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (Neo4j's Cypher parser runs under Node; see Makefile)"
    if not PACKAGE_DIR.is_dir():
        return (
            "@neo4j-cypher/language-support is not installed in tests/cypher; "
            "run `make node-deps` (npm ci)"
        )
    return None


def catalog_schema() -> dict[str, Any]:
    """The catalog's labels, types, property keys and edge directions, as the checker wants them."""
    from motifcat.catalog.schema import NODE_TABLES, REL_TABLES

    props = {name for cols in NODE_TABLES.values() for name, _ in cols}
    props |= {name for _, _, cols in REL_TABLES.values() for name, _ in cols}
    return {
        "labels": sorted(NODE_TABLES),
        "relationshipTypes": sorted(REL_TABLES),
        "propertyKeys": sorted(props | set(ROW_KEYS)),
        "graphSchema": [
            {"from": src, "to": dst, "relType": rel} for rel, (src, dst, _) in REL_TABLES.items()
        ],
    }


def _item(statement: Any) -> dict[str, Any]:
    """``{"cypher", "params"}`` for a str, a Statement-like object, a mapping or a pair."""
    if isinstance(statement, str):
        return {"cypher": statement}
    if isinstance(statement, Mapping):
        cypher, params = statement["cypher"], statement.get("params")
    elif isinstance(statement, tuple):
        cypher, params = statement
    else:  # motifcat.catalog.store.Statement or anything with .cypher / .params
        cypher, params = statement.cypher, getattr(statement, "params", None)
    out: dict[str, Any] = {"cypher": cypher}
    if params is not None:
        out["params"] = sorted(params)
    return out


def lint_cypher(
    statements: Iterable[Any],
    *,
    schema: bool | Mapping[str, Any] = True,
    warnings: bool = True,
    timeout: float = 120.0,
) -> list[Problem]:
    """Check Cypher statements with Neo4j's parser; return every problem found.

    Parameters
    ----------
    statements : iterable
        Each a Cypher string (parameters then not checked), a ``(cypher, params)`` pair, a
        mapping with ``cypher``/``params`` or a ``Statement``. With params, a ``$name`` used
        but not sent is an error.
    schema : bool or mapping
        True: check labels, relationship types, property keys and edge directions against
        the catalog schema (:func:`catalog_schema`); a mapping: against that schema; False:
        syntax and semantics only.
    warnings : bool
        Also return the checker's warnings (unknown label/property, wrong edge direction,
        cartesian product, deprecation), not only its errors.
    timeout : float
        Seconds the Node process may take.

    Returns
    -------
    list of Problem
        Empty when every statement is clean.

    Examples
    --------
    >>> [p.message for p in lint_cypher(["MATCH (n) RETURN m"], schema=False)]
    ['Variable `m` not defined']
    """
    reason = lint_unavailable()
    if reason:
        raise RuntimeError(reason)
    items = [_item(s) for s in statements]
    schema_json = ""
    if schema:
        schema_json = json.dumps(catalog_schema() if schema is True else dict(schema))
    # Node needs seconds to start and ~0.1-0.3 s per statement, and a write sends the same
    # batch statement many times: lint each distinct (statement, parameter names) once.
    keys = [(schema_json, json.dumps(item, sort_keys=True)) for item in items]
    todo = sorted({k for k in keys if k not in _CACHE})
    if todo:
        _CACHE.update(
            zip(
                todo, _run_node([json.loads(k[1]) for k in todo], schema_json, timeout), strict=True
            )
        )
    problems = []
    for index, (item, key) in enumerate(zip(items, keys, strict=True)):
        res = _CACHE[key]
        kinds = [("error", res["errors"])] + ([("warning", res["warnings"])] if warnings else [])
        for severity, diags in kinds:
            problems += [
                Problem(index, item["cypher"], severity, d["message"], d.get("offset"))
                for d in diags
            ]
    return problems


#: (schema JSON, statement JSON) -> lint.mjs result, for the life of the test process.
_CACHE: dict[tuple[str, str], dict[str, Any]] = {}


def _run_node(items: list[dict[str, Any]], schema_json: str, timeout: float) -> list[dict]:
    """Run lint.mjs once on ``items``; its results in the same order."""
    cmd = ["node", str(LINT_SCRIPT)]
    if schema_json:
        cmd += ["--schema", schema_json]
    stdin = "".join(json.dumps(item) + "\n" for item in items)
    proc = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"lint.mjs failed ({proc.returncode}): {proc.stderr.strip()}")
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if [r["index"] for r in results] != list(range(len(items))):
        raise RuntimeError(f"lint.mjs answered {len(results)} of {len(items)} statements")
    return results
