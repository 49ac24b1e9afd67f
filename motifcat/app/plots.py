"""Plotly figures of the app, built from the query layer's DataFrames (no Streamlit here).

Lengths are in Å throughout: the micrograph is placed with its pixel size, so the columns and
units (stored in Å) fall on it without conversion. Image axes point right (x) and down (y).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative, unlabel_rgb
from scipy.spatial import cKDTree

#: Colours of motif classes, in order of first appearance.
PALETTE: list[str] = list(qualitative.Plotly) + list(qualitative.D3) + list(qualitative.Set3)

#: Rows of the hierarchy tree with more motifs than this are labelled by their counts alone.
MAX_FULL_LABELS = 12

#: Colour of columns without a class (patch crossing the border).
UNCLASSIFIED = "#9e9e9e"


def motif_colour(motif_id: str) -> str:
    """The colour of a motif, the same on every page and in every image.

    Level-1 ids (``L1-0007``) take the palette in number order, so the few column classes of a
    catalog are all distinct; other ids take a colour from a stable hash of the id.

    Examples
    --------
    >>> motif_colour("L1-0001") == PALETTE[0]
    True
    """
    text = str(motif_id)
    head, _, number = text.rpartition("-")
    if head == "L1" and number.isdigit():
        return PALETTE[(int(number) - 1) % len(PALETTE)]
    return PALETTE[zlib.crc32(text.encode()) % len(PALETTE)]


def motif_colours(motif_ids) -> dict[str, str]:
    """:func:`motif_colour` of each distinct id (missing ids are left out).

    Examples
    --------
    >>> motif_colours(["L1-0002", None])
    {'L1-0002': '#EF553B'}
    """
    ids = {str(m) for m in motif_ids if m is not None and not pd.isna(m)}
    return {m: motif_colour(m) for m in sorted(ids)}


def _named(motif_id, names: Mapping[str, str] | None) -> str:
    """``"L1-0001 · bright 44 %"`` when the motif has a readable name, else its id."""
    name = (names or {}).get(motif_id)
    return f"{motif_id} · {name}" if name else str(motif_id)


def prototype_figure(
    xy: np.ndarray, motifs: list[str], names: Mapping[str, str] | None = None
) -> go.Figure:
    """The mean aligned columns of a motif (Å, relative to its centre), coloured by motif
    (hover: the motif id and its readable name from ``names``, when it has one).

    Examples
    --------
    >>> prototype_figure(np.zeros((2, 2)), ["L1-0001", "L1-0002"]).data[0].text
    ('L1-0001', 'L1-0002')
    >>> prototype_figure(np.zeros((1, 2)), ["L1-0001"], {"L1-0001": "dim 9.0 %"}).data[0].text
    ('L1-0001 · dim 9.0 %',)
    """
    fig = go.Figure(go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="markers", text=[_named(m, names) for m in motifs],
        marker={"size": 14, "color": [motif_colour(m) for m in motifs],
                "line": {"width": 1, "color": "#333"}},
        hovertemplate="%{text}<br>x %{x:.2f} y %{y:.2f} Å<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", title="y (Å)")
    fig.update_xaxes(title="x (Å)")
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title="prototype columns")
    return fig


def _polygon_xy(polygons: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten closed polygons into x, y arrays with NaN breaks, and the owning row per vertex."""
    sizes = polygons.map(len).to_numpy()
    if sizes.sum() == 0:
        empty = np.empty(0)
        return empty, empty, np.empty(0, dtype=int)
    pts = np.array([xy for poly in polygons for xy in poly], dtype=float).reshape(-1, 2)
    owner = np.repeat(np.arange(len(polygons)), sizes)
    starts = np.cumsum(sizes) - sizes
    # Each polygon: its vertices, its first vertex again (closed), then a break (NaN).
    n_out = sizes + 2
    out_start = np.cumsum(n_out) - n_out
    total = int(n_out.sum())
    x = np.full(total, np.nan)
    y = np.full(total, np.nan)
    row = np.repeat(np.arange(len(polygons)), n_out)
    pos = out_start[owner] + (np.arange(len(pts)) - starts[owner])
    x[pos], y[pos] = pts[:, 0], pts[:, 1]
    closing = out_start + sizes
    x[closing], y[closing] = pts[starts, 0], pts[starts, 1]
    return x, y, row


def _by_count(groups) -> list:
    """Groups largest first (then by id): the legend lists the motifs that matter first."""
    return sorted(groups, key=lambda item: (-len(item[1]), str(item[0])))


#: Height of the Image page's figure (px); its plot area is about this many pixels across.
IMAGE_FIGURE_PX = 720
PLOT_PX = 700

#: Legend entries per level on the Image page: the rest of the motifs of a level are drawn as one
#: grey trace "N other motifs", so the legend stays readable with hundreds of classes.
MAX_LEGEND_PER_LEVEL = 12

#: Colour of the merged "other motifs" traces.
OTHER = "#bdbdbd"

#: Largest and smallest column marker (diameter, px): markers are a third of the displayed
#: column spacing, so that on a large image they leave the columns between them visible.
MARKER_PX = (2.5, 7.0)
MARKER_OPACITY = 0.8

#: Unit outlines: line and fill opacity per level (level-3 composites overlap each other, so
#: they are outlined only).
UNIT_LINE_ALPHA = {2: 0.7, 3: 0.6}
UNIT_FILL_ALPHA = {2: 0.12, 3: 0.0}


def rgba(colour: str, alpha: float) -> str:
    """A palette colour (``#rrggbb`` or ``rgb(r, g, b)``) with an opacity.

    Examples
    --------
    >>> rgba("#EF553B", 0.5), rgba("rgb(141,211,199)", 1)
    ('rgba(239, 85, 59, 0.5)', 'rgba(141, 211, 199, 1)')
    """
    text = str(colour)
    rgb = hex_to_rgb(text) if text.startswith("#") else unlabel_rgb(text)
    r, g, b = (int(round(float(v))) for v in rgb)
    return f"rgba({r}, {g}, {b}, {alpha:g})"


def column_marker_px(
    columns: pd.DataFrame, width_A: float, height_A: float, plot_px: float = PLOT_PX
) -> float:
    """Diameter (px) of the column markers: a third of the median nearest-neighbour distance
    of the columns as displayed (``plot_px`` across the longer side), within :data:`MARKER_PX`.

    Examples
    --------
    >>> cols = pd.DataFrame({"x_A": [0.0, 10.0, 20.0], "y_A": [0.0, 0.0, 0.0]})
    >>> column_marker_px(cols, 100.0, 100.0)  # 10 Å apart, 7 px per Å: 70 px apart
    7.0
    >>> column_marker_px(cols, 1000.0, 1000.0)  # 7 px apart
    2.5
    """
    if len(columns) < 2:
        return MARKER_PX[1]
    xy = columns[["x_A", "y_A"]].to_numpy(dtype=float)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) < 2:
        return MARKER_PX[1]
    d = cKDTree(xy).query(xy, k=2)[0][:, 1]
    spacing_px = float(np.median(d)) * plot_px / max(width_A, height_A, 1e-9)
    return float(np.clip(spacing_px / 3.0, *MARKER_PX))


def _split_legend(groups: list, max_entries: int) -> tuple[list, list]:
    """The groups with a legend entry of their own, and the rest (merged into one trace)."""
    if len(groups) <= max_entries:
        return groups, []
    return groups[: max_entries - 1], groups[max_entries - 1 :]


def image_figure(
    png_uri: str | None,
    width_A: float,
    height_A: float,
    columns: pd.DataFrame,
    units: dict[int, pd.DataFrame] | None = None,
    image_shape: tuple[int, int] | None = None,
    colour_by: str = "motif",
    names: Mapping[str, str] | None = None,
    max_legend: int = MAX_LEGEND_PER_LEVEL,
) -> go.Figure:
    """The micrograph with its columns coloured by motif (or cross-section) and its units as
    polygons, drawn light enough for the image to show through.

    Column markers are a third of the displayed column spacing (:func:`column_marker_px`), unit
    outlines thin and their fills faint (:data:`UNIT_FILL_ALPHA`), so that on a 1024² image of
    thousands of columns the micrograph stays visible.

    Parameters
    ----------
    png_uri : str or None
        The micrograph as a PNG data URI (None: columns only, on a blank canvas).
    width_A, height_A : float
        Extent of the image in Å (pixels × pixel size).
    columns : DataFrame
        :func:`motifcat.query.image_instances` at level 1: ``instance_id, x_A, y_A, motif_id``.
    units : dict of int to DataFrame, optional
        Level (2, 3) -> :func:`motifcat.query.image_units`: ``instance_id, motif_id, polygon``.
    image_shape : (int, int), optional
        Shape (H, W) of the PNG, to scale it onto ``width_A`` × ``height_A``.
    colour_by : {"motif", "cross_section"}
        ``"cross_section"``: one trace of all columns on a continuous colour scale of their
        scattering cross-section (``columns["cross_section"]``; columns without one are grey).
    names : mapping of str to str, optional
        Readable names of level-1 motifs (``{"L1-0001": "bright 44 %"}``), shown next to their
        ids in the legend and the hover.
    max_legend : int
        Legend entries per level; the least common motifs of a level beyond these are drawn as
        one grey trace ``"<k> other motifs (<count>)"`` (the hover still names each one).

    Returns
    -------
    plotly.graph_objects.Figure
        One trace per motif (legend entries ``"<motif> (<count>)"``, most instances first
        within each level); hovering a column or a unit vertex shows its instance id and motif
        id.

    Examples
    --------
    >>> cols = pd.DataFrame({"instance_id": ["a", "b"], "x_A": [1.0, 2.0], "y_A": [1.0, 1.5],
    ...                      "motif_id": ["L1-0001", None]})
    >>> fig = image_figure(None, 10.0, 8.0, cols, names={"L1-0001": "bright 50 %"})
    >>> [t.name for t in fig.data]
    ['L1-0001 · bright 50 % (1)', 'unclassified (1)']
    """
    fig = go.Figure()
    if png_uri is not None:
        h, w = image_shape if image_shape is not None else (1, 1)
        fig.add_trace(
            go.Image(
                source=png_uri,
                x0=0.0,
                y0=0.0,
                dx=width_A / w,
                dy=height_A / h,
                hoverinfo="skip",
                name="micrograph",
            )
        )
    all_ids = list(columns["motif_id"])
    for lvl_df in (units or {}).values():
        all_ids += list(lvl_df["motif_id"])
    colours = motif_colours(all_ids)

    for level, df in sorted((units or {}).items()):
        if df.empty:
            continue
        motif = df["motif_id"].fillna("unclassified").astype(str)
        own, rest = _split_legend(_by_count(df.groupby(motif, sort=True)), max_legend)
        if rest:
            merged = pd.concat([grp for _, grp in rest])
            own = [*own, (f"{len(rest)} other motifs", merged)]
        line_alpha, fill_alpha = UNIT_LINE_ALPHA.get(level, 0.6), UNIT_FILL_ALPHA.get(level, 0.0)
        for mid, grp in own:
            x, y, row = _polygon_xy(grp["polygon"])
            inst = grp["instance_id"].to_numpy(dtype=object)[row]
            which = grp["motif_id"].fillna("unclassified").astype(str).to_numpy(dtype=object)[row]
            colour = colours.get(mid, OTHER if mid.endswith("other motifs") else UNCLASSIFIED)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    fill="toself" if fill_alpha > 0 else "none",
                    fillcolor=rgba(colour, fill_alpha) if fill_alpha > 0 else None,
                    line={"width": 1, "color": rgba(colour, line_alpha),
                          "dash": "solid" if level == 2 else "dot"},
                    name=f"{mid} ({len(grp)})",
                    legendgroup=f"level{level}",
                    legendgrouptitle_text=f"Level {level} units",
                    customdata=np.column_stack([inst, which]),
                    hovertemplate="unit %{customdata[0]}<br>motif %{customdata[1]}<extra></extra>",
                )
            )

    size = column_marker_px(columns, width_A, height_A)
    outline = {"width": 0.5, "color": "white"} if size >= 5 else {"width": 0}
    if colour_by == "cross_section" and "cross_section" in columns and len(columns):
        _cross_section_trace(fig, columns, size, outline)
        groups, rest = [], []
    else:
        motif = columns["motif_id"].astype(object).where(columns["motif_id"].notna(), None)
        key = motif.fillna("unclassified").astype(str)
        groups, rest = _split_legend(_by_count(columns.groupby(key, sort=True)), max_legend)
    if rest:
        merged = pd.concat([grp for _, grp in rest])
        groups = [*groups, (f"{len(rest)} other motifs", merged)]
    for mid, grp in groups:
        if mid == "unclassified":
            colour = UNCLASSIFIED
        elif mid in colours:
            colour = colours[mid]
        else:
            colour = OTHER
        which = grp["motif_id"].astype(object).where(grp["motif_id"].notna(), "unclassified")
        which = np.array([_named(m, names) for m in which], dtype=object)
        fig.add_trace(
            go.Scatter(
                x=grp["x_A"],
                y=grp["y_A"],
                mode="markers",
                marker={"size": size, "color": colour, "opacity": MARKER_OPACITY,
                        "line": outline},
                name=f"{_named(mid, names)} ({len(grp)})",
                legendgroup="level1",
                legendgrouptitle_text="Columns (level 1)",
                customdata=np.column_stack([grp["instance_id"].to_numpy(dtype=object), which]),
                hovertemplate=(
                    "column %{customdata[0]}<br>motif %{customdata[1]}<br>"
                    "x %{x:.2f} Å, y %{y:.2f} Å<extra></extra>"
                ),
            )
        )
    fig.update_xaxes(range=[0, width_A], title="x (Å)", showgrid=False, zeroline=False)
    fig.update_yaxes(
        range=[height_A, 0], title="y (Å)", showgrid=False, zeroline=False,
        scaleanchor="x", scaleratio=1,
    )
    fig.update_layout(
        height=IMAGE_FIGURE_PX, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"itemsizing": "constant"},
        plot_bgcolor="white" if png_uri is None else None,
    )
    return fig


def _cross_section_trace(
    fig: go.Figure, columns: pd.DataFrame, size: float = MARKER_PX[1], outline: dict | None = None
) -> None:
    """All columns in one trace coloured by cross-section (Viridis, grey where unknown)."""
    cs = pd.to_numeric(columns["cross_section"], errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(cs)
    motif = columns["motif_id"].astype(object).where(columns["motif_id"].notna(), "unclassified")
    custom = np.column_stack(
        [columns["instance_id"].to_numpy(dtype=object), motif.to_numpy(dtype=object), cs]
    )
    if (~known).any():
        fig.add_trace(
            go.Scatter(
                x=columns["x_A"][~known], y=columns["y_A"][~known], mode="markers",
                marker={"size": size, "color": UNCLASSIFIED, "opacity": MARKER_OPACITY},
                name=f"no cross-section ({(~known).sum()})",
                customdata=custom[~known],
                hovertemplate="column %{customdata[0]}<br>motif %{customdata[1]}<extra></extra>",
            )
        )
    if known.any():
        fig.add_trace(
            go.Scatter(
                x=columns["x_A"][known], y=columns["y_A"][known], mode="markers",
                marker={
                    "size": size, "color": cs[known], "colorscale": "Viridis", "showscale": True,
                    "colorbar": {"title": "cross-section"}, "opacity": MARKER_OPACITY,
                    "line": outline or {"width": 0},
                },
                name=f"cross-section ({known.sum()})", legendgroup="level1",
                customdata=custom[known],
                hovertemplate=(
                    "column %{customdata[0]}<br>motif %{customdata[1]}<br>"
                    "cross-section %{customdata[2]:.4g}<extra></extra>"
                ),
            )
        )


def top_hierarchy(
    vocab: pd.DataFrame,
    edges: pd.DataFrame,
    levels=None,
    top_n: int = 10,
    min_instances: int = 1,
    min_samples: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The part of the hierarchy worth drawing: the ``top_n`` most common motifs of each level
    that meet the support thresholds, and the ``COMPOSED_OF`` edges between them.

    Parameters
    ----------
    vocab : DataFrame
        :func:`motifcat.query.vocabulary` (``motif_id, level, n_instances``, ...), with an
        ``n_samples`` column when the sample support is to be filtered on.
    edges : DataFrame
        :func:`motifcat.query.composition_edges`: ``parent, child, count``.
    levels : iterable of int, optional
        Levels to show (default: all).
    top_n : int
        Motifs per level, most instances first (ties: by id).
    min_instances, min_samples : int
        Support thresholds: instances in the catalog, and samples the motif occurs in.

    Returns
    -------
    nodes : DataFrame
        The chosen rows of ``vocab``, by level then instances (descending).
    shown_edges : DataFrame
        The edges whose parent and child are both chosen.

    Examples
    --------
    >>> v = pd.DataFrame({"motif_id": ["a", "b", "c", "P", "Q"], "level": [1, 1, 1, 2, 2],
    ...                   "n_instances": [9, 5, 1, 4, 1]})
    >>> e = pd.DataFrame({"parent": ["P", "P", "Q"], "child": ["a", "b", "c"], "count": [3, 3, 6]})
    >>> nodes, shown = top_hierarchy(v, e, top_n=2)
    >>> nodes["motif_id"].tolist(), shown["child"].tolist()
    (['a', 'b', 'P', 'Q'], ['a', 'b'])
    >>> top_hierarchy(v, e, levels=[2], min_instances=2)[0]["motif_id"].tolist()
    ['P']
    """
    keep = vocab["n_instances"].fillna(0) >= min_instances
    if "n_samples" in vocab:
        keep &= vocab["n_samples"].fillna(0) >= min_samples
    if levels is not None:
        keep &= vocab["level"].isin([int(v) for v in levels])
    nodes = (
        vocab[keep]
        .sort_values(["level", "n_instances", "motif_id"], ascending=[True, False, True])
        .groupby("level", sort=True)
        .head(max(int(top_n), 1))
        .reset_index(drop=True)
    )
    ids = set(nodes["motif_id"])
    shown = edges[edges["parent"].isin(ids) & edges["child"].isin(ids)].reset_index(drop=True)
    return nodes, shown


def hierarchy_figure(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    thumbnails: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> go.Figure:
    """A layered tree of a few motifs (:func:`top_hierarchy`): one row per level, level 1 at
    the bottom, each motif labelled with its id, readable name and count, and drawn as its
    average image when ``thumbnails`` has one; lines are the ``COMPOSED_OF`` edges between them.

    Level-1 motifs are spread by instances; each higher motif sits in the order of the mean
    position of its parts, which keeps the edges short and rarely crossing. Meant for tens of
    motifs, not a whole vocabulary (an all-edges plot of hundreds is unreadable).

    Parameters
    ----------
    nodes : DataFrame
        ``motif_id, level, n_instances`` (and ``key``, ``n_images``, ``n_samples``, ``family``
        when present, shown on hover).
    edges : DataFrame
        ``parent, child, count`` between ``nodes``.
    thumbnails : mapping of str to str, optional
        Motif id -> PNG data URI of its average image.
    names : mapping of str to str, optional
        Readable names of level-1 motifs.

    Returns
    -------
    plotly.graph_objects.Figure
        The last trace (``name="motifs"``) holds one point per node, in the order of ``nodes``,
        with the motif id first in its ``customdata``: a selected point names its motif. The
        one before (``name="labels"``) holds their labels: id, readable name, instances.

    Examples
    --------
    >>> v = pd.DataFrame({"motif_id": ["a", "b", "P"], "level": [1, 1, 2],
    ...                   "n_instances": [5, 3, 2]})
    >>> e = pd.DataFrame({"parent": ["P", "P"], "child": ["a", "b"], "count": [2, 1]})
    >>> fig = hierarchy_figure(v, e)
    >>> fig.data[-1].y.tolist(), list(fig.data[-2].text)
    ([1, 1, 2], ['a<br>5 inst.', 'b<br>3 inst.', 'P<br>2 inst.'])
    """
    levels = sorted(int(v) for v in nodes["level"].unique())
    pos_x = pd.Series(dtype=float)
    for level in levels:
        row = nodes[nodes["level"] == level].sort_values(
            ["n_instances", "motif_id"], ascending=[False, True]
        )
        ids = row["motif_id"]
        if level == levels[0] or edges.empty:
            order = ids.to_numpy()
        else:
            e = edges[edges["parent"].isin(ids)]
            bary = e.assign(x=e["child"].map(pos_x)).groupby("parent")["x"].mean()
            bary = bary.reindex(ids).fillna(np.inf)
            order = bary.sort_values(kind="stable").index.to_numpy()
        n = len(order)
        pos_x = pd.concat([pos_x, pd.Series((np.arange(n) + 0.5) / max(n, 1), order)])
    x = nodes["motif_id"].map(pos_x).to_numpy(dtype=float)
    y = nodes["level"].astype(int).to_numpy()
    per_row = int(nodes.groupby("level").size().max()) if len(nodes) else 1

    fig = go.Figure()
    if not edges.empty:
        where = pd.Series(y, index=nodes["motif_id"].to_numpy())
        e = edges.assign(
            x0=edges["parent"].map(pos_x), y0=edges["parent"].map(where),
            x1=edges["child"].map(pos_x), y1=edges["child"].map(where),
        ).dropna()
        nan = np.full(len(e), np.nan)
        fig.add_trace(
            go.Scatter(
                x=np.column_stack([e["x0"], e["x1"], nan]).ravel(),
                y=np.column_stack([e["y0"], e["y1"], nan]).ravel(),
                mode="lines", line={"width": 1, "color": "rgba(120, 120, 120, 0.6)"},
                hoverinfo="skip", name="COMPOSED_OF",
            )
        )
        # Hover on the middle of each edge tells the multiplicity (the marks are faint, and
        # left out when there are too many for the eye).
        fig.add_trace(
            go.Scatter(
                x=(e["x0"] + e["x1"]) / 2, y=(e["y0"] + e["y1"]) / 2, mode="markers",
                marker={"size": 5, "color": "#888", "symbol": "diamond",
                        "opacity": 0.5 if len(e) <= 60 else 0.0},
                customdata=np.column_stack([e["parent"], e["child"], e["count"]]),
                hovertemplate="%{customdata[0]} is made of %{customdata[2]} × "
                "%{customdata[1]}<extra></extra>",
                name="multiplicity",
                showlegend=False,
            )
        )
    thumbs = thumbnails or {}
    # Each thumbnail fills most of its slot of the widest row, and under a third of a level.
    size_x, size_y = min(0.8 / per_row, 0.11), 0.32
    for mid, xi, yi in zip(nodes["motif_id"], x, y, strict=True):
        if thumbs.get(mid):
            fig.add_layout_image(
                source=thumbs[mid], xref="x", yref="y", x=xi, y=yi, sizex=size_x, sizey=size_y,
                xanchor="center", yanchor="middle", sizing="contain", layer="above",
            )
    # A row of more than MAX_FULL_LABELS motifs has no room for ids: its labels are the counts
    # (the id and name are in the hover and under the chart).
    label = [
        f"{int(n)}" if crowded else
        f"{m}<br>{(names or {}).get(m) + '<br>' if (names or {}).get(m) else ''}{int(n)} inst."
        for m, n, crowded in zip(
            nodes["motif_id"], nodes["n_instances"].fillna(0),
            nodes.groupby("level")["motif_id"].transform("size") > MAX_FULL_LABELS, strict=True,
        )
    ]
    # The labels sit under the thumbnails, in a trace of their own (no hover, no selection).
    fig.add_trace(
        go.Scatter(
            x=x, y=y - size_y / 2 - 0.02, mode="text", text=label, textposition="bottom center",
            textfont={"size": 11}, hoverinfo="skip", name="labels",
        )
    )
    extra = {c: nodes[c] if c in nodes else pd.Series([""] * len(nodes))
             for c in ("key", "n_images", "n_samples", "family")}
    hover = [
        f"{_named(m, names)}<br>{int(n)} instances in {i} images, {s} samples"
        + (f"<br>family {f}" if isinstance(f, str) and f else "")
        + (f"<br>key {k}" if isinstance(k, str) and k else "")
        for m, n, i, s, f, k in zip(
            nodes["motif_id"], nodes["n_instances"].fillna(0), extra["n_images"],
            extra["n_samples"], extra["family"], extra["key"], strict=True,
        )
    ]
    colours = motif_colours(nodes["motif_id"])
    has_thumb = np.array([bool(thumbs.get(m)) for m in nodes["motif_id"]])
    # Frames as wide as the thumbnails on a chart about 1000 px wide (markers are sized in px).
    frame = float(np.clip(1000 * size_x * 0.5, 8, 40))
    fig.add_trace(
        go.Scatter(
            x=x, y=y, mode="markers",
            # Under a thumbnail the marker is a coloured frame; alone it is the node.
            marker={"size": np.where(has_thumb, frame, min(frame, 18)), "symbol": "square",
                    "color": [rgba(colours[m], 0.25) for m in nodes["motif_id"]],
                    "line": {"width": 2, "color": [colours[m] for m in nodes["motif_id"]]}},
            customdata=np.column_stack([nodes["motif_id"], hover]),
            hovertemplate="%{customdata[1]}<br><i>click to open</i><extra></extra>",
            name="motifs",
        )
    )
    fig.update_yaxes(tickvals=levels, ticktext=[f"level {v}" for v in levels],
                     range=[min(levels, default=1) - 0.75, max(levels, default=1) + 0.3],
                     showgrid=False, zeroline=False, fixedrange=True)
    fig.update_xaxes(visible=False, range=[0, 1], fixedrange=True)
    fig.update_layout(height=120 + 190 * len(levels), showlegend=False, clickmode="event+select",
                      margin={"l": 10, "r": 10, "t": 20, "b": 10})
    return fig


def _add_atom_traces(fig, pos, symbols, *, vertical: int, size: tuple[float, float]) -> None:
    """One marker trace per element: x against ``pos[:, vertical]`` (1: top view, 2: side view),
    marker size ``size[0] + size[1] * covalent radius``, the third coordinate in the hover."""
    from ase.data import atomic_numbers, covalent_radii
    from ase.data.colors import jmol_colors

    hidden = 3 - vertical  # the coordinate not plotted (z for the top view, y for the side view)
    names = {1: "y", 2: "z"}
    for sym in sorted(set(symbols)):
        sel = symbols == sym
        z = atomic_numbers[sym]
        r, g, b = (int(round(255 * c)) for c in jmol_colors[z])
        coords = {vertical: "%{y:.2f}", hidden: "%{customdata:.2f}"}
        fig.add_trace(
            go.Scatter(
                x=pos[sel, 0], y=pos[sel, vertical], mode="markers",
                name=f"{sym} ({int(sel.sum())})",
                marker={"size": size[0] + size[1] * covalent_radii[z],
                        "color": f"rgb({r}, {g}, {b})", "line": {"width": 1, "color": "#333"}},
                customdata=pos[sel, hidden],
                hovertemplate=f"{sym} x %{{x:.2f}} {names[1]} {coords[1]} {names[2]} {coords[2]}"
                " Å<extra></extra>",
            )
        )


def atoms_figure(atoms) -> go.Figure:
    """Top view (x, y in Å) of an :class:`ase.Atoms`, coloured by element, with its cell.

    Examples
    --------
    >>> from ase import Atoms
    >>> fig = atoms_figure(Atoms("MoSe2", positions=[[0, 0, 0], [1.9, 0, 1.6], [1.9, 0, -1.6]]))
    >>> sorted(t.name for t in fig.data)
    ['Mo (1)', 'Se (2)']
    """

    pos = atoms.get_positions()
    symbols = np.array(atoms.get_chemical_symbols())
    fig = go.Figure()
    cell = np.asarray(atoms.cell)
    if atoms.cell.rank >= 2:
        a, b = cell[0, :2], cell[1, :2]
        corners = np.array([[0, 0], a, a + b, b, [0, 0]])
        fig.add_trace(go.Scatter(x=corners[:, 0], y=corners[:, 1], mode="lines",
                                 line={"color": "#999", "dash": "dot"}, name="cell",
                                 hoverinfo="skip"))
    _add_atom_traces(fig, pos, symbols, vertical=1, size=(14, 10))
    fig.update_xaxes(title="x (Å)")
    fig.update_yaxes(title="y (Å)", scaleanchor="x", scaleratio=1)
    fig.update_layout(height=480, margin={"l": 10, "r": 10, "t": 20, "b": 10})
    return fig


def recurring_figure(
    recurring: pd.DataFrame, names: Mapping[str, str] | None = None
) -> go.Figure:
    """Stacked bars: instances of each recurring motif per material (bars named by the motif
    id and its readable name from ``names``, when it has one).

    Parameters
    ----------
    recurring : DataFrame
        :func:`motifcat.query.recurring_motifs` (``motif_id`` and ``per_material``).

    Examples
    --------
    >>> r = pd.DataFrame({"motif_id": ["L1-0001"], "per_material": [{"MoSe2": 9, "WS2": 4}]})
    >>> [t.name for t in recurring_figure(r).data]
    ['MoSe2', 'WS2']
    """
    long = pd.DataFrame(
        [(m, mat, n) for m, d in zip(recurring["motif_id"], recurring["per_material"], strict=True)
         for mat, n in d.items()],
        columns=["motif_id", "material", "n_instances"],
    )
    fig = go.Figure()
    for mat, grp in long.groupby("material", sort=True):
        fig.add_trace(go.Bar(x=[_named(m, names) for m in grp["motif_id"]],
                             y=grp["n_instances"], name=str(mat)))
    fig.update_layout(
        barmode="stack", height=360, xaxis_title="motif", yaxis_title="instances",
        margin={"l": 10, "r": 10, "t": 20, "b": 10}, legend_title_text="material",
    )
    return fig


def context_figure(context: pd.DataFrame, names: Mapping[str, str] | None = None) -> go.Figure:
    """Bar chart of :func:`motifcat.query.spatial_context` (neighbour motif -> share), each bar
    named by the motif id and its readable name (``names``) when it has one."""
    colours = motif_colours(context["motif_id"])
    fig = go.Figure(
        go.Bar(x=[_named(m, names) for m in context["motif_id"]], y=context["count"],
               marker_color=[colours[m] for m in context["motif_id"]],
               customdata=context["share"],
               hovertemplate="%{x}: %{y} (%{customdata:.0%})<extra></extra>")
    )
    fig.update_layout(height=280, xaxis_title="neighbouring motif", yaxis_title="count",
                      margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def normalise(image: np.ndarray) -> np.ndarray:
    """Stretch an image to [0, 1] for display (a constant image becomes 0.5).

    Examples
    --------
    >>> normalise(np.array([[1.0, 3.0]])).tolist()
    [[0.0, 1.0]]
    """
    img = np.asarray(image, dtype=float)
    lo, hi = np.nanmin(img), np.nanmax(img)
    if not hi > lo:
        return np.full(img.shape, 0.5)
    return (img - lo) / (hi - lo)


__all__ = [
    "PALETTE",
    "atoms_figure",
    "atoms_side_figure",
    "context_figure",
    "hierarchy_figure",
    "column_marker_px",
    "image_figure",
    "motif_colour",
    "motif_colours",
    "prototype_figure",
    "normalise",
    "recurring_figure",
    "rgba",
    "top_hierarchy",
]


def atoms_side_figure(atoms) -> go.Figure:
    """Side view (x, z in Å) of an :class:`ase.Atoms`: the heights along the beam, to check
    that every column's atoms sit where the reference puts them.

    Examples
    --------
    >>> from ase import Atoms
    >>> fig = atoms_side_figure(Atoms("MoSe2", positions=[[0, 0, 0], [1.9, 0, 1.6],
    ...                                                  [1.9, 0, -1.6]]))
    >>> [list(t.y) for t in fig.data if t.name.startswith("Se")]
    [[1.6, -1.6]]
    """

    pos = atoms.get_positions()
    symbols = np.array(atoms.get_chemical_symbols())
    fig = go.Figure()
    _add_atom_traces(fig, pos, symbols, vertical=2, size=(10, 8))
    fig.update_xaxes(title="x (Å)")
    fig.update_yaxes(title="z (Å, along the beam)", scaleanchor="x", scaleratio=1)
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 20, "b": 10})
    return fig

