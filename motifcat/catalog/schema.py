"""The catalog's graph schema and its per-backend DDL.

One property graph on both backends (see DESIGN.md). Data statements (MATCH/UNWIND/CREATE/
RETURN) are shared text elsewhere; only the DDL differs and lives here.

Nodes
-----
Material {name}
Sample {id, name}                     id == name: a sample name is unique in a catalog
Image {id, path, pixel_size_A, width, height, n_columns, params, metadata, software,
       ingested_at}                   id = sha256 of the pixels; params/metadata are JSON text;
                                      ingested_at is an ISO-8601 UTC string
Motif {id, level, key, descriptor, n_instances, prototype, mean_image, family}
                                      id: "L1-0001"... (level 1, numbered in order of creation);
                                      "L2-"/"L3-" + sha256(key)[:12] (levels 2/3)
                                      key: level 1 "L1:<descriptor space>" (e.g.
                                      "L1:zernike-n10-image-w0.5"); levels 2/3 the canonical
                                      key written with this catalog's level-1 ids
                                      descriptor: list of floats (level 1; [] else) in the
                                      stored form of its space (vocabulary.normalize_descriptor:
                                      image-scaled Zernike and PCA as computed, patch-scaled
                                      Zernike rescaled to unit norm)
                                      n_instances: total over all images (kept in step)
                                      prototype: JSON {xy_A, labels (level-1 motif ids),
                                      periodic, cell_A}
                                      mean_image: JSON list of rows, a <= 32 px thumbnail
                                      scaled to [0, 1] ("" when unknown)
                                      family: levels 2/3, the family above the exact key
                                      (MotifClass.family of the image that created the
                                      motif: its key, or e.g. "defect neighbourhood of
                                      <key>" for a rare class); "" on level 1
Reference {id, source, provenance, structure, created_at}
                                      a material's reference crystal for exports: id = the
                                      material's name, structure = JSON (symbols, positions,
                                      cell, pbc, zone; motifcat.structure.reference_to_json)
Instance {id, x_A, y_A, level,        id = "<first 16 hex of image id>-<level>-<index>";
  cross_section, cross_section_err}   index = column index (level 1) or instance index;
                                      border columns (level-1 label -1) are not stored;
                                      cross_section: level 1, the column's scattering
                                      cross-section (integrated intensity above the local
                                      background, image units summed over pixels) and its
                                      1-sigma error from the Gaussian column model; null on
                                      levels 2-3 and for columns not model-fitted

Relationships
-------------
(Sample)-[:OF_MATERIAL]->(Material)
(Image)-[:OF_SAMPLE]->(Sample)
(Instance)-[:IN_IMAGE]->(Image)
(Instance)-[:INSTANCE_OF]->(Motif)
(Instance)-[:NEAR {d_A}]->(Instance)          level-1 neighbours, i < j (from the hierarchy's
                                              neighbour graph: none without a hierarchy)
(Instance)-[:PART_OF {pos}]->(Instance)       lower level inside higher level; pos: level 1 in
                                              a level-2 unit: position 0..n-1 in the unit's ring
                                              (cyclic, canonical order), -1 for an interior
                                              (centre) column; level 2 in a level-3 composite:
                                              index of the unit in the composite's member list
(Motif)-[:COMPOSED_OF {count}]->(Motif)       higher-level motif made of lower-level ones
(Image)-[:CONTAINS {count}]->(Motif)          instances of the motif in the image
(Material)-[:HAS_REFERENCE]->(Reference)      at most one per material
"""

from __future__ import annotations

#: Node label -> ordered (property, Ladybug type); the first property is the primary key.
NODE_TABLES: dict[str, list[tuple[str, str]]] = {
    "Material": [("name", "STRING")],
    "Sample": [("id", "STRING"), ("name", "STRING")],
    "Image": [
        ("id", "STRING"),
        ("path", "STRING"),
        ("pixel_size_A", "DOUBLE"),
        ("width", "INT64"),
        ("height", "INT64"),
        ("n_columns", "INT64"),
        ("params", "STRING"),
        ("metadata", "STRING"),
        ("software", "STRING"),
        ("ingested_at", "STRING"),
    ],
    "Motif": [
        ("id", "STRING"),
        ("level", "INT64"),
        ("key", "STRING"),
        ("descriptor", "DOUBLE[]"),
        ("n_instances", "INT64"),
        ("prototype", "STRING"),
        ("mean_image", "STRING"),
        ("family", "STRING"),
    ],
    "Instance": [
        ("id", "STRING"),
        ("x_A", "DOUBLE"),
        ("y_A", "DOUBLE"),
        ("level", "INT64"),
        ("cross_section", "DOUBLE"),
        ("cross_section_err", "DOUBLE"),
    ],
    # A material's reference crystal for exports (id = the material's name; one per material).
    "Reference": [
        ("id", "STRING"),
        ("source", "STRING"),
        ("provenance", "STRING"),
        ("structure", "STRING"),
        ("created_at", "STRING"),
    ],
}

#: Properties added to a node table after catalogs were first written: an older embedded
#: catalog gains them (null on its existing nodes) when it is next opened for writing.
ADDED_PROPERTIES: dict[str, list[tuple[str, str]]] = {
    "Instance": [("cross_section", "DOUBLE"), ("cross_section_err", "DOUBLE")],
    "Motif": [("family", "STRING")],
}

#: Relationship type -> (from label, to label, ordered (property, Ladybug type)).
REL_TABLES: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "OF_MATERIAL": ("Sample", "Material", []),
    "OF_SAMPLE": ("Image", "Sample", []),
    "IN_IMAGE": ("Instance", "Image", []),
    "INSTANCE_OF": ("Instance", "Motif", []),
    "NEAR": ("Instance", "Instance", [("d_A", "DOUBLE")]),
    "PART_OF": ("Instance", "Instance", [("pos", "INT64")]),
    "COMPOSED_OF": ("Motif", "Motif", [("count", "INT64")]),
    "CONTAINS": ("Image", "Motif", [("count", "INT64")]),
    "HAS_REFERENCE": ("Material", "Reference", []),
}


def primary_key(label: str) -> str:
    """Name of the primary-key property of node ``label``."""
    return NODE_TABLES[label][0][0]


def ladybug_ddl() -> list[str]:
    """``CREATE NODE/REL TABLE IF NOT EXISTS`` statements for the embedded store."""
    out = []
    for label, props in NODE_TABLES.items():
        cols = ", ".join(f"{name} {typ}" for name, typ in props)
        out.append(f"CREATE NODE TABLE IF NOT EXISTS {label}({cols}, PRIMARY KEY ({props[0][0]}))")
    for rel, (src, dst, props) in REL_TABLES.items():
        cols = "".join(f", {name} {typ}" for name, typ in props)
        out.append(f"CREATE REL TABLE IF NOT EXISTS {rel}(FROM {src} TO {dst}{cols})")
    for label, props in ADDED_PROPERTIES.items():
        out += [f"ALTER TABLE {label} ADD IF NOT EXISTS {name} {typ}" for name, typ in props]
    return out


def neo4j_ddl() -> list[str]:
    """Uniqueness constraints (which also index) on every node id, plus lookup indexes."""
    out = [
        f"CREATE CONSTRAINT {label.lower()}_{primary_key(label)}_unique IF NOT EXISTS "
        f"FOR (n:{label}) REQUIRE n.{primary_key(label)} IS UNIQUE"
        for label in NODE_TABLES
    ]
    out.append("CREATE INDEX motif_level_key IF NOT EXISTS FOR (m:Motif) ON (m.level, m.key)")
    return out
