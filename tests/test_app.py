"""The Streamlit catalog browser, page by page, with Streamlit's AppTest against a real catalog.

The catalog is built by the real pipeline and writer from small synthetic images (two MoSe2
samples and one Cairo-tiling sample); every value the app shows is compared with what the
query layer answers on the same catalog.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from threadpoolctl import threadpool_limits

from motifcat.app import MAIN_SCRIPT, launch_command, launch_env
from motifcat.app.data import catalog_uri, motif_label
from motifcat.catalog.store import open_catalog
from motifcat.catalog.writer import write_analysis
from motifcat.errors import MotifcatError
from motifcat.export import motif_to_atoms
from motifcat.ingest.io import load_image
from motifcat.ingest.pipeline import analyze
from motifcat.query import (
    composition,
    composition_edges,
    image_instances,
    image_units,
    list_images,
    list_materials,
    list_samples,
    mean_images,
    motif_detail,
    recurring_motifs,
    vocabulary,
)

PAGES = ["overview", "image", "motifs", "hierarchy", "cypher", "export"]
TIMEOUT_S = 60


def build_catalog(folder: Path, synthetic, size: int = 192) -> tuple[str, Path]:
    """A small real catalog: MoSe2 x 2 samples + a Cairo tiling; the Cairo file is then removed.

    ``synthetic`` is the shared image factory (tests/conftest.py). Returns the catalog URI and
    the removed image file (the Image page must say it is gone).
    """
    folder.mkdir(parents=True, exist_ok=True)
    specs = [
        ("MoSe2-A", "MoSe2", synthetic("tmd", (size, size), seed=1)),
        ("MoSe2-B", "MoSe2", synthetic("tmd", (size, size), seed=2)),
        ("Cairo-A", "MoVTeNbO", synthetic("cairo", (size, size), seed=3)),
    ]
    uri = str(folder / "catalog.lbug")
    # One BLAS thread: on a shared 2-core machine the GMM fits run ~10x faster than oversubscribed.
    with threadpool_limits(1), open_catalog(uri) as store:
        for sample, material, syn in specs:
            path = folder / f"{sample}.npy"
            np.save(path, syn.image)
            analysis = analyze(load_image(path, pixel_size_A=syn.pixel_size_A))
            write_analysis(store, analysis, sample=sample, material=material)
    gone = folder / "Cairo-A.npy"
    gone.unlink()
    return uri, gone


@pytest.fixture(autouse=True)
def _restore_main_module():
    """AppTest runs the app script as ``__main__`` and leaves it there; a later test that starts
    worker processes (spawn re-imports ``__main__`` in each child) would run the app in them."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, synthetic) -> tuple[str, Path]:
    return build_catalog(tmp_path_factory.mktemp("app") / "cat", synthetic)


@pytest.fixture(scope="module")
def store(catalog):
    with open_catalog(catalog[0], read_only=True) as s:
        yield s


def run_page(monkeypatch, uri: str, page: str) -> AppTest:
    monkeypatch.setenv("MOTIFCAT_CATALOG", uri)
    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=TIMEOUT_S).run()
    if page != "overview":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [page.capitalize()] or page == "cypher"
    return at


def level1_names_of(uri: str) -> dict[str, str]:
    """The app's level-1 names of the catalog (checked against the instances in
    test_level1_names_follow_brightness_and_share)."""
    from motifcat.app import data

    return data.level1_names(uri)


def frames(at: AppTest, *columns: str) -> list:
    """The tables shown (in page order) that have all these columns."""
    out = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert out, f"no table with columns {columns}"
    return out


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def chart_spec(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def arr(value) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata"[, "shape"]}``."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        if shape:
            out = out.reshape([int(n) for n in str(shape).split(",")])
        return out
    return np.asarray(value, dtype=object)


# ------------------------------------------------------------------------------------ pages


def test_overview_counts_match_catalog(monkeypatch, catalog, store):
    at = run_page(monkeypatch, catalog[0], "overview")
    materials, samples, images = list_materials(store), list_samples(store), list_images(store)
    assert int(metric(at, "Materials")) == len(materials) == 2
    assert int(metric(at, "Samples")) == len(samples) == 3
    assert int(metric(at, "Images")) == len(images) == 3
    per_level = vocabulary(store).groupby("level").size()
    for level, n in per_level.items():
        assert int(metric(at, f"Level-{level} motifs")) == n
    shown = frames(at, "sample", "n_instances")[0]
    assert list(shown["sample"]) == list(samples["sample"])
    assert list(shown["n_instances"]) == list(samples["n_instances"])
    assert list(frames(at, "material", "n_samples")[0]["material"]) == ["MoSe2", "MoVTeNbO"]
    # No motif crosses these two materials, so the app falls back to motifs across samples.
    assert recurring_motifs(store, 2, 1).empty
    assert "No motif is found in 2 or more materials" in at.info[0].value
    expected = recurring_motifs(store, 1, 2)
    table = frames(at, "motif_id", "n_materials")[0]
    assert list(table["motif_id"]) == list(expected["motif_id"])
    assert list(table["n_samples"]) == list(expected["n_samples"])
    bars = chart_spec(at)["data"]
    assert {b["name"] for b in bars} == {"MoSe2"}
    assert sum(arr(b["y"]).sum() for b in bars) == expected["n_instances"].sum()


def test_image_page_overlays_columns_and_units(monkeypatch, catalog, store):
    at = run_page(monkeypatch, catalog[0], "image")
    images = list_images(store)
    box = at.selectbox(key="image_id")
    assert set(box.options) == {f"{r.sample} · {r.image_id[:12]} · {Path(r.path).name}"
                                for r in images.itertuples()}
    assert box.value == images["image_id"].iloc[0]
    image_id = images.loc[images["sample"] == "MoSe2-A", "image_id"].iloc[0]
    box.set_value(image_id).run()
    assert not at.exception
    assert not at.warning  # the file is there: the micrograph is drawn
    spec = chart_spec(at)
    kinds = [t["type"] for t in spec["data"]]
    assert kinds[0] == "image" and spec["data"][0]["source"].startswith("data:image/png;base64,")
    cols = image_instances(store, image_id, 1)
    counts = cols["motif_id"].fillna("unclassified").value_counts()
    names = level1_names_of(catalog[0])
    shown = {t["name"] for t in spec["data"] if t.get("legendgroup") == "level1"}
    assert shown == {f"{motif_label(m, names)} ({n})" for m, n in counts.items()}
    # Hover data of the columns: instance ids of this image and their motif ids.
    level1 = [t for t in spec["data"] if t.get("legendgroup") == "level1"]
    hover = [c for t in level1 for c in arr(t["customdata"])]
    assert {h[0] for h in hover} == set(cols["instance_id"])
    units = image_units(store, image_id, 2)
    unit_traces = [t for t in spec["data"] if t.get("legendgroup") == "level2"]
    assert unit_traces and all(t["fill"] == "toself" for t in unit_traces)
    assert sum(int(t["name"].rsplit("(", 1)[1].rstrip(")")) for t in unit_traces) == len(units)
    legend = frames(at, "level", "motif_id", "count", "colour")[0]
    lvl1 = legend[legend["level"] == 1].set_index("motif_id")["count"]
    assert lvl1.to_dict() == counts.to_dict()
    # Level-1 rows carry their readable names, units none.
    named = legend.set_index("motif_id")["name"]
    assert all(named[m] == names[m] for m in lvl1.index if m in names)
    assert set(legend.loc[legend["level"] > 1, "name"]) <= {""}
    assert legend.loc[legend["level"] == 2, "count"].sum() == len(units)
    n3 = len(image_instances(store, image_id, 3))
    assert legend.loc[legend["level"] == 3, "count"].sum() == n3

    # The Cairo image's file was removed after ingest: say so and draw the columns alone.
    cairo = images.loc[images["sample"] == "Cairo-A", "image_id"].iloc[0]
    box.set_value(cairo).run()
    assert not at.exception
    assert "is not there any more" in at.warning[0].value
    assert str(catalog[1]) in at.warning[0].value
    spec = chart_spec(at)
    assert "image" not in [t["type"] for t in spec["data"]]
    n_cols = sum(len(arr(t["x"])) for t in spec["data"] if t.get("legendgroup") == "level1")
    assert n_cols == len(image_instances(store, cairo, 1))


def test_image_page_draws_level3_outlines_only_when_shown(monkeypatch, catalog, store):
    """Composite outlines cost a second graph hop: the page asks for them only when the
    level-3 overlay is on; the motif counts come from the instances."""
    from motifcat.app import data

    asked = []
    real_units = data.units

    def units(uri, image_id, level=2, outline=True):
        asked.append(level)
        return real_units(uri, image_id, level, outline)

    monkeypatch.setattr(data, "units", units)
    at = run_page(monkeypatch, catalog[0], "image")
    assert 3 not in asked and 2 in asked  # default overlays: columns and units
    at.pills(key="overlays").set_value([1, 2, 3]).run()
    assert not at.exception and 3 in asked
    image_id = at.selectbox(key="image_id").value
    comp = image_units(store, image_id, 3)
    traces = [t for t in chart_spec(at)["data"] if t.get("legendgroup") == "level3"]
    assert sum(int(t["name"].rsplit("(", 1)[1].rstrip(")")) for t in traces) == len(comp)


def test_image_overlays_default_again_after_another_page(monkeypatch, catalog, store):
    """Leaving the page drops its widgets' state: coming back shows the default overlays, not
    an empty selection (small images: columns and units)."""
    at = run_page(monkeypatch, catalog[0], "image")
    assert at.pills(key="overlays").value == [1, 2]
    at.pills(key="overlays").set_value([3]).run()
    at.switch_page("views/overview.py").run()
    at.switch_page("views/image.py").run()
    assert not at.exception
    assert at.pills(key="overlays").value == [1, 2]
    assert [t for t in chart_spec(at)["data"] if t.get("legendgroup") == "level1"]


def test_motifs_gallery_and_detail(monkeypatch, catalog, store):
    at = run_page(monkeypatch, catalog[0], "motifs")
    assert at.radio(key="motif_level").value == 1
    vocab = vocabulary(store, 1)
    names = level1_names_of(catalog[0])
    gallery = [c for img in at.image for c in img.captions if " inst. · " in c]
    assert len(gallery) == len(vocab)
    for mid, n in zip(vocab["motif_id"], vocab["n_instances"], strict=True):
        assert any(c.startswith(f"{mid} · {names[mid]} · {n} inst.") for c in gallery)
    box = at.selectbox(key="motif_selected_1")
    assert set(box.options) == {f"{motif_label(m, names)} · {n} instances"
                                for m, n in zip(vocab["motif_id"], vocab["n_instances"],
                                                strict=True)}  # the options as shown
    detail = motif_detail(store, box.value)
    assert at.header[0].value == f"{box.value} · {names[box.value]}"
    assert int(metric(at, "Instances")) == detail.n_instances
    assert int(metric(at, "Samples")) == len(detail.samples)
    where = frames(at, "image_id", "sample", "count")[0]
    assert list(where["image_id"]) == list(detail.per_image["image_id"])
    assert list(where["count"]) == list(detail.per_image["count"])
    comp = composition(store, box.value)
    assert list(frames(at, "motif_id", "level", "key", "count")[1]["motif_id"]) == list(
        comp.part_of["motif_id"]
    )
    assert len(frames(at, "motif_id", "distance")[0]) == min(5, len(vocab) - 1)

    # A level-2 motif: its parts are level-1 motifs, as the catalog says.
    at.radio(key="motif_level").set_value(2).run()
    assert not at.exception
    box = at.selectbox(key="motif_selected_2")
    level2 = vocabulary(store, 2)
    assert set(box.options) == {f"{m} · {n} instances"
                                for m, n in zip(level2["motif_id"], level2["n_instances"],
                                                strict=True)}
    parts = frames(at, "motif_id", "level", "key", "count")[0]
    expected = composition(store, box.value).parts
    assert list(parts["motif_id"]) == list(expected["motif_id"])
    assert list(parts["count"]) == list(expected["count"])
    assert set(parts["level"]) == {1}


def test_deep_links_select_image_and_motif(monkeypatch, catalog, store):
    monkeypatch.setenv("MOTIFCAT_CATALOG", catalog[0])
    images = list_images(store)
    target = images.loc[images["sample"] == "MoSe2-B", "image_id"].iloc[0]
    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=TIMEOUT_S).run()
    at.switch_page("views/image.py")
    at.query_params["image"] = target[:10]
    at.run()
    assert not at.exception
    assert at.selectbox(key="image_id").value == target

    unit = vocabulary(store, 2)["motif_id"].iloc[-1]
    at.switch_page("views/motifs.py")
    at.query_params["motif"] = unit
    at.run()
    assert not at.exception
    assert at.radio(key="motif_level").value == 2
    assert at.selectbox(key="motif_selected_2").value == unit
    assert at.header[0].value == unit


def test_level3_gallery_pages_and_filters(monkeypatch, catalog, store):
    """The gallery shows a page of the most common motifs; the support filters narrow it."""
    from motifcat.app.data import GALLERY_PAGE

    at = run_page(monkeypatch, catalog[0], "motifs")
    at.radio(key="motif_level").set_value(3).run()
    assert not at.exception
    vocab = vocabulary(store, 3).sort_values(["n_instances", "motif_id"],
                                             ascending=[False, True])
    tiles = [c for img in at.image for c in img.captions if " inst. · " in c]
    tiles += [m.value for m in at.markdown if m.value.startswith("*no image*")]
    assert len(tiles) == min(GALLERY_PAGE, len(vocab))
    assert tiles[0].split(" · ")[0] in set(vocab["motif_id"].iloc[: len(tiles)])
    common = int(vocab["n_instances"].iloc[min(2, len(vocab) - 1)])
    at.number_input(key="motif_min_count_3").set_value(common).run()
    tiles = [c for img in at.image for c in img.captions if " inst. · " in c]
    assert len(tiles) == int((vocab["n_instances"] >= common).sum())
    # A tile's button shows that motif's detail.
    last = tiles[-1].split(" · ")[0]
    at.button(key=f"tile_{last}").click().run()
    assert not at.exception
    assert at.header[0].value == last
    assert int(metric(at, "Instances")) == int(vocab.set_index("motif_id").loc[last, "n_instances"])


def _hier_nodes(at: AppTest) -> tuple[dict, list[str]]:
    spec = chart_spec(at)
    nodes = next(t for t in spec["data"] if t.get("name") == "motifs")
    return spec, [c[0] for c in arr(nodes["customdata"])]


def test_hierarchy_top_n_tree_with_counts_and_thumbnails(monkeypatch, catalog, store):
    from motifcat.app.data import HIERARCHY_TOP_N as DEFAULT_TOP_N

    at = run_page(monkeypatch, catalog[0], "hierarchy")
    edges, vocab = composition_edges(store), vocabulary(store)
    assert f"{len(edges)} COMPOSED_OF edges" in at.caption[0].value
    spec, shown = _hier_nodes(at)
    # The top N of each level by instances, not the whole vocabulary.
    expected = (vocab.sort_values(["level", "n_instances", "motif_id"],
                                  ascending=[True, False, True])
                .groupby("level").head(DEFAULT_TOP_N))
    assert len(vocab) > len(expected)  # the test catalog has more level-3 motifs than shown
    assert shown == list(expected["motif_id"])
    labels = next(t for t in spec["data"] if t.get("name") == "labels")
    counts = vocab.set_index("motif_id")["n_instances"]
    names = level1_names_of(catalog[0])
    for text, mid in zip(arr(labels["text"]), shown, strict=True):
        assert text.startswith(mid) and text.endswith(f"<br>{counts[mid]} inst.")
        if mid in names:
            assert names[mid] in text
    # Edges only between the motifs shown: each of them, no other.
    ids = set(shown)
    between = edges[edges["parent"].isin(ids) & edges["child"].isin(ids)]
    lines = next(t for t in spec["data"] if t.get("name") == "COMPOSED_OF")
    assert len(arr(lines["x"])) == 3 * len(between) > 0
    assert len(frames(at, "parent", "child", "count")[0]) == len(between)
    # A thumbnail (the average image) on every node that has one.
    with_image = sum(v is not None for v in mean_images(store, shown).values())
    assert with_image > 0
    assert len(spec["layout"].get("images", [])) == with_image
    assert all(im["source"].startswith("data:image/png;base64,") for im in spec["layout"]["images"])


def test_hierarchy_filters_by_level_and_support(monkeypatch, catalog, store):
    at = run_page(monkeypatch, catalog[0], "hierarchy")
    vocab = vocabulary(store)
    at.pills(key="hier_levels").set_value([2]).run()
    assert not at.exception
    _, shown = _hier_nodes(at)
    assert shown and set(vocab.set_index("motif_id").loc[shown, "level"]) == {2}
    level2 = vocab[vocab["level"] == 2]
    threshold = int(level2["n_instances"].median()) + 1
    at.number_input(key="hier_min_instances").set_value(threshold).run()
    _, shown = _hier_nodes(at)
    assert set(shown) == set(level2.loc[level2["n_instances"] >= threshold, "motif_id"].head(30))
    assert set(shown) <= set(level2["motif_id"])
    # Every motif of this catalog is in one or two samples: a support of 3 leaves nothing.
    at.number_input(key="hier_min_samples").set_value(3).run()
    assert not at.exception
    assert "No motif meets these thresholds." in [i.value for i in at.info]


def test_hierarchy_open_button_shows_the_motif(monkeypatch, catalog, store):
    at = run_page(monkeypatch, catalog[0], "hierarchy")
    _, shown = _hier_nodes(at)
    vocab = vocabulary(store).set_index("motif_id")
    target = next(m for m in shown if vocab.loc[m, "level"] == 3)
    at.button(key=f"hier_open_{target}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Motifs"]
    assert at.radio(key="motif_level").value == 3
    assert at.selectbox(key="motif_selected_3").value == target
    assert at.header[0].value == target
    assert int(metric(at, "Instances")) == int(vocab.loc[target, "n_instances"])


def test_hierarchy_shows_families_when_the_catalog_has_them(monkeypatch, catalog, store):
    """Motif nodes may carry a ``family`` (rare variants grouped, issue 11): shown when there."""
    from motifcat.app import data

    real = data.vocabulary_table

    def with_family(uri, level=None):
        v = real(uri, level)
        return v.assign(family=["family " + m[-2:] for m in v["motif_id"]])

    monkeypatch.setattr(data, "vocabulary_table", with_family)
    at = run_page(monkeypatch, catalog[0], "hierarchy")
    table = frames(at, "motif_id", "family")[0]
    assert all(f == "family " + m[-2:] for m, f in zip(table["motif_id"], table["family"],
                                                         strict=True))
    assert any(" · family " in c for img in at.image for c in img.captions)


def test_level1_names_follow_brightness_and_share(catalog, store):
    """Names rank a material's level-1 motifs by the mean cross-section of their columns and
    give their share of the material's columns (checked here against the instances)."""
    import pandas as pd

    names = level1_names_of(catalog[0])
    assert set(names) == set(vocabulary(store, 1)["motif_id"])
    images = list_images(store)
    cols = pd.concat([image_instances(store, i, 1).assign(material=m, image_id=i)
                      for i, m in zip(images["image_id"], images["material"], strict=True)])
    cols = cols[cols["motif_id"].notna()]
    # Each column's cross-section relative to its image's mean (dose and gain drop out).
    cols = cols.assign(rel=cols["cross_section"]
                       / cols.groupby("image_id")["cross_section"].transform("mean"))
    for material, grp in cols.groupby("material"):
        stats = grp.groupby("motif_id").agg(n=("instance_id", "size"), cs=("rel", "mean"))
        share = 100 * stats["n"] / stats["n"].sum()
        own = [m for m in stats.index if names[m].startswith(material + " ")]
        assert own, material
        for m in own:
            said = names[m].removeprefix(material + " ")
            assert said.endswith(" %")
            assert abs(float(said.split()[-2]) - share[m]) <= 0.51, (m, said, share[m])
        if material == "MoSe2":  # words by brightness: the brightest class is called so
            words = {m: names[m].split()[1] for m in own}
            brightest = stats.loc[own, "cs"].idxmax()
            assert words[brightest] in {"bright", "brightest"}
            dimmest = stats.loc[own, "cs"].idxmin()
            assert words[dimmest] in {"dim", "dimmest"}


def test_level1_names_shown_on_overview_and_export(monkeypatch, catalog, store):
    names = level1_names_of(catalog[0])
    at = run_page(monkeypatch, catalog[0], "overview")
    table = frames(at, "motif_id", "name", "n_materials")[0]
    for m, name in zip(table["motif_id"], table["name"], strict=True):
        assert name == names.get(m, "")
    at = run_page(monkeypatch, catalog[0], "export")
    editor = frames(at, "level-1 motif", "name", "column")[0]
    assert list(editor["name"]) == [names[m] for m in editor["level-1 motif"]]


def test_cypher_console_table_csv_and_refusal(monkeypatch, catalog, store):
    at = run_page(monkeypatch, catalog[0], "cypher")
    at.text_area(key="cypher_text").set_value(
        "MATCH (s:Sample) RETURN s.id AS sample ORDER BY sample"
    )
    at.text_input(key="cypher_params").set_value("{}")
    at.button(key="cypher_run").click().run()
    assert not at.exception and not at.error
    result = frames(at)[0]
    assert list(result["sample"]) == sorted(list_samples(store)["sample"])
    assert at.download_button[0].label == "Download CSV"

    # Parameters travel as parameters.
    at.text_area(key="cypher_text").set_value(
        "MATCH (m:Motif) WHERE m.level = $level RETURN count(m) AS n"
    )
    at.text_input(key="cypher_params").set_value('{"level": 2}')
    at.button(key="cypher_run").click().run()
    assert frames(at)[0]["n"].iloc[0] == len(vocabulary(store, 2))

    # A write is refused with the console's reason, and nothing is written.
    n_before = len(vocabulary(store))
    at.text_area(key="cypher_text").set_value("MATCH (m:Motif) /* x */ DETACH DELETE m")
    at.text_input(key="cypher_params").set_value("{}")
    at.button(key="cypher_run").click().run()
    assert not at.exception
    assert "DETACH is not allowed" in at.error[0].value
    assert len(vocabulary(store)) == n_before


def test_export_preview_and_downloads(monkeypatch, catalog, store):
    at = run_page(monkeypatch, catalog[0], "export")
    assert not at.exception and not at.error
    motif_id = at.selectbox(key="export_motif").value
    detail = motif_detail(store, motif_id)
    assert detail.level >= 2  # units before single columns
    material = at.selectbox(key=f"export_material_{motif_id}").value
    assert material in detail.materials
    editor = frames(at, "level-1 motif", "column")[0]
    species = dict(zip(editor["level-1 motif"], editor["column"], strict=True))
    assert set(species.values()) <= {"Mo", "SeSe", "Se"}, species
    atoms = motif_to_atoms(store, motif_id, material=material)
    assert int(metric(at, "Atoms")) == len(atoms)
    assert atoms.info["report"] in [c.value for c in at.code]
    side = chart_spec(at, 1)  # the x-z side view: every atom at its height
    z_plotted = np.sort(np.concatenate([arr(t["y"]) for t in side["data"]]))
    np.testing.assert_allclose(z_plotted, np.sort(atoms.positions[:, 2]), atol=1e-6)
    spec = chart_spec(at)
    n_plotted = sum(len(arr(t["x"])) for t in spec["data"] if t.get("name") != "cell")
    assert n_plotted == len(atoms)
    labels = [b.label for b in at.download_button]
    assert labels == ["Download extxyz", "Download CIF", "Download POSCAR",
                      "Download LAMMPS data", "Download ASE db"]


def test_every_download_reads_back_as_the_previewed_model(catalog, store, tmp_path):
    """Issue 13: each of the Export page's downloads is a file ASE reads back to the same
    atoms (formula, cell, positions), not only a button."""
    import ase.io
    from ase.db import connect

    from motifcat.app import data
    from motifcat.query import persistent_motifs

    motif_id = persistent_motifs(store, min_images=1, min_instances=1, level=2)["motif_id"][0]
    atoms = motif_to_atoms(store, motif_id)
    for fmt, (name, suffix) in data.DOWNLOAD_FORMATS.items():
        path = tmp_path / f"m{suffix}"
        path.write_bytes(data.atoms_file(atoms, fmt))
        if name == "db":
            back = connect(path).get_atoms(id=1)
        else:
            back = ase.io.read(path, format=name,
                               **({"atom_style": "atomic"} if name == "lammps-data" else {}))
        assert back.get_chemical_formula() == atoms.get_chemical_formula(), fmt
        np.testing.assert_allclose(back.cell.lengths(), atoms.cell.lengths(), atol=1e-4)
        order = np.lexsort(back.positions.T), np.lexsort(atoms.positions.T)
        np.testing.assert_allclose(back.positions[order[0]], atoms.positions[order[1]],
                                   atol=1e-4, err_msg=fmt)


# ------------------------------------------------------------------------ empty and broken


@pytest.mark.parametrize("page", PAGES)
def test_empty_catalog_shows_how_to_ingest(monkeypatch, tmp_path, page):
    uri = str(tmp_path / "empty.lbug")
    with open_catalog(uri):
        pass  # schema only, no image
    at = run_page(monkeypatch, uri, page)
    assert not at.error
    assert "holds no image yet" in at.info[0].value
    howto = "\n".join(m.value for m in at.markdown)
    command = "motifcat ingest images/*.dm4 --sample SAMPLE --material FORMULA --catalog "
    assert command + uri in howto


def test_missing_catalog_is_empty_not_an_error(monkeypatch, tmp_path):
    uri = str(tmp_path / "nothing-here.lbug")
    at = run_page(monkeypatch, uri, "overview")
    assert not at.error
    assert "There is no catalog at" in at.info[0].value
    assert not Path(uri).exists()  # the app only reads: it creates nothing


@pytest.mark.parametrize("page", ["overview", "motifs"])
def test_unopenable_catalog_says_why(monkeypatch, tmp_path, page):
    bad = tmp_path / "not-a-catalog.lbug"
    bad.write_bytes(b"this is not a Ladybug database\n" * 100)
    with pytest.raises(MotifcatError) as err:
        open_catalog(str(bad), read_only=True)
    at = run_page(monkeypatch, str(bad), page)
    assert len(at.error) == 1
    assert at.error[0].value.startswith("The catalog cannot be opened: ")
    assert str(err.value) in at.error[0].value
    assert not at.get("plotly_chart")


# ------------------------------------------------------------------------------- launcher


def test_catalog_uri_from_command_line_then_environment(monkeypatch):
    assert catalog_uri(["--catalog", "/data/c.lbug"]) == "/data/c.lbug"
    monkeypatch.setenv("MOTIFCAT_CATALOG", "/env/c.lbug")
    assert catalog_uri(["--cat", "x", "-q"]) == "/env/c.lbug"  # no abbreviations, extras ignored
    monkeypatch.delenv("MOTIFCAT_CATALOG")
    assert catalog_uri([]) == "./motifcat-catalog"


def test_launch_command():
    cmd = launch_command("/data/c.lbug", port=8765)
    assert cmd[1:5] == ["-m", "streamlit", "run", str(MAIN_SCRIPT)]
    assert cmd[cmd.index("--server.port") + 1] == "8765"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    # localhost unless told otherwise; the URI (maybe with a password) never on the command line
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert "/data/c.lbug" not in cmd and "--" not in cmd
    assert launch_env("/data/c.lbug")["MOTIFCAT_CATALOG"] == "/data/c.lbug"
    assert launch_command(None, 8765, host="0.0.0.0")[cmd.index("--server.address") + 1] == (
        "0.0.0.0"
    )
    for bad in (0, 70000, "80", True):
        with pytest.raises(MotifcatError, match="port"):
            launch_command(None, bad)


def test_app_only_reads_through_public_layers():
    """The app's data access goes through motifcat.query / export / catalog public names only."""
    app_dir = Path(MAIN_SCRIPT).parent
    sources = {p.name: p.read_text() for p in app_dir.rglob("*.py")}
    for name, text in sources.items():
        assert "store.read(" not in text and ".read_only(" not in text, name
        assert "queries._" not in text and "from motifcat.query.queries" not in text, name
    # Only the data layer imports the catalog, query and export modules.
    imports = re.compile(r"^(from|import) motifcat\.(catalog|query|export)", re.MULTILINE)
    assert sorted(n for n, t in sources.items() if imports.search(t)) == ["data.py"]
