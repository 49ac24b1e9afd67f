"""Hierarchy: the COMPOSED_OF graph of the vocabulary, level by level."""

from __future__ import annotations

import streamlit as st

from motifcat.app import data, plots

uri = data.catalog_uri()
st.title("Hierarchy")
vocab = data.vocabulary_table(uri)
edges = data.edges_table(uri)

counts = vocab.groupby("level")["motif_id"].nunique()
st.caption(
    " · ".join(f"level {int(lvl)}: {int(n)} motifs" for lvl, n in counts.items())
    + f" · {len(edges)} COMPOSED_OF edges"
)
if edges.empty:
    st.info("No motif is composed of others yet (the hierarchy has only level 1).")
st.plotly_chart(plots.hierarchy_figure(vocab, edges), key="hierarchy_chart")

with st.expander("Edges (parent is made of count × child)"):
    st.dataframe(edges, hide_index=True, width="stretch")
with st.expander("Vocabulary"):
    st.dataframe(vocab, hide_index=True, width="stretch")
