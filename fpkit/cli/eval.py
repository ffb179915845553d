"""`fpkit eval`: hit rates of synthetic or real queries against a database (docs/eval.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from fpkit.cli.common import INTERRUPTED, RichBars, err_console, fail, resolve_config

if TYPE_CHECKING:  # imported where used: `fpkit --help` stays instant
    from fpkit.evaluation.report import EvalReport, ProtocolResult

DEFAULT_LENGTHS = "1,2,3,5,6,10"
DEFAULT_QUERIES = 500


def eval_command(
    songs: Annotated[
        Path | None,
        typer.Option("--songs", metavar="DIR", help="Query songs: indexed, and the source of synthetic queries."),
    ] = None,
    dummy: Annotated[
        Path | None,
        typer.Option("--dummy", metavar="DIR", help="Distractor songs indexed along (the paper's dummy database)."),
    ] = None,
    unknown: Annotated[
        Path | None,
        typer.Option("--unknown", metavar="DIR", help="Songs never indexed: their queries measure false positives."),
    ] = None,
    noise: Annotated[
        Path | None,
        typer.Option("--noise", metavar="DIR", help="Background noise for synthetic queries (default: synthesised)."),
    ] = None,
    ir: Annotated[
        Path | None,
        typer.Option(
            "--ir", metavar="DIR", help="Room impulse responses for synthetic queries (default: synthesised)."
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", metavar="FILE", help="Checkpoint for a new database (default: the shipped model)."
        ),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            metavar="DIR",
            help="Database folder: used (and updated with --songs/--dummy) if it exists, else built.",
        ),
    ] = None,
    lengths: Annotated[
        str | None,
        typer.Option("--lengths", metavar="S,S,...", help=f"Query lengths in seconds (default: {DEFAULT_LENGTHS})."),
    ] = None,
    queries: Annotated[
        str | None,
        typer.Option(
            "--queries",
            help=f"Query positions per protocol (default: {DEFAULT_QUERIES}); with --truth, the recordings folder.",
            metavar="N|DIR",
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option("--truth", metavar="FILE", help="Ground-truth CSV of real recordings: query,song,start_s."),
    ] = None,
    snr: Annotated[
        str | None,
        typer.Option(
            "--snr", metavar="LOW,HIGH", help="Noise SNR range in dB, LOW,HIGH (default: augment.snr_db, 0,10)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Fixes the queries and the figures (default: 0).")] = None,
    protocol: Annotated[
        Literal["both", "random", "aligned"] | None,
        typer.Option("--protocol", help="random offsets, the paper's segment-aligned starts, or both (default: both)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Report folder.", file_okay=False)] = Path("eval-report"),
    device: Annotated[str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N.")] = "auto",
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", dir_okay=False, help="YAML config (default: the model's own settings)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Dotted override, e.g. --set search.nprobe=64 (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print report.json to stdout.")] = False,
) -> None:
    """Score synthetic queries (--songs) or real recordings (--truth) against a database.

    Writes report.json and hit_rate.png to --out and shows the hit-rate table on stderr.
    """
    from fpkit.device import resolve_device
    from fpkit.evaluation.metrics import Protocol
    from fpkit.evaluation.report import report_dict, write_report
    from fpkit.evaluation.run import (
        DatabaseSource,
        RecordingsPlan,
        SyntheticPlan,
        evaluate_recordings,
        evaluate_synthetic,
    )

    dev = str(resolve_device(device))
    length_list = _lengths(lengths) if lengths is not None else None
    plan: SyntheticPlan | RecordingsPlan
    if truth is not None:
        synthetic_only: dict[str, object] = {"--songs": songs, "--dummy": dummy, "--unknown": unknown}
        synthetic_only.update({"--noise": noise, "--ir": ir, "--snr": snr, "--seed": seed, "--protocol": protocol})
        for name, value in synthetic_only.items():
            if value is not None:
                fail(f"{name} is for synthetic queries; with --truth give --queries DIR and --db DIR")
        if queries is None or db is None:
            fail("--truth needs --queries DIR (the recordings) and --db DIR (the database)")
        _require_folder("--queries", Path(queries))
        plan = RecordingsPlan(Path(queries), truth, length_list)
        settings = overrides or []
    else:
        if songs is None:
            fail("give --songs DIR for synthetic queries, or --truth FILE.csv with --queries DIR for recordings")
        folders = {"--songs": songs, "--dummy": dummy, "--unknown": unknown, "--noise": noise, "--ir": ir}
        for name, folder in folders.items():
            if folder is not None:
                _require_folder(name, folder)
        chosen = protocol or "both"
        protocols: list[Protocol] = ["random", "aligned"] if chosen == "both" else [chosen]
        if unknown is not None and "random" not in protocols:
            fail("--unknown queries are scored in the random protocol; use --protocol random or both")
        plan = SyntheticPlan(
            songs=songs,
            dummy=dummy,
            unknown=unknown,
            noise=noise,
            ir=ir,
            lengths_s=length_list or _lengths(DEFAULT_LENGTHS),
            queries=_count(queries),
            protocols=protocols,
            seed=seed if seed is not None else 0,
        )
        settings = [*(overrides or []), *([_snr_override(snr)] if snr is not None else [])]
    # --config: the file's settings; else the model's own (its calibrated threshold above all), as
    # `fpkit search` runs. --set applies on top either way.
    cfg = resolve_config(config, settings) if config is not None else None
    source = DatabaseSource(db, model, dev, tuple(settings) if cfg is None else ())
    try:
        with RichBars() as bars:
            if isinstance(plan, RecordingsPlan):
                report = evaluate_recordings(plan, source, cfg, bars)
            else:
                report = evaluate_synthetic(plan, source, cfg, bars)
        files = write_report(report, out)
    except OSError as err:
        fail(f"{err.filename or out}: {err.strerror}")
    except KeyboardInterrupt:
        kept = f"; {db} keeps the songs indexed so far" if db is not None else ""
        fail(f"interrupted, no report written{kept}", INTERRUPTED)
    _show(report)
    err_console.print(f"report: {files.json}  queries: {files.queries}  plot: {files.plot}")
    if as_json:
        print(json.dumps(report_dict(report), indent=2))


def _show(report: EvalReport) -> None:
    s = report.settings
    err_console.print(
        f"model {s.model_id}; database {s.database}: {s.database_songs} songs, {s.database_segments} fingerprints, "
        f"index {s.index}, re-scored from {s.rescore}"
        + (f" (built in {report.index_s:.1f} s)" if report.index_s > 0.05 else "")
    )
    for result in report.results:
        err_console.print(metrics_table(result))


def metrics_table(result: ProtocolResult) -> Table:
    """Rows: metrics (percent) and search times; columns: query lengths, as in the paper's table."""
    from fpkit.evaluation.report import RATE_FIELDS, length_label

    table = Table(title=f"{result.protocol} queries: hit rate (%)", title_justify="left")
    table.add_column("metric")
    for m in result.metrics:
        table.add_column(length_label(m.length_s), justify="right")
    table.add_row("queries", *[str(m.queries) for m in result.metrics])
    if any(m.unknown_queries for m in result.metrics):
        table.add_row("unknown queries", *[str(m.unknown_queries) for m in result.metrics])
    for name in RATE_FIELDS:
        values = [getattr(m, name) for m in result.metrics]
        if not all(v is None for v in values):
            table.add_row(name, *["-" if v is None else f"{100 * v:.1f}" for v in values])
    table.add_section()
    table.add_row("search ms (mean)", *[_ms(t.mean_ms) for t in result.timing])
    table.add_row("search ms (p95)", *[_ms(t.p95_ms) for t in result.timing])
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _require_folder(option: str, folder: Path) -> None:
    if not folder.is_dir():
        fail(f"{option} {folder}: no such folder")


def _lengths(text: str) -> list[float]:
    values = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            fail(f"--lengths: {item.strip()!r} is not a number of seconds")
        if not value > 0:
            fail(f"--lengths: {item.strip()!r} must be positive")
        values.append(value)
    return sorted(set(values))


def _count(text: str | None) -> int:
    if text is None:
        return DEFAULT_QUERIES
    if not text.isdigit() or int(text) < 1:
        fail(f"--queries {text}: expected a number of queries >= 1 (a folder of recordings needs --truth)")
    return int(text)


def _snr_override(text: str) -> str:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        fail(f"--snr {text}: expected LOW,HIGH in dB, e.g. 0,10")
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or values[0] > values[1]:
        fail(f"--snr {text}: expected LOW,HIGH in dB with LOW <= HIGH")
    return f"augment.snr_db=[{values[0]}, {values[1]}]"
