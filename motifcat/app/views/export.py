"""Export: a motif as a 3-D model registered to its material's reference crystal, for DFT/MD."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from motifcat.app import data, plots
from motifcat.errors import MotifcatError

uri = data.catalog_uri()
st.title("Export")
st.caption(
    "A starting structure (unrelaxed) from a motif: its columns are registered to the projected "
    "columns of the material's reference crystal, each column takes that column's atoms, and "
    "defect columns lose or swap atoms. Species come from the motif's own material only."
)

# Most persistent motifs first (seen in many images, often), units and composites before single
# columns, then the rest of the vocabulary.
vocab = data.vocabulary_table(uri)
ranked = data.persistent_table(uri, 1, 1)
ranked = ranked.assign(single=ranked["level"] == 1).sort_values("single", kind="stable")
order = list(ranked["motif_id"]) + sorted(set(vocab["motif_id"]) - set(ranked["motif_id"]))
labels = vocab.set_index("motif_id")
names = data.level1_names(uri)
motif_id = st.selectbox(
    "Motif", order, key="export_motif",
    format_func=lambda m: f"{data.motif_label(m, names)} · level {labels.loc[m, 'level']} · "
    f"{labels.loc[m, 'n_instances']} instances",
)
detail = data.motif(uri, motif_id)
c1, c2, c3, c4 = st.columns([1, 2, 1, 1])
material = c1.selectbox(
    "Material", detail.materials or [None], key=f"export_material_{motif_id}",
    help="A motif seen in several materials is exported for one of them at a time.",
)
reference = c2.text_input(
    "Reference crystal (blank: the material's)", value="", key="export_reference",
    placeholder="proto:mx2:formula=MoS2,a=3.19  or a CIF/POSCAR path",
)
zone = c3.text_input("Zone axis", value="", key="export_zone", placeholder="best, or 001")
min_cell = c4.number_input("Defect cell ≥ (Å)", min_value=3.0, value=12.0, step=1.0,
                           key="export_min_cell")
force = st.checkbox("Write even with overlapping atoms", value=False, key="export_force")

overrides = st.session_state.get(f"export_overrides_{motif_id}", ())
try:
    atoms = data.atoms(uri, motif_id, overrides, material, reference.strip() or None,
                       zone.strip() or None, float(min_cell), bool(force))
except MotifcatError as exc:
    st.error(str(exc))
    st.stop()

used = atoms.info.get("species", {})
species_table = pd.DataFrame({"level-1 motif": list(used),
                              "name": [names.get(m, "") for m in used],
                              "column": list(used.values())})
st.markdown("**Column content per level-1 motif** (suggested within the material; edit to "
            "override, e.g. `Se` for a single chalcogen)")
edited = st.data_editor(
    species_table, hide_index=True, disabled=["level-1 motif", "name"],
    key=f"export_species_{motif_id}", width="content",
)
new = tuple(
    (m, str(s).strip()) for m, s in zip(edited["level-1 motif"], edited["column"], strict=True)
    if str(s).strip() and str(s).strip() != used.get(m) and str(s).strip() != "empty"
)
if new and new != overrides:
    st.session_state[f"export_overrides_{motif_id}"] = tuple(sorted(set(overrides) | set(new)))
    st.rerun()

st.code(atoms.info.get("report", ""), language=None, wrap_lines=True)
left, right = st.columns([2, 1])
with left:
    st.plotly_chart(plots.atoms_figure(atoms), key="atoms_chart")
    st.plotly_chart(plots.atoms_side_figure(atoms), key="atoms_side_chart")
with right:
    st.metric("Atoms", len(atoms))
    st.markdown(f"Formula **{atoms.get_chemical_formula()}**")
    st.markdown(f"Model: {atoms.info.get('model', '')}")
    st.markdown(f"Periodic: {', '.join('xyz'[i] for i in range(3) if atoms.pbc[i]) or 'no'}")
    st.caption(str(atoms.info.get("note", "")))
    for fmt in data.DOWNLOAD_FORMATS:
        try:
            payload = data.atoms_file(atoms, fmt)
        except MotifcatError as exc:
            st.error(f"{fmt}: {exc}")
            continue
        suffix = data.DOWNLOAD_FORMATS[fmt][1]
        st.download_button(
            f"Download {fmt}", payload, file_name=f"{motif_id}{suffix}",
            mime="application/octet-stream" if fmt == "ASE db" else "text/plain",
            key=f"download_{fmt}", icon=":material/download:",
        )
