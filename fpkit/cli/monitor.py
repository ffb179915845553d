"""`fpkit monitor`: a timeline of the stored songs that play in long recordings or a live stream."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fpkit.cli.common import INTERRUPTED, RichBars, err_console, fail
from fpkit.cli.dbopts import (
    SOME_FAILED,
    DbOption,
    DeviceOption,
    ModelOption,
    SetOption,
    device_or_fail,
    search_config,
)
from fpkit.cli.search import Format

if TYPE_CHECKING:  # imported where used: `fpkit --help` stays instant
    import numpy as np

    from fpkit.monitor import Monitor, Span

STDIN = "-"
FIELDS = ["recording", "start_s", "end_s", "match", "offset_s", "score"]


def monitor(
    recordings: Annotated[
        list[str], typer.Argument(help="Recordings (audio files); - reads raw f32le mono samples from stdin.")
    ],
    db: DbOption = Path("fpkit-db"),
    model: ModelOption = None,
    output: Annotated[Format, typer.Option("--format", "-f", help="table, jsonl or csv.")] = Format.table,
    gaps: Annotated[bool, typer.Option("--gaps", help="Also list the stretches where no stored song plays.")] = False,
    rate: Annotated[
        int | None,
        typer.Option("--rate", min=1, help="Sample rate of the raw audio read from - (default: the model's), Hz."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold", help="Lowest span score reported as a match, at any length (default: the model's)."
        ),
    ] = None,
    device: DeviceOption = "auto",
    overrides: SetOption = None,
) -> None:
    """List where each stored song plays in each recording: from when to when, and from where in the song.

    Spans are printed in time order as they close (about 20 s after their end). Exit code 0
    when every recording was processed, 3 when some could not be read.
    """
    _one_thread_per_job()
    from fpkit.db import Database, Searcher
    from fpkit.monitor import Monitor

    if recordings.count(STDIN) > 1:
        fail("- (stdin) can be given only once")
    dev = device_or_fail(device)
    with Database.open_for(db, model, dev, overrides=overrides) as opened:  # errors: one line, by the app's handler
        config = search_config(opened.config, None, threshold)
        watcher = Monitor(Searcher(opened.db, opened.model, config, opened.config.inference), gaps)
        sample_rate = opened.model.config.audio.sample_rate
        writer = _Writer(output, watcher.paths)
        failed = False
        for recording in recordings:
            failed |= not _monitor_one(watcher, recording, rate or sample_rate, sample_rate, writer)
    if failed:
        raise typer.Exit(code=SOME_FAILED)


def _monitor_one(watcher: Monitor, recording: str, stdin_rate: int, sample_rate: int, writer: _Writer) -> bool:
    """Monitor one recording, writing its spans as they close; False when it could not be (fully) read."""
    from fpkit.audio import AudioError, iter_audio_blocks, iter_raw_blocks, read_ahead
    from fpkit.monitor import FILE_BLOCK_S

    name = "<stdin>" if recording == STDIN else recording
    blocks: Iterator[np.ndarray]
    if recording == STDIN:
        blocks, total_s = iter_raw_blocks(sys.stdin.buffer, stdin_rate, sample_rate, name), None
    else:
        blocks = iter_audio_blocks(recording, sample_rate, FILE_BLOCK_S)
        total_s = _duration_or_none(recording)
    blocks = read_ahead(blocks)  # decoding goes on while the model works
    session = watcher.session(name)
    writer.begin(name)
    try:
        with RichBars() as bars:
            bars.start(f"{Path(name).name} (seconds of audio)", total_s)
            for block in blocks:
                shown = session.seconds
                writer.spans(name, session.feed(block))
                bars.advance(session.seconds - shown)
            writer.spans(name, session.finish())
    except AudioError as err:
        writer.spans(name, session.close())
        err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)
        writer.failure(name, str(err))
        return False
    except KeyboardInterrupt:
        writer.spans(name, session.close())
        fail(f"interrupted after {session.seconds:.1f} s of {name}; the spans up to there are listed", code=INTERRUPTED)
    return True


def _one_thread_per_job() -> None:
    """The network, the index and decoding get a thread each, unless OMP_NUM_THREADS says otherwise.

    The monitor already works in parallel (`fpkit.monitor.session`: the network fingerprints the
    next batch while the index and the tracker work on the last, and audio is decoded ahead).
    Threads within an operation beyond the cores left over only wait for each other, and on a busy
    machine every operation waits for its slowest thread (OpenBLAS's even spin meanwhile). OpenMP
    and OpenBLAS read these settings once, when they load: this runs before torch, numpy or faiss
    is imported.
    """
    import os

    if "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores - 2))
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's and the index's small products


def _duration_or_none(path: str) -> float | None:
    """The header's duration for the progress bar; None when unknown (decoding reports the error)."""
    from fpkit.audio import AudioError, audio_info

    try:
        return audio_info(path).duration_s
    except AudioError:
        return None


class _Writer:
    """Writes spans to stdout as they close, one line each, in the chosen format."""

    def __init__(self, output: Format, paths: list[str]) -> None:
        self.output = output
        self.paths = paths
        if output is Format.csv:
            _csv_row([*FIELDS, "error"])

    def begin(self, recording: str) -> None:
        if self.output is Format.table:
            print(f"{recording}\n{'start':>10}  {'end':>10}  {'offset':>9}  {'score':>5}  match")

    def spans(self, recording: str, spans: list[Span]) -> None:
        for span in spans:
            line = to_json(recording, span, self.paths)
            if self.output is Format.jsonl:
                print(json.dumps(line))
            elif self.output is Format.csv:
                _csv_row([_text(line[key]) for key in FIELDS] + [""])
            else:
                print(
                    f"{_clock(span.start_s):>10}  {_clock(span.end_s):>10}  "
                    f"{'' if span.offset_s is None else f'{span.offset_s:.2f} s':>9}  "
                    f"{'' if span.score is None else f'{span.score:.3f}':>5}  "
                    f"{line['match'] or '-'}"
                )
        sys.stdout.flush()

    def failure(self, recording: str, reason: str) -> None:
        if self.output is Format.jsonl:
            print(json.dumps({**dict.fromkeys(FIELDS), "recording": recording, "error": reason}))
        elif self.output is Format.csv:
            _csv_row([recording, "", "", "", "", "", reason])
        else:
            print(f"{'':>10}  {'':>10}  {'':>9}  {'':>5}  unreadable: {reason}")
        sys.stdout.flush()


def to_json(recording: str, span: Span, paths: list[str]) -> dict[str, Any]:
    """The JSONL contract: recording, start_s, end_s, match, offset_s, score (the last three null in a gap)."""
    return {
        "recording": recording,
        "start_s": round(span.start_s, 3),
        "end_s": round(span.end_s, 3),
        "match": None if span.song is None else paths[span.song],
        "offset_s": None if span.offset_s is None else round(span.offset_s, 3),
        "score": None if span.score is None else round(span.score, 4),
    }


def _csv_row(values: list[str]) -> None:
    csv.writer(sys.stdout).writerow(values)  # the stdout of the moment: above the progress bar on a terminal


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _clock(seconds: float) -> str:
    """h:mm:ss.s, or m:ss.s under an hour."""
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"
