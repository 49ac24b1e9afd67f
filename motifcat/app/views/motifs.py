"""Motifs: the gallery of average motif images; one motif's composition, context and whereabouts."""

from __future__ import annotations

import streamlit as st

from motifcat.app import data, plots

GALLERY_COLUMNS = 6
GALLERY_PAGE = data.GALLERY_PAGE
#: Level-3 motifs with more instances than this get their spatial context on request only.
LAZY_CONTEXT_INSTANCES = 6000

uri = data.catalog_uri()
st.title("Motifs")
names = data.level1_names(uri)

wanted = str(st.query_params.get("motif", ""))
wanted_level = wanted[1:2] if wanted else "1"
# A value set through the session state (a tile, the Hierarchy page) wins over the link; a
# widget is given a non-default index only when it has no such value.
level = st.radio(
    "Level", [1, 2, 3], horizontal=True, key="motif_level",
    index=int(wanted_level) - 1
    if wanted_level in {"1", "2", "3"} and "motif_level" not in st.session_state else 0,
    format_func=lambda v: f"level {v}",
)
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
has_family = "family" in vocab.columns and vocab["family"].notna().any()

f1, f2, f3 = st.columns(3)
min_count = f1.number_input("At least this many instances", min_value=1, value=1, step=1,
                            key=f"motif_min_count_{level}")
min_samples = f2.number_input("... in at least this many samples", min_value=1, value=1, step=1,
                              key=f"motif_min_samples_{level}")
shown = vocab[(vocab["n_instances"] >= min_count) & (vocab["n_samples"] >= min_samples)]
n_pages = max(1, -(-len(shown) // GALLERY_PAGE))
page = int(f3.number_input(f"Page (of {n_pages})", min_value=1, max_value=n_pages, value=1,
                           step=1, key=f"motif_page_{level}"))
tiles = shown.iloc[(page - 1) * GALLERY_PAGE : page * GALLERY_PAGE]

images = data.motif_images(uri, tuple(tiles["motif_id"]))
first = (page - 1) * GALLERY_PAGE + 1
st.caption(
    f"{len(vocab)} level-{level} motifs, {len(shown)} with these supports; showing "
    f"{first}–{first + len(tiles) - 1 if len(tiles) else 0} by instances: average reconstructed "
    "image of each class, its instances and the samples it occurs in."
)
rows = [tiles.iloc[i : i + GALLERY_COLUMNS] for i in range(0, len(tiles), GALLERY_COLUMNS)]
for chunk in rows:
    for col, m in zip(st.columns(GALLERY_COLUMNS), chunk.itertuples(), strict=False):
        with col, st.container(border=True):
            img = images.get(m.motif_id)
            plural = "" if m.n_samples == 1 else "s"
            caption = (
                f"{data.motif_label(m.motif_id, names)} · {m.n_instances} inst. · "
                f"{m.n_samples} sample{plural}"
            )
            if has_family and isinstance(getattr(m, "family", None), str) and m.family:
                caption += f" · {m.family}"
            if img is not None:
                st.image(plots.normalise(img), caption=caption, width="stretch")
            else:
                st.markdown(f"*no image*  \n{caption}")
            if st.button("Details", key=f"tile_{m.motif_id}", width="stretch"):
                st.session_state[f"motif_selected_{level}"] = m.motif_id

ids = list(vocab["motif_id"])
counts = vocab.set_index("motif_id")["n_instances"]
# ?motif=<id> links straight to a motif of the chosen level (the Hierarchy page links here).
selected_key = f"motif_selected_{level}"
if st.session_state.get(selected_key) not in (None, *ids):
    del st.session_state[selected_key]  # a motif of an older catalog
motif_id = st.selectbox(
    "Motif", ids, key=selected_key,
    index=ids.index(wanted) if wanted in ids and selected_key not in st.session_state else 0,
    format_func=lambda m: f"{data.motif_label(m, names)} · {counts[m]} instances",
)
detail = data.motif(uri, motif_id)

st.header(data.motif_label(detail.motif_id, names))
c = st.columns(4)
c[0].metric("Level", detail.level)
c[1].metric("Instances", detail.n_instances)
c[2].metric("Samples", len(detail.samples))
c[3].metric("Materials", len(detail.materials))
st.markdown(f"Key: `{detail.key}`")
if has_family:
    family = vocab.set_index("motif_id")["family"].get(motif_id)
    if isinstance(family, str) and family:
        st.markdown(f"Family: **{family}**")

left, right = st.columns([1, 2])
with left:
    if detail.mean_image is not None:
        st.image(plots.normalise(detail.mean_image), caption="average image", width="stretch")
    xy, motifs = detail.prototype_columns()
    if len(xy):
        fig = plots.prototype_figure(xy, motifs, names)
        st.plotly_chart(fig, key="prototype_chart")
with right:
    comp = data.composition(uri, motif_id)
    st.subheader("Composition")
    a, b = st.columns(2)
    a.markdown("**Made of**")
    a.dataframe(data.with_names(comp.parts, names), hide_index=True, width="stretch")
    b.markdown("**Part of**")
    b.dataframe(comp.part_of, hide_index=True, width="stretch")

    st.subheader("Spatial context")
    # Level-3 neighbours are composites sharing a column: the query's cost grows with the
    # motif's instances (~0.16 ms CPU each on Ladybug, measured on three synthetic 1024² MoSe2
    # images: 0.8 s for a 4954-instance composite), so above ~1 s it runs when asked.
    lazy = detail.level >= 3 and detail.n_instances > LAZY_CONTEXT_INSTANCES
    if lazy and not st.toggle("Find the composites that share a column with it",
                              key=f"motif_context_{motif_id}"):
        ctx = None
        st.caption(f"Off: {detail.n_instances} instances, it takes seconds.")
    else:
        ctx = data.context(uri, motif_id)
    if ctx is None:
        pass
    elif ctx.empty:
        st.caption("No neighbouring motif recorded.")
    else:
        st.plotly_chart(plots.context_figure(ctx, names), key="context_chart")

    st.subheader("Similar motifs")
    st.dataframe(data.with_names(data.similar(uri, motif_id, 5), names), hide_index=True,
                 width="stretch")

    st.subheader("Where it occurs")
    st.dataframe(detail.per_image, hide_index=True, width="stretch")
