"""Canned questions to the catalog, with typed answers, the same on Ladybug and Neo4j.

Every function takes an open :class:`~motifcat.catalog.store.GraphStore` first and returns a
pandas DataFrame or a small dataclass. Rules the Cypher here follows (see DESIGN.md):

* one text for both backends: no list indexing and no substring arithmetic (Ladybug counts
  from 1, Neo4j from 0), aggregation and shaping of lists happen in pandas;
* every user value travels as a query parameter; the only text chosen in Python is between
  fixed variants (with or without a level filter);
* questions across samples and materials read the ``(Image)-[:CONTAINS {count}]->(Motif)``
  edges, never the ``Instance`` nodes, so they cost O(images × motifs), not O(instances).
  Only the per-motif and per-image questions (spatial context, image overlays) visit
  instances, and then only those of one motif or one image.

All Cypher texts live in :data:`CYPHER` so that the tests can check each one with Neo4j's own
parser as well as run it on the embedded store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from ..catalog.store import GraphStore
from ..catalog.vocabulary import descriptor_distances, descriptor_space, normalize_descriptor
from ..errors import MotifcatError, QueryError
from ..ingest.model import AnalysisParams

#: Levels of the motif hierarchy (1 = column environment, 2 = unit, 3 = composite).
LEVELS = (1, 2, 3)

#: Descriptor space of the default analysis (``"zernike-n10-image-w0.5"``): the space a raw
#: descriptor given to :func:`similar_motifs` is assumed to live in.
DEFAULT_SPACE = descriptor_space(AnalysisParams())

#: Every Cypher statement of the query layer, by name (``*_LEVEL`` variants filter on $level).
CYPHER: dict[str, str] = {
    "motif": (
        "MATCH (m:Motif) WHERE m.id = $motif_id "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, m.descriptor AS descriptor, "
        "m.n_instances AS n_instances, m.prototype AS prototype, m.mean_image AS mean_image"
    ),
    "sample_exists": "MATCH (s:Sample) WHERE s.id = $sample RETURN s.id AS sample",
    "image_exists": "MATCH (img:Image) WHERE img.id = $image_id RETURN img.id AS image_id",
    "materials": (
        "MATCH (mat:Material) "
        "OPTIONAL MATCH (s:Sample)-[:OF_MATERIAL]->(mat) "
        "OPTIONAL MATCH (img:Image)-[:OF_SAMPLE]->(s) "
        "RETURN mat.name AS material, count(DISTINCT s.id) AS n_samples, "
        "count(DISTINCT img.id) AS n_images ORDER BY material"
    ),
    "samples": (
        "MATCH (s:Sample) "
        "OPTIONAL MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "OPTIONAL MATCH (img:Image)-[:OF_SAMPLE]->(s) "
        "OPTIONAL MATCH (img)-[c:CONTAINS]->(:Motif) "
        "RETURN s.id AS sample, mat.name AS material, count(DISTINCT img.id) AS n_images, "
        "coalesce(sum(c.count), 0) AS n_instances ORDER BY sample"
    ),
    "images": (
        "MATCH (img:Image)-[:OF_SAMPLE]->(s:Sample) "
        "OPTIONAL MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "RETURN img.id AS image_id, img.path AS path, s.id AS sample, mat.name AS material, "
        "img.width AS width, img.height AS height, img.pixel_size_A AS pixel_size_A, "
        "img.n_columns AS n_columns, img.ingested_at AS ingested_at "
        "ORDER BY sample, ingested_at, image_id"
    ),
    "images_SAMPLE": (
        "MATCH (img:Image)-[:OF_SAMPLE]->(s:Sample) WHERE s.id = $sample "
        "OPTIONAL MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "RETURN img.id AS image_id, img.path AS path, s.id AS sample, mat.name AS material, "
        "img.width AS width, img.height AS height, img.pixel_size_A AS pixel_size_A, "
        "img.n_columns AS n_columns, img.ingested_at AS ingested_at "
        "ORDER BY sample, ingested_at, image_id"
    ),
    "sample_material": (
        "MATCH (s:Sample)-[:OF_MATERIAL]->(mat:Material) WHERE s.id = $sample "
        "RETURN mat.name AS material"
    ),
    "sample_motifs": (
        "MATCH (img:Image)-[:OF_SAMPLE]->(s:Sample) WHERE s.id = $sample "
        "MATCH (img)-[c:CONTAINS]->(m:Motif) "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, "
        "sum(c.count) AS n_instances, count(DISTINCT img.id) AS n_images"
    ),
    # Per motif and material: the cross-sample statistics, from CONTAINS counts only. One
    # chained pattern (Ladybug plans it ~3x faster than three MATCH clauses); an image has one
    # CONTAINS edge per motif, so count(*) counts images.
    "motif_materials": (
        "MATCH (mat:Material)<-[:OF_MATERIAL]-(s:Sample)<-[:OF_SAMPLE]-(img:Image)"
        "-[c:CONTAINS]->(m:Motif) "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, mat.name AS material, "
        "count(DISTINCT s.id) AS n_samples, count(*) AS n_images, sum(c.count) AS n_instances"
    ),
    "motif_materials_LEVEL": (
        "MATCH (mat:Material)<-[:OF_MATERIAL]-(s:Sample)<-[:OF_SAMPLE]-(img:Image)"
        "-[c:CONTAINS]->(m:Motif) WHERE m.level = $level "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, mat.name AS material, "
        "count(DISTINCT s.id) AS n_samples, count(*) AS n_images, sum(c.count) AS n_instances"
    ),
    "parts": (
        "MATCH (m:Motif)-[r:COMPOSED_OF]->(p:Motif) WHERE m.id = $motif_id "
        "RETURN p.id AS motif_id, p.level AS level, p.key AS key, r.count AS count "
        "ORDER BY count DESC, motif_id"
    ),
    "part_of": (
        "MATCH (w:Motif)-[r:COMPOSED_OF]->(m:Motif) WHERE m.id = $motif_id "
        "RETURN w.id AS motif_id, w.level AS level, w.key AS key, r.count AS count "
        "ORDER BY count DESC, motif_id"
    ),
    # Level 1: the motifs of the NEAR neighbours of every instance (each pair seen from both ends).
    "context_near": (
        "MATCH (m:Motif) WHERE m.id = $motif_id "
        "MATCH (i:Instance)-[:INSTANCE_OF]->(m) "
        "MATCH (i)-[:NEAR]-(j:Instance) "
        "MATCH (j)-[:INSTANCE_OF]->(n:Motif) "
        "RETURN n.id AS motif_id, n.level AS level, count(*) AS count"
    ),
    # Levels 2/3: other instances of the same level that share at least one column. Fixed-length
    # hops (column -> unit [-> composite]): Ladybug's variable-length paths are ~100x slower.
    "context_shared_2": (
        "MATCH (m:Motif) WHERE m.id = $motif_id "
        "MATCH (u:Instance)-[:INSTANCE_OF]->(m) "
        "MATCH (c:Instance)-[:PART_OF]->(u) "
        "MATCH (c)-[:PART_OF]->(v:Instance) WHERE v.id <> u.id "
        "MATCH (v)-[:INSTANCE_OF]->(n:Motif) "
        "WITH DISTINCT u.id AS uid, v.id AS vid, n.id AS nid, n.level AS nlevel "
        "RETURN nid AS motif_id, nlevel AS level, count(*) AS count"
    ),
    "context_shared_3": (
        "MATCH (m:Motif) WHERE m.id = $motif_id "
        "MATCH (u:Instance)-[:INSTANCE_OF]->(m) "
        "MATCH (a:Instance)-[:PART_OF]->(u) "
        "MATCH (c:Instance)-[:PART_OF]->(a) "
        "MATCH (c)-[:PART_OF]->(b:Instance) "
        "MATCH (b)-[:PART_OF]->(v:Instance) WHERE v.id <> u.id "
        "MATCH (v)-[:INSTANCE_OF]->(n:Motif) "
        "WITH DISTINCT u.id AS uid, v.id AS vid, n.id AS nid, n.level AS nlevel "
        "RETURN nid AS motif_id, nlevel AS level, count(*) AS count"
    ),
    "descriptors": (
        "MATCH (m:Motif) WHERE m.level = $level "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, m.descriptor AS descriptor"
    ),
    "compositions_LEVEL": (
        "MATCH (m:Motif)-[r:COMPOSED_OF]->(p:Motif) WHERE m.level = $level "
        "RETURN m.id AS parent, p.id AS child, r.count AS count"
    ),
    "motif_images": (
        "MATCH (img:Image)-[c:CONTAINS]->(m:Motif) WHERE m.id = $motif_id "
        "MATCH (img)-[:OF_SAMPLE]->(s:Sample) "
        "OPTIONAL MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "RETURN img.id AS image_id, s.id AS sample, mat.name AS material, c.count AS count "
        "ORDER BY sample, image_id"
    ),
    "vocabulary": (
        "MATCH (m:Motif) "
        "OPTIONAL MATCH (img:Image)-[c:CONTAINS]->(m) "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, m.n_instances AS n_instances, "
        "count(DISTINCT img.id) AS n_images ORDER BY level, motif_id"
    ),
    "vocabulary_LEVEL": (
        "MATCH (m:Motif) WHERE m.level = $level "
        "OPTIONAL MATCH (img:Image)-[c:CONTAINS]->(m) "
        "RETURN m.id AS motif_id, m.level AS level, m.key AS key, m.n_instances AS n_instances, "
        "count(DISTINCT img.id) AS n_images ORDER BY level, motif_id"
    ),
    # The level-1 motifs of the images holding a motif, for the exporter's species suggestion.
    "export_level1": (
        "MATCH (img:Image)-[:CONTAINS]->(m:Motif) WHERE m.id = $motif_id "
        "MATCH (img)-[c:CONTAINS]->(l:Motif) WHERE l.level = 1 "
        "RETURN l.id AS motif_id, l.mean_image AS mean_image, sum(c.count) AS count "
        "ORDER BY motif_id"
    ),
    "composition_edges": (
        "MATCH (m:Motif)-[r:COMPOSED_OF]->(p:Motif) "
        "RETURN m.id AS parent, p.id AS child, r.count AS count ORDER BY parent, child"
    ),
    # Per image: every stored instance has a motif (the writer keeps no class-less column), and
    # Ladybug runs OPTIONAL MATCH ~25x slower here, so these use MATCH.
    "image_instances": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (i:Instance)-[:IN_IMAGE]->(img) WHERE i.level = $level "
        "MATCH (i)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN i.id AS instance_id, i.x_A AS x_A, i.y_A AS y_A, m.id AS motif_id "
        "ORDER BY instance_id"
    ),
    # Level 2 units with their columns; PART_OF.pos is the ring position (0..n-1 in cyclic
    # order) or -1 for an interior column. "_NOPOS" serves catalogs written before pos existed.
    "image_units_2": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 2 "
        "MATCH (c:Instance)-[p:PART_OF]->(u) "
        "MATCH (u)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN u.id AS instance_id, m.id AS motif_id, u.x_A AS ux_A, u.y_A AS uy_A, "
        "c.id AS column_id, c.x_A AS x_A, c.y_A AS y_A, p.pos AS pos"
    ),
    "image_units_2_NOPOS": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 2 "
        "MATCH (c:Instance)-[:PART_OF]->(u) "
        "MATCH (u)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN u.id AS instance_id, m.id AS motif_id, u.x_A AS ux_A, u.y_A AS uy_A, "
        "c.id AS column_id, c.x_A AS x_A, c.y_A AS y_A"
    ),
    # Level 3 composites with their units (one hop; PART_OF.pos = index of the unit).
    "image_units_3": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 3 "
        "MATCH (a:Instance)-[p:PART_OF]->(u) "
        "MATCH (u)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN u.id AS instance_id, m.id AS motif_id, u.x_A AS ux_A, u.y_A AS uy_A, "
        "a.id AS unit_id, p.pos AS pos"
    ),
    "image_units_3_NOPOS": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 3 "
        "MATCH (a:Instance)-[:PART_OF]->(u) "
        "MATCH (u)-[:INSTANCE_OF]->(m:Motif) "
        "RETURN u.id AS instance_id, m.id AS motif_id, u.x_A AS ux_A, u.y_A AS uy_A, "
        "a.id AS unit_id"
    ),
    # The columns of every composite (two hops), only when outlines are asked for.
    "image_units_3_COLUMNS": (
        "MATCH (img:Image) WHERE img.id = $image_id "
        "MATCH (u:Instance)-[:IN_IMAGE]->(img) WHERE u.level = 3 "
        "MATCH (a:Instance)-[:PART_OF]->(u) "
        "MATCH (c:Instance)-[:PART_OF]->(a) "
        "RETURN DISTINCT u.id AS instance_id, c.id AS column_id, c.x_A AS x_A, c.y_A AS y_A"
    ),
    # Mean images of several motifs at once (the gallery).
    "mean_images": (
        "MATCH (m:Motif) WHERE m.id IN $motif_ids "
        "RETURN m.id AS motif_id, m.mean_image AS mean_image"
    ),
}


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class SampleSummary:
    """What one sample holds.

    Attributes
    ----------
    sample : str
    material : str or None
    images : DataFrame
        As :func:`list_images` for this sample.
    levels : DataFrame
        Columns ``level, n_motifs, n_instances``: distinct motifs and instances per level.
    top_motifs : DataFrame
        Columns ``motif_id, level, key, n_instances, n_images, share``: the most frequent
        motifs of each level (``share`` = fraction of that level's instances in the sample).
    """

    sample: str
    material: str | None
    images: pd.DataFrame
    levels: pd.DataFrame
    top_motifs: pd.DataFrame

    @property
    def n_images(self) -> int:
        return len(self.images)


@dataclass(frozen=True, eq=False)
class Composition:
    """Both directions of the hierarchy around one motif.

    Attributes
    ----------
    motif_id : str
    parts : DataFrame
        Columns ``motif_id, level, key, count``: the lower-level motifs one instance is made of,
        with their multiplicity.
    part_of : DataFrame
        Same columns: the higher-level motifs that contain it, and how many times each.
    """

    motif_id: str
    parts: pd.DataFrame
    part_of: pd.DataFrame


@dataclass(frozen=True, eq=False)
class MotifDetail:
    """Everything the catalog knows about one motif.

    Attributes
    ----------
    motif_id, key : str
    level : int
    n_instances : int
        Instances in the whole catalog.
    descriptor : ndarray of float
        Level 1: the rotation-invariant descriptor centroid; empty for levels 2/3.
    prototype : dict or None
        Parsed prototype JSON (mean aligned column positions in Å and their level-1 motifs).
    mean_image : ndarray or None
        Average (reconstructed) image of the class, when stored.
    samples, materials, images : list of str
        Where it was found (sorted).
    per_image : DataFrame
        Columns ``image_id, sample, material, count``.
    """

    motif_id: str
    level: int
    key: str
    n_instances: int
    descriptor: np.ndarray
    prototype: dict[str, Any] | None
    mean_image: np.ndarray | None
    samples: list[str] = field(default_factory=list)
    materials: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    per_image: pd.DataFrame = field(default_factory=pd.DataFrame)

    def prototype_columns(self) -> tuple[np.ndarray, list[str]]:
        """The prototype's columns: positions (Å, K × 2, relative to the centre) and the
        level-1 motif id of each, as the writer stores them (keys ``xy_A`` and ``labels``).

        Returns
        -------
        xy_A : ndarray, shape (K, 2)
        labels : list of str
            Both empty when the motif has no prototype with columns (a level-1 motif: one
            column).

        Raises
        ------
        QueryError
            If the stored prototype is malformed (not an object, positions and labels of
            different lengths, non-finite positions).

        Examples
        --------
        >>> d = MotifDetail("L2-x", 2, "k", 1, np.zeros(0),
        ...                 {"xy_A": [[0, 0], [1, 0]], "labels": ["L1-0001", "L1-0002"]}, None)
        >>> xy, labels = d.prototype_columns()
        >>> xy.shape, labels
        ((2, 2), ['L1-0001', 'L1-0002'])
        """
        proto = self.prototype
        if proto is None:
            return np.zeros((0, 2)), []
        if not isinstance(proto, Mapping):
            raise QueryError(f"motif {self.motif_id}: prototype is not a JSON object")
        xy, labels = proto.get("xy_A"), proto.get("labels")
        if xy is None or labels is None:
            return np.zeros((0, 2)), []
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        labels = [str(k) for k in labels]
        if len(labels) != len(xy) or not np.all(np.isfinite(xy)):
            raise QueryError(
                f"motif {self.motif_id}: prototype has {len(xy)} positions and "
                f"{len(labels)} labels (or non-finite positions)"
            )
        return xy, labels

    def prototype_cell(self) -> np.ndarray | None:
        """In-plane cell vectors (Å, rows, 2 × 2) of a periodic prototype, else None.

        Examples
        --------
        >>> d = MotifDetail("L2-x", 2, "k", 1, np.zeros(0),
        ...                 {"xy_A": [[0, 0]], "labels": ["L1-0001"], "periodic": True,
        ...                  "cell_A": [[3.0, 0.0], [1.5, 2.6]]}, None)
        >>> d.prototype_cell().tolist()
        [[3.0, 0.0], [1.5, 2.6]]
        """
        proto = self.prototype if isinstance(self.prototype, Mapping) else {}
        cell = proto.get("cell_A")
        if not proto.get("periodic") or cell is None:
            return None
        cell = np.asarray(cell, dtype=float)
        if cell.shape != (2, 2) or not np.all(np.isfinite(cell)):
            raise QueryError(f"motif {self.motif_id}: prototype cell_A is not 2 × 2 numbers")
        return cell


# -------------------------------------------------------------------------------- helpers


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """Rows as a DataFrame that keeps its columns when there are no rows.

    Ladybug returns ``sum`` of an INT64 as a 128-bit integer (``decimal.Decimal`` in Python):
    such columns become int64 (float64 when fractional), as Neo4j's would be.
    """
    df = pd.DataFrame(rows, columns=columns)
    for col in df.columns:
        if df[col].dtype == object and df[col].map(lambda v: isinstance(v, Decimal)).any():
            num = pd.to_numeric(df[col].map(lambda v: float(v) if isinstance(v, Decimal) else v))
            whole = num.notna().all() and bool((num == num.round()).all())
            df[col] = num.astype("int64") if whole else num
    return df


def _read(store: GraphStore, name: str, **params: Any) -> list[dict[str, Any]]:
    try:
        return store.read(CYPHER[name], params)
    except QueryError:
        raise
    except Exception as exc:  # a backend error: say which query, keep the cause
        where = store.location or store.backend
        raise QueryError(f"query {name!r} failed on {where}: {exc}") from exc


def _check_level(level: Any, *, allow_none: bool = True, name: str = "level") -> int | None:
    if level is None and allow_none:
        return None
    if isinstance(level, bool) or not isinstance(level, int | np.integer) or level not in LEVELS:
        raise QueryError(f"{name}: expected one of {LEVELS}, got {level!r}")
    return int(level)


def _check_count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise QueryError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise QueryError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def _motif_row(store: GraphStore, motif_id: Any) -> dict[str, Any]:
    motif_id = _check_id(motif_id, "motif_id")
    rows = _read(store, "motif", motif_id=motif_id)
    if not rows:
        raise QueryError(f"motif_id: no motif {motif_id!r} in the catalog {store.location}")
    return rows[0]


def _require_sample(store: GraphStore, sample: Any) -> str:
    sample = _check_id(sample, "sample")
    if not _read(store, "sample_exists", sample=sample):
        raise QueryError(f"sample: no sample {sample!r} in the catalog {store.location}")
    return sample


def _parse_json(text: Any) -> Any:
    """A JSON property (prototype / mean image) or None when absent or empty."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    if not isinstance(text, str):
        return text
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise QueryError(f"catalog: a motif's JSON property is not valid JSON: {exc}") from exc


def _mean_image(value: Any) -> np.ndarray | None:
    """The stored mean image as a 2-D float array (a nested list, or a dict with ``data``)."""
    value = _parse_json(value)
    if isinstance(value, Mapping):
        value = value.get("data", value.get("image"))
    if value is None:
        return None
    arr = np.asarray(value, dtype=float)
    return arr if arr.ndim == 2 and arr.size else None


def _motif_materials(store: GraphStore, level: int | None) -> pd.DataFrame:
    cols = ["motif_id", "level", "key", "material", "n_samples", "n_images", "n_instances"]
    if level is None:
        rows = _read(store, "motif_materials")
    else:
        rows = _read(store, "motif_materials_LEVEL", level=level)
    return _frame(rows, cols)


def _per_motif(by_material: pd.DataFrame) -> pd.DataFrame:
    """Per-motif totals over materials (samples and images belong to one material each).

    NumPy segment sums over the rows sorted by motif: the rows are few (motifs × materials) but
    pandas' grouped list aggregation alone would cost tens of ms on every call.
    """
    cols = ["motif_id", "level", "key", "n_materials", "n_samples", "n_images", "n_instances",
            "materials", "per_material"]
    if by_material.empty:
        return pd.DataFrame(columns=cols)
    df = by_material.sort_values(["motif_id", "material"], kind="stable")
    ids = df["motif_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    sums = {c: np.add.reduceat(df[c].to_numpy(dtype=np.int64), starts)
            for c in ("n_samples", "n_images", "n_instances")}
    mats = np.split(df["material"].to_numpy(), starts[1:])
    inst = np.split(df["n_instances"].to_numpy(dtype=np.int64), starts[1:])
    return pd.DataFrame(
        {
            "motif_id": ids[starts],
            "level": df["level"].to_numpy(dtype=np.int64)[starts],
            "key": df["key"].to_numpy()[starts],
            "n_materials": np.diff(np.r_[starts, len(df)]).astype(np.int64),
            **sums,
            "materials": [list(m) for m in mats],
            "per_material": [dict(zip(m, c.tolist(), strict=True)) for m, c in zip(mats, inst,
                                                                                  strict=True)],
        },
        columns=cols,
    )


# ------------------------------------------------------------------------------ listings


def list_materials(store: GraphStore) -> pd.DataFrame:
    """The materials of the catalog with their numbers of samples and images.

    Parameters
    ----------
    store : GraphStore

    Returns
    -------
    DataFrame
        Columns ``material, n_samples, n_images``, sorted by material.

    Examples
    --------
    >>> list_materials(store)  # doctest: +SKIP
      material  n_samples  n_images
    0    MoSe2          2         4
    """
    return _frame(_read(store, "materials"), ["material", "n_samples", "n_images"])


def list_samples(store: GraphStore) -> pd.DataFrame:
    """The samples of the catalog.

    Parameters
    ----------
    store : GraphStore

    Returns
    -------
    DataFrame
        Columns ``sample, material, n_images, n_instances`` (instances of every level, from the
        ``CONTAINS`` counts), sorted by sample.

    Examples
    --------
    >>> list_samples(store)  # doctest: +SKIP
    """
    df = _frame(_read(store, "samples"), ["sample", "material", "n_images", "n_instances"])
    df["n_instances"] = df["n_instances"].fillna(0).astype("int64")
    return df


def list_images(store: GraphStore, sample: str | None = None) -> pd.DataFrame:
    """The images of the catalog, or of one sample.

    Parameters
    ----------
    store : GraphStore
    sample : str, optional
        Only this sample's images (QueryError if there is no such sample).

    Returns
    -------
    DataFrame
        Columns ``image_id, path, sample, material, width, height, pixel_size_A, n_columns,
        ingested_at`` (width/height in pixels, pixel size in Å, ``ingested_at`` ISO-8601 UTC).

    Examples
    --------
    >>> list_images(store, sample="MoSe2-A")  # doctest: +SKIP
    """
    cols = ["image_id", "path", "sample", "material", "width", "height", "pixel_size_A",
            "n_columns", "ingested_at"]
    if sample is None:
        return _frame(_read(store, "images"), cols)
    sample = _require_sample(store, sample)
    return _frame(_read(store, "images_SAMPLE", sample=sample), cols)


def vocabulary(store: GraphStore, level: int | None = None) -> pd.DataFrame:
    """The motifs of the catalog (the shared vocabulary), optionally of one level.

    Parameters
    ----------
    store : GraphStore
    level : {1, 2, 3}, optional

    Returns
    -------
    DataFrame
        Columns ``motif_id, level, key, n_instances, n_images``, sorted by level and id.

    Examples
    --------
    >>> vocabulary(store, level=2)  # doctest: +SKIP
    """
    level = _check_level(level)
    cols = ["motif_id", "level", "key", "n_instances", "n_images"]
    if level is None:
        return _frame(_read(store, "vocabulary"), cols)
    return _frame(_read(store, "vocabulary_LEVEL", level=level), cols)


def composition_edges(store: GraphStore) -> pd.DataFrame:
    """Every ``COMPOSED_OF`` edge of the vocabulary (the hierarchy as a graph).

    Returns
    -------
    DataFrame
        Columns ``parent, child, count``: one ``parent`` instance holds ``count`` ``child``
        instances.

    Examples
    --------
    >>> composition_edges(store)  # doctest: +SKIP
    """
    return _frame(_read(store, "composition_edges"), ["parent", "child", "count"])


# ------------------------------------------------------------------------- cross-sample


def sample_summary(store: GraphStore, sample: str, top: int = 5) -> SampleSummary:
    """Material, images and motif statistics per level of one sample.

    Parameters
    ----------
    store : GraphStore
    sample : str
        Sample id.
    top : int
        Number of most frequent motifs kept per level in ``top_motifs``.

    Returns
    -------
    SampleSummary

    Raises
    ------
    QueryError
        If there is no such sample.

    Examples
    --------
    >>> s = sample_summary(store, "MoSe2-A")  # doctest: +SKIP
    >>> s.levels  # doctest: +SKIP
    """
    sample = _require_sample(store, sample)
    top = _check_count(top, "top", minimum=1)
    mat = _read(store, "sample_material", sample=sample)
    images = list_images(store, sample)
    motifs = _frame(
        _read(store, "sample_motifs", sample=sample),
        ["motif_id", "level", "key", "n_instances", "n_images"],
    )
    g = motifs.groupby("level")
    levels = pd.DataFrame(
        {"n_motifs": g["motif_id"].nunique(), "n_instances": g["n_instances"].sum()}
    ).reset_index()
    levels = levels.astype({"level": "int64", "n_motifs": "int64", "n_instances": "int64"})
    total = motifs.groupby("level")["n_instances"].transform("sum")
    motifs["share"] = motifs["n_instances"] / total.where(total > 0, 1)
    top_motifs = (
        motifs.sort_values(["level", "n_instances", "motif_id"], ascending=[True, False, True])
        .groupby("level")
        .head(top)
        .reset_index(drop=True)
    )
    return SampleSummary(
        sample=sample,
        material=mat[0]["material"] if mat else None,
        images=images,
        levels=levels,
        top_motifs=top_motifs,
    )


def recurring_motifs(
    store: GraphStore, min_materials: int = 2, min_samples: int = 1, level: int | None = None
) -> pd.DataFrame:
    """Motifs found in several materials and/or samples, with counts per material.

    Reads only the ``CONTAINS {count}`` edges between images and motifs (no instance scan).

    Parameters
    ----------
    store : GraphStore
    min_materials : int
        Keep motifs seen in at least this many materials.
    min_samples : int
        ... and in at least this many samples.
    level : {1, 2, 3}, optional
        Only this level.

    Returns
    -------
    DataFrame
        Columns ``motif_id, level, key, n_materials, n_samples, n_images, n_instances,
        materials`` (sorted list) and ``per_material`` (dict material -> instances), sorted by
        ``n_materials``, ``n_samples`` and ``n_instances``, largest first.

    Examples
    --------
    >>> recurring_motifs(store, min_materials=2, level=2)  # doctest: +SKIP
    """
    min_materials = _check_count(min_materials, "min_materials")
    min_samples = _check_count(min_samples, "min_samples")
    level = _check_level(level)
    df = _per_motif(_motif_materials(store, level))
    keep = (df["n_materials"] >= min_materials) & (df["n_samples"] >= min_samples)
    df = df[keep].sort_values(
        ["n_materials", "n_samples", "n_instances", "motif_id"],
        ascending=[False, False, False, True],
    )
    return df.reset_index(drop=True)


def persistence_score(n_images: Any, n_instances: Any, n_materials: Any) -> np.ndarray:
    """The persistence score that ranks motifs worth exporting.

    ``score = n_images × log(1 + n_instances) × (1 + 0.5 × (n_materials − 1))``

    * ``n_images`` counts independent observations: a motif seen in many images is not an
      artefact of one image's noise, drift or clustering, so it enters linearly;
    * ``log(1 + n_instances)``: abundance matters, but with diminishing returns, so that the
      perfect-lattice motif of one large image does not outrank a defect seen in ten images;
    * the material bonus (+50 % per extra material) favours motifs that recur across chemistry:
      those are structural (a geometry shared by compounds), not the contrast of one compound.

    Parameters
    ----------
    n_images, n_instances, n_materials : array_like of int

    Returns
    -------
    ndarray of float

    Examples
    --------
    >>> round(float(persistence_score(2, 9, 1)), 3)  # 2 images, 9 instances, 1 material
    4.605
    """
    n_images = np.asarray(n_images, dtype=float)
    n_materials = np.maximum(np.asarray(n_materials, dtype=float), 1.0)
    return n_images * np.log1p(np.asarray(n_instances, dtype=float)) * (1 + 0.5 * (n_materials - 1))


def persistent_motifs(
    store: GraphStore, min_images: int = 2, min_instances: int = 10, level: int | None = None
) -> pd.DataFrame:
    """Motifs worth exporting: seen in several images, often enough, ranked by persistence.

    Parameters
    ----------
    store : GraphStore
    min_images : int
        Keep motifs found in at least this many images.
    min_instances : int
        ... with at least this many instances in the whole catalog.
    level : {1, 2, 3}, optional
        Only this level.

    Returns
    -------
    DataFrame
        Columns of :func:`recurring_motifs` plus ``score`` (:func:`persistence_score`), highest
        first.

    Examples
    --------
    >>> persistent_motifs(store, min_images=2, min_instances=10).head(1)  # doctest: +SKIP
    """
    min_images = _check_count(min_images, "min_images")
    min_instances = _check_count(min_instances, "min_instances")
    level = _check_level(level)
    df = _per_motif(_motif_materials(store, level))
    df = df[(df["n_images"] >= min_images) & (df["n_instances"] >= min_instances)].copy()
    df["score"] = persistence_score(df["n_images"], df["n_instances"], df["n_materials"])
    df = df.sort_values(["score", "motif_id"], ascending=[False, True])
    return df.reset_index(drop=True)


# ------------------------------------------------------------------------------ per motif


def composition(store: GraphStore, motif_id: str) -> Composition:
    """What a motif is made of and what it is part of, with multiplicities.

    Parameters
    ----------
    store : GraphStore
    motif_id : str

    Returns
    -------
    Composition
        ``parts`` (lower level) and ``part_of`` (higher level), each with columns
        ``motif_id, level, key, count``.

    Raises
    ------
    QueryError
        If there is no such motif.

    Examples
    --------
    >>> composition(store, "L2-0001").parts  # doctest: +SKIP
    """
    row = _motif_row(store, motif_id)
    cols = ["motif_id", "level", "key", "count"]
    return Composition(
        motif_id=row["motif_id"],
        parts=_frame(_read(store, "parts", motif_id=row["motif_id"]), cols),
        part_of=_frame(_read(store, "part_of", motif_id=row["motif_id"]), cols),
    )


def spatial_context(store: GraphStore, motif_id: str) -> pd.DataFrame:
    """Histogram of the motifs that neighbour the instances of one motif.

    Neighbours are defined per level:

    * level 1 (column environments): the columns joined to an instance by a ``NEAR`` edge (the
      pruned neighbour graph), counted once per (instance, neighbour) pair;
    * levels 2 and 3 (units, composites): the other instances of the same level that share at
      least one column with it (through ``PART_OF``), counted once per (instance, neighbour)
      pair however many columns they share.

    Neighbours without a motif (columns too close to the border for a descriptor) are left out.

    Parameters
    ----------
    store : GraphStore
    motif_id : str

    Returns
    -------
    DataFrame
        Columns ``motif_id, level, count, share`` (``share`` = count / total), most frequent
        first.

    Raises
    ------
    QueryError
        If there is no such motif.

    Examples
    --------
    >>> spatial_context(store, "L1-0001")  # doctest: +SKIP
    """
    row = _motif_row(store, motif_id)
    name = {1: "context_near", 2: "context_shared_2", 3: "context_shared_3"}[int(row["level"])]
    df = _frame(_read(store, name, motif_id=row["motif_id"]), ["motif_id", "level", "count"])
    total = df["count"].sum()
    df["share"] = df["count"] / total if total else 0.0
    df = df.sort_values(["count", "motif_id"], ascending=[False, True])
    return df.reset_index(drop=True)


def similar_motifs(
    store: GraphStore,
    motif_id: str | None = None,
    descriptor: Any = None,
    k: int = 5,
    space: str | None = None,
) -> pd.DataFrame:
    """The ``k`` motifs nearest to a motif or to a descriptor.

    Level-1 motifs are compared by the distance between their stored descriptors
    (:func:`motifcat.catalog.vocabulary.descriptor_distances`), and only within one descriptor
    space: the level-1 ``Motif.key`` ``"L1:<space>"`` names it, and descriptors of different
    spaces (Zernike settings, per-image PCA bases) do not compare. Levels 2 and 3 carry no
    descriptor; they are compared by composition: the distance between the fractions of
    lower-level motifs in one instance (the ``COMPOSED_OF`` counts normalised to sum 1), so
    that two polygons made of the same columns in different numbers are near. Brute force in
    NumPy: the vocabulary is small.

    Parameters
    ----------
    store : GraphStore
    motif_id : str, optional
        Find the motifs nearest to this one (of its level and, for level 1, of its descriptor
        space; itself excluded).
    descriptor : array_like of float, optional
        ... or nearest to this raw level-1 class descriptor (centroid of Zernike magnitudes),
        brought to stored form by
        :func:`~motifcat.catalog.vocabulary.normalize_descriptor` for ``space``.
    k : int
        How many to return.
    space : str, optional
        Descriptor space of ``descriptor`` (default :data:`DEFAULT_SPACE`, the default
        analysis'). Only with ``descriptor``.

    Returns
    -------
    DataFrame
        Columns ``motif_id, level, key, distance``, nearest first.

    Raises
    ------
    QueryError
        If neither or both of ``motif_id`` and ``descriptor`` are given, the motif is unknown,
        no level-1 motif lives in ``space``, or the descriptor's length is not theirs.

    Examples
    --------
    >>> similar_motifs(store, "L1-0001", k=3)  # doctest: +SKIP
    >>> similar_motifs(store, descriptor=d, space="zernike-n10-image-w0.5")  # doctest: +SKIP
    """
    k = _check_count(k, "k", minimum=1)
    cols = ["motif_id", "level", "key", "distance"]
    if (motif_id is None) == (descriptor is None):
        raise QueryError("similar_motifs: give exactly one of motif_id and descriptor")
    if motif_id is not None and space is not None:
        raise QueryError("space: only with descriptor (a motif's space is its key)")
    if motif_id is not None:
        row = _motif_row(store, motif_id)
        level, self_id, key = int(row["level"]), row["motif_id"], row["key"]
        if level == 1:
            query = np.asarray(
                row["descriptor"] if row["descriptor"] is not None else [], dtype=float
            )
            if query.size == 0:
                return pd.DataFrame(columns=cols)
    else:
        space = DEFAULT_SPACE if space is None else _check_id(space, "space")
        level, self_id, key = 1, None, f"L1:{space}"
        try:
            query = normalize_descriptor(descriptor, space)
        except (TypeError, ValueError, MotifcatError) as exc:
            raise QueryError(f"descriptor: expected a vector of finite numbers ({exc})") from exc
        if query.size == 0:
            raise QueryError("descriptor: expected a non-empty vector of finite numbers")
    motifs = _frame(
        _read(store, "descriptors", level=level), ["motif_id", "level", "key", "descriptor"]
    )
    if level == 1:
        motifs = motifs[motifs["key"] == key]
        if motifs.empty and self_id is None:
            raise QueryError(f"space: no level-1 motif in descriptor space {space!r}")
        lengths = motifs["descriptor"].map(lambda d: 0 if d is None else len(d))
        motifs = motifs[lengths == query.size]
        if motifs.empty and self_id is None:
            raise QueryError(
                f"descriptor: the level-1 motifs of space {space!r} have descriptors of length "
                f"{sorted(set(lengths))}, not {query.size}"
            )
        vectors = np.array(motifs["descriptor"].tolist(), dtype=float).reshape(len(motifs), -1)
        dist = descriptor_distances(query, vectors)[0] if len(motifs) else np.zeros(0)
    else:
        edges = _frame(
            _read(store, "compositions_LEVEL", level=level), ["parent", "child", "count"]
        )
        table = edges.pivot_table(index="parent", columns="child", values="count",
                                  aggfunc="sum", fill_value=0)
        table = table.reindex(motifs["motif_id"], fill_value=0)
        vectors = table.to_numpy(dtype=float, copy=True)
        vectors = vectors / np.maximum(vectors.sum(axis=1, keepdims=True), 1.0)
        query = vectors[motifs["motif_id"].to_numpy() == self_id][0]
        dist = np.linalg.norm(vectors - query, axis=1)
    out = motifs[["motif_id", "level", "key"]].assign(distance=dist)
    if self_id is not None:
        out = out[out["motif_id"] != self_id]
    out = out.sort_values(["distance", "motif_id"]).head(k)
    return out.reset_index(drop=True)[cols]


def motif_detail(store: GraphStore, motif_id: str) -> MotifDetail:
    """Everything about one motif: properties, parsed prototype, mean image, provenance.

    Parameters
    ----------
    store : GraphStore
    motif_id : str

    Returns
    -------
    MotifDetail

    Raises
    ------
    QueryError
        If there is no such motif.

    Examples
    --------
    >>> d = motif_detail(store, "L1-0001")  # doctest: +SKIP
    >>> d.level, d.samples  # doctest: +SKIP
    """
    row = _motif_row(store, motif_id)
    per_image = _frame(
        _read(store, "motif_images", motif_id=row["motif_id"]),
        ["image_id", "sample", "material", "count"],
    )
    n_instances = row["n_instances"]
    if n_instances is None or (isinstance(n_instances, float) and math.isnan(n_instances)):
        n_instances = per_image["count"].sum()
    descriptor = row["descriptor"]
    return MotifDetail(
        motif_id=row["motif_id"],
        level=int(row["level"]),
        key=row["key"],
        n_instances=int(n_instances),
        descriptor=np.asarray([] if descriptor is None else descriptor, dtype=float),
        prototype=_parse_json(row["prototype"]),
        mean_image=_mean_image(row["mean_image"]),
        samples=sorted(per_image["sample"].dropna().unique().tolist()),
        materials=sorted(per_image["material"].dropna().unique().tolist()),
        images=sorted(per_image["image_id"].unique().tolist()),
        per_image=per_image,
    )


def mean_images(store: GraphStore, motif_ids: Any) -> dict[str, np.ndarray | None]:
    """The mean images of several motifs, in one query (a gallery of the vocabulary).

    Parameters
    ----------
    store : GraphStore
    motif_ids : sequence of str

    Returns
    -------
    dict
        Motif id -> 2-D float array (as :attr:`MotifDetail.mean_image`), or None when the motif
        has no stored mean image. Ids not in the catalog are left out.

    Examples
    --------
    >>> mean_images(store, ["L1-0001", "L2-0001"])  # doctest: +SKIP
    {'L1-0001': array([[...]]), 'L2-0001': None}
    """
    if isinstance(motif_ids, str):
        raise QueryError("motif_ids: expected a sequence of ids, got one string")
    ids = [_check_id(m, "motif_ids") for m in motif_ids]
    if not ids:
        return {}
    rows = _read(store, "mean_images", motif_ids=sorted(set(ids)))
    images = {r["motif_id"]: _mean_image(r["mean_image"]) for r in rows}
    return {m: images[m] for m in ids if m in images}


# ------------------------------------------------------------------------------ per image


def _require_image(store: GraphStore, image_id: Any) -> str:
    image_id = _check_id(image_id, "image_id")
    if not _read(store, "image_exists", image_id=image_id):
        raise QueryError(f"image_id: no image {image_id!r} in the catalog {store.location}")
    return image_id


def image_instances(store: GraphStore, image_id: str, level: int = 1) -> pd.DataFrame:
    """The instances of one level in one image, with positions and motifs (for overlays).

    Parameters
    ----------
    store : GraphStore
    image_id : str
        Image id (sha256 of the pixels).
    level : {1, 2, 3}

    Returns
    -------
    DataFrame
        Columns ``instance_id, x_A, y_A, motif_id`` (positions in Å from the image origin),
        sorted by instance id.

    Examples
    --------
    >>> image_instances(store, image_id)  # doctest: +SKIP
    """
    level = _check_level(level, allow_none=False)
    image_id = _require_image(store, image_id)
    return _frame(
        _read(store, "image_instances", image_id=image_id, level=level),
        ["instance_id", "x_A", "y_A", "motif_id"],
    )


def image_units(
    store: GraphStore, image_id: str, level: int = 2, outline: bool = True
) -> pd.DataFrame:
    """The level-2 (or 3) instances of one image, with their outlines (for overlays).

    Level 2: a unit is a face of the column neighbour graph; its outline is its ring of
    columns in cyclic order (``PART_OF.pos``), and the columns inside the ring (the centre of a
    filled pentagon) are listed apart in ``interior``. Catalogs written before ``pos`` existed
    fall back to ordering the columns by angle around their mean, taking a column as interior
    when it is the one nearest that mean and less than half as far from it as the median of the
    others (a ring's vertices are all about equally far from its centre).

    Level 3: a composite joins several units; ``units`` lists them (in the order of
    ``PART_OF.pos``, else by id), and its outline is the convex hull of their columns, computed
    for all composites at once, or skipped with ``outline=False`` (one hop less in the graph).

    Parameters
    ----------
    store : GraphStore
    image_id : str
    level : {2, 3}
    outline : bool
        Level 3 only: compute the ``polygon`` (None when False). Level 2 outlines cost nothing.

    Returns
    -------
    DataFrame
        One row per instance, sorted by ``instance_id``. Level 2: columns ``instance_id,
        motif_id, x_A, y_A, polygon, interior``; level 3: ``instance_id, motif_id, x_A, y_A,
        units, polygon``. ``x_A, y_A`` is the stored centre (Å); ``polygon`` and ``interior``
        are lists of ``(x_A, y_A)`` tuples in Å. Columns too close to the image border are
        not stored, so a unit at the border may have fewer vertices than its motif.

    Examples
    --------
    >>> image_units(store, image_id).polygon[0]  # doctest: +SKIP
    [(3.1, 2.0), (4.2, 3.9), (2.0, 4.0)]
    >>> image_units(store, image_id, level=3, outline=False).units[0]  # doctest: +SKIP
    ['<image>-2-17', '<image>-2-18']
    """
    level = _check_level(level, allow_none=False)
    if level == 1:
        raise QueryError("level: image_units needs level 2 or 3 (level 1 has no polygons)")
    image_id = _require_image(store, image_id)
    if level == 2:
        return _units_level2(store, image_id)
    return _units_level3(store, image_id, bool(outline))


def _read_pos(store: GraphStore, name: str, columns: list[str], **params: Any) -> pd.DataFrame:
    """Run ``name`` (returns ``pos``), or its ``_NOPOS`` variant on a catalog without
    ``PART_OF.pos`` (Ladybug refuses an unknown property; Neo4j returns null for it)."""
    try:
        df = _frame(_read(store, name, **params), [*columns, "pos"])
    except QueryError:
        df = _frame(_read(store, f"{name}_NOPOS", **params), columns).assign(pos=None)
    if df["pos"].isna().any():
        df["pos"] = np.nan
    return df


def _xy_tuples(x: pd.Series, y: pd.Series) -> list[tuple[float, float]]:
    return list(zip(x.astype(float), y.astype(float), strict=True))


def _units_level2(store: GraphStore, image_id: str) -> pd.DataFrame:
    cols = ["instance_id", "motif_id", "x_A", "y_A", "polygon", "interior"]
    pts = _read_pos(
        store, "image_units_2",
        ["instance_id", "motif_id", "ux_A", "uy_A", "column_id", "x_A", "y_A"],
        image_id=image_id,
    )
    if pts.empty:
        return pd.DataFrame(columns=cols)
    pts = pts.drop_duplicates(["instance_id", "column_id"])
    if pts["pos"].isna().any():
        pts = _guess_ring(pts)
    pts = pts.sort_values(["instance_id", "pos"], kind="stable")
    pts["xy"] = _xy_tuples(pts["x_A"], pts["y_A"])
    units = pts.groupby("instance_id", sort=True)[["motif_id", "ux_A", "uy_A"]].first()
    ring, inner = pts[pts["pos"] >= 0], pts[pts["pos"] < 0]
    out = units.rename(columns={"ux_A": "x_A", "uy_A": "y_A"})
    out["polygon"] = ring.groupby("instance_id")["xy"].agg(list).reindex(out.index)
    out["interior"] = inner.groupby("instance_id")["xy"].agg(list).reindex(out.index)
    for c in ("polygon", "interior"):
        out[c] = out[c].map(lambda v: v if isinstance(v, list) else [])
    return out.reset_index()[cols]


def _guess_ring(pts: pd.DataFrame) -> pd.DataFrame:
    """``pos`` for catalogs without it: angle order around the mean, -1 for a centre column."""
    g = pts.groupby("instance_id", sort=False)
    dx = pts["x_A"] - g["x_A"].transform("mean")
    dy = pts["y_A"] - g["y_A"].transform("mean")
    r = np.hypot(dx, dy)
    gr = r.groupby(pts["instance_id"])
    nearest = r == gr.transform("min")
    # median of the others ~ median of all for a ring of >= 4 vertices plus one centre
    centre = nearest & (gr.transform("size") >= 4) & (r < 0.5 * gr.transform("median"))
    angle = np.arctan2(dy, dx)
    out = pts.assign(pos=np.where(centre, -1.0, 0.0), angle=angle)
    out = out.sort_values(["instance_id", "pos", "angle"])
    ring_rank = out.groupby(["instance_id", "pos"]).cumcount()
    out["pos"] = np.where(out["pos"] < 0, -1, ring_rank)
    return out.drop(columns="angle")


def _units_level3(store: GraphStore, image_id: str, outline: bool) -> pd.DataFrame:
    cols = ["instance_id", "motif_id", "x_A", "y_A", "units", "polygon"]
    mem = _read_pos(
        store, "image_units_3", ["instance_id", "motif_id", "ux_A", "uy_A", "unit_id"],
        image_id=image_id,
    )
    if mem.empty:
        return pd.DataFrame(columns=cols)
    mem = mem.drop_duplicates(["instance_id", "unit_id"])
    order = ["instance_id", "unit_id"] if mem["pos"].isna().any() else ["instance_id", "pos"]
    mem = mem.sort_values(order)
    g = mem.groupby("instance_id", sort=True)
    out = g[["motif_id", "ux_A", "uy_A"]].first().rename(columns={"ux_A": "x_A", "uy_A": "y_A"})
    out["units"] = g["unit_id"].agg(list)
    out["polygon"] = None
    if outline:
        pts = _frame(
            _read(store, "image_units_3_COLUMNS", image_id=image_id),
            ["instance_id", "column_id", "x_A", "y_A"],
        ).drop_duplicates(["instance_id", "column_id"])
        out["polygon"] = pd.Series(_group_hulls(pts), dtype=object).reindex(out.index)
        out["polygon"] = out["polygon"].map(lambda v: v if isinstance(v, list) else [])
    return out.reset_index()[cols]


def _group_hulls(pts: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    """Convex hull (counter-clockwise in x-right/y-up axes) of each instance's points.

    Gift wrapping on all groups at once: the points are padded into a (G, K, 2) array and each
    of at most K steps picks, for every group, the point at the smallest turn from the last
    edge (the farthest on ties, so collinear points are skipped). O(G·K²), no Python loop over
    groups: ~10x faster than one scipy ConvexHull per composite. A group of fewer than 3 points
    keeps them all; collinear points give their two ends.
    """
    if pts.empty:
        return {}
    pts = pts.sort_values("instance_id", kind="stable")
    ids, start, size = np.unique(pts["instance_id"].to_numpy(), return_index=True,
                                 return_counts=True)
    xy = pts[["x_A", "y_A"]].to_numpy(dtype=float)
    n_g, n_k = len(ids), int(size.max())
    slot = np.arange(len(xy)) - np.repeat(start, size)
    grp = np.repeat(np.arange(n_g), size)
    pad = np.full((n_g, n_k, 2), np.nan)
    pad[grp, slot] = xy
    valid = ~np.isnan(pad[..., 0])
    # start at the lowest point (then leftmost): every other point is at a turn in [0, pi)
    key = np.where(valid, pad[..., 1], np.inf)
    low = key == key.min(axis=1, keepdims=True)
    first = np.argmin(np.where(low, pad[..., 0], np.inf), axis=1)
    rows = np.arange(n_g)
    cur, direction = first.copy(), np.tile([1.0, 0.0], (n_g, 1))
    hull = np.full((n_g, n_k), -1)
    done = np.zeros(n_g, dtype=bool)
    scale = np.nanmax(np.abs(xy)) + 1.0
    for step in range(n_k):
        hull[~done, step] = cur[~done]
        d = pad - pad[rows, cur][:, None, :]
        dist = np.hypot(d[..., 0], d[..., 1])
        turn = np.arctan2(direction[:, None, 0] * d[..., 1] - direction[:, None, 1] * d[..., 0],
                          direction[:, None, 0] * d[..., 0] + direction[:, None, 1] * d[..., 1])
        turn = np.mod(turn, 2 * np.pi)
        turn = np.where(np.isclose(turn, 2 * np.pi, atol=1e-9) | (turn < 1e-9), 0.0, turn)
        score = np.where(valid & (dist > 1e-9 * scale), turn - 1e-12 * dist / scale, np.inf)
        nxt = np.argmin(score, axis=1)
        closed = (nxt == first) | ~np.isfinite(score[rows, nxt])
        done |= closed
        if done.all():
            break
        direction = np.where(done[:, None], direction, pad[rows, nxt] - pad[rows, cur])
        cur = np.where(done, cur, nxt)
    g_idx, step_idx = np.nonzero(hull >= 0)  # row-major: each group's vertices in order
    corners = pad[g_idx, hull[g_idx, step_idx]]
    poly = pd.Series(_xy_tuples(pd.Series(corners[:, 0]), pd.Series(corners[:, 1])))
    return poly.groupby(ids[g_idx]).agg(list).to_dict()


__all__ = [
    "CYPHER",
    "Composition",
    "DEFAULT_SPACE",
    "LEVELS",
    "MotifDetail",
    "SampleSummary",
    "composition",
    "composition_edges",
    "image_instances",
    "image_units",
    "list_images",
    "list_materials",
    "list_samples",
    "mean_images",
    "motif_detail",
    "persistence_score",
    "persistent_motifs",
    "recurring_motifs",
    "sample_summary",
    "similar_motifs",
    "spatial_context",
    "vocabulary",
]
