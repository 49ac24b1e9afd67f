"""motifcat: hierarchical structural motifs from atomic-resolution STEM images, in a graph."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("motifcat")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
