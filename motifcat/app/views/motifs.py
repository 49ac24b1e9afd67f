"""Motifs: the gallery of average motif images; one motif's composition, context and whereabouts."""

from __future__ import annotations

import streamlit as st

from motifcat.app import data, plots

GALLERY_COLUMNS = 6

uri = data.catalog_uri()
st.title("Motifs")

wanted_level = str(st.query_params.get("motif", "L1"))[1:2]
level = st.radio("Level", [1, 2, 3], horizontal=True, key="motif_level",
                 index=int(wanted_level) - 1 if wanted_level in {"1", "2", "3"} else 0,
                 format_func=lambda v: f"level {v}")
vocab = data.vocabulary_table(uri, level)
if vocab.empty:
    st.info(f"The catalog holds no level-{level} motif.")
    st.stop()
# Counts across samples and materials, from the CONTAINS edges (no instance scan).
spread = data.recurring_table(uri, 0, 0, level).set_index("motif_id")
vocab = vocab.assign(
    n_samples=vocab["motif_id"].map(spread["n_samples"]).fillna(0).astype(int),
    n_materials=vocab["motif_id"].map(spread["n_materials"]).fillna(0).astype(int),
).sort_values(["n_instances", "motif_id"], ascending=[False, True])

images = data.motif_images(uri, tuple(vocab["motif_id"]))
st.caption(
    f"{len(vocab)} level-{level} motifs; average reconstructed image of each class, with its "
    "instances and the samples it occurs in."
)
rows = [vocab.iloc[i : i + GALLERY_COLUMNS] for i in range(0, len(vocab), GALLERY_COLUMNS)]
for chunk in rows:
    for col, m in zip(st.columns(GALLERY_COLUMNS), chunk.itertuples(), strict=False):
        with col, st.container(border=True):
            img = images.get(m.motif_id)
            plural = "" if m.n_samples == 1 else "s"
            caption = f"{m.motif_id} · {m.n_instances} inst. · {m.n_samples} sample{plural}"
            if img is not None:
                st.image(plots.normalise(img), caption=caption, width="stretch")
            else:
                st.markdown(f"*no image*  \n{caption}")

ids = list(vocab["motif_id"])
# ?motif=<id> links straight to a motif of the chosen level.
wanted = str(st.query_params.get("motif", ""))
motif_id = st.selectbox(
    "Motif", ids, index=ids.index(wanted) if wanted in ids else 0, key=f"motif_selected_{level}"
)
detail = data.motif(uri, motif_id)

st.header(detail.motif_id)
c = st.columns(4)
c[0].metric("Level", detail.level)
c[1].metric("Instances", detail.n_instances)
c[2].metric("Samples", len(detail.samples))
c[3].metric("Materials", len(detail.materials))
st.markdown(f"Key: `{detail.key}`")

left, right = st.columns([1, 2])
with left:
    if detail.mean_image is not None:
        st.image(plots.normalise(detail.mean_image), caption="average image", width="stretch")
    xy, motifs = detail.prototype_columns()
    if len(xy):
        fig = plots.prototype_figure(xy, motifs)
        st.plotly_chart(fig, key="prototype_chart")
with right:
    comp = data.composition(uri, motif_id)
    st.subheader("Composition")
    a, b = st.columns(2)
    a.markdown("**Made of**")
    a.dataframe(comp.parts, hide_index=True, width="stretch")
    b.markdown("**Part of**")
    b.dataframe(comp.part_of, hide_index=True, width="stretch")

    st.subheader("Spatial context")
    ctx = data.context(uri, motif_id)
    if ctx.empty:
        st.caption("No neighbouring motif recorded.")
    else:
        st.plotly_chart(plots.context_figure(ctx), key="context_chart")

    st.subheader("Similar motifs")
    st.dataframe(data.similar(uri, motif_id, 5), hide_index=True, width="stretch")

    st.subheader("Where it occurs")
    st.dataframe(detail.per_image, hide_index=True, width="stretch")
