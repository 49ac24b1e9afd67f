"""Export: a motif as an atomic model (ase.Atoms) for DFT/MD, downloaded as extxyz/CIF/POSCAR."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from motifcat.app import data, plots
from motifcat.errors import MotifcatError

uri = data.catalog_uri()
st.title("Export")
st.caption(
    "An unrelaxed starting structure from a motif's prototype: each level-1 motif (column) "
    "becomes its column content, e.g. `Mo` or `Se2` (two atoms along the beam)."
)

# Most persistent motifs first (seen in many images, often), units and composites before single
# columns (a level-1 motif exports as one column), then the rest of the vocabulary.
vocab = data.vocabulary_table(uri)
ranked = data.persistent_table(uri, 1, 1)
ranked = ranked.assign(single=ranked["level"] == 1).sort_values("single", kind="stable")
order = list(ranked["motif_id"]) + sorted(set(vocab["motif_id"]) - set(ranked["motif_id"]))
labels = vocab.set_index("motif_id")
motif_id = st.selectbox(
    "Motif", order, key="export_motif",
    format_func=lambda m: f"{m} · level {labels.loc[m, 'level']} · "
    f"{labels.loc[m, 'n_instances']} instances",
)
detail = data.motif(uri, motif_id)
c1, c2, c3 = st.columns(3)
formula = c1.text_input(
    "Formula (to suggest species)", value=detail.materials[0] if detail.materials else "",
    key=f"export_formula_{motif_id}",
)
thickness = c2.number_input(
    "Layer thickness (Å, 0 = material default)", min_value=0.0, value=0.0, step=0.1,
    key="export_thickness",
)
vacuum = c3.number_input("Vacuum (Å)", min_value=0.0, value=10.0, step=1.0, key="export_vacuum")

suggested: dict[str, str] = {}
if formula.strip():
    try:
        suggested = data.suggested_species(uri, motif_id, formula.strip())
    except MotifcatError as exc:
        st.warning(f"No suggestion from {formula!r}: {exc}")
needed = sorted(set(detail.prototype_columns()[1]) or {detail.motif_id})
species_table = pd.DataFrame(
    {"level-1 motif": needed, "column": [suggested.get(m, "") for m in needed]}
)
st.markdown("**Species per column** (edit the column content)")
edited = st.data_editor(
    species_table, hide_index=True, disabled=["level-1 motif"], key=f"export_species_{motif_id}",
    width="content",
)
species = tuple(
    (m, str(s).strip()) for m, s in zip(edited["level-1 motif"], edited["column"], strict=True)
)
missing = [m for m, s in species if not s]
if missing:
    st.info(f"Give a column content (e.g. Mo, Se2) for {', '.join(missing)}.")
    st.stop()
try:
    atoms = data.atoms(uri, motif_id, species, float(thickness) or None, float(vacuum))
except MotifcatError as exc:
    st.error(str(exc))
    st.stop()

left, right = st.columns([2, 1])
with left:
    st.plotly_chart(plots.atoms_figure(atoms), key="atoms_chart")
with right:
    st.metric("Atoms", len(atoms))
    st.markdown(f"Formula **{atoms.get_chemical_formula()}**")
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
            mime="text/plain", key=f"download_{fmt}", icon=":material/download:",
        )
