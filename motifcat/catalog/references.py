"""Store a material's reference crystal (for exports) with its provenance."""

from __future__ import annotations

from datetime import UTC, datetime

from ..errors import CatalogError
from .store import GraphStore, Statement


def store_reference(store: GraphStore, material: str, reference_json: str, source: str,
                    provenance: str) -> None:
    """Attach (or replace) the reference crystal of ``material``, in one transaction.

    Parameters
    ----------
    store : GraphStore
        Opened for writing.
    material : str
        An existing or new material name (created if absent).
    reference_json : str
        :func:`motifcat.structure.reference_to_json` of the reference.
    source, provenance : str
        The spec it was made from and how (kept as properties for queries).

    Examples
    --------
    >>> store_reference(store, "MoS2", text, "proto:mx2", "ase.build.mx2")  # doctest: +SKIP
    """
    if not isinstance(material, str) or not material:
        raise CatalogError(f"material: expected a non-empty name, got {material!r}")
    ops = []
    if not store.read("MATCH (m:Material) WHERE m.name = $m RETURN m.name AS n", {"m": material}):
        ops.append(Statement("CREATE (:Material {name: $m})", {"m": material}))
    ops += [
        Statement("MATCH (r:Reference) WHERE r.id = $m DETACH DELETE r", {"m": material}),
        Statement(
            "CREATE (:Reference {id: $m, source: $src, provenance: $prov, structure: $s, "
            "created_at: $t})",
            {"m": material, "src": source, "prov": provenance, "s": reference_json,
             "t": datetime.now(UTC).isoformat(timespec="seconds")},
        ),
        Statement(
            "MATCH (m:Material) WHERE m.name = $m MATCH (r:Reference) WHERE r.id = $m "
            "CREATE (m)-[:HAS_REFERENCE]->(r)",
            {"m": material},
        ),
    ]
    store.write(ops)
