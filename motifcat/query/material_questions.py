"""Questions about one material: its level-1 classes (for species suggestions, which must never
mix materials) and its stored reference crystal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..catalog.store import GraphStore
from ..errors import QueryError
from .reading import _check_id, _frame, _mean_image, _read

__all__ = ["material_level1", "material_reference"]


def material_level1(store: GraphStore, material: str) -> pd.DataFrame:
    """The level-1 classes seen in each image of one material, with their counts there.

    Parameters
    ----------
    store : GraphStore
    material : str

    Returns
    -------
    DataFrame
        One row per (image, class): ``image_id, motif_id, count, mean_image`` (2-D array or
        None) and ``cross_section`` (mean over the class's instances in that image; NaN when the
        catalog stores no cross-sections).

    Examples
    --------
    >>> material_level1(store, "MoSe2")  # doctest: +SKIP
    """
    material = _check_id(material, "material")
    rows = _read(store, "material_level1", material=material)
    df = _frame(rows, ["image_id", "motif_id", "mean_image", "count"])
    df["mean_image"] = [_mean_image(v) for v in df["mean_image"]]
    df["cross_section"] = np.nan
    try:
        xs = _read(store, "material_cross_sections", material=material)
    except QueryError:  # a catalog written before cross-sections were stored
        xs = []
    if xs:
        got = {(r["image_id"], r["motif_id"]): r["cross_section"] for r in xs}
        df["cross_section"] = [
            float(v) if (v := got.get((i, m))) is not None else np.nan
            for i, m in zip(df["image_id"], df["motif_id"], strict=True)
        ]
    return df[["image_id", "motif_id", "count", "mean_image", "cross_section"]]


def material_reference(store: GraphStore, material: str) -> str | None:
    """The stored reference crystal of a material (JSON text), or None.

    Examples
    --------
    >>> material_reference(store, "MoSe2")  # doctest: +SKIP
    """
    material = _check_id(material, "material")
    try:
        rows = _read(store, "material_reference", material=material)
    except QueryError:  # a catalog opened read-only before the Reference table existed
        return None
    return rows[0]["structure"] if rows else None
