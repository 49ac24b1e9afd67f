"""Every Cypher statement of the query layer, by name: one text for Ladybug and Neo4j.

Rules these texts follow are in :mod:`motifcat.query.queries`. The tests check each one with
Neo4j's own parser as well as run it on the embedded store.
"""

from __future__ import annotations

__all__ = [
    "CYPHER",
]


#: Every Cypher statement of the query layer, by name (``*_LEVEL`` variants filter on $level).
CYPHER: dict[str, str] = {
    "motif": (
        "MATCH (m:Motif) WHERE m.id = $motif_id "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, m.descriptor AS descriptor, "
        "m.n_instances AS n_instances, m.prototype AS prototype, m.mean_image AS mean_image"
    ),
    "sample_exists": "MATCH (s:Sample) WHERE s.id = $sample RETURN s.id AS sample",
    "image_exists": "MATCH (img:Image) WHERE img.id = $image_id RETURN img.id AS image_id",
    "materials": (
        "MATCH (mat:Material) "
        "OPTIONAL MATCH (s:Sample)-[:OF_MATERIAL]->(mat) "
        "OPTIONAL MATCH (img:Image)-[:OF_SAMPLE]->(s) "
        "RETURN mat.name AS material, count(DISTINCT s.id) AS n_samples, "
        "count(DISTINCT img.id) AS n_images ORDER BY material"
    ),
    "samples": (
        "MATCH (s:Sample) "
        "OPTIONAL MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "OPTIONAL MATCH (img:Image)-[:OF_SAMPLE]->(s) "
        "OPTIONAL MATCH (img)-[c:CONTAINS]->(:Motif) "
        "RETURN s.id AS sample, mat.name AS material, count(DISTINCT img.id) AS n_images, "
        "coalesce(sum(c.count), 0) AS n_instances ORDER BY sample"
    ),
    "images": (
        "MATCH (img:Image)-[:OF_SAMPLE]->(s:Sample) "
        "OPTIONAL MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "RETURN img.id AS image_id, img.path AS path, s.id AS sample, mat.name AS material, "
        "img.width AS width, img.height AS height, img.pixel_size_A AS pixel_size_A, "
        "img.n_columns AS n_columns, img.ingested_at AS ingested_at "
        "ORDER BY sample, ingested_at, image_id"
    ),
    "images_SAMPLE": (
        "MATCH (img:Image)-[:OF_SAMPLE]->(s:Sample) WHERE s.id = $sample "
        "OPTIONAL MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "RETURN img.id AS image_id, img.path AS path, s.id AS sample, mat.name AS material, "
        "img.width AS width, img.height AS height, img.pixel_size_A AS pixel_size_A, "
        "img.n_columns AS n_columns, img.ingested_at AS ingested_at "
        "ORDER BY sample, ingested_at, image_id"
    ),
    "sample_material": (
        "MATCH (s:Sample)-[:OF_MATERIAL]->(mat:Material) WHERE s.id = $sample "
        "RETURN mat.name AS material"
    ),
    "sample_motifs": (
        "MATCH (img:Image)-[:OF_SAMPLE]->(s:Sample) WHERE s.id = $sample "
        "MATCH (img)-[c:CONTAINS]->(m:Motif) "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, "
        "sum(c.count) AS n_instances, count(DISTINCT img.id) AS n_images"
    ),
    # Per motif and material: the cross-sample statistics, from CONTAINS counts only. One
    # chained pattern (Ladybug plans it ~3x faster than three MATCH clauses); an image has one
    # CONTAINS edge per motif, so count(*) counts images.
    "motif_materials": (
        "MATCH (mat:Material)<-[:OF_MATERIAL]-(s:Sample)<-[:OF_SAMPLE]-(img:Image)"
        "-[c:CONTAINS]->(m:Motif) "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, mat.name AS material, "
        "count(DISTINCT s.id) AS n_samples, count(*) AS n_images, sum(c.count) AS n_instances"
    ),
    "motif_materials_LEVEL": (
        "MATCH (mat:Material)<-[:OF_MATERIAL]-(s:Sample)<-[:OF_SAMPLE]-(img:Image)"
        "-[c:CONTAINS]->(m:Motif) WHERE m.level = $level "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, mat.name AS material, "
        "count(DISTINCT s.id) AS n_samples, count(*) AS n_images, sum(c.count) AS n_instances"
    ),
    "parts": (
        "MATCH (m:Motif)-[r:COMPOSED_OF]->(p:Motif) WHERE m.id = $motif_id "
        "RETURN p.id AS motif_id, p.level AS level, p.key AS key, r.count AS count "
        "ORDER BY count DESC, motif_id"
    ),
    "part_of": (
        "MATCH (w:Motif)-[r:COMPOSED_OF]->(m:Motif) WHERE m.id = $motif_id "
        "RETURN w.id AS motif_id, w.level AS level, w.key AS key, r.count AS count "
        "ORDER BY count DESC, motif_id"
    ),
    # Level 1: the motifs of the NEAR neighbours of every instance (each pair seen from both ends).
    "context_near": (
        "MATCH (m:Motif) WHERE m.id = $motif_id "
        "MATCH (i:Instance)-[:INSTANCE_OF]->(m) "
        "MATCH (i)-[:NEAR]-(j:Instance) "
        "MATCH (j)-[:INSTANCE_OF]->(n:Motif) "
        "RETURN n.id AS motif_id, n.level AS level, count(*) AS count"
    ),
    # Levels 2/3: other instances of the same level that share at least one column. Fixed-length
    # hops (column -> unit [-> composite]): Ladybug's variable-length paths are ~100x slower.
    "context_shared_2": (
        "MATCH (m:Motif) WHERE m.id = $motif_id "
        "MATCH (u:Instance)-[:INSTANCE_OF]->(m) "
        "MATCH (c:Instance)-[:PART_OF]->(u) "
        "MATCH (c)-[:PART_OF]->(v:Instance) "
        "WITH DISTINCT u, v WHERE v <> u "
        "MATCH (v)-[:INSTANCE_OF]->(n:Motif) "
        "RETURN n.id AS motif_id, n.level AS level, count(*) AS count"
    ),
    # DISTINCT after every hop: a composite reaches each of its columns through several units
    # and each column reaches each neighbour composite through several units, so the paths
    # multiply ~(units per column)^2; deduplicating (u, column), (u, unit), (u, composite) as
    # they come keeps the rows to the distinct pairs; the self pair is dropped after the last
    # DISTINCT, on node identity (fewer rows, no id lookups). Ladybug, the most common
    # composite of three synthetic 1024² MoSe2 images: 3.7 s -> 0.5 s CPU, same counts.
    "context_shared_3": (
        "MATCH (m:Motif) WHERE m.id = $motif_id "
        "MATCH (u:Instance)-[:INSTANCE_OF]->(m) "
        "MATCH (a:Instance)-[:PART_OF]->(u) "
        "MATCH (c:Instance)-[:PART_OF]->(a) "
        "WITH DISTINCT u, c "
        "MATCH (c)-[:PART_OF]->(b:Instance) "
        "WITH DISTINCT u, b "
        "MATCH (b)-[:PART_OF]->(v:Instance) "
        "WITH DISTINCT u, v WHERE v <> u "
        "MATCH (v)-[:INSTANCE_OF]->(n:Motif) "
        "RETURN n.id AS motif_id, n.level AS level, count(*) AS count"
    ),
    "descriptors": (
        "MATCH (m:Motif) WHERE m.level = $level "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, m.descriptor AS descriptor"
    ),
    "compositions_LEVEL": (
        "MATCH (m:Motif)-[r:COMPOSED_OF]->(p:Motif) WHERE m.level = $level "
        "RETURN m.id AS parent, p.id AS child, r.count AS count"
    ),
    "motif_images": (
        "MATCH (img:Image)-[c:CONTAINS]->(m:Motif) WHERE m.id = $motif_id "
        "MATCH (img)-[:OF_SAMPLE]->(s:Sample) "
        "OPTIONAL MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "RETURN img.id AS image_id, s.id AS sample, mat.name AS material, c.count AS count "
        "ORDER BY sample, image_id"
    ),
    "vocabulary": (
        "MATCH (m:Motif) "
        "OPTIONAL MATCH (img:Image)-[c:CONTAINS]->(m) "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, m.n_instances AS n_instances, "
        "count(DISTINCT img.id) AS n_images, m.family AS family ORDER BY level, motif_id"
    ),
    "vocabulary_LEVEL": (
        "MATCH (m:Motif) WHERE m.level = $level "
        "OPTIONAL MATCH (img:Image)-[c:CONTAINS]->(m) "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, m.n_instances AS n_instances, "
        "count(DISTINCT img.id) AS n_images, m.family AS family ORDER BY level, motif_id"
    ),
    # The level-1 motifs of the images holding a motif, for the exporter's species suggestion.
    "export_level1": (
        "MATCH (img:Image)-[:CONTAINS]->(m:Motif) WHERE m.id = $motif_id "
        "MATCH (img)-[c:CONTAINS]->(l:Motif) WHERE l.level = 1 "
        "RETURN l.id AS motif_id, l.mean_image AS mean_image, sum(c.count) AS count "
        "ORDER BY motif_id"
    ),
    "composition_edges": (
        "MATCH (m:Motif)-[r:COMPOSED_OF]->(p:Motif) "
        "RETURN m.id AS parent, p.id AS child, r.count AS count ORDER BY parent, child"
    ),
    # Per image: every stored instance has a motif (the writer keeps no class-less column), and
    # Ladybug runs OPTIONAL MATCH ~25x slower here, so these use MATCH.
    "image_instances": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (i:Instance)-[:IN_IMAGE]->(img) WHERE i.level = $level "
        "MATCH (i)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN i.id AS instance_id, i.x_A AS x_A, i.y_A AS y_A, m.id AS motif_id, "
        "i.cross_section AS cross_section "
        "ORDER BY instance_id"
    ),
    # Level 2 units with their columns; PART_OF.pos is the ring position (0..n-1 in cyclic
    # order) or -1 for an interior column. "_NOPOS" serves catalogs written before pos existed.
    "image_units_2": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 2 "
        "MATCH (c:Instance)-[p:PART_OF]->(u) "
        "MATCH (u)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN u.id AS instance_id, m.id AS motif_id, u.x_A AS ux_A, u.y_A AS uy_A, "
        "c.id AS column_id, c.x_A AS x_A, c.y_A AS y_A, p.pos AS pos"
    ),
    "image_units_2_NOPOS": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 2 "
        "MATCH (c:Instance)-[:PART_OF]->(u) "
        "MATCH (u)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN u.id AS instance_id, m.id AS motif_id, u.x_A AS ux_A, u.y_A AS uy_A, "
        "c.id AS column_id, c.x_A AS x_A, c.y_A AS y_A"
    ),
    # Level 3 composites with their units (one hop; PART_OF.pos = index of the unit).
    "image_units_3": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 3 "
        "MATCH (a:Instance)-[p:PART_OF]->(u) "
        "MATCH (u)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN u.id AS instance_id, m.id AS motif_id, u.x_A AS ux_A, u.y_A AS uy_A, "
        "a.id AS unit_id, p.pos AS pos"
    ),
    "image_units_3_NOPOS": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 3 "
        "MATCH (a:Instance)-[:PART_OF]->(u) "
        "MATCH (u)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN u.id AS instance_id, m.id AS motif_id, u.x_A AS ux_A, u.y_A AS uy_A, "
        "a.id AS unit_id"
    ),
    # The columns of every composite (two hops), only when outlines are asked for.
    "image_units_3_COLUMNS": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 3 "
        "MATCH (a:Instance)-[:PART_OF]->(u) "
        "MATCH (c:Instance)-[:PART_OF]->(a) "
        "RETURN DISTINCT u.id AS instance_id, c.id AS column_id, c.x_A AS x_A, c.y_A AS y_A"
    ),
    # Mean images of several motifs at once (the gallery).
    "mean_images": (
        "MATCH (m:Motif) WHERE m.id IN $motif_ids "
        "RETURN m.id AS motif_id, m.mean_image AS mean_image"
    ),
    # Export: level-1 classes of one material (species are suggested within a material only).
    "material_level1": (
        "MATCH (mat:Material) WHERE mat.name = $material "
        "MATCH (s:Sample)-[:OF_MATERIAL]->(mat) "
        "MATCH (img:Image)-[:OF_SAMPLE]->(s) "
        "MATCH (img)-[c:CONTAINS]->(l:Motif) WHERE l.level = 1 "
        "RETURN img.id AS image_id, l.id AS motif_id, l.mean_image AS mean_image, "
        "c.count AS count ORDER BY image_id, motif_id"
    ),
    # Mean column cross-section per level-1 class within one material (catalogs that store
    # Instance.cross_section; older ones fail this query and the caller falls back).
    "material_cross_sections": (
        "MATCH (mat:Material) WHERE mat.name = $material "
        "MATCH (s:Sample)-[:OF_MATERIAL]->(mat) "
        "MATCH (img:Image)-[:OF_SAMPLE]->(s) "
        "MATCH (i:Instance)-[:IN_IMAGE]->(img) WHERE i.level = 1 "
        "MATCH (i)-[:INSTANCE_OF]->(l:Motif) "
        "RETURN img.id AS image_id, l.id AS motif_id, avg(i.cross_section) AS cross_section, "
        "count(i) AS n ORDER BY image_id, motif_id"
    ),
    "material_reference": (
        "MATCH (mat:Material)-[:HAS_REFERENCE]->(r:Reference) WHERE mat.name = $material "
        "RETURN r.id AS id, r.structure AS structure, r.source AS source, "
        "r.provenance AS provenance"
    ),
}
