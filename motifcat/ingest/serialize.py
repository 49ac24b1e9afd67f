"""Save an :class:`~motifcat.ingest.model.Analysis` to ``.npz`` (arrays) or ``.json`` (text)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MotifcatError
from .model import Analysis, Columns, MotifClass


def _class_record(c: MotifClass) -> dict[str, Any]:
    rec: dict[str, Any] = {"level": c.level, "label": c.label, "key": c.key, "count": c.count}
    rec["composed_of"] = {str(k): int(v) for k, v in c.composed_of.items()}
    if c.descriptor is not None:
        rec["descriptor"] = np.asarray(c.descriptor).tolist()
    if c.prototype_xy is not None:
        rec["prototype_xy"] = np.round(np.asarray(c.prototype_xy), 4).tolist()
        rec["prototype_labels"] = np.asarray(c.prototype_labels).tolist()
    rec["periodic"] = bool(c.periodic)
    return rec


def analysis_arrays(analysis: Analysis) -> dict[str, np.ndarray]:
    """Every array of an analysis under a flat name, plus its JSON summary under ``summary``.

    Examples
    --------
    >>> from motifcat.ingest.synth import tmd_image
    >>> from motifcat.ingest.pipeline import analyze
    >>> from motifcat.ingest.model import AnalysisParams
    >>> a = analyze(tmd_image((256, 256), seed=2).micrograph(), AnalysisParams(hierarchy=False))
    >>> sorted(analysis_arrays(a))[:3]
    ['columns_xy', 'features', 'has_patch']
    """
    out: dict[str, np.ndarray] = {
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
    """Write an analysis to ``path``: ``.npz`` keeps every array, ``.json`` a readable copy.

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
            "intensity": np.asarray(analysis.columns.intensity).tolist(),
            **{
                k: np.asarray(getattr(analysis.columns, k)).tolist()
                for k in Columns.OPTIONAL
                if getattr(analysis.columns, k) is not None
            },
            "labels": analysis.labels.tolist(),
            "features": np.round(analysis.features, 6).tolist(),
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
    >>> from motifcat.ingest.synth import tmd_image
    >>> from motifcat.ingest.pipeline import analyze
    >>> from motifcat.ingest.model import AnalysisParams
    >>> a = analyze(tmd_image((256, 256), seed=2).micrograph(), AnalysisParams(hierarchy=False))
    >>> out = os.path.join(tempfile.mkdtemp(), "a.npz")
    >>> cols = load_columns(save_analysis(a, out))
    >>> bool(np.array_equal(cols.xy, a.columns.xy)), len(cols) == len(a.columns)
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
