"""Save an :class:`~motifcat.ingest.model.Analysis` to ``.npz`` (arrays) or ``.json`` (text),
and load it back from ``.npz``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MotifcatError
from .model import Analysis, AnalysisParams, Columns, Hierarchy, Lattice, Micrograph, MotifClass


def _class_record(c: MotifClass) -> dict[str, Any]:
    rec: dict[str, Any] = {"level": c.level, "label": c.label, "key": c.key, "count": c.count}
    rec["composed_of"] = {str(k): int(v) for k, v in c.composed_of.items()}
    if c.descriptor is not None:
        rec["descriptor"] = np.asarray(c.descriptor).tolist()
    if c.prototype_xy is not None:
        rec["prototype_xy"] = np.round(np.asarray(c.prototype_xy), 4).tolist()
        rec["prototype_labels"] = np.asarray(c.prototype_labels).tolist()
    rec["periodic"] = bool(c.periodic)
    if c.cell_px is not None:
        rec["cell_px"] = np.asarray(c.cell_px, dtype=float).tolist()
    return rec


def analysis_arrays(analysis: Analysis) -> dict[str, np.ndarray]:
    """Every array of an analysis under a flat name, plus its JSON summary under ``summary``.

    Examples
    --------
    >>> from motifcat.datasets import make_tmd
    >>> from motifcat.ingest.pipeline import analyze
    >>> from motifcat.ingest.model import AnalysisParams
    >>> a = analyze(make_tmd((256, 256), seed=2).micrograph(), AnalysisParams(hierarchy=False))
    >>> sorted(k for k in analysis_arrays(a) if not k.startswith("columns_"))[:3]
    ['features', 'has_patch', 'image']
    >>> "columns_cross_section" in analysis_arrays(a)
    True
    """
    out: dict[str, np.ndarray] = {
        "image": analysis.micrograph.data,
        "columns_xy": analysis.columns.xy,
        "intensity": analysis.columns.intensity,
        **{
            f"columns_{k}": getattr(analysis.columns, k)
            for k in Columns.OPTIONAL
            if getattr(analysis.columns, k) is not None
        },
        "has_patch": analysis.has_patch,
        "labels": analysis.labels,
        "features": analysis.features,
    }
    if analysis.moments is not None:
        out["moments"] = analysis.moments
    for c in analysis.classes:
        if c.mean_image is not None:
            out[f"level1_mean_image_{c.label}"] = c.mean_image
    if analysis.hierarchy is not None:
        h = analysis.hierarchy
        out["neighbour_pairs"] = h.neighbour_pairs
        out["neighbour_dist_px"] = h.neighbour_dist_px
        for lev in h.levels:
            p = f"level{lev.level}_"
            out[p + "instance_class"] = lev.instance_class
            out[p + "instance_xy"] = lev.instance_xy
            out[p + "members_indptr"] = lev.members_indptr
            out[p + "members_indices"] = lev.members_indices
    out["summary"] = np.array(json.dumps(analysis_summary(analysis)))
    return out


def analysis_summary(analysis: Analysis) -> dict[str, Any]:
    """JSON-serialisable description of an analysis: image, parameters, classes per level."""
    mg = analysis.micrograph
    levels = [{"level": 1, "classes": [_class_record(c) for c in analysis.classes]}]
    if analysis.hierarchy is not None:
        levels += [
            {"level": lev.level, "classes": [_class_record(c) for c in lev.classes]}
            for lev in analysis.hierarchy.levels
        ]
    return {
        "software": analysis.software,
        "image": {
            "path": mg.path,
            "sha256": mg.sha256,
            "shape": list(mg.data.shape),
            "pixel_size_A": analysis.pixel_size_A,
            "metadata": mg.metadata,
        },
        "params": json.loads(analysis.params.to_json()),
        "lattice": {
            "period_px": analysis.lattice.period_px,
            "spacing_px": analysis.lattice.spacing_px,
        },
        "n_columns": len(analysis.columns),
        "n_dropped_at_border": analysis.n_dropped_at_border,
        "levels": levels,
    }


def save_analysis(analysis: Analysis, path: str | Path) -> Path:
    """Write an analysis to ``path``: ``.npz`` keeps every array (and the image), so that
    :func:`load_analysis` gives the analysis back; ``.json`` is a readable copy.

    Parameters
    ----------
    analysis : Analysis
    path : str or Path
        Ends in ``.npz`` or ``.json``.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    try:
        _write(analysis, path)
    except OSError as exc:
        raise MotifcatError(f"{path}: cannot write the analysis: {exc.strerror or exc}") from exc
    return path


def _write(analysis: Analysis, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        np.savez_compressed(path, **analysis_arrays(analysis))
    elif suffix == ".json":
        doc = analysis_summary(analysis)
        doc["columns"] = {
            "xy": np.round(analysis.columns.xy, 3).tolist(),
            "labels": analysis.labels.tolist(),
            "features": np.round(analysis.features, 6).tolist(),
            "intensity": np.asarray(analysis.columns.intensity).tolist(),
            **{
                k: np.asarray(getattr(analysis.columns, k)).tolist()
                for k in Columns.OPTIONAL
                if getattr(analysis.columns, k) is not None
            },
        }
        if analysis.hierarchy is not None:
            doc["neighbour_pairs"] = analysis.hierarchy.neighbour_pairs.tolist()
            doc["hierarchy"] = [
                {
                    "level": lev.level,
                    "instance_class": lev.instance_class.tolist(),
                    "instance_xy": np.round(lev.instance_xy, 3).tolist(),
                    "members_indptr": lev.members_indptr.tolist(),
                    "members_indices": lev.members_indices.tolist(),
                }
                for lev in analysis.hierarchy.levels
            ]
        path.write_text(json.dumps(doc))
    else:
        raise MotifcatError(f"{path}: output must end in .npz or .json")


def load_analysis(path: str | Path) -> Analysis:
    """Read an analysis written by :func:`save_analysis` to ``.npz``.

    The level-1 result (columns, features, moments, labels, classes with their mean images)
    is read as saved. The hierarchy is rebuilt from the saved columns, labels, image and
    parameters (:func:`~motifcat.ingest.hierarchy.build_hierarchy` is deterministic), because
    its geometric structure, which the catalog writer needs to rename level-1 classes, is not
    an array; the rebuilt levels must equal the saved ones.

    Parameters
    ----------
    path : str or Path
        An ``.npz`` file from :func:`save_analysis`.

    Returns
    -------
    Analysis

    Raises
    ------
    MotifcatError
        The file is missing, not an ``.npz`` analysis (a ``.json`` copy has no image), or its
        hierarchy does not rebuild to the saved one (written by another version).

    Examples
    --------
    >>> import os, tempfile
    >>> from motifcat.datasets import make_tmd
    >>> from motifcat.ingest.pipeline import analyze
    >>> a = analyze(make_tmd((192, 192), seed=3).micrograph())
    >>> b = load_analysis(save_analysis(a, os.path.join(tempfile.mkdtemp(), "a.npz")))
    >>> b.micrograph.sha256 == a.micrograph.sha256, bool((b.labels == a.labels).all())
    (True, True)
    >>> keys = [[c.key for c in x.hierarchy.levels[0].classes] for x in (a, b)]
    >>> keys[0] == keys[1]
    True
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise MotifcatError(
            f"{path}: load_analysis reads the .npz of save_analysis (a .json copy has no image)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise MotifcatError(f"{path}: cannot read the analysis: {exc}") from exc
    missing = [k for k in ("image", "summary", "columns_xy", "labels") if k not in arrays]
    if missing:
        raise MotifcatError(f"{path}: not an analysis saved by motifcat (no {missing})")
    doc = json.loads(str(arrays["summary"]))
    img = doc["image"]
    micrograph = Micrograph(
        data=np.asarray(arrays["image"], dtype=np.float32),
        pixel_size_A=img["pixel_size_A"],
        path=img["path"],
        sha256=img["sha256"],
        metadata=img["metadata"],
    )
    params = AnalysisParams.from_json(json.dumps(doc["params"]))
    level1 = next(lev for lev in doc["levels"] if lev["level"] == 1)
    classes = [
        _class_from_record(rec, arrays.get(f"level1_mean_image_{rec['label']}"))
        for rec in level1["classes"]
    ]
    labels = np.asarray(arrays["labels"], dtype=np.int64)
    columns = Columns(
        xy=np.asarray(arrays["columns_xy"], dtype=np.float64),
        intensity=np.asarray(arrays["intensity"], dtype=np.float64),
        **{k: arrays[f"columns_{k}"] for k in Columns.OPTIONAL if f"columns_{k}" in arrays},
    )
    hierarchy = None
    if "neighbour_pairs" in arrays:
        hierarchy = _rebuilt_hierarchy(path, micrograph, columns, labels, params, arrays)
    return Analysis(
        micrograph=micrograph,
        params=params,
        lattice=Lattice(**doc["lattice"]),
        columns=columns,
        has_patch=np.asarray(arrays["has_patch"], dtype=bool),
        features=arrays["features"],
        moments=arrays.get("moments"),
        labels=labels,
        classes=classes,
        hierarchy=hierarchy,
        software=doc["software"],
    )


def _class_from_record(rec: dict[str, Any], mean_image: np.ndarray | None) -> MotifClass:
    def arr(name: str, dtype) -> np.ndarray | None:
        return None if rec.get(name) is None else np.asarray(rec[name], dtype=dtype)

    return MotifClass(
        level=int(rec["level"]),
        label=int(rec["label"]),
        key=rec["key"],
        count=int(rec["count"]),
        descriptor=arr("descriptor", np.float64),
        mean_image=mean_image,
        prototype_xy=arr("prototype_xy", np.float64),
        prototype_labels=arr("prototype_labels", np.int64),
        composed_of={int(k): int(v) for k, v in rec.get("composed_of", {}).items()},
        periodic=bool(rec.get("periodic", False)),
        cell_px=arr("cell_px", np.float64),
    )


def _rebuilt_hierarchy(path: Path, micrograph: Micrograph, columns: Columns, labels: np.ndarray,
                       params: AnalysisParams, arrays: dict[str, np.ndarray]) -> Hierarchy:
    """The hierarchy of the saved analysis, rebuilt the way ``analyze`` built it."""
    from .hierarchy import build_from_params

    h = build_from_params(columns.xy, labels, params, spacing_px=params.spacing_px,
                          image=micrograph.data)
    same = np.array_equal(h.neighbour_pairs, arrays["neighbour_pairs"]) and all(
        np.array_equal(getattr(lev, name), arrays.get(f"level{lev.level}_{name}"))
        for lev in h.levels
        for name in ("instance_class", "members_indptr", "members_indices")
    )
    if not same:
        raise MotifcatError(
            f"{path}: the saved hierarchy does not rebuild from its columns (written by another "
            "motifcat version?); analyse the image again"
        )
    return h


def load_columns(path: str | Path) -> Columns:
    """The columns of an analysis written by :func:`save_analysis` (``.npz`` or ``.json``),
    with every per-column array the analysis had (positions, intensities and, when the
    columns were model-fitted, widths, heights, backgrounds, cross-sections and errors).

    Raises
    ------
    MotifcatError
        If the file cannot be read or holds no columns.

    Examples
    --------
    >>> import tempfile, os
    >>> from motifcat.datasets import make_tmd
    >>> from motifcat.ingest.pipeline import analyze
    >>> from motifcat.ingest.model import AnalysisParams
    >>> a = analyze(make_tmd((256, 256), seed=2).micrograph(), AnalysisParams(hierarchy=False))
    >>> out = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> cols = load_columns(save_analysis(a, out))
    >>> bool(np.allclose(cols.cross_section, a.columns.cross_section)), len(cols) == len(a.columns)
    (True, True)
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "columns_xy" not in z:
                    raise MotifcatError(f"{path}: no columns in this file")
                arrays = {k: z[f"columns_{k}"] for k in Columns.OPTIONAL if f"columns_{k}" in z}
                return Columns(xy=z["columns_xy"], intensity=z["intensity"], **arrays)
        doc = json.loads(path.read_text())
        cols = doc.get("columns") or {}
        if "xy" not in cols:
            raise MotifcatError(f"{path}: no columns in this file")
        xy = np.asarray(cols["xy"], dtype=np.float64).reshape(-1, 2)
        intensity = np.asarray(cols.get("intensity", np.full(len(xy), np.nan)), dtype=np.float64)
        arrays = {k: np.asarray(cols[k], dtype=np.float64) for k in Columns.OPTIONAL if k in cols}
        return Columns(xy=xy, intensity=intensity, **arrays)
    except (OSError, ValueError, KeyError) as exc:
        raise MotifcatError(f"{path}: cannot read the columns: {exc}") from exc
