"""Canned questions to the catalog, with typed answers, the same on Ladybug and Neo4j.

This module gathers them from :mod:`.cypher` (the statements), :mod:`.catalog_questions`
(listings, summaries, recurring and persistent motifs), :mod:`.motif_questions` (one motif)
and :mod:`.overlays` (one image); import them from :mod:`motifcat.query`.

Every function takes an open :class:`~motifcat.catalog.store.GraphStore` first and returns a
pandas DataFrame or a small dataclass. Rules the Cypher here follows (see DESIGN.md):

* one text for both backends: no list indexing and no substring arithmetic (Ladybug counts
  from 1, Neo4j from 0), aggregation and shaping of lists happen in pandas;
* every user value travels as a query parameter; the only text chosen in Python is between
  fixed variants (with or without a level filter);
* questions across samples and materials read the ``(Image)-[:CONTAINS {count}]->(Motif)``
  edges, never the ``Instance`` nodes, so they cost O(images × motifs), not O(instances).
  Only the per-motif and per-image questions (spatial context, image overlays) visit
  instances, and then only those of one motif or one image.

All Cypher texts live in :data:`~motifcat.query.cypher.CYPHER` so that the tests can check each
one with Neo4j's own parser as well as run it on the embedded store.
"""

from .catalog_questions import (
    SampleSummary,
    composition_edges,
    list_images,
    list_materials,
    list_samples,
    persistence_score,
    persistent_motifs,
    recurring_motifs,
    sample_summary,
    vocabulary,
)
from .cypher import CYPHER
from .motif_questions import (
    DEFAULT_SPACE,
    Composition,
    MotifDetail,
    composition,
    level1_motifs_in_images_of,
    mean_images,
    motif_detail,
    similar_motifs,
    spatial_context,
)
from .overlays import image_instances, image_units
from .reading import LEVELS, _mean_image, _read  # noqa: F401  (export.py used these)

__all__ = [
    "CYPHER",
    "Composition",
    "DEFAULT_SPACE",
    "LEVELS",
    "MotifDetail",
    "SampleSummary",
    "composition",
    "composition_edges",
    "image_instances",
    "image_units",
    "level1_motifs_in_images_of",
    "list_images",
    "list_materials",
    "list_samples",
    "mean_images",
    "motif_detail",
    "persistence_score",
    "persistent_motifs",
    "recurring_motifs",
    "sample_summary",
    "similar_motifs",
    "spatial_context",
    "vocabulary",
]
