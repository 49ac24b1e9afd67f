"""Questions about one material: its level-1 classes (for species suggestions, which must never
mix materials) and its stored reference crystal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..catalog.store import GraphStore
from ..errors import QueryError
from .reading import _check_id, _frame, _mean_image, _read

__all__ = ["level1_names", "material_level1", "material_reference", "with_level1_names"]


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


def _material_brightness(store: GraphStore, material: str) -> pd.DataFrame:
    """Level-1 motifs of one material: ``motif_id, count`` (its columns there) and
    ``cross_section``, the mean cross-section of its columns, each divided by the mean of its
    image's classified columns (so that dose and detector gain drop out); NaN when the catalog
    stores no cross-sections."""
    df = material_level1(store, material)[["image_id", "motif_id", "count", "cross_section"]]
    if df.empty:
        return pd.DataFrame({"motif_id": [], "count": [], "cross_section": []})
    n = df["count"].astype(float)
    weighted = (df["cross_section"] * n).groupby(df["image_id"]).transform("sum")
    per_image = weighted / n.groupby(df["image_id"]).transform("sum")
    df = df.assign(rel=df["cross_section"] / per_image * n)
    out = df.groupby("motif_id").agg(count=("count", "sum"), rel=("rel", "sum"))
    out["cross_section"] = out["rel"] / out["count"]
    out.loc[~df.groupby("motif_id")["rel"].apply(lambda v: v.notna().all()), "cross_section"] = (
        np.nan
    )
    return out.drop(columns="rel").reset_index()


def level1_names(store: GraphStore) -> dict[str, str]:
    """Readable names of the level-1 motifs (issue 10): ``{"L1-0001": "bright 44 %", ...}``.

    Within each material, a motif is named by where the cross-section of its columns ranks
    among the material's level-1 motifs (rank words up to four levels, else the ratio to the
    brightest, "0.62× 12 %") and by its share of the material's classified columns
    (:func:`motifcat.ingest.names.display_names`, the words ``motifcat analyze`` prints),
    unique within the material (and so, with the material's name in front, in the catalog). The
    cross-section is that of the stored instances, relative to their image's mean; a catalog
    written before cross-sections were stored gets the share alone. A motif seen in several
    materials takes the name it has in the material where it has most columns; when the
    catalog holds several materials the name starts with that material. Names are for
    display next to the ids, never an identity.

    Examples
    --------
    >>> level1_names(store)  # doctest: +SKIP
    {'L1-0001': 'bright 52 %', 'L1-0002': 'dim 48 %'}
    """
    from ..ingest.names import display_names, share_names
    from .catalog_questions import list_materials

    materials = list(list_materials(store)["material"])
    best: dict[str, tuple[int, str]] = {}
    for mat in sorted(materials):
        got = _material_brightness(store, mat)
        if got.empty:
            continue
        ids, n = list(got["motif_id"]), got["count"].to_numpy(dtype=float)
        xs = got["cross_section"].to_numpy(dtype=float)
        if np.isfinite(xs).all():
            names = display_names(xs, n)
        else:  # a catalog written before cross-sections were stored: the share alone
            names = share_names(n)
        for m, name, k in zip(ids, names, n, strict=True):
            if m not in best or k > best[m][0]:
                best[m] = (int(k), f"{mat} {name}" if len(materials) > 1 else name)
    return {m: best[m][1] for m in sorted(best)}


def with_level1_names(
    store: GraphStore, df: pd.DataFrame, column: str = "motif_id"
) -> pd.DataFrame:
    """``df`` with a ``name`` column right after ``column``: the readable name of each
    level-1 motif (:func:`level1_names`), empty for levels 2 and 3.

    Examples
    --------
    >>> with_level1_names(store, recurring_motifs(store))  # doctest: +SKIP
    """
    if df.empty or column not in df.columns or "name" in df.columns:
        return df
    names = level1_names(store)
    out = df.copy()
    out.insert(out.columns.get_loc(column) + 1, "name", [names.get(m, "") for m in out[column]])
    return out
