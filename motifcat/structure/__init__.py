"""Reference crystals for exports: build or read one, project it along a zone axis, register
a motif's projected columns to it, and check the result (no overlapping atoms).

A STEM image is a projection: it cannot say where atoms sit along the beam. A trustworthy 3-D
model therefore comes from a *reference* crystal of the material (a CIF/POSCAR or an
``ase.build`` prototype): the motif's columns are registered to the reference's projected
columns, and each column takes its atoms (species and heights) from the reference column it
matches, with atoms removed or substituted where the column's class says it is a defect.
"""

from .projection import ProjectedCrystal, column_contrast_of, project
from .reference import (
    DEFAULT_LATTICE_A,
    Reference,
    default_reference,
    load_reference,
    reference_from_json,
    reference_to_json,
)
from .registration import Registration, register
from .sanity import Overlap, check_overlaps, minimum_distance

__all__ = [
    "DEFAULT_LATTICE_A",
    "Overlap",
    "ProjectedCrystal",
    "Reference",
    "Registration",
    "check_overlaps",
    "column_contrast_of",
    "default_reference",
    "load_reference",
    "minimum_distance",
    "project",
    "reference_from_json",
    "reference_to_json",
    "register",
]
