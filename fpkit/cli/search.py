"""`fpkit search`: find where each query clip comes from."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fpkit.audio import AudioError
from fpkit.cli.common import err_console, fail
from fpkit.cli.dbopts import (
    SOME_FAILED,
    DbOption,
    DeviceOption,
    ModelOption,
    SetOption,
    device_or_fail,
    expand_paths,
    model_or_fail,
    run_config,
)
from fpkit.db import Database, DatabaseError, Searcher, SearchResult


class Format(str, Enum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


def search(
    queries: Annotated[list[str], typer.Argument(help="Query audio files; - reads paths from stdin.")],
    db: DbOption = Path("fpkit-db"),
    model: ModelOption = None,
    output: Annotated[Format, typer.Option("--format", "-f", help="table, jsonl or csv.")] = Format.table,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="Candidates per query.")] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Lowest score reported as a match, at every query length (default: the model's).",
        ),
    ] = None,
    device: DeviceOption = "auto",
    overrides: SetOption = None,
) -> None:
    """Search each query in the database: the best song, where in it the query starts, a score.

    A query whose best score is below the threshold has no match. Exit code 0 when every
    query was processed (matched or not), 3 when some could not be read.
    """
    dev = device_or_fail(device)
    try:
        database = Database.open(db)
    except DatabaseError as err:
        fail(str(err))
    with database:
        try:
            loaded = model_or_fail(model, dev) if model is not None else database.load_model(dev)
            database.check_model(loaded)
            config = run_config(loaded, overrides, dev).search
            if top_k is not None:
                config = replace(config, top_k=top_k)
            if threshold is not None:
                config = replace(config, threshold=threshold, threshold_by_length=[])  # one constant, as asked
            searcher = Searcher(database, loaded, config)
        except DatabaseError as err:
            fail(str(err))
        results = _run(searcher, expand_paths(queries))
    _write(results, output)
    if any(isinstance(r, _Failure) for r in results):
        raise typer.Exit(code=SOME_FAILED)


@dataclass(frozen=True)
class _Failure:
    query: str
    reason: str  # one line naming the file


def _run(searcher: Searcher, queries: list[str]) -> list[SearchResult | _Failure]:
    results: list[SearchResult | _Failure] = []
    for query in queries:
        try:
            results.append(searcher.search_file(query))
        except AudioError as err:
            err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)
            results.append(_Failure(query, str(err)))
    return results


def to_json(result: SearchResult) -> dict[str, Any]:
    """The JSONL contract: query, match, offset_s, score, candidates (ref, offset_s, score)."""
    best = result.match
    return {
        "query": result.query,
        "match": best.ref if best else None,
        "offset_s": round(best.offset_s, 4) if best else None,
        "score": round(best.score, 4) if best else None,
        "candidates": [
            {"ref": c.ref, "offset_s": round(c.offset_s, 4), "score": round(c.score, 4)} for c in result.candidates
        ],
    }


def _write(results: list[SearchResult | _Failure], output: Format) -> None:
    if output is Format.jsonl:
        for r in results:
            line: dict[str, Any]
            if isinstance(r, _Failure):
                line = {
                    "query": r.query,
                    "match": None,
                    "offset_s": None,
                    "score": None,
                    "candidates": [],
                    "error": r.reason,
                }
            else:
                line = to_json(r)
            print(json.dumps(line))
    elif output is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["query", "match", "offset_s", "score", "error"])
        for r in results:
            if isinstance(r, _Failure):
                writer.writerow([r.query, "", "", "", r.reason])
            else:
                best = r.match
                writer.writerow(
                    [
                        r.query,
                        best.ref if best else "",
                        f"{best.offset_s:.3f}" if best else "",
                        f"{best.score:.4f}" if best else "",
                        "",
                    ]
                )
    else:
        table = Table("query", "match", "offset", "score", "next best")
        for column in table.columns:
            column.overflow = "fold"  # paths are shown whole
        for r in results:
            if isinstance(r, _Failure):
                table.add_row(r.query, "[red]unreadable[/]", "", "", "")
                continue
            best = r.match
            runner_up = r.candidates[1] if len(r.candidates) > 1 else None
            table.add_row(
                r.query,
                best.ref if best else "[dim]no match[/]",
                f"{best.offset_s:.2f} s" if best else "",
                f"{best.score:.3f}" if best else (f"[dim]{r.candidates[0].score:.3f}[/]" if r.candidates else ""),
                f"{Path(runner_up.ref).name} {runner_up.score:.3f}" if runner_up else "",
            )
        Console(soft_wrap=True).print(table)
