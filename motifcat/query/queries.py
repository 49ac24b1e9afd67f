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

from . import catalog_questions, cypher, motif_questions, overlays, reading
from .catalog_questions import *  # noqa: F403
from .cypher import *  # noqa: F403
from .motif_questions import *  # noqa: F403
from .overlays import *  # noqa: F403
from .reading import *  # noqa: F403
from .reading import _mean_image, _read  # noqa: F401  (export.py used these)

__all__ = sorted(
    [*cypher.__all__, *reading.__all__, *catalog_questions.__all__, *motif_questions.__all__,
     *overlays.__all__]
)
