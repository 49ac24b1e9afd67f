"""The ``motifcat`` command line: analyze, ingest, query, export, app, demo.

Every command calls the public API only; errors of the motifcat family are printed as one
clear line and exit with status 1 (no traceback for user mistakes).
"""

from __future__ import annotations

import functools
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .errors import MotifcatError

app = typer.Typer(
    help="Learn structural motifs from atomic-resolution STEM images and catalog them.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def handle_errors(fn):
    """Print motifcat errors as one line and exit 1 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MotifcatError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None

    return wrapper


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def print_analysis(analysis) -> None:
    """Tables of the motif classes of every level (count and share)."""
    mg = analysis.micrograph
    px = analysis.pixel_size_A
    console.print(
        f"[bold]{mg.path or 'image'}[/]  {mg.data.shape[1]}×{mg.data.shape[0]} px"
        + (f", {px:.4g} Å/px" if px else ", no pixel size")
        + f"; period {analysis.lattice.period_px:.2f} px, spacing {analysis.lattice.spacing_px:.2f} px"
    )
    console.print(
        f"{len(analysis.columns)} columns, {analysis.n_dropped_at_border} too close to the border "
        f"for a patch (kept as columns, not classified)"
    )
    levels = [(1, "columns", analysis.classes)]
    if analysis.hierarchy is not None:
        names = {2: "units", 3: "composites"}
        levels += [(lv.level, names.get(lv.level, ""), lv.classes) for lv in analysis.hierarchy.levels]
    for level, what, classes in levels:
        total = sum(c.count for c in classes) or 1
        table = Table(title=f"Level {level} motifs ({what}): {len(classes)} classes")
        table.add_column("class", justify="right")
        table.add_column("key", overflow="fold", max_width=60)
        table.add_column("count", justify="right")
        table.add_column("share", justify="right")
        shown = sorted(classes, key=lambda c: -c.count)
        for c in shown[:25]:
            table.add_row(str(c.label), c.key, str(c.count), f"{100 * c.count / total:.1f} %")
        if len(shown) > 25:
            rest = sum(c.count for c in shown[25:])
            table.add_row("…", f"{len(shown) - 25} more classes", str(rest), "")
        console.print(table)


@app.command()
@handle_errors
def analyze(
    image: Path = typer.Argument(..., help="Micrograph file (dm3/dm4/emd/ser/mrc/tif/png/npy)."),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Pixel size in Å."),
    n_max: int = typer.Option(10, "--n-max", help="Highest Zernike order."),
    features: str = typer.Option("zernike", help="Patch descriptor: zernike or pca."),
    frame: int | None = typer.Option(None, help="Frame of a 3-D stack."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the analysis (.npz/.json)."),
    no_hierarchy: bool = typer.Option(False, "--no-hierarchy", help="Level-1 classes only."),
) -> None:
    """Find atom columns and motif classes of one image and print them."""
    from .ingest.io import load_image
    from .ingest.model import AnalysisParams
    from .ingest.pipeline import analyze as run_analysis
    from .ingest.serialize import save_analysis

    micrograph = load_image(image, frame=frame, pixel_size_A=pixel_size)
    params = AnalysisParams(
        pixel_size_A=pixel_size, n_max=n_max, features=features, hierarchy=not no_hierarchy
    )
    with _progress() as bar:
        task = bar.add_task("analysing", total=1.0)
        result = run_analysis(
            micrograph,
            params,
            progress=lambda stage, f: bar.update(task, completed=f, description=stage),
        )
    print_analysis(result)
    if out is not None:
        written = save_analysis(result, out)
        console.print(f"wrote {written}")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"motifcat {__version__}")


@app.command()
@handle_errors
def demo(
    out_dir: Path = typer.Option(Path("demo-out"), help="Where the synthetic images go."),
    catalog: str | None = typer.Option(None, help="Catalog URI (default: embedded)."),
) -> None:
    """Synthesize micrographs, analyze them and print the motif classes."""
    from .ingest.pipeline import analyze as run_analysis
    from .ingest.synth import tmd_image

    out_dir.mkdir(parents=True, exist_ok=True)
    syn = tmd_image((512, 512), seed=0)
    console.rule("Synthetic MoSe2-like image (512×512 px)")
    print_analysis(run_analysis(syn.micrograph()))


def main() -> None:  # pragma: no cover - console-script shim
    app()
