"""motifcat.query."""
