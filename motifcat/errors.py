"""One exception family for motifcat.

Every error names the input it is about (a file, a parameter, a catalog URI) and what is wrong
with it, so that a message alone tells the user what to fix.
"""

from __future__ import annotations


class MotifcatError(Exception):
    """Base class of every error motifcat raises on purpose."""


class ImageReadError(MotifcatError):
    """A micrograph file cannot be read: missing, unsupported, truncated or corrupt."""


class InvalidImageError(MotifcatError):
    """A micrograph was read but cannot be analysed (NaN/Inf, constant, too small, 3-D...)."""


class AnalysisError(MotifcatError, ValueError):
    """The analysis of a valid image failed (no lattice, too few columns...), or a parameter
    of it is invalid.

    Also a :class:`ValueError`, so that the scikit-learn style estimators of ``motifcat.ingest``
    (which raise it for bad input) behave as scikit-learn's own do under ``except ValueError``.
    """


class CatalogError(MotifcatError):
    """The catalog cannot be opened or written."""


class CatalogInUseError(CatalogError):
    """Another process holds the embedded catalog open for writing."""


class QueryError(MotifcatError):
    """A query was refused or failed (for example a write statement in the read-only console)."""


class ExportError(MotifcatError):
    """A motif cannot be turned into an atomic model."""


class ImageTooLargeError(InvalidImageError):
    """An image is over the size limit that keeps its analysis within the machine's memory."""
