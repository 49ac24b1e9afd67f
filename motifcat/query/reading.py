"""Running a named statement of :data:`~motifcat.query.cypher.CYPHER` and checking arguments.

Shared by the catalog questions, the motif questions and the image overlays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from ..catalog.store import GraphStore
from ..errors import QueryError
from .cypher import CYPHER

__all__ = [
    "LEVELS",
]


#: Levels of the motif hierarchy (1 = column environment, 2 = unit, 3 = composite).
LEVELS = (1, 2, 3)


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


def _require_image(store: GraphStore, image_id: Any) -> str:
    image_id = _check_id(image_id, "image_id")
    if not _read(store, "image_exists", image_id=image_id):
        raise QueryError(f"image_id: no image {image_id!r} in the catalog {store.location}")
    return image_id


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
