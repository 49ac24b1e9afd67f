"""Hierarchy: the most common motifs of each level and the COMPOSED_OF edges between them.

A real vocabulary holds hundreds of level-3 motifs: the page draws the top N of each level that
meet the support thresholds as a layered tree (counts and average images on the nodes) and
never the whole graph. Clicking a node, or its "Open" button below the chart, opens the motif
on the Motifs page.
"""

from __future__ import annotations

import streamlit as st

from motifcat.app import data, plots

DEFAULT_TOP_N, MAX_TOP_N = data.HIERARCHY_TOP_N, data.HIERARCHY_MAX_TOP_N
#: Thumbnails per row below the chart.
TILES_PER_ROW = 8
MOTIFS_PAGE = "views/motifs.py"


def open_motif(motif_id: str, level: int) -> None:
    """Show ``motif_id`` on the Motifs page (its level and selection set there, and linked)."""
    st.session_state["motif_level"] = int(level)
    st.session_state[f"motif_selected_{int(level)}"] = motif_id
    st.switch_page(MOTIFS_PAGE, query_params={"motif": motif_id})


uri = data.catalog_uri()
st.title("Hierarchy")
names = data.level1_names(uri)
vocab = data.vocabulary_table(uri)
edges = data.edges_table(uri)
spread = data.recurring_table(uri, 0, 0, None).set_index("motif_id")
vocab = vocab.assign(
    n_samples=vocab["motif_id"].map(spread["n_samples"]).fillna(0).astype(int)
)

counts = vocab.groupby("level")["motif_id"].nunique()
st.caption(
    " · ".join(f"level {int(lvl)}: {int(n)} motifs" for lvl, n in counts.items())
    + f" · {len(edges)} COMPOSED_OF edges"
)
if edges.empty:
    st.info("No motif is composed of others yet (the hierarchy has only level 1).")

present = [int(v) for v in counts.index]
c1, c2, c3, c4 = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
levels = c1.pills(
    "Levels", present, default=present, selection_mode="multi", key="hier_levels",
    format_func=lambda v: f"level {v}",
) or present
top_n = int(c2.number_input("Top N per level", min_value=1, max_value=MAX_TOP_N,
                            value=DEFAULT_TOP_N, step=1, key="hier_top_n",
                            help="The most common motifs of each level, by instances."))
min_instances = int(c3.number_input("Min instances", min_value=1, value=1, step=1,
                                    key="hier_min_instances"))
min_samples = int(c4.number_input("Min samples", min_value=1, value=1, step=1,
                                  key="hier_min_samples"))

nodes, shown_edges = plots.top_hierarchy(vocab, edges, levels, top_n, min_instances, min_samples)
if nodes.empty:
    st.info("No motif meets these thresholds.")
    st.stop()
images = data.motif_images(uri, tuple(nodes["motif_id"]))
thumbs = {m: data.png_data_uri(img, max_side=64)[0]
          for m, img in images.items() if img is not None}
held = (
    nodes.groupby("level")["n_instances"].sum()
    / vocab[vocab["level"].isin(nodes["level"])].groupby("level")["n_instances"].sum()
)
st.caption(
    f"Showing {len(nodes)} motifs and the {len(shown_edges)} COMPOSED_OF edges between them. "
    + " · ".join(f"level {int(lvl)}: the shown hold {100 * share:.0f} % of the instances"
                 for lvl, share in held.items())
    + ". Click a node to open it."
)
fig = plots.hierarchy_figure(nodes, shown_edges, thumbs, names)
event = st.plotly_chart(fig, key="hierarchy_chart", on_select="rerun", selection_mode="points")
points = getattr(getattr(event, "selection", None), "points", None) or []
ids = list(nodes["motif_id"])
for p in points:
    custom = p.get("customdata")
    mid = custom[0] if isinstance(custom, list | tuple) and custom else None
    if mid is None and p.get("curve_number") == len(fig.data) - 1:
        index = p.get("point_index", p.get("point_number"))
        mid = ids[index] if isinstance(index, int) and 0 <= index < len(ids) else None
    if mid in ids:
        open_motif(mid, int(nodes.set_index("motif_id").loc[mid, "level"]))

has_family = "family" in nodes.columns and nodes["family"].notna().any()
for level in sorted(nodes["level"].unique(), reverse=True):
    row = nodes[nodes["level"] == level]
    st.markdown(f"**Level {int(level)}** · the {len(row)} most common")
    for start in range(0, len(row), TILES_PER_ROW):
        chunk = row.iloc[start : start + TILES_PER_ROW]
        for col, m in zip(st.columns(TILES_PER_ROW), chunk.itertuples(), strict=False):
            with col, st.container(border=True):
                caption = f"{data.motif_label(m.motif_id, names)} · {int(m.n_instances)}"
                if has_family and isinstance(getattr(m, "family", None), str) and m.family:
                    caption += f" · {m.family}"
                if images.get(m.motif_id) is not None:
                    st.image(plots.normalise(images[m.motif_id]), caption=caption,
                             width="stretch")
                else:
                    st.caption(caption)
                if st.button("Open", key=f"hier_open_{m.motif_id}", width="stretch"):
                    open_motif(m.motif_id, int(m.level))

columns = ["motif_id", "name", "level", "n_instances", "n_images", "n_samples"]
if has_family:
    columns.append("family")
table = data.with_names(nodes, names)
with st.expander("Shown motifs"):
    st.dataframe(table[[c for c in columns if c in table] + ["key"]], hide_index=True,
                 width="stretch")
with st.expander("Shown edges (parent is made of count × child)"):
    st.dataframe(shown_edges, hide_index=True, width="stretch")
