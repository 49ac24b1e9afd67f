"""Questions across the catalog: listings, sample summaries, recurring and persistent motifs.

They read the ``(Image)-[:CONTAINS {count}]->(Motif)`` edges, never the ``Instance`` nodes, so
they cost O(images × motifs), not O(instances).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..catalog.store import GraphStore
from .reading import _check_count, _check_level, _frame, _read, _require_sample

__all__ = [
    "SampleSummary",
    "composition_edges",
    "list_images",
    "list_materials",
    "list_samples",
    "persistence_score",
    "persistent_motifs",
    "recurring_motifs",
    "sample_summary",
    "vocabulary",
]


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
    >>> list_materials(store)
      material  n_samples  n_images
    0    MoSe2          2         2
    1      WS2          1         1
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
    >>> list_samples(store)[["sample", "material", "n_images"]]
        sample material  n_images
    0  mose2-a    MoSe2         1
    1  mose2-b    MoSe2         1
    2    ws2-a      WS2         1
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
    >>> list_images(store, sample="mose2-a")[["sample", "width", "height", "pixel_size_A"]]
        sample  width  height  pixel_size_A
    0  mose2-a    192     192          0.15
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
        Columns ``motif_id, level, key, n_instances, n_images, family``, sorted by level and
        id. ``family`` (levels 2/3) is the family above the exact key (``MotifClass.family``:
        the key itself for a frequent class); "" on level 1, None in catalogs written before
        families existed.

    Examples
    --------
    >>> voc = vocabulary(store, level=2)
    >>> voc.columns.tolist(), voc["level"].unique().tolist()
    (['motif_id', 'level', 'key', 'n_instances', 'n_images', 'family'], [2])
    """
    level = _check_level(level)
    cols = ["motif_id", "level", "key", "n_instances", "n_images", "family"]
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
    >>> edges = composition_edges(store)
    >>> edges.columns.tolist(), bool(edges["parent"].str.startswith("L2-").any())
    (['parent', 'child', 'count'], True)
    """
    return _frame(_read(store, "composition_edges"), ["parent", "child", "count"])


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
    >>> s = sample_summary(store, "mose2-a")
    >>> s.material, s.n_images, s.levels["level"].tolist()
    ('MoSe2', 1, [1, 2, 3])
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
    The level-1 motifs seen in both MoSe2 samples of the example catalog:

    >>> recurring_motifs(store, min_materials=1, min_samples=2, level=1)["n_samples"].tolist()
    [2, 2]
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
    >>> top = persistent_motifs(store, min_images=2, min_instances=10)
    >>> top[["level", "n_images"]].head(2).to_dict("list")  # the metal and chalcogen columns
    {'level': [1, 1], 'n_images': [2, 2]}
    """
    min_images = _check_count(min_images, "min_images")
    min_instances = _check_count(min_instances, "min_instances")
    level = _check_level(level)
    df = _per_motif(_motif_materials(store, level))
    df = df[(df["n_images"] >= min_images) & (df["n_instances"] >= min_instances)].copy()
    df["score"] = persistence_score(df["n_images"], df["n_instances"], df["n_materials"])
    df = df.sort_values(["score", "motif_id"], ascending=[False, True])
    return df.reset_index(drop=True)
