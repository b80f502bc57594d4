"""Reports of a conformance check: a table (.csv, .parquet) or a page to read (.html).

The HTML page is one self-contained file: the verdicts with their statuses coloured, then each
probe's transcript, so a reader sees the evidence under each finding.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from smtplab.conformance.suite import CheckReport
from smtplab.log.frame import write_table

STATUS_COLOURS = {
    "pass": "#d8f0e3",
    "fail": "#f9d6c9",
    "warn": "#fbeccb",
    "n/a": "#eeeeee",
    "error": "#f3d1e6",
}
ROW_COLUMNS = ["seq", "sender", "kind", "verb", "argument", "code", "enhanced", "text"]


def table_html(report: CheckReport) -> str:
    """The verdict table as HTML, each row coloured by its status."""
    rows = []
    for record in report.table.itertuples(index=False):
        colour = STATUS_COLOURS.get(str(record.status), "white")
        cells = "".join(
            f"<td>{html.escape(str(value))}</td>"
            for value in (record.probe, record.rfc, record.status, record.detail, record.replies)
        )
        rows.append(f'<tr style="background: {colour}">{cells}</tr>')
    head = "".join(f"<th>{name}</th>" for name in ("probe", "RFC", "status", "why", "replies"))
    counts = ", ".join(f"{n} {status}" for status, n in report.counts().items() if n)
    return (
        f"<p><b>{html.escape(report.server)}</b>: {counts}</p>"
        f'<table style="border-collapse: collapse; font-size: 13px">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def page(report: CheckReport) -> str:
    """A whole HTML page: the verdicts, then every probe's transcript."""
    sections = []
    for probe in report.table["probe"]:
        rows = report.evidence(probe)
        if rows.empty:
            continue
        with pd.option_context("display.max_colwidth", 80):
            body = rows[ROW_COLUMNS].to_html(index=False, na_rep="", border=0)
        sections.append(f'<h3 id="{html.escape(probe)}">{html.escape(probe)}</h3>{body}')
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>SMTP conformance of {html.escape(report.server)}</title>"
        "<style>body{font-family:sans-serif;margin:2em} td,th{padding:3px 8px;"
        "border-bottom:1px solid #ddd;text-align:left;vertical-align:top}</style></head><body>"
        f"<h1>SMTP conformance of {html.escape(report.server)}</h1>"
        "<p>Made by smtplab's probes; each row names the RFC section it checks. "
        "The transcripts below are the evidence.</p>"
        f"{table_html(report)}<h2>Transcripts</h2>{''.join(sections)}</body></html>"
    )


def write_report(report: CheckReport, path: str | Path) -> Path:
    """Write the report by extension: ``.html`` a page; ``.csv``/``.parquet`` the verdicts,
    with the transcripts beside them (``NAME.transcript.csv``)."""
    path = Path(path)
    if path.suffix.lower() in (".html", ".htm"):
        if not path.parent.is_dir():
            raise ValueError(f"{path}: the directory {path.parent} does not exist")
        path.write_text(page(report), encoding="utf-8")
        return path
    write_table(report.table, path)
    write_table(report.transcript, path.with_name(f"{path.stem}.transcript{path.suffix}"))
    return path


def styled(comparison: pd.DataFrame):  # type: ignore[no-untyped-def]
    """A :func:`smtplab.compare` table with the rows where the servers differ highlighted,
    and each cell coloured by its status (for notebooks)."""
    servers = [c for c in comparison.columns if c not in ("rfc", "differs")]

    def colour(cell: object) -> str:
        status = str(cell).split(":", 1)[0]
        return f"background-color: {STATUS_COLOURS.get(status, 'white')}"

    def bold(row: pd.Series) -> list[str]:
        weight = "font-weight: bold" if comparison.loc[row.name, "differs"] else ""
        return [weight] * len(row)

    view = comparison[["rfc", *servers]]
    # Cells hold what servers said: escaped, so a reply cannot become markup in a notebook.
    return view.style.format(escape="html").map(colour, subset=servers).apply(bold, axis=1)
