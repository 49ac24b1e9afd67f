"""From a micrograph file to motif classes: reading, columns, patches, Zernike features,
clustering and the motif hierarchy. Pure functions on arrays; no database here."""
