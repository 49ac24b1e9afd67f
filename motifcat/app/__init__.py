"""motifcat.app."""
