"""`motifcat analyze` on HyperSpy and multi-image Velox files: --signal, --average."""

from __future__ import annotations

import re

import numpy as np
from make_fixtures import write_velox_emd
from test_hspy import write_hspy
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from motifcat.cli import app
from motifcat.datasets import make_tmd

runner = CliRunner()


def _scene():
    scene = make_tmd((240, 240), seed=7).micrograph().data.astype(float)
    return 50 * (scene - scene.min()) / (scene.max() - scene.min()) + 5


def test_analyze_velox_stack_by_name_averaged(tmp_path):
    scene = _scene()
    rng = np.random.default_rng(2)
    drift = [(0, 0), (1, 2), (3, 3)]
    stack = np.stack([rng.poisson(scene[8 + dy : 200 + dy, 8 + dx : 200 + dx]) for dy, dx in drift])
    bf = rng.poisson(scene[8:200, 8:200]).astype(np.float32)
    f = tmp_path / "velox.emd"
    write_velox_emd(f, [("BF", bf), ("HAADF", stack.astype(np.float32))], pixel_size_m=2.1e-11)
    with threadpool_limits(1):
        result = runner.invoke(
            app, ["analyze", str(f), "--signal", "HAADF", "--average", "--no-hierarchy"]
        )
    assert result.exit_code == 0, result.output
    assert "image: HAADF (3, 192, 192) (of BF (192, 192), HAADF (3, 192, 192);" in result.output
    assert "averaged 3 frames after drift correction" in result.output
    shown = re.search(r"shifts \(dy, dx\) px: (.*?); cropped", result.output).group(1)
    shifts = np.array([float(v) for v in re.findall(r"[-+]\d+\.\d", shown)]).reshape(-1, 2)
    np.testing.assert_allclose(shifts, drift, atol=0.3)
    assert "0.21" in result.output  # the pixel size, from the file
    no_frame = runner.invoke(app, ["analyze", str(f), "--signal", "HAADF"])
    assert no_frame.exit_code == 1 and "--average" in no_frame.output


def test_analyze_hspy_and_the_unitless_refusal(tmp_path):
    f = tmp_path / "img.hspy"
    write_hspy(f, _scene()[:192, :192].astype(np.float32), scale=1.0, units="<undefined>")
    refused = runner.invoke(app, ["analyze", str(f)])
    assert refused.exit_code == 1
    assert "img.hspy: the image axes carry no units" in refused.output
    assert "--pixel-size" in refused.output
    with threadpool_limits(1):
        result = runner.invoke(app, ["analyze", str(f), "--pixel-size", "0.2", "--no-hierarchy"])
    assert result.exit_code == 0, result.output
