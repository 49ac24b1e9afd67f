"""Write one :class:`~motifcat.ingest.model.Analysis` into the catalog: one image, one transaction.

What is stored (see :mod:`motifcat.catalog.schema`)
---------------------------------------------------
* ``Material`` and ``Sample`` (merged by name; a sample belongs to exactly one material);
* the ``Image`` (id = sha256 of the pixels, pixel size, parameters and metadata as JSON,
  software, UTC ingestion time, size, number of detected columns);
* ``Instance`` nodes of every level with their centre in Å, ``IN_IMAGE`` and ``INSTANCE_OF``;
* ``NEAR {d_A}`` between neighbouring level-1 instances (the neighbour graph of the hierarchy:
  an analysis without a hierarchy, ``AnalysisParams.hierarchy=False``, stores no ``NEAR`` and
  its instances have no spatial context in the catalog);
* ``PART_OF {pos}`` from each lower-level instance to the higher-level instance that contains
  it. ``pos`` says where: for a level-2 unit, the column's position 0..n-1 in the unit's ring
  (the cyclic order of ``Level.members``, i.e. the hierarchy's canonical ring order), or -1 for
  an interior (centre) column of a filled unit; for a level-3 composite, the index of the unit
  in the composite's member list. Draw a unit's outline from ``pos >= 0`` ordered by ``pos``;
* global ``Motif`` nodes (new ones only), ``CONTAINS {count}`` from the image to each motif it
  contains, ``COMPOSED_OF {count}`` from a new higher-level motif to its lower-level motifs, and
  ``Motif.n_instances`` incremented by this image's instances.

Border columns
--------------
Columns whose patch crosses the image border have no descriptor and level-1 label -1. They are
not stored: an ``Instance`` always has a motif, so counts and ``CONTAINS`` mean the same thing.
``NEAR`` is kept between stored columns only, and a ``PART_OF`` from a border column to the
level-2 instance it is a vertex of is dropped (the level-2 instance itself, its position and its
motif are stored). ``Image.n_columns`` still counts every detected column.

Identity
--------
Level-1 motifs are matched by descriptor (:mod:`motifcat.catalog.vocabulary`) and numbered
``L1-0001``, ``L1-0002``... in order of creation. Levels 2 and 3 are matched by canonical key,
after the keys were rewritten with the global level-1 ids
(:func:`motifcat.ingest.hierarchy.relabel`); their id is ``"L<level>-"`` + the first 12 hex of
the key's sha256, so that the same unit gets the same id in every image of one catalog. The
keys name catalog-local level-1 ids (``L1-0003`` is the third level-1 motif of *this* catalog),
so ids of levels 2/3 are not comparable between catalogs.

An image already in the catalog (same pixels) is never written again, whatever sample,
material or pixel size is passed; the report says which of them differ from the stored ones.

One writer at a time
--------------------
The duplicate check, the vocabulary look-up and the ``L1-NNNN`` numbering are read before the
image's transaction, so writes to one catalog must be serialised. The embedded store enforces
it (its file lock admits one writer); on Neo4j the caller must (``motifcat ingest`` writes
from one process, one image after another). Should two writers still race, the one whose
transaction fails because the other stored the same image is reported as a duplicate; other
collisions (two new level-1 motifs numbered alike) fail that image's write as a whole, and it
can be ingested again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CatalogError
from ..ingest.model import Analysis, Hierarchy, MotifClass
from .store import BulkNodes, BulkRels, GraphStore, Statement, WriteOp
from .vocabulary import descriptor_space, match_level1, normalize_descriptor

#: Largest side (pixels) of a motif's stored mean image; larger ones are block-averaged.
MEAN_IMAGE_MAX_SIDE = 32


@dataclass
class WriteReport:
    """What :func:`write_analysis` did with one image.

    Attributes
    ----------
    image_id : str
        sha256 of the pixels.
    written : bool
        False when the image was already in the catalog (nothing was written).
    n_nodes, n_rels : int
        Nodes and relationships created.
    new_motifs, matched_motifs : list of str
        Ids of the motifs this image created / found already in the catalog (all levels).
    seconds : float
        Wall time of the whole call (vocabulary look-up and transaction).
    message : str
        One line for the user.
    path : str or None
        The image's file.
    """

    image_id: str
    written: bool
    n_nodes: int = 0
    n_rels: int = 0
    new_motifs: list[str] = field(default_factory=list)
    matched_motifs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""
    path: str | None = None

    @property
    def rows_per_second(self) -> float:
        """Nodes plus relationships written per second."""
        return (self.n_nodes + self.n_rels) / self.seconds if self.seconds > 0 else 0.0


def level_motif_id(level: int, key: str) -> str:
    """Deterministic id of a level-2/3 motif from its canonical key.

    Examples
    --------
    >>> level_motif_id(2, "ring:L1-0001,L1-0002")[:3]
    'L2-'
    >>> len(level_motif_id(3, "x"))
    15
    """
    return f"L{level}-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def instance_ids(image_id: str, level: int, index: np.ndarray) -> np.ndarray:
    """Instance ids ``"<first 16 hex of image id>-<level>-<index>"`` (vectorised).

    Examples
    --------
    >>> instance_ids("0123456789abcdef0123", 1, np.array([0, 7])).tolist()
    ['0123456789abcdef-1-0', '0123456789abcdef-1-7']
    """
    prefix = f"{image_id[:16]}-{level}-"
    return np.char.add(prefix, np.asarray(index, dtype=np.int64).astype(str)).astype(object)


def member_positions(indptr: np.ndarray, ring_sizes: np.ndarray | None = None) -> np.ndarray:
    """``PART_OF.pos`` of every member of a CSR member list (vectorised).

    Parameters
    ----------
    indptr : ndarray of int, shape (n + 1,)
        ``Level.members_indptr``.
    ring_sizes : ndarray of int, shape (n,), optional
        Ring length of each owner (level 2: its members are the ring, in cyclic order, then
        the interior columns). None: every member is positional (level 3).

    Returns
    -------
    ndarray of int
        The member's index in its owner's list, or -1 past the ring (an interior column).

    Examples
    --------
    >>> member_positions(np.array([0, 3, 7]), np.array([3, 3])).tolist()
    [0, 1, 2, 0, 1, 2, -1]
    >>> member_positions(np.array([0, 2, 3])).tolist()
    [0, 1, 0]
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    counts = np.diff(indptr)
    rank = np.arange(int(indptr[-1]), dtype=np.int64) - np.repeat(indptr[:-1], counts)
    if ring_sizes is None:
        return rank
    size = np.repeat(np.asarray(ring_sizes, dtype=np.int64), counts)
    return np.where(rank < size, rank, -1)


def _ring_sizes(hierarchy: Hierarchy | None, lev: Any) -> np.ndarray | None:
    """Ring length of each level-2 unit, from the hierarchy's structure (None when unknown:
    then every member is taken as a ring vertex)."""
    s = getattr(hierarchy, "structure", None)
    ring_indptr = getattr(s, "ring_indptr", None)
    if ring_indptr is None:
        return None
    sizes = np.diff(np.asarray(ring_indptr, dtype=np.int64))
    if len(sizes) != len(lev.instance_class) or np.any(
        sizes > np.diff(np.asarray(lev.members_indptr, dtype=np.int64))
    ):
        raise CatalogError(
            "the hierarchy's structure does not match its level-2 units (rings of "
            f"{len(sizes)} units for {len(lev.instance_class)} instances)"
        )
    return sizes


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _small_image(image: np.ndarray | None) -> str:
    """JSON of a motif's mean image: block-averaged to at most ~32 px, min-max scaled to [0, 1],
    3 decimals (a thumbnail for the app; the scale of a mean image has no meaning across images).
    """
    if image is None:
        return ""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2 or a.size == 0 or not np.all(np.isfinite(a)):
        return ""
    factor = -(-max(a.shape) // MEAN_IMAGE_MAX_SIDE)
    if factor > 1:
        from skimage.transform import downscale_local_mean

        a = downscale_local_mean(a, (factor, factor))
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return _json(np.round(a, 3).tolist())


def _prototype(c: MotifClass, pixel_size_A: float, names: dict[int, str]) -> str:
    """JSON prototype: positions in Å relative to the centre, level-1 motif ids, cell."""
    xy = None if c.prototype_xy is None else np.asarray(c.prototype_xy, float) * pixel_size_A
    labels = None
    if c.prototype_labels is not None:
        labels = [names.get(int(k)) for k in np.asarray(c.prototype_labels).ravel()]
    cell = None if c.cell_px is None else np.asarray(c.cell_px, float) * pixel_size_A
    return _json(
        {
            "xy_A": None if xy is None else np.round(xy, 4).tolist(),
            "labels": labels,
            "periodic": bool(c.periodic),
            "cell_A": None if cell is None else np.round(cell, 4).tolist(),
        }
    )


def _relabel(hierarchy: Hierarchy, names: list[str]) -> Hierarchy:
    """Level-2/3 keys rewritten with the global level-1 motif ids."""
    try:
        from ..ingest.hierarchy import relabel
    except ImportError as exc:  # pragma: no cover - the module ships with motifcat
        raise CatalogError(f"cannot relabel the hierarchy: {exc}") from exc
    return relabel(hierarchy, names)


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def _image_exists(store: GraphStore, image_id: str) -> bool:
    return bool(store.read("MATCH (i:Image {id: $id}) RETURN i.id AS id", {"id": image_id}))


def _duplicate_report(
    store: GraphStore,
    image_id: str,
    name: str,
    path: str | None,
    t0: float,
    *,
    sample: str,
    material: str,
    pixel_size_A: float | None,
) -> WriteReport:
    """Nothing written: the image is there. The message names what the caller asked for that
    differs from what is stored (those arguments are ignored)."""
    rows = store.read(
        "MATCH (i:Image {id: $id}) OPTIONAL MATCH (i)-[:OF_SAMPLE]->(s:Sample) "
        "OPTIONAL MATCH (s)-[:OF_MATERIAL]->(m:Material) "
        "RETURN i.pixel_size_A AS px, s.name AS sample, m.name AS material",
        {"id": image_id},
    )
    row = rows[0] if rows else {"px": None, "sample": None, "material": None}
    message = (
        f"{name}: already in the catalog (image {image_id[:12]}) as sample "
        f"{row['sample']!r} of material {row['material']!r}; nothing written"
    )
    ignored = []
    if row["sample"] is not None and row["sample"] != sample:
        ignored.append(f"sample {sample!r}")
    if row["material"] is not None and row["material"] != material:
        ignored.append(f"material {material!r}")
    px_old = row["px"]
    if (
        pixel_size_A is not None
        and px_old is not None
        and not np.isclose(float(px_old), float(pixel_size_A), rtol=1e-9, atol=0.0)
    ):
        ignored.append(f"pixel size {pixel_size_A:g} Å (stored {float(px_old):g} Å)")
    if ignored:
        message += (
            "; ignored: " + ", ".join(ignored) + "; to store it with these instead, ingest it "
            "again with --replace (replace=True)"
        )
    return WriteReport(
        image_id=image_id,
        written=False,
        seconds=time.perf_counter() - t0,
        message=message,
        path=path,
    )


@dataclass(frozen=True)
class CatalogState:
    """What the catalog already holds that the plan of one image depends on.

    Attributes
    ----------
    sample_known : bool
        The sample is in the catalog.
    sample_material : str or None
        Its material (None when the sample is new, or a sample node without material).
    material_known : bool
        A ``Material`` of the requested name exists.
    existing_motifs : frozenset of str
        Motif ids of this image (all levels) that the catalog already has.
    """

    sample_known: bool = False
    sample_material: str | None = None
    material_known: bool = False
    existing_motifs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class MotifLevel:
    """The classes of one level of an analysis with their global motif ids.

    Attributes
    ----------
    level : int
        1, 2 or 3.
    classes : list of MotifClass
        The classes (levels 2/3: keys rewritten with the global level-1 ids).
    ids : dict of int to str
        Global motif id of each class label.
    instances : Level or None
        The hierarchy level (instances, members); None for level 1 (the columns).
    """

    level: int
    classes: list[MotifClass]
    ids: dict[int, str]
    instances: Any = None


@dataclass(frozen=True)
class MotifIds:
    """Global motif ids of every level of one analysis (see :func:`motif_ids`).

    Attributes
    ----------
    levels : list of MotifLevel
        Level 1 first, then the hierarchy's levels in order.
    hierarchy : Hierarchy or None
        The hierarchy relabelled with the global level-1 ids.
    space : str
        The descriptor space of the level-1 descriptors.
    """

    levels: list[MotifLevel]
    hierarchy: Hierarchy | None
    space: str

    @property
    def all_ids(self) -> list[str]:
        """Every motif id of the analysis, sorted."""
        return sorted({g for lev in self.levels for g in lev.ids.values()})


@dataclass(frozen=True)
class WritePlan:
    """Everything one image's transaction writes, computed without a database.

    Attributes
    ----------
    image_id : str
        sha256 of the pixels.
    ops : list of WriteOp
        The write operations, in order (statements for material, sample, image and motifs,
        then the bulk instances and relationships).
    n_nodes, n_rels : int
        Nodes and relationships the operations create.
    n_instances : int
        Instances of every level.
    new_motifs, matched_motifs : list of str
        Motifs created (in creation order) / found in the catalog and counted up (sorted).
    """

    image_id: str
    ops: list[WriteOp]
    n_nodes: int
    n_rels: int
    n_instances: int
    new_motifs: list[str]
    matched_motifs: list[str]


def motif_ids(analysis: Analysis, level1_ids: list[str]) -> MotifIds:
    """Global ids of every class of an analysis, given the ids of its level-1 classes.

    The hierarchy is relabelled with the level-1 ids, so that level-2/3 keys (and their ids,
    :func:`level_motif_id`) are written in the catalog's vocabulary.

    Parameters
    ----------
    analysis : Analysis
        The analysed image.
    level1_ids : list of str
        Global id of each of ``analysis.classes``, in order
        (:func:`motifcat.catalog.vocabulary.match_level1`).

    Returns
    -------
    MotifIds

    Examples
    --------
    >>> from motifcat.datasets import make_tmd
    >>> from motifcat.ingest.pipeline import analyze
    >>> a = analyze(make_tmd((192, 192), seed=3).micrograph())
    >>> m = motif_ids(a, [f"L1-{k + 1:04d}" for k in range(len(a.classes))])
    >>> [lev.level for lev in m.levels]
    [1, 2, 3]
    >>> m.levels[0].ids[0]
    'L1-0001'
    """
    classes1 = list(analysis.classes)
    if len(level1_ids) != len(classes1):
        raise CatalogError(
            f"{len(level1_ids)} level-1 ids for {len(classes1)} level-1 classes"
        )
    names = {c.label: g for c, g in zip(classes1, level1_ids, strict=True)}
    levels = [MotifLevel(1, classes1, names)]
    hierarchy = analysis.hierarchy
    if hierarchy is not None and hierarchy.levels:
        n_labels = max(names) + 1 if names else 0
        label_names = [names.get(k, f"?{k}") for k in range(n_labels)]
        hierarchy = _relabel(hierarchy, label_names)
        for lev in hierarchy.levels:
            ids = {c.label: level_motif_id(lev.level, c.key) for c in lev.classes}
            levels.append(MotifLevel(lev.level, list(lev.classes), ids, lev))
    space = descriptor_space(analysis.params, analysis.micrograph.sha256)
    return MotifIds(levels, hierarchy, space)


def plan_analysis(
    analysis: Analysis,
    motifs: MotifIds,
    catalog: CatalogState,
    *,
    sample: str,
    material: str,
    path: str | None = None,
    ingested_at: str | None = None,
) -> WritePlan:
    """The write operations that store one analysed image, without touching a database.

    One helper per section: material and sample, image, instances of every level (with
    ``INSTANCE_OF`` and ``PART_OF``), ``NEAR``, motifs (new ones created, known ones counted
    up), and the bulk relationships (``IN_IMAGE``, ``CONTAINS``, ``COMPOSED_OF``).

    Parameters
    ----------
    analysis : Analysis
        The analysed image; needs a pixel size and a sha256 identity.
    motifs : MotifIds
        Global ids of its classes (:func:`motif_ids`).
    catalog : CatalogState
        What the catalog holds already.
    sample, material : str
        Sample name and its material.
    path : str, optional
        File to record; default ``analysis.micrograph.path``.
    ingested_at : str, optional
        ISO time of ingestion; default now (UTC).

    Returns
    -------
    WritePlan

    Raises
    ------
    CatalogError
        No pixel size, empty sample/material, a sample of another material (or without one),
        or inconsistent instances.

    Examples
    --------
    >>> from motifcat.datasets import make_tmd
    >>> from motifcat.ingest.pipeline import analyze
    >>> a = analyze(make_tmd((192, 192), seed=3).micrograph())
    >>> m = motif_ids(a, [f"L1-{k + 1:04d}" for k in range(len(a.classes))])
    >>> plan = plan_analysis(a, m, CatalogState(), sample="s1", material="MoSe2")
    >>> sorted(plan.new_motifs) == m.all_ids
    True
    >>> [type(op).__name__ for op in plan.ops][:4]
    ['Statement', 'Statement', 'Statement', 'Statement']
    """
    path, name, sample, material, px, image_id = _checked(analysis, sample, material, path)
    at = ingested_at or datetime.now(UTC).isoformat(timespec="seconds")

    sample_ops, n_nodes, n_rels = _sample_section(catalog, sample, material, name)
    image_ops = _image_section(analysis, image_id, path, px, at, sample)
    inst = _instance_section(analysis, motifs, image_id, px, name)
    near = _near_section(motifs.hierarchy, analysis.labels, image_id, px, name)
    motif_ops, new_ids, composed = _motif_section(motifs, inst.counts, catalog.existing_motifs,
                                                  px)
    bulk = _bulk_section(image_id, inst, near, composed)
    ops = sample_ops + image_ops + motif_ops + bulk
    # Statements (material, sample, image, motifs) come first: the bulk relationships match
    # their endpoints by id, so the Image and the new Motif nodes must exist before them, and
    # the Instance nodes before any relationship of theirs (a missing endpoint aborts the write).
    n_nodes += 1 + len(new_ids) + len(inst.instances)  # the image, new motifs, instances
    n_rels += 1 + sum(len(op.rows) for op in bulk if isinstance(op, BulkRels))  # + OF_SAMPLE
    existing = catalog.existing_motifs
    return WritePlan(
        image_id=image_id,
        ops=ops,
        n_nodes=n_nodes,
        n_rels=n_rels,
        n_instances=len(inst.instances),
        new_motifs=new_ids,
        matched_motifs=sorted(g for g in inst.counts if g in existing),
    )


def _checked(
    analysis: Analysis, sample: str, material: str, path: str | None
) -> tuple[str | None, str, str, str, float, str]:
    """The arguments of one image's write, checked: its path and the name errors use, the
    stripped sample and material, the pixel size (Å) and the image id."""
    path = path if path is not None else analysis.micrograph.path
    name = path or "<array>"
    sample = _check_text(sample, "sample")
    material = _check_text(material, "material")
    return path, name, sample, material, _pixel_size(analysis, name), _image_id(analysis, name)


def _pixel_size(analysis: Analysis, name: str) -> float:
    px = analysis.pixel_size_A
    if px is None or not np.isfinite(px) or px <= 0:
        raise CatalogError(
            f"{name}: no pixel size; pass pixel_size_A (Å per pixel) to store it in the catalog"
        )
    return float(px)


def _image_id(analysis: Analysis, name: str) -> str:
    image_id = analysis.micrograph.sha256
    if not image_id:
        raise CatalogError(f"{name}: the micrograph has no sha256 identity")
    return image_id


def _sample_section(
    catalog: CatalogState, sample: str, material: str, name: str
) -> tuple[list[WriteOp], int, int]:
    """Material and sample: (operations, nodes, relationships); refuses a material conflict."""
    if catalog.sample_known:
        if catalog.sample_material is None:
            raise CatalogError(
                f"{name}: sample {sample!r} is in the catalog but has no material (an "
                f"incomplete sample node); it cannot be attached to {material!r}"
            )
        if catalog.sample_material != material:
            raise CatalogError(
                f"{name}: sample {sample!r} is already a sample of material "
                f"{catalog.sample_material!r}, not {material!r}"
            )
        return [], 0, 0
    ops: list[WriteOp] = []
    n_nodes = 0
    if not catalog.material_known:
        ops.append(Statement("CREATE (:Material {name: $m})", {"m": material}))
        n_nodes += 1
    ops.append(Statement("CREATE (:Sample {id: $s, name: $s})", {"s": sample}))
    ops.append(
        Statement(
            "MATCH (s:Sample {id: $s}) MATCH (m:Material {name: $m}) "
            "CREATE (s)-[:OF_MATERIAL]->(m)",
            {"s": sample, "m": material},
        )
    )
    return ops, n_nodes + 1, 1


def _image_section(
    analysis: Analysis, image_id: str, path: str | None, px: float, at: str, sample: str
) -> list[WriteOp]:
    """The ``Image`` node and its ``OF_SAMPLE`` edge."""
    mg = analysis.micrograph
    height, width = mg.data.shape
    return [
        Statement(
            "CREATE (:Image {id: $id, path: $path, pixel_size_A: $px, width: $w, height: $h, "
            "n_columns: $n, params: $params, metadata: $meta, software: $sw, ingested_at: $at})",
            {
                "id": image_id,
                "path": str(path) if path is not None else "",
                "px": px,
                "w": int(width),
                "h": int(height),
                "n": len(analysis.columns),
                "params": analysis.params.to_json(),
                "meta": _json(mg.metadata),
                "sw": analysis.software,
                "at": at,
            },
        ),
        Statement(
            "MATCH (i:Image {id: $id}) MATCH (s:Sample {id: $s}) CREATE (i)-[:OF_SAMPLE]->(s)",
            {"id": image_id, "s": sample},
        ),
    ]


@dataclass(frozen=True)
class _Instances:
    instances: pd.DataFrame  # id, x_A, y_A, level, cross_section, cross_section_err
    instance_of: pd.DataFrame  # src instance -> dst motif
    part_of: pd.DataFrame  # src lower-level instance -> dst owner, pos
    counts: dict[str, int]  # instances per motif id


def _cross_sections(columns, index, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cross-section and its error of the level-1 instances ``index`` (NaN -> null when the
    columns were not model-fitted, and for higher levels, ``index=None``)."""
    nan = np.full(n, np.nan)
    if index is None or columns.cross_section is None:
        return nan, nan.copy()
    cs = np.asarray(columns.cross_section, dtype=np.float64)[index]
    err = columns.cross_section_err
    err = nan.copy() if err is None else np.asarray(err, dtype=np.float64)[index]
    return cs, err


def _instance_section(
    analysis: Analysis, motifs: MotifIds, image_id: str, px: float, name: str
) -> _Instances:
    """Instances of every level with their motif and ``PART_OF`` (stored members only)."""
    labels = np.asarray(analysis.labels, dtype=np.int64)
    stored1 = labels >= 0
    inst_frames: list[pd.DataFrame] = []
    in_motif: list[pd.DataFrame] = []
    part_of: list[pd.DataFrame] = []
    counts: dict[str, int] = {}
    # Instance id of every instance of the previous level, and whether it is stored.
    ids_prev = np.empty(0, dtype=object)
    stored_prev = np.empty(0, dtype=bool)

    for ml in motifs.levels:
        level, lev = ml.level, ml.instances
        if level == 1:
            index = np.flatnonzero(stored1)
            xy = np.asarray(analysis.columns.xy, dtype=np.float64)[index]
            cls = labels[index]
            ids = instance_ids(image_id, 1, index)
            ids_all = instance_ids(image_id, 1, np.arange(len(labels)))
            stored_all = stored1
        else:
            n = len(lev.instance_class)
            index = np.arange(n)
            xy = np.asarray(lev.instance_xy, dtype=np.float64).reshape(n, 2)
            cls = np.asarray(lev.instance_class, dtype=np.int64)
            ids = instance_ids(image_id, level, index)
            ids_all = ids
            stored_all = np.ones(n, dtype=bool)
            # PART_OF: every member (lower-level instance) -> its owner, stored members only,
            # with the member's position in its owner (computed before border columns go).
            indptr = np.asarray(lev.members_indptr, dtype=np.int64)
            members = np.asarray(lev.members_indices, dtype=np.int64)
            owner = np.repeat(index, np.diff(indptr))
            if len(members) and (members.min() < 0 or members.max() >= len(ids_prev)):
                raise CatalogError(f"{name}: level-{level} members index past level {level - 1}")
            rings = _ring_sizes(motifs.hierarchy, lev) if level == 2 else None
            pos = member_positions(indptr, rings)
            keep = stored_prev[members]
            part_of.append(
                pd.DataFrame(
                    {"src": ids_prev[members[keep]], "dst": ids[owner[keep]], "pos": pos[keep]}
                )
            )
        gid = _class_ids(ml.ids, cls, level, name)
        cs, cs_err = _cross_sections(analysis.columns, index if level == 1 else None, len(ids))
        inst_frames.append(
            pd.DataFrame(
                {
                    "id": ids,
                    "x_A": xy[:, 0] * px,
                    "y_A": xy[:, 1] * px,
                    "level": level,
                    "cross_section": cs,
                    "cross_section_err": cs_err,
                }
            )
        )
        in_motif.append(pd.DataFrame({"src": ids, "dst": gid}))
        uniq, cnt = np.unique(gid.astype(str), return_counts=True)
        for g, k in zip(uniq.tolist(), cnt.tolist(), strict=True):
            counts[g] = counts.get(g, 0) + int(k)
        ids_prev, stored_prev = ids_all, stored_all

    part = (
        pd.concat(part_of, ignore_index=True)
        if part_of
        else pd.DataFrame({"src": [], "dst": [], "pos": np.zeros(0, np.int64)})
    )
    return _Instances(
        instances=pd.concat(inst_frames, ignore_index=True),
        instance_of=pd.concat(in_motif, ignore_index=True),
        part_of=part,
        counts=counts,
    )


def _class_ids(lookup: dict[int, str], cls: np.ndarray, level: int, name: str) -> np.ndarray:
    """Motif id of each instance's class; refuses a class the analysis does not have."""
    gid = pd.Series(cls).map(lookup)
    if gid.isna().any():
        bad = sorted(set(cls[gid.isna().to_numpy()].tolist()))[:5]
        raise CatalogError(f"{name}: level-{level} instances refer to unknown classes {bad}")
    return gid.to_numpy(dtype=object)


def _near_section(
    hierarchy: Hierarchy | None, labels: np.ndarray, image_id: str, px: float, name: str
) -> pd.DataFrame:
    """``NEAR {d_A}`` between stored level-1 instances (none without a hierarchy)."""
    labels = np.asarray(labels, dtype=np.int64)
    if hierarchy is None or not len(hierarchy.neighbour_pairs):
        return pd.DataFrame({"src": [], "dst": [], "d_A": []})
    stored1 = labels >= 0
    pairs = np.asarray(hierarchy.neighbour_pairs, dtype=np.int64).reshape(-1, 2)
    dist = np.asarray(hierarchy.neighbour_dist_px, dtype=np.float64)
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(labels)):
        raise CatalogError(f"{name}: neighbour pairs index past the {len(labels)} columns")
    ok = stored1[pairs[:, 0]] & stored1[pairs[:, 1]]
    col_ids = instance_ids(image_id, 1, np.arange(len(labels)))
    return pd.DataFrame(
        {"src": col_ids[pairs[ok, 0]], "dst": col_ids[pairs[ok, 1]], "d_A": dist[ok] * px}
    )


def _motif_section(
    motifs: MotifIds, counts: dict[str, int], existing: frozenset[str], px: float
) -> tuple[list[WriteOp], list[str], dict[tuple[str, str], int]]:
    """New motifs created (with ``COMPOSED_OF`` counts), known ones counted up.

    Returns the operations, the ids of the new motifs in creation order and the
    ``(parent, child) -> count`` of the new higher-level motifs.
    """
    names = motifs.levels[0].ids
    new_rows: list[dict[str, Any]] = []
    composed: dict[tuple[str, str], int] = {}
    lower_names: dict[int, str] = {}
    created: set[str] = set()
    for ml in motifs.levels:
        for c in ml.classes:
            g = ml.ids[c.label]
            if g in existing or g in created:
                continue
            created.add(g)
            if ml.level == 1:
                descriptor = normalize_descriptor(c.descriptor, motifs.space).tolist()
                key = f"L1:{motifs.space}"
            else:
                descriptor = []
                key = c.key
                for low, mult in c.composed_of.items():
                    low_id = lower_names.get(int(low))
                    if low_id is not None:
                        composed[(g, low_id)] = composed.get((g, low_id), 0) + int(mult)
            new_rows.append(
                {
                    "id": g,
                    "level": ml.level,
                    "key": key,
                    "descriptor": [float(v) for v in descriptor],
                    "n": counts.get(g, 0),
                    "prototype": _prototype(c, px, names),
                    "mean_image": _small_image(c.mean_image),
                    "family": "" if ml.level == 1 else (c.family or c.key),
                }
            )
        lower_names = ml.ids
    ops: list[WriteOp] = []
    if new_rows:
        ops.append(
            Statement(
                "UNWIND $rows AS r CREATE (:Motif {id: r.id, level: r.level, key: r.key, "
                "descriptor: r.descriptor, n_instances: r.n, prototype: r.prototype, "
                "mean_image: r.mean_image, family: r.family})",
                {"rows": new_rows},
            )
        )
    old = [{"id": g, "n": n} for g, n in counts.items() if g in existing]
    if old:
        ops.append(
            Statement(
                "UNWIND $rows AS r MATCH (m:Motif {id: r.id}) "
                "SET m.n_instances = m.n_instances + r.n",
                {"rows": old},
            )
        )
    return ops, [r["id"] for r in new_rows], composed


def _bulk_section(
    image_id: str, inst: _Instances, near: pd.DataFrame, composed: dict[tuple[str, str], int]
) -> list[WriteOp]:
    """Bulk instances and every relationship of the image."""
    counts = inst.counts
    contains = pd.DataFrame({"src": image_id, "dst": list(counts), "count": list(counts.values())})
    comp = pd.DataFrame(
        {
            "src": [a for a, _ in composed],
            "dst": [b for _, b in composed],
            "count": list(composed.values()),
        }
    )
    in_image = pd.DataFrame({"src": inst.instances["id"], "dst": image_id})
    return [
        BulkNodes("Instance", inst.instances),
        BulkRels("IN_IMAGE", "Instance", "Image", in_image),
        BulkRels("INSTANCE_OF", "Instance", "Motif", inst.instance_of),
        BulkRels("NEAR", "Instance", "Instance", near),
        BulkRels("PART_OF", "Instance", "Instance", inst.part_of),
        BulkRels("CONTAINS", "Image", "Motif", contains),
        BulkRels("COMPOSED_OF", "Motif", "Motif", comp),
    ]


def _catalog_state(store: GraphStore, sample: str, material: str) -> CatalogState:
    """The sample and material as the catalog has them (motifs are looked up later)."""
    rows = store.read(
        "MATCH (s:Sample {id: $s}) OPTIONAL MATCH (s)-[:OF_MATERIAL]->(m:Material) "
        "RETURN m.name AS material",
        {"s": sample},
    )
    if rows:
        return CatalogState(sample_known=True, sample_material=rows[0]["material"])
    known = bool(store.read("MATCH (m:Material {name: $m}) RETURN m.name AS n", {"m": material}))
    return CatalogState(material_known=known)


def write_analysis(
    store: GraphStore,
    analysis: Analysis,
    *,
    sample: str,
    material: str,
    path: str | None = None,
    threshold: float | None = None,
) -> WriteReport:
    """Store one analysed image, its instances and its motifs, in one transaction.

    Parameters
    ----------
    store : GraphStore
        An open catalog (:func:`motifcat.catalog.open_catalog`).
    analysis : Analysis
        From :func:`motifcat.ingest.pipeline.analyze`; needs a pixel size.
    sample : str
        Sample name (unique in the catalog; created on first use).
    material : str
        Material (formula or name) the sample is of; a sample has exactly one.
    path : str, optional
        File to record; default ``analysis.micrograph.path``.
    threshold : float, optional
        Level-1 descriptor match distance; default: the measured threshold of the analysis'
        descriptor space (:func:`motifcat.catalog.vocabulary.default_threshold`).

    Returns
    -------
    WriteReport
        ``written`` is False (and nothing was written) when the image was already there; its
        ``message`` then names the stored sample and material and any of ``sample``,
        ``material`` or pixel size given here that differ (they are ignored).

    Notes
    -----
    Writes to one catalog must be serialised (see the module notes, "One writer at a time"):
    the duplicate check and the numbering of new level-1 motifs are read before the
    transaction. If the transaction fails because another writer stored the same image
    meanwhile, the image is reported as a duplicate, not as a failure.

    ``NEAR`` edges come from the hierarchy's neighbour graph: with
    ``AnalysisParams.hierarchy=False`` none are stored.

    Raises
    ------
    CatalogError
        No pixel size, empty sample/material, a sample already attached to another material,
        or a failed transaction (then nothing of the image is in the catalog).

    Examples
    --------
    >>> import os, tempfile
    >>> from motifcat.catalog import open_catalog
    >>> from motifcat.datasets import make_tmd
    >>> from motifcat.ingest.pipeline import analyze
    >>> a = analyze(make_tmd((192, 192), seed=3).micrograph())
    >>> with open_catalog(os.path.join(tempfile.mkdtemp(), "cat")) as store:
    ...     first = write_analysis(store, a, sample="s1", material="MoSe2")
    ...     again = write_analysis(store, a, sample="s1", material="MoSe2")
    >>> first.written, again.written, again.n_nodes
    (True, False, 0)
    """
    t0 = time.perf_counter()
    path, name, sample, material, px, image_id = _checked(analysis, sample, material, path)

    if _image_exists(store, image_id):
        return _duplicate_report(
            store, image_id, name, path, t0, sample=sample, material=material, pixel_size_A=px
        )
    # Read what exists: the sample (a conflict is refused before the vocabulary is read), the
    # level-1 vocabulary, then which of this image's motif ids are known.
    state = _catalog_state(store, sample, material)
    _sample_section(state, sample, material, name)
    space = descriptor_space(analysis.params, image_id)
    motifs = motif_ids(analysis, match_level1(store, list(analysis.classes), threshold,
                                              space=space))
    found = store.read(
        "MATCH (m:Motif) WHERE m.id IN $ids RETURN m.id AS id", {"ids": motifs.all_ids}
    )
    state = replace(state, existing_motifs=frozenset(r["id"] for r in found))
    plan = plan_analysis(analysis, motifs, state, sample=sample, material=material, path=path)

    try:
        store.write(plan.ops)
    except CatalogError:
        # Another writer may have stored the same image meanwhile (the duplicate check ran
        # before this transaction; Neo4j then refuses the second Image id): not a failure.
        try:
            raced = _image_exists(store, image_id)
        except Exception:
            raced = False
        if raced:
            return _duplicate_report(
                store, image_id, name, path, t0, sample=sample, material=material, pixel_size_A=px
            )
        raise
    seconds = time.perf_counter() - t0
    return WriteReport(
        image_id=image_id,
        written=True,
        n_nodes=plan.n_nodes,
        n_rels=plan.n_rels,
        new_motifs=plan.new_motifs,
        matched_motifs=plan.matched_motifs,
        seconds=seconds,
        message=(
            f"{name}: wrote image {image_id[:12]} to sample {sample!r} ({material}): "
            f"{plan.n_instances} instances, {len(plan.new_motifs)} new and "
            f"{len(plan.matched_motifs)} known motifs, {plan.n_nodes + plan.n_rels} rows in "
            f"{seconds:.2f} s"
        ),
        path=path,
    )
