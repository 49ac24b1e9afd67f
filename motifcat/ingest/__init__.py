"""From a micrograph file to motif classes: reading, columns, patches, Zernike features,
clustering and the motif hierarchy. Pure functions on arrays; no database here.

The public API of the stage: :func:`load_image` (or :func:`micrograph_from_array`) gives a
:class:`Micrograph`, :func:`analyze` turns it into an :class:`Analysis` under
:class:`AnalysisParams`, and :func:`save_analysis` / :func:`load_analysis` keep it in a file.
The modules below (``io``, ``columns``, ``zernike``, ``cluster``, ``hierarchy`` ...) are the
stages themselves.

Examples
--------
>>> from motifcat.datasets import make_tmd
>>> from motifcat.ingest import AnalysisParams, analyze
>>> a = analyze(make_tmd((192, 192), seed=1).micrograph(), AnalysisParams(hierarchy=False))
>>> len(a.columns) > 0, a.hierarchy is None
(True, True)
"""

from .hierarchy import build_hierarchy, relabel
from .io import SUPPORTED_EXTENSIONS, load_image, micrograph_from_array, micrograph_from_signal
from .model import (
    Analysis,
    AnalysisParams,
    Columns,
    Hierarchy,
    Lattice,
    Level,
    Micrograph,
    MotifClass,
)
from .names import display_names, level1_display_names
from .pipeline import analyze
from .serialize import analysis_summary, load_analysis, save_analysis
from .tiles import analyze_tiled

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Analysis",
    "AnalysisParams",
    "Columns",
    "Hierarchy",
    "Lattice",
    "Level",
    "Micrograph",
    "MotifClass",
    "analysis_summary",
    "analyze",
    "analyze_tiled",
    "build_hierarchy",
    "display_names",
    "load_analysis",
    "level1_display_names",
    "load_image",
    "micrograph_from_array",
    "micrograph_from_signal",
    "relabel",
    "save_analysis",
]
