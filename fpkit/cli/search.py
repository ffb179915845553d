"""`fpkit search`: find where each query clip comes from."""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.table import Table

from fpkit.cli.common import INTERRUPTED, RichBars, err_console, fail
from fpkit.cli.dbopts import (
    SOME_FAILED,
    DbOption,
    DeviceOption,
    ModelOption,
    SearchSetOption,
    device_or_fail,
    expand_paths,
    search_config,
)

if TYPE_CHECKING:
    from fpkit.db import Searcher, SearchResult


class Format(str, Enum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


def search(
    queries: Annotated[list[str], typer.Argument(help="Query audio files; - reads paths from stdin.")],
    db: DbOption = Path("fpkit-db"),
    model: ModelOption = None,
    output: Annotated[Format, typer.Option("--format", "-f", help="table, jsonl or csv.")] = Format.table,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="Candidates per query.")] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Lowest score reported as a match, at every query length (default: the model's).",
        ),
    ] = None,
    device: DeviceOption = "auto",
    overrides: SearchSetOption = None,
) -> None:
    """Search each query in the database: the best song, where in it the query starts, a score.

    A query whose best score is below the threshold has no match. Each result is written as
    soon as it is found (the table once at the end). Exit code 0 when every query was
    processed (matched or not), 3 when some could not be read, 130 when interrupted.
    """
    from fpkit.db import Database, Searcher

    dev = device_or_fail(device)
    with Database.open_for(db, model, dev, overrides=overrides) as opened:  # errors: one line, by the app's handler
        config = search_config(opened.config, top_k, threshold)
        searcher = Searcher(opened.db, opened.model, config, opened.config.inference)
        failed = _search_all(searcher, expand_paths(queries), _writer(output))
    if failed:
        raise typer.Exit(code=SOME_FAILED)


PROGRESS_FROM = 20  # queries: shorter lists show no progress


@dataclass(frozen=True)
class _Failure:
    query: str
    reason: str  # one line naming the file


def _search_all(searcher: Searcher, queries: list[str], out: _Writer) -> int:
    """Search the queries in order, writing each result as soon as it is found; how many could not be read.

    Ctrl-C or SIGTERM stops after the results written so far (exit 130); a reader that
    closes the pipe (`| head`) stops the search quietly.
    """
    from fpkit.audio import AudioError

    failed = done = 0
    try:
        with RichBars() as bars:
            if len(queries) >= PROGRESS_FROM:
                bars.start("searching", len(queries))
            for query in queries:
                try:
                    out.write(searcher.search_file(query))
                except AudioError as err:
                    err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)
                    out.write(_Failure(query, str(err)))
                    failed += 1
                done += 1
                if bars.total:
                    bars.advance()
        out.close()
    except KeyboardInterrupt:
        out.close()
        fail(f"interrupted after {done} of {len(queries)} queries (their results are written)", INTERRUPTED)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more reaches the reader
    return failed


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


class _Writer(Protocol):
    def write(self, result: SearchResult | _Failure) -> None: ...
    def close(self) -> None: ...


def _writer(output: Format) -> _Writer:
    if output is Format.jsonl:
        return _JsonLines()
    if output is Format.csv:
        return _Csv()
    return _Table()


class _JsonLines:
    """One JSON object per query, flushed as it is written."""

    def write(self, result: SearchResult | _Failure) -> None:
        line: dict[str, Any]
        if isinstance(result, _Failure):
            line = {"query": result.query, "match": None, "offset_s": None, "score": None, "candidates": []}
            line["error"] = result.reason
        else:
            line = to_json(result)
        print(json.dumps(line), flush=True)

    def close(self) -> None:
        pass


class _Csv:
    """query,match,offset_s,score,error: the best match only, one flushed row per query."""

    def __init__(self) -> None:
        self._row(["query", "match", "offset_s", "score", "error"])
        sys.stdout.flush()

    @staticmethod
    def _row(values: list[str]) -> None:
        csv.writer(sys.stdout).writerow(values)  # the stdout of the moment: above the progress bars on a terminal

    def write(self, result: SearchResult | _Failure) -> None:
        if isinstance(result, _Failure):
            self._row([result.query, "", "", "", result.reason])
        else:
            best = result.match
            if best is None:
                self._row([result.query, "", "", "", ""])
            else:
                self._row([result.query, best.ref, f"{best.offset_s:.3f}", f"{best.score:.4f}", ""])
        sys.stdout.flush()

    def close(self) -> None:
        pass


class _Table:
    """For people: the whole table once every query is searched (or the search is stopped)."""

    def __init__(self) -> None:
        self.table = Table("query", "match", "offset", "score", "next best")
        for column in self.table.columns:
            column.overflow = "fold"  # paths are shown whole

    def write(self, result: SearchResult | _Failure) -> None:
        if isinstance(result, _Failure):
            self.table.add_row(result.query, "[red]unreadable[/]", "", "", "")
            return
        best = result.match
        runner_up = result.candidates[1] if len(result.candidates) > 1 else None
        score = f"[dim]{result.candidates[0].score:.3f}[/]" if result.candidates else ""
        self.table.add_row(
            result.query,
            best.ref if best else "[dim]no match[/]",
            f"{best.offset_s:.2f} s" if best else "",
            f"{best.score:.3f}" if best else score,
            f"{Path(runner_up.ref).name} {runner_up.score:.3f}" if runner_up else "",
        )

    def close(self) -> None:
        if self.table.row_count:
            console = Console()
            if not console.is_terminal:  # a pipe or a file: rows whole, however long their paths
                console = Console(width=UNWRAPPED)
            console.print(self.table)


UNWRAPPED = 100_000  # columns: wider than any row, and a table is only as wide as its rows
