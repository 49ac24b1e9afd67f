"""motifcat.query: canned questions to the catalog and the read-only Cypher console.

Every function takes an open :class:`~motifcat.catalog.store.GraphStore` first and returns a
pandas DataFrame or a small dataclass; the same Cypher runs on Ladybug and Neo4j.
"""

from .console import check_readonly, run_readonly
from .queries import (
    CYPHER,
    DEFAULT_SPACE,
    LEVELS,
    Composition,
    MotifDetail,
    SampleSummary,
    composition,
    composition_edges,
    image_instances,
    image_units,
    list_images,
    list_materials,
    list_samples,
    mean_images,
    motif_detail,
    persistence_score,
    persistent_motifs,
    recurring_motifs,
    sample_summary,
    similar_motifs,
    spatial_context,
    vocabulary,
)

__all__ = [
    "CYPHER",
    "DEFAULT_SPACE",
    "LEVELS",
    "Composition",
    "MotifDetail",
    "SampleSummary",
    "check_readonly",
    "composition",
    "composition_edges",
    "image_instances",
    "image_units",
    "list_images",
    "list_materials",
    "list_samples",
    "mean_images",
    "motif_detail",
    "persistence_score",
    "persistent_motifs",
    "recurring_motifs",
    "run_readonly",
    "sample_summary",
    "similar_motifs",
    "spatial_context",
    "vocabulary",
]
