"""Reference crystals for exports: build or read one, project it along a zone axis, register
a motif's projected columns to it, and check the result (no overlapping atoms).

A STEM image is a projection: it cannot say where atoms sit along the beam. A trustworthy 3-D
model therefore comes from a *reference* crystal of the material (a CIF/POSCAR or an
``ase.build`` prototype): the motif's columns are registered to the reference's projected
columns, and each column takes its atoms (species and heights) from the reference column it
matches, with atoms removed or substituted where the column's class says it is a defect.
"""

from .build import (
    CONTENT_TOLERANCE,
    MIN_CELL_A,
    build_model,
    choose_content,
    column_candidates,
    fill_column,
    n_changes,
)
from .projection import LOW_INDEX_ZONES, ProjectedCrystal, column_contrast_of, project
from .reference import (
    DEFAULT_LATTICE_A,
    Reference,
    default_reference,
    load_reference,
    parse_zone,
    reference_from_json,
    reference_to_json,
)
from .registration import SCALE_TOLERANCE, Registration, register
from .sanity import Overlap, check_overlaps, minimum_distance

__all__ = [
    "CONTENT_TOLERANCE",
    "DEFAULT_LATTICE_A",
    "LOW_INDEX_ZONES",
    "MIN_CELL_A",
    "Overlap",
    "SCALE_TOLERANCE",
    "ProjectedCrystal",
    "Reference",
    "Registration",
    "build_model",
    "check_overlaps",
    "choose_content",
    "column_candidates",
    "column_contrast_of",
    "default_reference",
    "fill_column",
    "load_reference",
    "minimum_distance",
    "n_changes",
    "parse_zone",
    "project",
    "reference_from_json",
    "reference_to_json",
    "register",
]
