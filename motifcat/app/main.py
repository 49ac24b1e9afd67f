"""Entry script of the catalog browser: ``streamlit run main.py -- --catalog URI``.

It sets the page up, shows which catalog is served, and hands over to the page chosen in the
sidebar (``st.navigation``). When the catalog cannot be opened it says why; when it is empty it
says how to fill it; in both cases no page runs.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from motifcat import __version__
from motifcat.app import data

VIEWS = Path(__file__).with_name("views")

st.set_page_config(page_title="motifcat", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page(VIEWS / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(VIEWS / "image.py", title="Image", icon=":material/image:"),
    st.Page(VIEWS / "motifs.py", title="Motifs", icon=":material/grid_view:"),
    st.Page(VIEWS / "hierarchy.py", title="Hierarchy", icon=":material/account_tree:"),
    st.Page(VIEWS / "cypher.py", title="Cypher", icon=":material/terminal:"),
    st.Page(VIEWS / "export.py", title="Export", icon=":material/download:"),
]
page = st.navigation(PAGES)

uri = data.catalog_uri()
with st.sidebar:
    st.caption(f"motifcat {__version__}")
    st.markdown(f"**Catalog** `{data.display_uri(uri)}`")  # never a password on screen
    if st.button("Reload catalog", icon=":material/refresh:", key="reload"):
        data.reload()
    elif data.refresh_if_changed(uri):  # written since the results were cached: fresh counts
        st.caption("catalog changed: reloaded")

status = data.catalog_status(uri)
if status.state == "error":
    st.title(page.title)
    st.error(f"The catalog cannot be opened: {status.message}", icon=":material/error:")
    st.stop()
if status.state == "empty":
    st.title(page.title)
    st.info(status.message, icon=":material/info:")
    st.markdown(data.ingest_howto(uri))
    st.stop()

page.run()
