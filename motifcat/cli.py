"""The ``motifcat`` command line: analyze, ingest, query, export, app, demo.

Every command calls the public API only; errors of the motifcat family are printed as one
clear line and exit with status 1 (no traceback for user mistakes).
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .errors import MotifcatError
from .report import emit, print_analysis, print_ingest_summary

app = typer.Typer(
    help="Learn structural motifs from atomic-resolution STEM images and catalog them.",
    no_args_is_help=True,
    add_completion=False,
)
from .report import PlainWhenPipedConsole, console  # noqa: E402  (one console for tables)

err_console = PlainWhenPipedConsole(stderr=True)


def _summarise_warnings(caught: list[warnings.WarningMessage]) -> None:
    """One line per kind of library warning instead of the raw ones (with their source line);
    ``MOTIFCAT_SHOW_WARNINGS=1`` shows them in full."""
    if not caught:
        return
    kinds: dict[tuple[str, str], int] = {}
    for w in caught:
        module = (w.category.__module__ or "").split(".")[0]
        key = (
            f"{module}.{w.category.__name__}" if module != "builtins" else w.category.__name__,
            str(w.message).strip().splitlines()[0][:120] if str(w.message).strip() else "",
        )
        kinds[key] = kinds.get(key, 0) + 1
    for (kind, text), n in kinds.items():
        times = f" ({n}x)" if n > 1 else ""
        err_console.print(f"note: {kind}{times} from a library: {text}", soft_wrap=True)
    if os.environ.get("MOTIFCAT_SHOW_WARNINGS"):
        for w in caught:
            err_console.print(warnings.formatwarning(w.message, w.category, w.filename, w.lineno))


def handle_errors(fn):
    """Print motifcat errors as one line and exit 1 instead of a traceback; collect library
    warnings (scikit-learn's ConvergenceWarning...) and summarise them at the end."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return fn(*args, **kwargs)
            except MotifcatError as exc:
                err_console.print(f"[bold red]error:[/] {exc}")
                raise typer.Exit(1) from None
            finally:
                _summarise_warnings(list(caught))

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


# Column-detection options shared by ``analyze`` and ``ingest`` (see AnalysisParams).
_PERIOD = typer.Option(None, "--period", help="Lattice period in px (default: from the FFT).")
_SMOOTHING = typer.Option(
    0.15, "--smoothing", help="Peak-filter sigma as a fraction of the period."
)
_THRESHOLD = typer.Option(
    8.0, "--threshold", help="Peak threshold in noise sigmas above the local background."
)
_MIN_DISTANCE = typer.Option(
    0.3, "--min-distance", help="Minimum column distance as a fraction of the period."
)
_REFINE = typer.Option(
    "model", "--refine", help="model (Gaussian fit with cross-sections), com, gaussian, none."
)
_NO_RESIDUAL = typer.Option(
    False, "--no-residual-search", help="Do not look for missed columns in the fit residual."
)


def _column_params(period, smoothing, threshold, min_distance, refine, no_residual) -> dict:
    return {
        "period_px": period,
        "smoothing": smoothing,
        "threshold_sigma": threshold,
        "min_distance_factor": min_distance,
        "refine": refine,
        "residual_search": not no_residual,
    }


def _max_megapixels_option():
    return typer.Option(
        None,
        "--max-megapixels",
        help="Refuse larger images before loading them (default: what fits this machine's "
        "memory for the worker count; 0 = no limit; also $MOTIFCAT_MAX_MEGAPIXELS).",
    )


def _check_out(out: Path, suffixes: tuple[str, ...]) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    if out.suffix.lower() not in suffixes:
        raise MotifcatError(
            f"{out}: --out must end in {' or '.join(suffixes)}, not {out.suffix or '(nothing)'!r}"
        )
    parent = out.expanduser().resolve().parent
    if not parent.is_dir():
        raise MotifcatError(f"{out}: cannot write there: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise MotifcatError(f"{out}: cannot write there: permission denied")
    if out.is_dir():
        raise MotifcatError(f"{out}: is a folder; give a file name ending in {suffixes[0]}")


def _check_inputs(paths: list[str]) -> None:
    """Refuse a folder without readable images or a pattern that matches no file."""
    import glob

    from .batch import expand_paths
    from .ingest import SUPPORTED_EXTENSIONS

    for text in paths:
        p = Path(text).expanduser()
        if p.is_dir() and not expand_paths([p]):
            raise MotifcatError(
                f"{text}: no image files in this folder (read: {', '.join(SUPPORTED_EXTENSIONS)})"
            )
        if not p.exists() and glob.has_magic(text) and not glob.glob(str(p), recursive=True):
            raise MotifcatError(f"{text}: the pattern matches no file")


def _signal_option():
    return typer.Option(
        None,
        "--signal",
        help="Image to take from a file that holds several, by name (Velox EMD: HAADF, DF4, "
        "BF...); default HAADF, else the first image.",
    )


def _average_option():
    return typer.Option(
        False,
        "--average",
        help="Average a stack after drift correction by phase correlation (instead of --frame).",
    )


def _print_selection(metadata: dict) -> None:
    """Say which image of a multi-image file was taken and how a stack was averaged."""
    if metadata.get("signals"):
        chosen = metadata["signals"][metadata.get("signal_index", 0)]
        err_console.print(
            f"image: {chosen} (of {', '.join(metadata['signals'])}; choose with --signal)",
            soft_wrap=True,
        )
    if metadata.get("frame_shifts_px") is not None:
        shifts = ", ".join(f"({dy:+.1f}, {dx:+.1f})" for dy, dx in metadata["frame_shifts_px"])
        err_console.print(
            f"averaged {metadata['n_frames']} frames after drift correction; shifts (dy, dx) "
            f"px: {shifts}; cropped (top, bottom, left, right) px: {metadata['frame_crop_px']}",
            soft_wrap=True,
        )


@app.command()
@handle_errors
def analyze(
    image: Path = typer.Argument(
        ..., help="Micrograph file (dm3/dm4/emd/ser/mrc/tif/png/npy/hspy/hdf5/zspy)."
    ),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Pixel size in Å."),
    n_max: int = typer.Option(10, "--n-max", help="Highest Zernike order."),
    features: str = typer.Option("zernike", help="Patch descriptor: zernike or pca."),
    frame: int | None = typer.Option(None, help="Frame of a 3-D stack."),
    signal: str | None = _signal_option(),
    average: bool = _average_option(),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the analysis (.npz/.json)."),
    no_hierarchy: bool = typer.Option(False, "--no-hierarchy", help="Level-1 classes only."),
    min_support: int = typer.Option(
        3, "--min-support", min=1,
        help="Levels 2/3: classes seen fewer times are rare and grouped into families.",
    ),
    period: float | None = _PERIOD,
    smoothing: float = _SMOOTHING,
    threshold: float = _THRESHOLD,
    min_distance: float = _MIN_DISTANCE,
    refine: str = _REFINE,
    no_residual_search: bool = _NO_RESIDUAL,
    max_megapixels: float | None = _max_megapixels_option(),
    tile_px: int | None = typer.Option(
        None,
        "--tile-px",
        min=16,
        help="Analyse a huge image as overlapping tiles of this core side (px); "
        "same result as the whole image, bounded memory.",
    ),
) -> None:
    """Find atom columns and motif classes of one image and print them."""
    from .ingest import AnalysisParams, analyze_tiled, load_image, save_analysis
    from .ingest import analyze as run_analysis

    if tile_px is not None:
        run_analysis = functools.partial(analyze_tiled, tile_px=tile_px)

    if out is not None:
        _check_out(out, (".npz", ".json"))
    micrograph = load_image(
        image,
        frame=frame,
        pixel_size_A=pixel_size,
        max_megapixels=max_megapixels,
        signal=signal,
        average=average,
    )
    _print_selection(micrograph.metadata)
    params = AnalysisParams(
        pixel_size_A=pixel_size,
        n_max=n_max,
        features=features,
        hierarchy=not no_hierarchy,
        min_support=min_support,
        **_column_params(period, smoothing, threshold, min_distance, refine, no_residual_search),
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


def _catalog_credentials(value: str | None) -> str | None:
    """Credentials never come from argv: a password in the URI is refused (every process
    list and shell history shows it); Neo4j's comes from ``$NEO4J_PASSWORD`` or a prompt."""
    from .catalog import parse_uri, redact_uri, uri_password

    if value is None and not os.environ.get("MOTIFCAT_CATALOG"):
        return value
    if uri_password(value):
        raise typer.BadParameter(
            f"{redact_uri(value)}: do not put the password in the URI (process lists and shell "
            "history show it); give the URI without it and set NEO4J_PASSWORD, or leave that "
            "unset to be asked"
        )
    try:
        backend, _ = parse_uri(value)
    except MotifcatError:
        return value  # the command reports the bad URI in its own words
    if backend == "neo4j" and not os.environ.get("NEO4J_PASSWORD") and sys.stdin.isatty():
        import getpass

        os.environ["NEO4J_PASSWORD"] = getpass.getpass(f"Neo4j password for {value}: ")
    return value


def _catalog_option(default=None):
    return typer.Option(
        default,
        "--catalog",
        "-c",
        help="Catalog URI: a path (embedded) or bolt://, neo4j://… (password in "
        "$NEO4J_PASSWORD or asked, never in the URI)",
        callback=_catalog_credentials,
    )


@app.command()
@handle_errors
def ingest(
    paths: list[str] = typer.Argument(..., help="Files, folders or glob patterns."),
    sample: str = typer.Option(..., "--sample", "-s", help="Sample name."),
    material: str = typer.Option(..., "--material", "-m", help="Material, e.g. MoSe2."),
    catalog: str | None = _catalog_option(),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Pixel size in Å."),
    frame: int | None = typer.Option(None, help="Frame of 3-D stacks."),
    signal: str | None = _signal_option(),
    average: bool = _average_option(),
    n_max: int = typer.Option(10, "--n-max", help="Highest Zernike order."),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Images already in the catalog are deleted and written again with this sample, "
        "material and pixel size (default: kept, and the summary says what differs).",
    ),
    workers: int = typer.Option(
        2, "--workers", "-j",
        help="Parallel analyses: worker processes of a local Dask cluster (1: in this process).",
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler",
        help="Analyse on an existing Dask cluster, e.g. tcp://host:8786 (default: "
        "$MOTIFCAT_SCHEDULER; unset: a local cluster of --workers processes). The workers need "
        "motifcat and the files at the same paths; this process writes the catalog.",
    ),
    reference: str | None = typer.Option(
        None, "--reference",
        help="Reference crystal of the material for exports: a CIF/POSCAR/… file or "
        "proto:mx2:formula=MoS2,a=3.19 (stored with the material)."
    ),
    zone: str | None = typer.Option(None, "--zone", help="Zone axis of the reference, e.g. 001."),
    period: float | None = _PERIOD,
    smoothing: float = _SMOOTHING,
    threshold: float = _THRESHOLD,
    min_distance: float = _MIN_DISTANCE,
    refine: str = _REFINE,
    no_residual_search: bool = _NO_RESIDUAL,
    max_megapixels: float | None = _max_megapixels_option(),
) -> None:
    """Analyse images in parallel and write them to the catalog (one transaction per image)."""
    from .batch import ingest_files
    from .ingest import AnalysisParams

    _check_inputs(paths)
    ref = None
    if reference is not None:  # read it first: a bad reference stops before any analysis
        from .structure import load_reference

        ref = load_reference(reference, zone=zone)

    params = AnalysisParams(
        pixel_size_A=pixel_size,
        n_max=n_max,
        **_column_params(period, smoothing, threshold, min_distance, refine, no_residual_search),
    )
    with _progress() as bar:
        # Two bars: analyses complete in any order (from the futures), writes follow in order.
        analysed_task = bar.add_task("analysed", total=None)
        task = bar.add_task("written", total=None)

        def analysed(done: int, total: int, path: str) -> None:
            bar.update(analysed_task, completed=done, total=total)

        def progress(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total, description=f"written {Path(path).name}")

        try:
            summary = ingest_files(
                paths,
                sample=sample,
                material=material,
                catalog=catalog,
                pixel_size_A=pixel_size,
                frame=frame,
                signal=signal,
                average=average,
                replace=replace,
                params=params,
                workers=workers,
                progress=progress,
                max_megapixels=max_megapixels,
                scheduler=scheduler,
                analysed=analysed,
                on_start=lambda text: bar.console.print(text, soft_wrap=True),
            )
        except KeyboardInterrupt:
            bar.stop()
            err_console.print(
                "interrupted: the analysis cluster was stopped; the images written before "
                "Ctrl-C are in the catalog, whole (run the same ingest again to add the rest: "
                "those are recognised and skipped)"
            )
            raise typer.Exit(130) from None
    print_ingest_summary(summary, catalog or "")
    if ref is not None:
        from .catalog import store_reference
        from .structure import reference_to_json

        with _open(catalog, read_only=False) as store:
            store_reference(store, material, reference_to_json(ref), ref.source, ref.provenance)
        console.print(f"reference of {material}: {ref.formula} from {ref.source} "
                      f"({ref.provenance})")
    if summary.failed:
        raise typer.Exit(1)


@app.command()
@handle_errors
def delete(
    refs: list[str] = typer.Argument(..., help="Image ids (or a unique prefix), paths or samples."),
    catalog: str | None = _catalog_option(),
) -> None:
    """Remove images, or every image of a sample, keeping the motif counts right."""
    from .catalog import delete_images, resolve_images

    with _open(catalog, read_only=False) as store:
        ids: list[str] = []
        for ref in refs:
            ids.extend(resolve_images(store, ref))
        report = delete_images(store, ids)
    console.print(str(report))


query_app = typer.Typer(help="Ask the catalog questions (Cypher across samples).")
app.add_typer(query_app, name="query")


_FORMAT = typer.Option("table", "--format", "-f", help="table, json or csv.")


def _open(catalog: str | None, read_only: bool = True):
    from .catalog import open_catalog

    return open_catalog(catalog, read_only=read_only)


@query_app.command("recurring")
@handle_errors
def query_recurring(
    min_materials: int = typer.Option(2, help="Seen in at least this many materials."),
    min_samples: int = typer.Option(1, help="… and this many samples."),
    level: int | None = typer.Option(None, help="Only this level (1, 2, 3)."),
    catalog: str | None = _catalog_option(),
    fmt: str = _FORMAT,
) -> None:
    """Motifs that recur across materials and samples."""
    from .query import recurring_motifs, with_level1_names

    with _open(catalog) as store:
        df = with_level1_names(store, recurring_motifs(
            store, min_materials=min_materials, min_samples=min_samples, level=level
        ))
    emit(df, fmt, "Recurring motifs")


@query_app.command("composition")
@handle_errors
def query_composition(
    motif_id: str, catalog: str | None = _catalog_option(), fmt: str = _FORMAT
) -> None:
    """What a motif is made of, and what it is part of."""
    from .query import composition

    with _open(catalog) as store:
        comp = composition(store, motif_id)
    emit({"composed_of": comp.parts, "part_of": comp.part_of}, fmt, motif_id)


@query_app.command("context")
@handle_errors
def query_context(motif_id: str, catalog: str | None = _catalog_option(), fmt: str = _FORMAT):
    """Histogram of the motifs neighbouring a motif's instances."""
    from .query import spatial_context, with_level1_names

    with _open(catalog) as store:
        df = with_level1_names(store, spatial_context(store, motif_id))
    emit(df, fmt, f"Neighbours of {motif_id}")


@query_app.command("similar")
@handle_errors
def query_similar(
    motif_id: str,
    k: int = typer.Option(5, "-k", help="How many."),
    catalog: str | None = _catalog_option(),
    fmt: str = _FORMAT,
) -> None:
    """Nearest motifs by descriptor."""
    from .query import similar_motifs, with_level1_names

    with _open(catalog) as store:
        df = with_level1_names(store, similar_motifs(store, motif_id=motif_id, k=k))
    emit(df, fmt, f"Motifs similar to {motif_id}")


@query_app.command("samples")
@handle_errors
def query_samples(
    sample: str | None = typer.Option(None, "--sample", "-s", help="Summary of one sample."),
    catalog: str | None = _catalog_option(),
    fmt: str = _FORMAT,
) -> None:
    """Samples (with material, images, instances), or one sample's summary."""
    from .query import list_samples, sample_summary

    with _open(catalog) as store:
        if sample is None:
            emit(list_samples(store), fmt, "Samples")
            return
        summary = sample_summary(store, sample)
    if fmt == "table":
        console.print(f"[bold]{summary.sample}[/] ({summary.material}): {summary.n_images} images")
    emit(
        {"images": summary.images, "levels": summary.levels, "top_motifs": summary.top_motifs},
        fmt,
        summary.sample,
    )


@query_app.command("materials")
@handle_errors
def query_materials(catalog: str | None = _catalog_option(), fmt: str = _FORMAT) -> None:
    """Materials with their numbers of samples and images."""
    from .query import list_materials

    with _open(catalog) as store:
        emit(list_materials(store), fmt, "Materials")


@query_app.command("persistent")
@handle_errors
def query_persistent(
    min_images: int = typer.Option(2, help="Seen in at least this many images."),
    min_instances: int = typer.Option(10, help="… with at least this many instances."),
    level: int | None = typer.Option(None, help="Only this level."),
    catalog: str | None = _catalog_option(),
    fmt: str = _FORMAT,
) -> None:
    """Motifs worth exporting, ranked by persistence."""
    from .query import persistent_motifs

    with _open(catalog) as store:
        df = persistent_motifs(
            store, min_images=min_images, min_instances=min_instances, level=level
        )
    emit(df, fmt, "Persistent motifs")


@query_app.command("cypher")
@handle_errors
def query_cypher(
    cypher: str = typer.Argument(..., help="A read-only Cypher query."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE (JSON values)."),
    catalog: str | None = _catalog_option(),
    fmt: str = _FORMAT,
    timeout: float | None = typer.Option(
        None, "--timeout", help="Stop the query after S seconds (default 30; 0 = no limit)."
    ),
    max_rows: int | None = typer.Option(
        None, "--max-rows", help="Keep at most N rows (default 100000; 0 = all)."
    ),
) -> None:
    """Run read-only Cypher (writes and file access are refused before anything runs)."""
    import json

    from .query import run_readonly

    params = {}
    for item in param:
        name, sep, value = item.partition("=")
        if not sep:
            raise MotifcatError(f"--param {item!r}: expected NAME=VALUE")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    with _open(catalog) as store:
        frame = run_readonly(store, cypher, params, timeout_s=timeout, max_rows=max_rows)
    if "truncated_at" in frame.attrs:
        err_console.print(
            f"[yellow]only the first {frame.attrs['truncated_at']} rows are shown (--max-rows)[/]"
        )
    emit(frame, fmt)


def _parse_species(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        motif, sep, spec = item.partition("=")
        if not sep or not motif or not spec:
            raise MotifcatError(f"--species {item!r}: expected MOTIF_ID=SPECIES, e.g. L1-0001=Mo")
        out[motif.strip()] = spec.strip()
    return out


_SUFFIX = {"extxyz": ".extxyz", "xyz": ".xyz", "cif": ".cif", "vasp": ".vasp",
           "poscar": ".vasp", "lammps-data": ".lmp", "lammps": ".lmp", "db": ".db",
           "ase-db": ".db"}

#: Format named by an output file's suffix (or its name, for VASP's POSCAR/CONTCAR), so that
#: ``-o model.cif`` writes a CIF rather than extxyz text under a .cif name.
_FORMAT_OF_SUFFIX = {".extxyz": "extxyz", ".xyz": "extxyz", ".cif": "cif", ".vasp": "vasp",
                     ".poscar": "vasp", ".lmp": "lammps-data", ".lammps": "lammps-data",
                     ".data": "lammps-data", ".db": "db"}


def _export_format(fmt: str | None, out: Path | None) -> str:
    """The export format: --format if given, else the one -o's suffix names, else extxyz;
    a --format that contradicts the suffix is refused, naming the file."""
    from .export import FORMATS

    said = None
    if out is not None:
        name = out.name.upper()
        said = ("vasp" if name.startswith(("POSCAR", "CONTCAR"))
                else _FORMAT_OF_SUFFIX.get(out.suffix.lower()))
    if fmt is None:
        return said or "extxyz"
    key = fmt.lower()
    if key not in _SUFFIX or key not in FORMATS:
        raise MotifcatError(f"--format must be one of {', '.join(_SUFFIX)}, got {fmt!r}")
    if said is not None and FORMATS[said] != FORMATS[key]:
        raise MotifcatError(
            f"{out}: the file name says {said} but --format is {fmt}; "
            "rename the file or drop --format (it follows the suffix)"
        )
    return key


@app.command()
@handle_errors
def export(
    motif_id: str | None = typer.Argument(None, help="Motif to export."),
    species: list[str] = typer.Option(
        [], "--species", help="LEVEL1_MOTIF=CONTENT overriding the suggestion, e.g. L1-0003=Se."
    ),
    formula: str | None = typer.Option(
        None, help="Formula of the material (must match its elements), e.g. MoSe2."
    ),
    fmt: str | None = typer.Option(
        None, "--format", "-f",
        help="extxyz, cif, poscar (= vasp), lammps-data, db (default: from -o's suffix, "
        "else extxyz).",
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file."),
    persistent: bool = typer.Option(False, "--persistent", help="Export all persistent motifs."),
    out_dir: Path = typer.Option(Path("motifs"), "--out-dir", help="Folder for --persistent."),
    min_images: int = typer.Option(2, help="With --persistent: seen in this many images."),
    min_instances: int = typer.Option(10, help="With --persistent: this many instances."),
    level: int | None = typer.Option(None, help="With --persistent: only this level."),
    material: str | None = typer.Option(
        None, "--material", "-m", help="Material to draw species from (a motif in several)."
    ),
    reference: str | None = typer.Option(
        None, "--reference",
        help="Reference crystal: file or proto:NAME:k=v,… (default: the material's stored one)."
    ),
    no_reference: bool = typer.Option(
        False, "--no-reference", help="Flat model from the prototype (no reference crystal)."
    ),
    zone: str | None = typer.Option(None, "--zone", help="Zone axis, e.g. 001 (default: best)."),
    min_cell: float = typer.Option(12.0, "--min-cell", help="Smallest defect supercell (Å)."),
    force: bool = typer.Option(False, "--force", help="Write even with overlapping atoms."),
    vacuum: float = typer.Option(10.0, help="Vacuum padding in Å (flat model)."),
    thickness: float | None = typer.Option(
        None, "--thickness", help="Sample thickness along the beam (Å; bulk references): "
        "columns hold that many atoms, so one atom fewer can be built."
    ),
    catalog: str | None = _catalog_option(),
) -> None:
    """Turn motifs into atomic models (unrelaxed starting structures for DFT/MD).

    Every export prints a report line (formula, minimum distance, cell, registration residual,
    reference provenance), also appended to exports-report.txt beside the file.
    """
    from .export import motif_to_atoms, write_motif
    from .query import persistent_motifs

    key = _export_format(fmt, out)
    if reference is not None and no_reference:
        raise MotifcatError("give --reference or --no-reference, not both")
    mapping = _parse_species(species)
    if persistent and (motif_id is not None or out is not None):
        raise MotifcatError(
            "--persistent exports every persistent motif into --out-dir; "
            "give either MOTIF_ID (with -o) or --persistent, not both"
        )
    ref = False if no_reference else None
    if reference is not None:
        from .structure import load_reference

        ref = load_reference(reference, zone=zone)
    with _open(catalog) as store:
        if persistent:
            ranked = persistent_motifs(
                store, min_images=min_images, min_instances=min_instances, level=level
            )
            if not len(ranked):
                console.print("no persistent motif in the catalog")
                return
            out_dir.mkdir(parents=True, exist_ok=True)
            targets = []
            for mid, mats in zip(ranked["motif_id"], ranked["materials"], strict=True):
                mats = list(mats)
                if material is not None:
                    if material not in mats:
                        continue
                    mats = [material]
                for mat in mats or [None]:  # one export per material: species never cross
                    tag = f"_{mat}" if len(mats) > 1 else ""
                    targets.append((mid, mat, out_dir / f"{mid}{tag}{_SUFFIX[key]}"))
        elif motif_id is None:
            raise MotifcatError("give a MOTIF_ID or --persistent")
        else:
            targets = [(motif_id, material, out or Path(f"{motif_id}{_SUFFIX[key]}"))]
        for mid, mat, path in targets:
            try:
                atoms = motif_to_atoms(
                    store, mid, species=mapping or None, formula=formula, vacuum_A=vacuum,
                    material=mat, reference=ref, zone=zone, min_cell_A=min_cell, force=force,
                    thickness_A=thickness,
                )
            except MotifcatError as exc:
                if not persistent:
                    raise
                err_console.print(f"[yellow]skipped {mid}:[/] {exc}")
                with open(path.parent / "exports-report.txt", "a", encoding="utf-8") as fh:
                    fh.write(f"REFUSED {mid} {mat or ''}: {exc}\n")
                continue
            written = write_motif(atoms, path, format=key)
            line = atoms.info["report"]
            with open(Path(written).parent / "exports-report.txt", "a", encoding="utf-8") as fh:
                fh.write(f"{written.name}\t{line}\n")
            console.print(f"{line} → {written}", soft_wrap=True, markup=False)


@app.command("app")
@handle_errors
def run_app(
    catalog: str | None = _catalog_option(),
    port: int = typer.Option(8501, "--port", help="Port of the web app."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to serve on (default this machine only; 0.0.0.0 = every network).",
    ),
) -> None:
    """Browse the catalog in a web browser (Streamlit), on localhost unless --host is given."""
    from .app import is_loopback, launch

    if not is_loopback(host):
        err_console.print(
            f"[bold yellow]warning:[/] serving on {host}:{port}: the app (and its Cypher "
            "console) is reachable from the network"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said above, in the CLI's own words
        raise typer.Exit(launch(catalog, port, host))


@app.command()
@handle_errors
def demo(
    out_dir: Path = typer.Option(Path("demo-out"), help="Where the synthetic images go."),
    catalog: str | None = _catalog_option(),
) -> None:
    """Synthesize three samples of two materials, ingest, query and export."""
    from .demo import run_demo

    run_demo(out_dir=out_dir, catalog=catalog, console=console)


def main() -> None:  # pragma: no cover - console-script shim
    app()
