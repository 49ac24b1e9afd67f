"""The app's only road to the catalog: cached calls of the public query and export functions.

Pages never touch a store or Cypher themselves. Each function here takes the catalog URI (a
string, so Streamlit can hash it) plus plain, hashable arguments, opens the catalog once per
URI with :func:`st.cache_resource` (read-only: the app never writes, and a read-only Ladybug
opener may coexist with one writer) and caches results with :func:`st.cache_data`.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from motifcat import export, query
from motifcat.catalog import GraphStore, open_catalog, redact_uri, resolve_uri
from motifcat.errors import CatalogError, MotifcatError

#: Results are cached this long (s); "Reload catalog" in the sidebar clears them at once.
TTL_S = 600

#: Tiles per page of the Motifs gallery: a level-3 vocabulary holds hundreds of motifs, and each
#: tile is an image sent to the browser, so it shows a page of the most common ones at a time.
GALLERY_PAGE = 24

#: Motifs per level the Hierarchy page draws by default, and at most.
HIERARCHY_TOP_N = 8
HIERARCHY_MAX_TOP_N = 30

#: Formats offered for download on the Export page: label -> (motifcat format, file suffix).
DOWNLOAD_FORMATS: dict[str, tuple[str, str]] = {
    "extxyz": ("extxyz", ".xyz"),
    "CIF": ("cif", ".cif"),
    "POSCAR": ("vasp", ".vasp"),
    "LAMMPS data": ("lammps-data", ".lmp"),
    "ASE db": ("db", ".db"),
}


def catalog_uri(argv: list[str] | None = None) -> str:
    """The catalog URI the app serves.

    ``streamlit run main.py -- --catalog URI`` passes it on the command line; otherwise
    ``$MOTIFCAT_CATALOG``, else ``./motifcat-catalog`` (:func:`motifcat.catalog.store.resolve_uri`).

    Parameters
    ----------
    argv : list of str, optional
        Script arguments (default ``sys.argv[1:]``); unknown arguments are ignored.

    Returns
    -------
    str

    Examples
    --------
    >>> catalog_uri(["--catalog", "/data/cat.lbug"])
    '/data/cat.lbug'
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--catalog", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return resolve_uri(args.catalog)


def _embedded_path(uri: str) -> Path | None:
    """The file of an embedded catalog URI, None for a server URI."""
    if "://" in uri:
        return None
    return Path(uri[len("ladybug:") :] if uri.lower().startswith("ladybug:") else uri)


# Every browser session runs its script in its own thread; the one connection per catalog
# serves them one at a time (re-entrant: a cached query may call another).
_LOCK = threading.RLock()


def _release(store: GraphStore) -> None:
    with _LOCK:
        store.close()


@st.cache_resource(show_spinner=False, on_release=_release)
def _store(uri: str) -> GraphStore:
    # A failure is not cached by Streamlit, so a catalog created later is picked up on rerun.
    return open_catalog(uri, read_only=True)


def _call(uri: str, fn, *args: Any, **kwargs: Any) -> Any:
    store = _store(uri)
    with _LOCK:
        return fn(store, *args, **kwargs)


def reload() -> None:
    """Forget every cached result and reopen the catalog (the sidebar's "Reload catalog").

    A read-only embedded connection sees the catalog as it was when opened, so new ingests
    show up only after this.
    """
    st.cache_data.clear()
    _store.clear()


#: Catalog version each URI's caches were filled at (shared by sessions, as the caches are).
_VERSIONS: dict[str, object] = {}


def catalog_version(uri: str) -> object:
    """A value that changes whenever the catalog is written: for an embedded catalog the
    modification time and size of its files (the read-only connection sees a snapshot, so
    the catalog itself cannot be asked), for a server the image count and newest ingest."""
    path = _embedded_path(uri)
    if path is not None:
        stamps = []
        for f in (path, path.with_name(path.name + ".wal")):
            try:
                st_ = f.stat()
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st_.st_mtime_ns, st_.st_size))
        return tuple(stamps)
    try:
        images = _call(uri, query.list_images)
    except MotifcatError:
        return None
    return (len(images), tuple(sorted(images["image_id"])))


def refresh_if_changed(uri: str) -> bool:
    """Forget cached results and reopen the catalog when it was written since they were
    cached (an ingest while the app runs); True when it did. Run once per script run."""
    version = catalog_version(uri)
    last = _VERSIONS.get(uri, version)
    _VERSIONS[uri] = version
    if version != last:
        reload()
        return True
    return False


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class CatalogStatus:
    """Whether the catalog can be browsed.

    Attributes
    ----------
    uri : str
    state : {"ok", "empty", "error"}
    message : str
        Why, for ``empty`` (no catalog file yet / no image) and ``error`` (the CatalogError or
        QueryError message).
    """

    uri: str
    state: str
    message: str = ""


def catalog_status(uri: str) -> CatalogStatus:
    """Open the catalog and tell whether it holds anything (not cached: it is one query).

    Parameters
    ----------
    uri : str

    Returns
    -------
    CatalogStatus

    Examples
    --------
    >>> catalog_status("/nonexistent/cat.lbug").state
    'empty'
    """
    path = _embedded_path(uri)
    if path is not None and not path.exists():
        return CatalogStatus(uri, "empty", f"There is no catalog at {path} yet.")
    try:
        images = images_table(uri)
    except MotifcatError as exc:
        return CatalogStatus(uri, "error", str(exc))
    if images.empty:
        return CatalogStatus(uri, "empty", f"The catalog {uri} holds no image yet.")
    return CatalogStatus(uri, "ok")


def ingest_howto(uri: str) -> str:
    """Markdown telling how to fill the catalog ``uri``."""
    return (
        "**Nothing to browse yet.** Analyse micrographs and store them in this catalog with\n\n"
        f"```bash\nmotifcat ingest images/*.dm4 --sample SAMPLE --material FORMULA "
        f"--catalog {uri}\n```\n\n"
        "(files, folders or globs; `--pixel-size` in Å for files without calibration), or try "
        "it on synthetic images with `motifcat demo`. Then press **Reload catalog** in the "
        "sidebar."
    )


# --------------------------------------------------------------------------- queries


@st.cache_data(ttl=TTL_S, show_spinner=False)
def materials_table(uri: str) -> pd.DataFrame:
    """:func:`motifcat.query.list_materials`."""
    return _call(uri, query.list_materials)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def samples_table(uri: str) -> pd.DataFrame:
    """:func:`motifcat.query.list_samples`."""
    return _call(uri, query.list_samples)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def images_table(uri: str) -> pd.DataFrame:
    """:func:`motifcat.query.list_images`."""
    return _call(uri, query.list_images)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def vocabulary_table(uri: str, level: int | None = None) -> pd.DataFrame:
    """:func:`motifcat.query.vocabulary`."""
    return _call(uri, query.vocabulary, level)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def recurring_table(
    uri: str, min_materials: int = 2, min_samples: int = 1, level: int | None = None
) -> pd.DataFrame:
    """:func:`motifcat.query.recurring_motifs`."""
    return _call(uri, query.recurring_motifs, min_materials, min_samples, level)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def persistent_table(uri: str, min_images: int = 1, min_instances: int = 1) -> pd.DataFrame:
    """:func:`motifcat.query.persistent_motifs`."""
    return _call(uri, query.persistent_motifs, min_images, min_instances)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def edges_table(uri: str) -> pd.DataFrame:
    """:func:`motifcat.query.composition_edges`."""
    return _call(uri, query.composition_edges)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def motif(uri: str, motif_id: str) -> query.MotifDetail:
    """:func:`motifcat.query.motif_detail`."""
    return _call(uri, query.motif_detail, motif_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def motif_images(uri: str, motif_ids: tuple[str, ...]) -> dict[str, np.ndarray | None]:
    """:func:`motifcat.query.mean_images` (one query for the whole gallery)."""
    return _call(uri, query.mean_images, list(motif_ids))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def composition(uri: str, motif_id: str) -> query.Composition:
    """:func:`motifcat.query.composition`."""
    return _call(uri, query.composition, motif_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def context(uri: str, motif_id: str) -> pd.DataFrame:
    """:func:`motifcat.query.spatial_context`."""
    return _call(uri, query.spatial_context, motif_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def similar(uri: str, motif_id: str, k: int = 5) -> pd.DataFrame:
    """:func:`motifcat.query.similar_motifs`."""
    return _call(uri, query.similar_motifs, motif_id, k=k)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def instances(uri: str, image_id: str, level: int = 1) -> pd.DataFrame:
    """:func:`motifcat.query.image_instances`."""
    return _call(uri, query.image_instances, image_id, level)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def units(uri: str, image_id: str, level: int = 2, outline: bool = True) -> pd.DataFrame:
    """:func:`motifcat.query.image_units`."""
    return _call(uri, query.image_units, image_id, level, outline)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def level1_names(uri: str) -> dict[str, str]:
    """:func:`motifcat.query.level1_names`: ``{"L1-0001": "bright 44 %", ...}``."""
    return _call(uri, query.level1_names)


def motif_label(motif_id: str, names: Mapping[str, str]) -> str:
    """A motif's id with its readable name when it has one: ``"L1-0001 · bright 44 %"``.

    Examples
    --------
    >>> motif_label("L1-0001", {"L1-0001": "bright 44 %"}), motif_label("L2-0003", {})
    ('L1-0001 · bright 44 %', 'L2-0003')
    """
    name = names.get(motif_id)
    return f"{motif_id} · {name}" if name else str(motif_id)


def with_names(
    df: pd.DataFrame, names: Mapping[str, str], column: str = "motif_id", into: str = "name"
) -> pd.DataFrame:
    """``df`` with the readable name of each motif of ``column`` in a column ``into`` right
    after it (empty for motifs without a name: levels 2 and 3).

    Examples
    --------
    >>> with_names(pd.DataFrame({"motif_id": ["L1-0001", "L2-0001"], "n": [3, 1]}),
    ...            {"L1-0001": "dim 9.0 %"}).columns.tolist()
    ['motif_id', 'name', 'n']
    """
    if column not in df.columns:
        return df
    out = df.drop(columns=[into], errors="ignore")
    at = list(out.columns).index(column) + 1
    out.insert(at, into, out[column].map(lambda m: names.get(m, "")))
    return out


def columns_said(detected: int, stored: int) -> str:
    """How the Image page header counts columns: the CLI counts every detected column, the
    catalog stores the classified ones, and the header says which is which when they differ.

    Examples
    --------
    >>> columns_said(2180, 2180)
    '2180 columns'
    >>> columns_said(2180, 2030)
    '2180 columns detected, 2030 stored (the 150 within a patch of the border are not classified, so not stored)'
    """  # noqa: E501
    if detected == stored:
        return f"{stored} columns"
    return (
        f"{detected} columns detected, {stored} stored (the {detected - stored} within a patch "
        "of the border are not classified, so not stored)"
    )


def display_uri(uri: str) -> str:
    """The catalog URI as shown on the page: any password replaced by ``***``."""
    return redact_uri(uri)


def run_cypher(uri: str, cypher: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """:func:`motifcat.query.run_readonly` (never cached: the user asked to run it).

    Runs on a read-only store of its own, outside the lock that serialises the shared one, so
    that one user's long console query (stopped at the console's time limit, 30 s by default)
    never makes another user's page wait. Ladybug releases the GIL while a query runs.
    """
    with open_catalog(uri, read_only=True) as store:
        return query.run_readonly(store, cypher, params)


# --------------------------------------------------------------------------- export


@st.cache_data(ttl=TTL_S, show_spinner=False)
def suggested_species(uri: str, motif_id: str, formula: str) -> dict[str, str]:
    """:func:`motifcat.export.suggest_species`."""
    return _call(uri, export.suggest_species, motif_id, formula)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def atoms(
    uri: str,
    motif_id: str,
    species: tuple[tuple[str, str], ...] = (),
    material: str | None = None,
    reference: str | None = None,
    zone: str | None = None,
    min_cell_A: float = 12.0,
    force: bool = False,
):
    """:func:`motifcat.export.motif_to_atoms`, registered to the material's reference.

    ``species`` is a tuple of (level-1 motif id, column content) overrides so that it hashes;
    ``reference`` None uses the material's stored (or default) reference.
    """
    return _call(
        uri,
        export.motif_to_atoms,
        motif_id,
        species=dict(species) or None,
        material=material,
        reference=reference or None,
        zone=zone or None,
        min_cell_A=min_cell_A,
        force=force,
    )


def atoms_file(atoms_obj, fmt: str) -> bytes:
    """The bytes :func:`motifcat.export.write_motif` writes for ``fmt`` (a DOWNLOAD_FORMATS key)."""
    name, suffix = DOWNLOAD_FORMATS[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        path = export.write_motif(atoms_obj, os.path.join(tmp, "motif" + suffix), name)
        return Path(path).read_bytes()


# --------------------------------------------------------------------------- pixels


@dataclass(frozen=True, eq=False)
class Pixels:
    """The micrograph behind an image node, or why it is not shown.

    Attributes
    ----------
    data : ndarray or None
        float32 (H, W) pixels, None when the file cannot be read.
    note : str
        Empty when the pixels are the ingested ones; else what went wrong or differs.
    png : str or None
        The pixels as a PNG data URI for display (:func:`png_data_uri`).
    png_shape : (int, int) or None
        Shape of that PNG.
    """

    data: np.ndarray | None
    note: str = ""
    png: str | None = None
    png_shape: tuple[int, int] | None = None


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=8)
def pixels(path: str | None, image_id: str) -> Pixels:
    """Load the pixels of an image from the file it was ingested from.

    Parameters
    ----------
    path : str or None
        ``Image.path`` as stored.
    image_id : str
        The stored sha256 identity, to warn when the file has changed since.

    Returns
    -------
    Pixels
    """
    from motifcat.ingest import load_image

    if not path or (isinstance(path, float) and np.isnan(path)):
        return Pixels(None, "The catalog does not record the image file.")
    if not Path(path).exists():
        return Pixels(None, f"The image file {path} is not there any more.")
    try:
        mg = load_image(path)
    except MotifcatError as exc:
        return Pixels(None, f"The image file cannot be read: {exc}")
    note = ""
    if mg.sha256 and mg.sha256 != image_id:
        note = f"{path} has changed since it was ingested; the columns may not match it."
    png, shape = png_data_uri(mg.data)
    return Pixels(mg.data, note, png, shape)


def png_data_uri(image: np.ndarray, max_side: int = 1024) -> tuple[str, tuple[int, int]]:
    """A grey-scale PNG data URI of ``image`` (1st-99th percentile stretched, downsampled).

    Plotly's ``go.Image`` draws it far more compactly than a heat map of every pixel.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    max_side : int
        Images larger than this (pixels) are subsampled by a whole step.

    Returns
    -------
    uri : str
    shape : (int, int)
        Shape of the PNG (to place it on axes in Å).

    Examples
    --------
    >>> uri, shape = png_data_uri(np.eye(8))
    >>> uri[:22], shape
    ('data:image/png;base64,', (8, 8))
    """
    import base64

    from PIL import Image as PILImage

    img = np.asarray(image, dtype=float)
    step = max(1, int(np.ceil(max(img.shape) / max_side)))
    img = img[::step, ::step]
    lo, hi = np.nanpercentile(img, [1, 99])
    scaled = np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    buf = io.BytesIO()
    PILImage.fromarray((scaled * 255).astype(np.uint8)).save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, (int(img.shape[0]), int(img.shape[1]))


__all__ = [
    "CatalogError",
    "CatalogStatus",
    "DOWNLOAD_FORMATS",
    "GALLERY_PAGE",
    "HIERARCHY_MAX_TOP_N",
    "HIERARCHY_TOP_N",
    "Pixels",
    "atoms",
    "atoms_file",
    "catalog_status",
    "catalog_uri",
    "columns_said",
    "composition",
    "context",
    "edges_table",
    "images_table",
    "ingest_howto",
    "instances",
    "level1_names",
    "materials_table",
    "motif",
    "motif_images",
    "motif_label",
    "persistent_table",
    "pixels",
    "png_data_uri",
    "recurring_table",
    "reload",
    "run_cypher",
    "samples_table",
    "similar",
    "suggested_species",
    "units",
    "vocabulary_table",
    "with_names",
]
