"""Terminal rendering of motifcat results (rich tables), shared by the CLI and the demo."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from .errors import MotifcatError

#: Line width when the output is not a terminal: wide enough that no id, path or message is
#: broken across lines (rich would otherwise wrap at 80 columns).
NO_WRAP_WIDTH = 10_000


class PlainWhenPipedConsole(Console):
    """A rich console that wraps at the terminal's width on a terminal and never elsewhere
    (pipes, files, captured output), so that ids stay whole and output can be grepped."""

    @property
    def size(self):
        size = Console.size.fget(self)
        return size if self.is_terminal else size._replace(width=NO_WRAP_WIDTH)

    @size.setter
    def size(self, new_size):
        Console.size.fset(self, new_size)

    def rule(self, title="", *args, **kwargs):
        # A rule fills the width: off a terminal that would be NO_WRAP_WIDTH characters.
        if self.is_terminal:
            return super().rule(title, *args, **kwargs)
        text = f"── {title} " if title else ""
        self.print(text + "─" * max(3, 100 - len(text)), markup=True, highlight=False)


console = PlainWhenPipedConsole()


def print_analysis(analysis) -> None:
    """Tables of the motif classes of every level (count and share)."""
    mg = analysis.micrograph
    px = analysis.pixel_size_A
    console.print(
        f"[bold]{mg.path or 'image'}[/]  {mg.data.shape[1]}×{mg.data.shape[0]} px"
        + (f", {px:.4g} Å/px" if px else ", no pixel size")
        + f"; period {analysis.lattice.period_px:.2f} px,"
        + f" spacing {analysis.lattice.spacing_px:.2f} px"
    )
    console.print(
        f"{len(analysis.columns)} columns, {analysis.n_dropped_at_border} at the border "
        f"(classified from the part of their patch inside the image)"
    )
    levels = [(1, "columns", analysis.classes)]
    if analysis.hierarchy is not None:
        names = {2: "units", 3: "composites"}
        levels += [
            (lv.level, names.get(lv.level, ""), lv.classes) for lv in analysis.hierarchy.levels
        ]
    for level, what, classes in levels:
        total = sum(c.count for c in classes) or 1
        table = Table(title=f"Level {level} motifs ({what}): {len(classes)} classes")
        table.add_column("class", justify="right")
        if level == 1:
            from .ingest.names import level1_display_names

            readable = level1_display_names(classes)
            table.add_column("name")
        table.add_column("key", overflow="fold", max_width=60)
        table.add_column("count", justify="right")
        table.add_column("share", justify="right")
        shown = sorted(classes, key=lambda c: -c.count)
        for c in shown[:25]:
            name = [readable[c.label]] if level == 1 else []
            table.add_row(
                str(c.label), *name, c.key, str(c.count), f"{100 * c.count / total:.1f} %"
            )
        if len(shown) > 25:
            rest = sum(c.count for c in shown[25:])
            pad = [""] if level == 1 else []
            table.add_row("…", *pad, f"{len(shown) - 25} more classes", str(rest), "")
        console.print(table)
    support = getattr(analysis.hierarchy, "support", None) or {}
    for level in (2, 3):
        s = support.get(f"level{level}")
        if s:
            console.print(
                f"level {level}: {s['frequent']} classes with >= {support['min_support']} "
                f"instances hold {s['frequent_instances']} of {s['instances']}; "
                f"{s['rare']} rare classes ({s['rare_instances']} instances); "
                f"{s['families']} families"
            )


def print_ingest_summary(summary, catalog: str = "") -> None:
    """One line per image and a total: written / skipped as duplicates / failed."""
    from .catalog import redact_uri

    table = Table(title=f"Ingest into {redact_uri(catalog)}" if catalog else "Ingest")
    table.add_column("image", overflow="fold")
    table.add_column("result")
    table.add_column("details", overflow="fold")
    for report in summary.written:
        table.add_row(
            str(report.path),
            "[green]written[/]",
            f"{report.n_nodes} nodes, {report.n_rels} relationships, "
            f"{len(report.new_motifs)} new / {len(report.matched_motifs)} matched motifs, "
            f"{report.seconds:.1f} s",
        )
    notes = getattr(summary, "notes", {})
    for path in summary.duplicates:
        note = notes.get(path) or "already in the catalog (same pixels)"
        table.add_row(str(path), "[yellow]skipped[/]", note)
    for path in getattr(summary, "replaced", []):
        table.add_row(str(path), "[cyan]replaced[/]", "the stored image was deleted first")
    for path, reason in summary.failed:
        table.add_row(str(path), "[red]failed[/]", reason)
    console.print(table)
    console.print(f"[bold]{summary}[/]")


def emit(frame, fmt: str, title: str = "") -> None:
    """Print a DataFrame as a rich table, JSON records or CSV.

    ``frame`` may also be a dict of name -> DataFrame (several tables of one answer): JSON then
    prints one object with a list of records per name, so that the output stays one document.
    """
    import json

    import pandas as pd

    if isinstance(frame, dict):
        if fmt == "json":
            doc = {
                k: json.loads(v.to_json(orient="records", default_handler=str))
                for k, v in frame.items()
            }
            typer.echo(json.dumps(doc, indent=2))
            return
        for name, part in frame.items():
            emit(part, fmt, f"{title} — {name}" if title else name)
        return
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    if fmt == "json":
        typer.echo(frame.to_json(orient="records", default_handler=str, indent=2))
    elif fmt == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "table":
        table = Table(title=title or None)
        for col in frame.columns:
            table.add_column(str(col), overflow="fold", max_width=48)
        for row in frame.itertuples(index=False):
            table.add_row(*[_cell(v) for v in row])
        console.print(table)
        if frame.empty:
            console.print("(no rows)")
    else:
        raise MotifcatError(f"--format must be table, json or csv, got {fmt!r}")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and len(value) > 8:
        return f"[{', '.join(map(str, value[:8]))}, … ({len(value)})]"
    return str(value)
