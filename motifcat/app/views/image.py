"""Image: one micrograph with its columns coloured by motif and its units drawn as polygons."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from motifcat.app import data, plots

#: Above this many columns the units are off by default (the columns alone are drawn).
UNITS_BY_DEFAULT_MAX_COLUMNS = 1500


def default_overlays(n_columns: int) -> list[int]:
    """The overlays an image is first shown with: columns, and units on a small image."""
    return [1, 2] if n_columns <= UNITS_BY_DEFAULT_MAX_COLUMNS else [1]


uri = data.catalog_uri()
images = data.images_table(uri)
names = data.level1_names(uri)

st.title("Image")
labels = {
    row.image_id: f"{row.sample} · {row.image_id[:12]}"
    + (f" · {str(row.path).rsplit('/', 1)[-1]}" if isinstance(row.path, str) else "")
    for row in images.itertuples()
}
# ?image=<id or id prefix> links straight to an image.
wanted = str(st.query_params.get("image", ""))
first = next((i for i, m in enumerate(labels) if wanted and m.startswith(wanted)), 0)
pick, over = st.columns([1, 1], vertical_alignment="bottom")
image_id = pick.selectbox(
    "Image", list(labels), index=first, format_func=labels.get, key="image_id"
)
info = images.set_index("image_id").loc[image_id]
px = float(info["pixel_size_A"])
width_A, height_A = float(info["width"]) * px, float(info["height"]) * px

overlay_names = {1: "Columns (level 1)", 2: "Units (level 2)", 3: "Composites (level 3)"}
# Each image starts with the overlays that leave it visible: the unit outlines only while the
# columns are few enough for the micrograph to show between them (a choice, not a measurement:
# a 512² image of a TMD holds about 1200 columns, a 1024² one about 4800).
if st.session_state.get("_overlays_image") != image_id or "overlays" not in st.session_state:
    st.session_state["overlays"] = default_overlays(int(info["n_columns"]))
    st.session_state["_overlays_image"] = image_id
shown = over.pills(
    "Overlays", list(overlay_names), selection_mode="multi", format_func=overlay_names.get,
    key="overlays",
)

columns = data.instances(uri, image_id, 1)
has_cs = "cross_section" in columns and columns["cross_section"].notna().any()
colour_by = st.radio(
    "Colour columns by", ["motif", "cross_section"], horizontal=True, key="colour_by",
    format_func={"motif": "motif class", "cross_section": "cross-section"}.get,
    disabled=not has_cs,
    help="The scattering cross-section: integrated intensity above the local background, "
    "from the Gaussian column model.",
)
# Outlines only for the overlays shown: level-3 outlines cost a second hop through the graph.
units = {lvl: data.units(uri, image_id, lvl) for lvl in (2, 3) if lvl in (shown or [])}
pix = data.pixels(info["path"] if isinstance(info["path"], str) else None, image_id)
if pix.data is None:
    st.warning(f"{pix.note} Only the columns are drawn.", icon=":material/hide_image:")
elif pix.note:
    st.warning(pix.note)

st.caption(
    f"{info['sample']} ({info['material']}) · {int(info['width'])} × {int(info['height'])} px "
    f"at {px:.4g} Å/px · {data.columns_said(int(info['n_columns']), len(columns))} · "
    f"image {image_id}"
)
fig = plots.image_figure(
    pix.png, width_A, height_A, columns if 1 in (shown or []) else columns.iloc[:0], units,
    image_shape=pix.png_shape, colour_by=colour_by if has_cs else "motif", names=names,
)
st.plotly_chart(fig, key="image_chart")

st.subheader("Motif classes in this image")
counts = [
    pd.DataFrame({"level": 1, "motif_id": columns["motif_id"].fillna("unclassified")})
]
for lvl in (2, 3):
    # Counting needs the instances' motifs only, not their outlines.
    df = units[lvl] if lvl in units else data.instances(uri, image_id, lvl)
    counts.append(pd.DataFrame({"level": lvl, "motif_id": df["motif_id"].fillna("unclassified")}))
legend = (
    pd.concat(counts, ignore_index=True)
    .value_counts(["level", "motif_id"])
    .rename("count")
    .reset_index()
    .sort_values(["level", "count", "motif_id"], ascending=[True, False, True])
)
colours = plots.motif_colours(legend["motif_id"][legend["motif_id"] != "unclassified"])
legend["colour"] = legend["motif_id"].map(colours).fillna(plots.UNCLASSIFIED)
legend = data.with_names(legend, names)
# The colour cell shows the class's colour in the plot (text and background alike).
st.dataframe(
    legend.style.map(lambda c: f"background-color: {c}; color: {c}", subset=["colour"]),
    hide_index=True, width="content"
)
