"""The column stage: candidate peaks (``detect``), then the Gaussian image model (``fit``).

Every name the former single module ``motifcat.ingest.columns`` had is re-exported here, so
``from motifcat.ingest.columns import detect_columns`` keeps working.
"""

from .detect import (
    detect_columns,
    estimate_noise,
    filter_in_bands,
    refine_positions,
    smooth_image,
)

__all__ = [
    "detect_columns",
    "estimate_noise",
    "filter_in_bands",
    "refine_positions",
    "smooth_image",
]
