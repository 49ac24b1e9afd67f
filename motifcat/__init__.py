"""motifcat: hierarchical structural motifs from atomic-resolution STEM images, in a graph."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("motifcat")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__", "analyze_tiled"]


def __getattr__(name: str):
    # Imported on first use: ``import motifcat`` stays light (no NumPy/SciPy stack).
    if name == "analyze_tiled":
        from .ingest import analyze_tiled

        return analyze_tiled
    raise AttributeError(f"module 'motifcat' has no attribute {name!r}")
