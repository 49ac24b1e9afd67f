"""Plotly figures of the app, built from the query layer's DataFrames (no Streamlit here).

Lengths are in Å throughout: the micrograph is placed with its pixel size, so the columns and
units (stored in Å) fall on it without conversion. Image axes point right (x) and down (y).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

#: Colours of motif classes, in order of first appearance.
PALETTE: list[str] = list(qualitative.Plotly) + list(qualitative.D3) + list(qualitative.Set3)

#: Rows of the hierarchy graph with more motifs than this are drawn without names.
MAX_LABELS_PER_ROW = 12

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


def prototype_figure(xy: np.ndarray, motifs: list[str]) -> go.Figure:
    """The mean aligned columns of a motif (Å, relative to its centre), coloured by motif.

    Examples
    --------
    >>> prototype_figure(np.zeros((2, 2)), ["L1-0001", "L1-0002"]).data[0].text
    ('L1-0001', 'L1-0002')
    """
    fig = go.Figure(go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="markers", text=motifs,
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


def image_figure(
    png_uri: str | None,
    width_A: float,
    height_A: float,
    columns: pd.DataFrame,
    units: dict[int, pd.DataFrame] | None = None,
    image_shape: tuple[int, int] | None = None,
    colour_by: str = "motif",
) -> go.Figure:
    """The micrograph with its columns coloured by motif (or cross-section) and its units as
    polygons.

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
    >>> fig = image_figure(None, 10.0, 8.0, cols)
    >>> [t.name for t in fig.data]
    ['L1-0001 (1)', 'unclassified (1)']
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
        for mid, grp in _by_count(df.groupby(motif, sort=True)):
            x, y, row = _polygon_xy(grp["polygon"])
            inst = grp["instance_id"].to_numpy(dtype=object)[row]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    fill="toself",
                    line={"width": 1.5, "color": colours.get(mid, UNCLASSIFIED)},
                    opacity=0.45 if level == 2 else 0.3,
                    name=f"{mid} ({len(grp)})",
                    legendgroup=f"level{level}",
                    legendgrouptitle_text=f"Level {level} units",
                    customdata=np.column_stack([inst, np.full(len(inst), mid, dtype=object)]),
                    hovertemplate="unit %{customdata[0]}<br>motif %{customdata[1]}<extra></extra>",
                )
            )

    if colour_by == "cross_section" and "cross_section" in columns and len(columns):
        _cross_section_trace(fig, columns)
        groups = []
    else:
        motif = columns["motif_id"].astype(object).where(columns["motif_id"].notna(), None)
        key = motif.fillna("unclassified").astype(str)
        groups = _by_count(columns.groupby(key, sort=True))
    for mid, grp in groups:
        colour = UNCLASSIFIED if mid == "unclassified" else colours[mid]
        fig.add_trace(
            go.Scatter(
                x=grp["x_A"],
                y=grp["y_A"],
                mode="markers",
                marker={"size": 7, "color": colour, "line": {"width": 0.5, "color": "white"}},
                name=f"{mid} ({len(grp)})",
                legendgroup="level1",
                legendgrouptitle_text="Columns (level 1)",
                customdata=np.column_stack(
                    [grp["instance_id"].to_numpy(dtype=object), np.full(len(grp), mid)]
                ),
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
        height=720, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"itemsizing": "constant"},
        plot_bgcolor="white" if png_uri is None else None,
    )
    return fig


def _cross_section_trace(fig: go.Figure, columns: pd.DataFrame) -> None:
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
                marker={"size": 7, "color": UNCLASSIFIED},
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
                    "size": 7, "color": cs[known], "colorscale": "Viridis", "showscale": True,
                    "colorbar": {"title": "cross-section"},
                    "line": {"width": 0.5, "color": "white"},
                },
                name=f"cross-section ({known.sum()})", legendgroup="level1",
                customdata=custom[known],
                hovertemplate=(
                    "column %{customdata[0]}<br>motif %{customdata[1]}<br>"
                    "cross-section %{customdata[2]:.4g}<extra></extra>"
                ),
            )
        )


def hierarchy_figure(vocab: pd.DataFrame, edges: pd.DataFrame) -> go.Figure:
    """The ``COMPOSED_OF`` graph of the vocabulary, one row per level (level 1 at the bottom).

    Level-1 motifs are spread in id order; each higher motif sits at the mean position of its
    parts, then the row is re-spread in that order, which keeps edges short and rarely crossing.

    Parameters
    ----------
    vocab : DataFrame
        :func:`motifcat.query.vocabulary`: ``motif_id, level, key, n_instances, n_images``.
    edges : DataFrame
        :func:`motifcat.query.composition_edges`: ``parent, child, count``.

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> v = pd.DataFrame({"motif_id": ["a", "b", "P"], "level": [1, 1, 2], "key": ["", "", "k"],
    ...                   "n_instances": [5, 3, 2], "n_images": [1, 1, 1]})
    >>> e = pd.DataFrame({"parent": ["P", "P"], "child": ["a", "b"], "count": [2, 1]})
    >>> fig = hierarchy_figure(v, e)
    >>> fig.data[-1].y.tolist()
    [1, 1, 2]
    """
    pos_x = pd.Series(dtype=float)
    levels = sorted(int(v) for v in vocab["level"].unique())
    for level in levels:
        ids = vocab.loc[vocab["level"] == level, "motif_id"].sort_values()
        if level == levels[0] or edges.empty:
            order = ids.to_numpy()
        else:
            e = edges[edges["parent"].isin(ids)]
            bary = e.assign(x=e["child"].map(pos_x)).groupby("parent")["x"].mean()
            bary = bary.reindex(ids).fillna(np.inf)
            order = bary.sort_values(kind="stable").index.to_numpy()
        n = len(order)
        pos_x = pd.concat([pos_x, pd.Series(np.linspace(0, 1, n) if n > 1 else [0.5], order)])
    nodes = vocab.assign(x=vocab["motif_id"].map(pos_x), y=vocab["level"].astype(int))

    fig = go.Figure()
    if not edges.empty:
        e = edges.assign(
            x0=edges["parent"].map(pos_x), y0=edges["parent"].map(nodes.set_index("motif_id")["y"]),
            x1=edges["child"].map(pos_x), y1=edges["child"].map(nodes.set_index("motif_id")["y"]),
        ).dropna()
        nan = np.full(len(e), np.nan)
        lx = np.column_stack([e["x0"], e["x1"], nan]).ravel()
        ly = np.column_stack([e["y0"], e["y1"], nan]).ravel()
        fig.add_trace(
            go.Scatter(x=lx, y=ly, mode="lines", line={"width": 1, "color": "#888"},
                       hoverinfo="skip", name="COMPOSED_OF")
        )
        # Hover on the middle of each edge tells the multiplicity.
        fig.add_trace(
            go.Scatter(
                x=(e["x0"] + e["x1"]) / 2, y=(e["y0"] + e["y1"]) / 2, mode="markers",
                marker={"size": 5, "color": "#888", "symbol": "diamond", "opacity": 0.5},
                customdata=np.column_stack([e["parent"], e["child"], e["count"]]),
                hovertemplate="%{customdata[0]} ⟶ %{customdata[2]} × %{customdata[1]}"
                "<extra></extra>",
                name="multiplicity",
                showlegend=False,
            )
        )
    colours = motif_colours(nodes["motif_id"])
    size = 10 + 6 * np.log1p(nodes["n_instances"].fillna(0).to_numpy(dtype=float))
    # Name the nodes only on rows sparse enough for the names not to overlap (hover tells all).
    per_row = nodes.groupby("y")["motif_id"].transform("size")
    fig.add_trace(
        go.Scatter(
            x=nodes["x"], y=nodes["y"], mode="markers+text",
            text=nodes["motif_id"].where(per_row <= MAX_LABELS_PER_ROW, ""),
            textposition="top center", hovertext=nodes["motif_id"],
            marker={"size": np.minimum(size, 40),
                    "color": [colours[m] for m in nodes["motif_id"]],
                    "line": {"width": 1, "color": "#333"}},
            customdata=np.column_stack(
                [nodes["motif_id"], nodes["key"], nodes["n_instances"], nodes["n_images"]]
            ),
            hovertemplate="%{customdata[0]}<br>key %{customdata[1]}<br>%{customdata[2]} "
            "instances in %{customdata[3]} images<extra></extra>",
            name="motifs",
        )
    )
    fig.update_yaxes(tickvals=levels, ticktext=[f"level {v}" for v in levels],
                     range=[min(levels, default=1) - 0.5, max(levels, default=1) + 0.5])
    fig.update_xaxes(visible=False, range=[-0.08, 1.08])
    fig.update_layout(height=260 + 120 * len(levels), showlegend=False,
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


def recurring_figure(recurring: pd.DataFrame) -> go.Figure:
    """Stacked bars: instances of each recurring motif per material.

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
        fig.add_trace(go.Bar(x=grp["motif_id"], y=grp["n_instances"], name=str(mat)))
    fig.update_layout(
        barmode="stack", height=360, xaxis_title="motif", yaxis_title="instances",
        margin={"l": 10, "r": 10, "t": 20, "b": 10}, legend_title_text="material",
    )
    return fig


def context_figure(context: pd.DataFrame) -> go.Figure:
    """Bar chart of :func:`motifcat.query.spatial_context` (neighbour motif -> share)."""
    colours = motif_colours(context["motif_id"])
    fig = go.Figure(
        go.Bar(x=context["motif_id"], y=context["count"],
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
    "image_figure",
    "motif_colour",
    "motif_colours",
    "prototype_figure",
    "normalise",
    "recurring_figure",
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

