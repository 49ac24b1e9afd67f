"""Questions about one motif: its composition, context, similar motifs, detail and mean image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..catalog.store import GraphStore
from ..catalog.vocabulary import descriptor_distances, descriptor_space, normalize_descriptor
from ..errors import MotifcatError, QueryError
from ..ingest.model import AnalysisParams
from .reading import (
    _check_count,
    _check_id,
    _frame,
    _mean_image,
    _motif_row,
    _parse_json,
    _read,
)

__all__ = [
    "level1_motifs_in_images_of",
    "Composition",
    "DEFAULT_SPACE",
    "MotifDetail",
    "composition",
    "mean_images",
    "motif_detail",
    "similar_motifs",
    "spatial_context",
]


#: Descriptor space of the default analysis (``"zernike-n10-image-w0.5"``): the space a raw
#: descriptor given to :func:`similar_motifs` is assumed to live in.
DEFAULT_SPACE = descriptor_space(AnalysisParams())


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
    >>> from motifcat.query import vocabulary
    >>> unit = vocabulary(store, level=2)["motif_id"].iloc[0]
    >>> composition(store, unit).parts["level"].unique().tolist()  # a unit is made of columns
    [1]
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
    >>> ctx = spatial_context(store, "L1-0001")
    >>> ctx.columns.tolist(), round(float(ctx["share"].sum()), 6)
    (['motif_id', 'level', 'count', 'share'], 1.0)
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
    >>> sim = similar_motifs(store, "L1-0001", k=3)
    >>> "L1-0001" in sim["motif_id"].tolist(), bool(sim["distance"].is_monotonic_increasing)
    (False, True)
    >>> from motifcat.catalog.vocabulary import raw_descriptor
    >>> m = motif_detail(store, "L1-0001")  # its key is "L1:<descriptor space>"
    >>> raw = raw_descriptor(m.descriptor, m.key[3:])  # stored form -> a class descriptor
    >>> similar_motifs(store, descriptor=raw, space=m.key[3:])["motif_id"].iloc[0]
    'L1-0001'
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
    >>> d = motif_detail(store, "L1-0001")
    >>> d.level, d.samples
    (1, ['mose2-a', 'mose2-b'])
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
    >>> {k: v.ndim for k, v in mean_images(store, ["L1-0001", "L1-0002"]).items()}
    {'L1-0001': 2, 'L1-0002': 2}
    """
    if isinstance(motif_ids, str):
        raise QueryError("motif_ids: expected a sequence of ids, got one string")
    ids = [_check_id(m, "motif_ids") for m in motif_ids]
    if not ids:
        return {}
    rows = _read(store, "mean_images", motif_ids=sorted(set(ids)))
    images = {r["motif_id"]: _mean_image(r["mean_image"]) for r in rows}
    return {m: images[m] for m in ids if m in images}


def level1_motifs_in_images_of(store: GraphStore, motif_id: str) -> pd.DataFrame:
    """The level-1 motifs of the images that hold a motif, with their mean images.

    What the exporter measures to suggest the species of each column of a motif.

    Parameters
    ----------
    store : GraphStore
    motif_id : str
        A motif of any level.

    Returns
    -------
    DataFrame
        ``motif_id`` (level-1 motif), ``mean_image`` (2-D float array or None) and ``count``
        (its instances in those images), sorted by ``motif_id``. Empty when no image holds
        ``motif_id`` (an unknown id included).

    Examples
    --------
    >>> level1_motifs_in_images_of(store, "L1-0001").columns.tolist()
    ['motif_id', 'mean_image', 'count']
    """
    motif_id = _check_id(motif_id, "motif_id")
    df = _frame(_read(store, "export_level1", motif_id=motif_id),
                ["motif_id", "mean_image", "count"])
    df["mean_image"] = [_mean_image(v) for v in df["mean_image"]]
    return df
