"""What an evaluation produced and how it is kept: report.json, queries.csv, hit_rate.png (the table: `fpkit.cli.eval`).

report.json keeps the deterministic part (`settings`, `results`: the same seed gives the same
bytes) apart from `timing`, which changes from run to run and machine to machine. queries.csv
lists every search, to see which queries failed and why.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, astuple, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fpkit import __version__
from fpkit.atomic import atomic_write
from fpkit.evaluation.metrics import LengthMetrics, Timing

if TYPE_CHECKING:  # matplotlib is imported where a plot is drawn: every fpkit command imports this module
    from matplotlib.artist import Artist
    from matplotlib.figure import Figure

REPORT_JSON = "report.json"
QUERIES_CSV = "queries.csv"
HIT_RATE_PNG = "hit_rate.png"

# Rate fields of `LengthMetrics`, in the order the table and the plot show them.
RATE_FIELDS = (
    "top1_exact",
    "top1_near",
    "top3_exact",
    "top10_exact",
    "song_top1",
    "song_top3",
    "song_top10",
    "top1_accepted",
    "false_positive_rate",
)


@dataclass(frozen=True)
class EvalSettings:
    """Everything that fixes the figures; a run with equal settings gives equal `results`."""

    mode: str  # "synthetic" or "recordings"
    model_id: str  # content hash of the weights
    model_path: str
    database: str  # folder, or "(temporary)" when built for this run only
    database_songs: int
    database_segments: int  # stored fingerprints
    index: str  # FAISS factory string of the database's index
    rescore: str  # what its fingerprints are kept as for re-scoring: float16, or opq32 codes
    lengths_s: list[float] | None  # query lengths; None: whole recordings
    protocols: list[str]
    sample_rate: int  # Hz, the model's
    hop_s: float  # seconds between stored segments
    search: dict[str, Any]  # the SearchConfig used, top_k as raised for eval
    queries: int = 0  # positions per protocol (synthetic), or known recordings
    unknown_queries: int = 0
    songs: str | None = None  # synthetic: query songs folder
    dummy: str | None = None  # synthetic: distractor songs folder
    unknown: str | None = None  # synthetic: never-indexed songs folder
    noise: str | None = None  # synthetic: noise folder; None: synthesised noise
    ir: str | None = None  # synthetic: impulse responses folder; None: synthesised ones
    seed: int | None = None  # synthetic
    snr_db: list[float] | None = None  # synthetic: [low, high] decibels
    augment: dict[str, Any] | None = None  # synthetic: the AugmentConfig that degraded the queries
    recordings: str | None = None  # recordings: the queries folder
    truth: str | None = None  # recordings: the ground-truth CSV


@dataclass(frozen=True)
class QueryRow:
    """One search: the query, where it came from, and the best candidate the search returned."""

    protocol: str
    length_s: float | None  # None: a whole recording
    query: str  # synthetic: "source file@start s+length s"; recordings: the file
    song: str | None  # stored path of the song the query was cut from; None for unknown audio
    start_s: float | None  # where in that song the query starts, seconds
    match: str | None  # stored path of the best candidate, reported or not; None when nothing was hit
    offset_s: float | None  # where the best candidate places the query's start, seconds
    score: float | None  # the best candidate's score
    accepted: bool  # the score reached the threshold: the search reported a match
    right_song: bool  # the best candidate is the query's song
    snr_db: float | None = None  # synthetic: the background noise added (`fpkit.augment.Degradation`)
    noise: str | None = None  # ... from this recording (relative to the noise folder)
    room: str | None = None  # ... after this impulse response; None: dry

    @property
    def offset_error_s(self) -> float | None:
        """Reported offset minus the true start, for a right song."""
        if not self.right_song or self.offset_s is None or self.start_s is None:
            return None
        return self.offset_s - self.start_s


@dataclass(frozen=True)
class ProtocolResult:
    protocol: str  # "random", "aligned" or "recordings"
    metrics: list[LengthMetrics]  # one per query length
    timing: list[Timing]
    queries: list[QueryRow]  # every search, length by length


@dataclass(frozen=True)
class EvalReport:
    settings: EvalSettings
    results: list[ProtocolResult]
    index_s: float  # seconds spent building the database; 0 when an existing one was used


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    queries: Path
    plot: Path


def report_dict(report: EvalReport) -> dict[str, Any]:
    """The JSON document: `settings` and `results` are deterministic, `timing` is not."""
    return {
        "fpkit": __version__,
        "settings": asdict(report.settings),
        "results": {r.protocol: [asdict(m) for m in r.metrics] for r in report.results},
        "timing": {
            "index_s": round(report.index_s, 3),
            "search": {r.protocol: [asdict(t) for t in r.timing] for r in report.results},
        },
    }


def write_report(report: EvalReport, out_dir: Path) -> ReportFiles:
    """Write report.json, queries.csv and hit_rate.png into `out_dir` (created), each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / REPORT_JSON, out_dir / QUERIES_CSV, out_dir / HIT_RATE_PNG)
    with atomic_write(files.json) as tmp:
        tmp.write_bytes(json.dumps(report_dict(report), indent=2).encode() + b"\n")
    with atomic_write(files.queries) as tmp, tmp.open("w", newline="") as out:
        write_queries(report, out)
    with atomic_write(files.plot) as tmp:
        plot_hit_rates(report).savefig(tmp, format="png", dpi=120)
    return files


def write_queries(report: EvalReport, out: TextIO) -> None:
    """Every search as a CSV row: `QueryRow`'s fields and the right song's offset error; empty for None."""
    writer = csv.writer(out)
    writer.writerow([f.name for f in fields(QueryRow)] + ["offset_error_s"])
    for result in report.results:
        for row in result.queries:
            error = row.offset_error_s
            cells = [*astuple(row), None if error is None else round(error, 3)]
            writer.writerow(["" if c is None else round(c, 4) if isinstance(c, float) else c for c in cells])


def length_label(length_s: float | None) -> str:
    return "whole" if length_s is None else f"{length_s:g} s"


def plot_hit_rates(report: EvalReport) -> Figure:
    """One panel per protocol: hit rate (%) against query length, one line per metric.

    A bare `Figure` renders with Agg when saved: no pyplot state, no display needed.
    """
    panels = len(report.results)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * panels + 2.5, 4.5))
    axes = fig.subplots(1, panels, squeeze=False, sharey=True)[0]
    for ax, result in zip(axes, report.results, strict=True):
        x = list(range(len(result.metrics)))
        for i, name in enumerate(RATE_FIELDS):
            values = [getattr(m, name) for m in result.metrics]
            if all(v is None for v in values):
                continue
            y = [float("nan") if v is None else 100 * v for v in values]
            ax.plot(x, y, _LINE_STYLE[name], color=f"C{i}", marker="o", markersize=4, label=name)
        ax.set_xticks(x, [length_label(m.length_s) for m in result.metrics])
        ax.set_xlabel("query length")
        ax.set_title(f"{result.protocol} queries")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("rate (%)")
    lines: dict[str, Artist] = {}  # label -> handle, over all panels: only the random one has false positives
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            lines.setdefault(label, handle)
    fig.legend(list(lines.values()), list(lines), loc="center right", fontsize="small")
    settings = report.settings
    fig.suptitle(f"model {settings.model_id}, {settings.database_songs} songs in database", fontsize="medium")
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / fig.get_figwidth(), 1))
    return fig


# Offset-exact metrics solid, song-level dashed, decisions at the search threshold dotted.
_LINE_STYLE = {
    "top1_exact": "-",
    "top1_near": "-",
    "top3_exact": "-",
    "top10_exact": "-",
    "song_top1": "--",
    "song_top3": "--",
    "song_top10": "--",
    "top1_accepted": ":",
    "false_positive_rate": ":",
}
