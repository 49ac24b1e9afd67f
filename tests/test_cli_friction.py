"""What a new user meets on the command line: empty inputs, bad --out, odd files, warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from make_fixtures import fixture_image
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from motifcat.cli import app

runner = CliRunner()


def test_ingest_empty_folder_fails_with_a_message(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    cat = tmp_path / "cat"
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "empty"), "-s", "S", "-m", "M", "-c", str(cat)]
    )
    assert result.exit_code != 0
    assert "no image files in this folder" in result.output
    assert not cat.exists()  # nothing written on bad input


def test_ingest_glob_matching_nothing_fails_with_a_message(tmp_path):
    pattern = str(tmp_path / "*.dm4")
    result = runner.invoke(
        app, ["ingest", pattern, "-s", "S", "-m", "M", "-c", str(tmp_path / "c")]
    )
    assert result.exit_code != 0
    assert "the pattern matches no file" in result.output


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("missing/result.npz", "folder"),
        ("result.txt", "--out must end in .npz or .json"),
    ],
)
def test_out_is_checked_before_the_analysis(tmp_path, monkeypatch, out, message):
    import motifcat.ingest as ingest

    def no_analysis(*args, **kwargs):
        raise AssertionError("the analysis ran before --out was checked")

    monkeypatch.setattr(ingest, "analyze", no_analysis)
    monkeypatch.setattr(ingest, "load_image", no_analysis)
    np.save(tmp_path / "a.npy", fixture_image())
    result = runner.invoke(app, ["analyze", str(tmp_path / "a.npy"), "--out", str(tmp_path / out)])
    assert result.exit_code == 1
    assert message in result.output and "the analysis ran" not in result.output


@pytest.mark.parametrize("ext", ["mrc", "tif", "dm4", "emd", "hspy", "npy"])
def test_empty_file_is_said_so(tmp_path, ext):
    f = tmp_path / f"empty.{ext}"
    f.write_bytes(b"")
    result = runner.invoke(app, ["analyze", str(f)])
    assert result.exit_code == 1
    assert f"empty.{ext}: cannot read as" in result.output
    assert "the file is empty (0 bytes)" in result.output
    assert "truth value" not in result.output


def test_library_warnings_are_summarised(tmp_path, monkeypatch):
    from sklearn.exceptions import ConvergenceWarning

    import motifcat.ingest as ingest

    real = ingest.analyze

    def chatty(*args, **kwargs):
        for _ in range(3):
            warnings.warn(
                "Number of distinct clusters (3) found smaller than n_clusters (4).",
                ConvergenceWarning,
                stacklevel=1,
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "analyze", chatty)
    from motifcat.datasets import make_tmd

    np.save(tmp_path / "t.npy", make_tmd((192, 192), seed=3).micrograph().data)
    with threadpool_limits(1):
        result = runner.invoke(
            app, ["analyze", str(tmp_path / "t.npy"), "--pixel-size", "0.2", "--no-hierarchy"]
        )
    assert result.exit_code == 0, result.output
    assert "note: sklearn.ConvergenceWarning (3x) from a library: Number of distinct" in (
        result.output
    )
    assert "warnings.warn(" not in result.output and "stacklevel" not in result.output


def test_tables_do_not_wrap_when_output_is_not_a_terminal(tmp_path):
    folder = tmp_path / ("a_long_folder_name_" * 4)
    folder.mkdir()
    f = folder / "image_with_a_rather_long_name.npy"
    from motifcat.datasets import make_tmd

    np.save(f, make_tmd((192, 192), seed=3).micrograph().data)
    cat = tmp_path / "cat"
    with threadpool_limits(1):
        result = runner.invoke(
            app, ["ingest", str(f), "-s", "S", "-m", "M", "-c", str(cat), "--pixel-size", "0.2"]
        )
    assert result.exit_code == 0, result.output
    row = [line for line in result.output.splitlines() if "written" in line and "│" in line]
    assert row and str(f) in row[0]  # the whole path on one table row
    samples = runner.invoke(app, ["query", "samples", "-c", str(cat)])
    assert samples.exit_code == 0
    assert all(len(line) < 300 for line in samples.output.splitlines())  # no padding to 10^4
