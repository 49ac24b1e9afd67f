"""Cypher: the read-only console, results as a table and a CSV download."""

from __future__ import annotations

import json

import streamlit as st

from motifcat.app import data
from motifcat.errors import MotifcatError

#: Example name -> (query, parameters as JSON).
EXAMPLES = {
    "Motifs per level": (
        "MATCH (m:Motif) RETURN m.level AS level, count(m) AS motifs ORDER BY level", "{}"
    ),
    "Samples and materials": (
        "MATCH (s:Sample)-[:OF_MATERIAL]->(mat:Material) "
        "RETURN s.id AS sample, mat.name AS material ORDER BY sample",
        "{}",
    ),
    "Motifs shared by materials": (
        "MATCH (img:Image)-[:CONTAINS]->(m:Motif) "
        "MATCH (img)-[:OF_SAMPLE]->(s:Sample) MATCH (s)-[:OF_MATERIAL]->(mat:Material) "
        "RETURN m.id AS motif, count(DISTINCT mat.name) AS materials "
        "ORDER BY materials DESC, motif",
        "{}",
    ),
    "Motifs with at least n instances": (
        "MATCH (m:Motif) WHERE m.n_instances >= $n "
        "RETURN m.id AS motif, m.level AS level, m.n_instances AS instances "
        "ORDER BY instances DESC",
        '{"n": 10}',
    ),
}

uri = data.catalog_uri()
st.title("Cypher")
st.caption(
    "Read-only: statements that could write or touch files are refused before they run. "
    "Put values in the parameters and refer to them as `$name`."
)
example = st.selectbox("Example", list(EXAMPLES), key="cypher_example")
if st.session_state.get("_cypher_example_shown") != example:
    # Choosing an example replaces the text; editing it afterwards keeps the edit.
    st.session_state["cypher_text"], st.session_state["cypher_params"] = EXAMPLES[example]
    st.session_state["_cypher_example_shown"] = example
    # The result shown belongs to the query that was run; a new example has not been run.
    st.session_state.pop("cypher_ran", None)
text = st.text_area("Query", key="cypher_text", height=120)
params_text = st.text_input("Parameters (JSON object)", key="cypher_params")
if st.button("Run", type="primary", key="cypher_run", icon=":material/play_arrow:"):
    st.session_state["cypher_ran"] = (text, params_text)

ran = st.session_state.get("cypher_ran")
if ran:
    text_run, params_run = ran
    try:
        params = json.loads(params_run or "{}")
        if not isinstance(params, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        st.error(f"Parameters: expected a JSON object such as {{\"motif\": \"L1-0001\"}} ({exc})")
        st.stop()
    try:
        with st.spinner("Running the query… (it stops at the console's time limit)"):
            result = data.run_cypher(uri, text_run, params)
    except MotifcatError as exc:
        st.error(str(exc), icon=":material/block:")
        st.stop()
    cut = result.attrs.get("truncated_at")
    st.caption(f"{len(result)} rows" + (f" (the first {cut}; the rest were cut)" if cut else ""))
    # Nodes, lists and maps come back as Python objects: show them as text.
    shown = result.apply(
        lambda col: col.map(lambda v: json.dumps(v, default=str)
                            if isinstance(v, dict | list | tuple) else v)
        if col.dtype == object else col
    )
    st.dataframe(shown, hide_index=True, width="stretch")
    st.download_button(
        "Download CSV", result.to_csv(index=False).encode("utf-8"), file_name="query.csv",
        mime="text/csv", key="cypher_csv", icon=":material/download:",
    )
