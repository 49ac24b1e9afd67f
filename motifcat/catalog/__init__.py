"""motifcat.catalog."""
