"""Deprecated location of the synthetic generators; use :mod:`motifcat.datasets`.

Kept for one release so that old imports keep working: ``tmd_image`` and ``cairo_image`` are
the old names of :func:`motifcat.datasets.make_tmd` and :func:`motifcat.datasets.make_cairo`.
"""

from ..datasets import synthetic as _synthetic
from ..datasets.synthetic import *  # noqa: F403
from ..datasets.synthetic import (  # noqa: F401  (not in __all__, but some callers used them)
    CAIRO_CLASSES,
    CAIRO_PATTERNS,
    FWHM_TO_SIGMA,
    TMD_CLASSES,
    TMD_DEFECTS,
    make_cairo,
    make_tmd,
)

tmd_image = make_tmd
cairo_image = make_cairo

__all__ = sorted([*_synthetic.__all__, "cairo_image", "tmd_image"])
