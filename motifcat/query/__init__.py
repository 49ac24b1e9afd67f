"""motifcat.query: canned questions to the catalog and the read-only Cypher console.

Every function takes an open :class:`~motifcat.catalog.store.GraphStore` first and returns a
pandas DataFrame or a small dataclass; the same Cypher runs on Ladybug and Neo4j.
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
from .console import check_readonly, run_readonly
from .cypher import CYPHER
from .material_questions import (
    level1_names,
    material_level1,
    material_reference,
    with_level1_names,
)
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
from .reading import LEVELS

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
    "level1_motifs_in_images_of",
    "level1_names",
    "list_images",
    "list_materials",
    "list_samples",
    "material_level1",
    "material_reference",
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
    "with_level1_names",
]
