"""Deprecated location of the synthetic generators; use :mod:`motifcat.datasets`.

Kept for one release so that old imports keep working: ``tmd_image`` and ``cairo_image`` are
the old names of :func:`motifcat.datasets.make_tmd` and :func:`motifcat.datasets.make_cairo`.
"""

from ..datasets.synthetic import (  # noqa: F401  (private names some callers used)
    CAIRO_CLASSES,
    CAIRO_PATTERNS,
    FWHM_TO_SIGMA,
    TMD_CLASSES,
    TMD_DEFECTS,
    SyntheticImage,
    SynthParameterError,
    canonical_cycle_key,
    make_cairo,
    make_tmd,
    poisson_dose,
    render_columns,
)

tmd_image = make_tmd
cairo_image = make_cairo

__all__ = [
    "SynthParameterError",
    "SyntheticImage",
    "cairo_image",
    "canonical_cycle_key",
    "make_cairo",
    "make_tmd",
    "poisson_dose",
    "render_columns",
    "tmd_image",
]
