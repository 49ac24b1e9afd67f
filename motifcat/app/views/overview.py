"""Overview: what the catalog holds, and the motifs that recur across materials."""

from __future__ import annotations

import streamlit as st

from motifcat.app import data, plots

uri = data.catalog_uri()
materials = data.materials_table(uri)
samples = data.samples_table(uri)
images = data.images_table(uri)
vocab = data.vocabulary_table(uri)
names = data.level1_names(uri)

st.title("Overview")
per_level = vocab.groupby("level")["motif_id"].nunique()
cols = st.columns(3 + len(per_level))
cols[0].metric("Materials", len(materials))
cols[1].metric("Samples", len(samples))
cols[2].metric("Images", len(images))
for col, (level, n) in zip(cols[3:], per_level.items(), strict=True):
    col.metric(f"Level-{int(level)} motifs", int(n))

left, right = st.columns(2)
with left:
    st.subheader("Materials")
    st.dataframe(materials, hide_index=True, width="stretch")
with right:
    st.subheader("Samples")
    st.dataframe(samples, hide_index=True, width="stretch")

st.subheader("Recurring motifs")
c1, c2, c3 = st.columns(3)
n_mat = max(len(materials), 1)
min_materials = c1.number_input(
    "Found in at least this many materials", min_value=1, max_value=n_mat,
    value=min(2, n_mat), step=1, key="min_materials",
)
min_samples = c2.number_input(
    "... and this many samples", min_value=1, max_value=max(len(samples), 1), value=1, step=1,
    key="min_samples",
)
level = c3.selectbox("Level", [None, 1, 2, 3], key="recurring_level",
                     format_func=lambda v: "all" if v is None else f"level {v}")
recurring = data.recurring_table(uri, int(min_materials), int(min_samples), level)
shown_samples = int(min_samples)  # what the table below holds, for every message about it
if recurring.empty and int(min_materials) > 1:
    # Nothing crosses materials: motifs shared by samples of one material still recur.
    shown_samples = max(2, int(min_samples))
    fallback = data.recurring_table(uri, 1, shown_samples, level)
    if fallback.empty:
        st.info(
            f"No motif is found in {int(min_materials)} or more materials, nor in "
            f"{shown_samples} or more samples."
        )
    else:
        st.info(
            f"No motif is found in {int(min_materials)} or more materials; showing the motifs "
            f"found in {shown_samples} or more samples instead."
        )
    recurring = fallback
elif recurring.empty:
    st.info(f"No motif is found in {shown_samples} or more samples.")
if not recurring.empty:
    st.caption(f"{len(recurring)} recurring motifs; instances per material")
    st.plotly_chart(plots.recurring_figure(recurring, names), key="recurring_chart")
    table = data.with_names(recurring.drop(columns=["per_material"]).assign(
        materials=recurring["materials"].map(", ".join)
    ), names)
    st.dataframe(table, hide_index=True, width="stretch")

with st.expander("Images"):
    st.dataframe(images, hide_index=True, width="stretch")
