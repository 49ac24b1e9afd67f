"""Synthetic micrographs with ground truth: test, demo and benchmark data, not ingestion.

:func:`make_tmd` draws a 2H transition-metal dichalcogenide monolayer with point defects,
:func:`make_cairo` a Cairo pentagonal tiling with a correlated filling pattern; both return a
:class:`SyntheticImage` (clean and counted image, column positions, classes and the expected
hierarchy). :func:`poisson_dose` draws a counted image at a lower electron dose.

Examples
--------
>>> from motifcat.datasets import make_tmd
>>> s = make_tmd((64, 64), seed=0)
>>> s.image.shape
(64, 64)
"""

from . import synthetic
from .projected import ProjectedImage as ProjectedImage
from .projected import make_projected as make_projected
from .synthetic import *  # noqa: F403

__all__ = sorted([*synthetic.__all__, "ProjectedImage", "make_projected"])
