"""Benchmark data loaders for scripts in motifcat's venv.

The simulated sets (``bench/data/<set>.npz``, see ``bench/data/README.md``) are committed; the
real experimental images come from ``make bench-real`` (temul-toolkit's example data,
GPL-3.0) into ``bench/data/real/`` and are never fetched at run time.
"""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent
REAL_DIR = BENCH / "data" / "real"
REAL_IMAGES = {
    # real HAADF-STEM, monolayer MoS2 implanted with Se (temul-toolkit example data)
    "mos2_se": "Se_implanted_MoS2.dm3",
    # real HAADF-STEM, Au nanoparticle (temul-toolkit example data)
    "au_np": "Au_nanoparticle.emd",
}


def real_image_path(name: str) -> Path:
    """Path of a real image fetched by ``make bench-real``; a clear error if it is missing."""
    if name not in REAL_IMAGES:
        raise KeyError(f"unknown real image {name!r}; expected one of {sorted(REAL_IMAGES)}")
    p = REAL_DIR / REAL_IMAGES[name]
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: run `make bench-real` first")
    return p


def load_real(name: str):
    """A real image as motifcat reads it (``motifcat.ingest.io.load_image``)."""
    from motifcat.ingest.io import load_image

    return load_image(real_image_path(name))
