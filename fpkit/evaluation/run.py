"""Running an evaluation: the database, the queries (synthetic or real), the searches, the figures.

Synthetic queries: positions are drawn per protocol from the query songs (`fpkit.evaluation.metrics`),
every length is cut from the same start, and each excerpt is degraded (reverb -> noise ->
gain) with a fresh generator seeded by (seed, protocol stream, query index). All lengths of
one query therefore share the impulse response, the noise recording and, nearly always, the
SNR and gain, and adding a length or a query changes no other query.

Which database song a query comes from is found by the hash of its decoded audio, the same
identity the database uses, so paths need not match.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpkit.audio import AudioError, audio_info, find_audio_files, load_audio
from fpkit.augment import Degradation, Degrader
from fpkit.config import Config
from fpkit.db import Database, Failed, Searcher, SearchResult
from fpkit.db.index import IndexConfigError, check_index_config
from fpkit.errors import FpkitError
from fpkit.evaluation.metrics import (
    NO_SONG,
    STREAM_RANDOM,
    STREAM_UNKNOWN,
    UNKNOWN,
    Outcomes,
    Protocol,
    QueryPositions,
    derive_rng,
    length_metrics,
    sample_aligned_positions,
    sample_positions,
    timing,
)
from fpkit.evaluation.report import EvalReport, EvalSettings, ProtocolResult, QueryRow
from fpkit.evaluation.truth import TruthRow, match_song, read_truth
from fpkit.fingerprint import content_hash
from fpkit.model import LoadedModel
from fpkit.progress import SILENT, Progress

log = logging.getLogger(__name__)

EVAL_TOP_K = 10  # candidate songs per search: enough for song-level top-10
TEMPORARY_DB = "(temporary)"


class EvalError(FpkitError):
    """An evaluation that cannot run as asked; the message names the file or folder."""


@dataclass(frozen=True)
class DatabaseSource:
    """Which database to search, with which model and settings: what `Database.open_for` decides from."""

    folder: Path | None  # existing or new database folder; None: a temporary one for this run
    model: Path | None  # checkpoint for a new database (None: the shipped one), or checked against `folder`
    device: str  # torch device for the model
    overrides: tuple[str, ...] = ()  # dotted `section.key=value` on the model's config


@dataclass(frozen=True)
class OpenDatabase:
    db: Database
    model: LoadedModel
    config: Config  # the run's settings
    label: str  # the folder, or TEMPORARY_DB


@dataclass(frozen=True)
class SyntheticPlan:
    songs: Path  # query songs; indexed, and every one must end up in the database
    dummy: Path | None  # distractor songs, indexed along
    unknown: Path | None  # songs that must not be in the database: false-positive queries
    noise: Path | None  # background noise; None: synthesised noise
    ir: Path | None  # room impulse responses; None: synthesised ones
    lengths_s: list[float]
    queries: int  # positions per protocol (and from the unknown songs)
    protocols: list[Protocol]
    seed: int


@dataclass(frozen=True)
class RecordingsPlan:
    queries: Path  # folder of recordings
    truth: Path  # ground-truth CSV (`fpkit.evaluation.truth`)
    lengths_s: list[float] | None  # None: each whole recording; else its first L seconds


def evaluate_synthetic(
    plan: SyntheticPlan, source: DatabaseSource, config: Config | None = None, progress: Progress | None = None
) -> EvalReport:
    """Index the songs (and distractors) into the database, then run the synthetic protocols.

    `config` is the run's whole config (a config file's); None runs with the model's own and
    `source.overrides`, as `fpkit search` does. Degradation uses its `augment`, search its `search`.
    Everything that can fail cheaply (settings, folders, song lengths, noise and IR banks, query
    plan) is checked before the long indexing. The write lock is held only while indexing, so
    other runs can add to the same database while this one searches.
    """
    progress = progress or SILENT
    songs = _audio_files(plan.songs)
    unknown = _audio_files(plan.unknown) if plan.unknown is not None else []
    with database_folder(source) as folder:
        with open_database(folder, source, config, writable=True) as opened:
            audio = opened.model.config.audio
            try:
                check_index_config(opened.config.index, opened.model.model.dims.emb_dim)
            except IndexConfigError as err:
                raise EvalError(str(err)) from None
            if min(plan.lengths_s) < audio.segment_s:
                shortest = min(plan.lengths_s)
                raise EvalError(f"--lengths: {shortest:g} s is shorter than one segment ({audio.segment_s:g} s)")
            sets = plan_query_sets(plan, _durations(songs), _durations(unknown), audio.hop_s)
            degrader = Degrader.from_folders(
                opened.config.augment, audio.sample_rate, _text(plan.noise), _text(plan.ir), seed=plan.seed
            )
            indexed = index_songs(opened, [plan.songs] + ([plan.dummy] if plan.dummy else []), progress)
        query_songs = {os.path.abspath(p) for p in songs}
        for failed in indexed.failed:
            if failed.path in query_songs:
                raise EvalError(f"{failed.reason} (a query song must be indexed: fix it or leave it out of --songs)")
        with open_database(folder, source, config, writable=False) as opened:
            searcher = make_searcher(opened)
            results = run_synthetic(searcher, sets, songs, unknown, plan, degrader, progress)
            settings = dataclasses.replace(
                _settings(opened, searcher, "synthetic", plan.lengths_s, plan.protocols),
                songs=str(plan.songs),
                dummy=_text(plan.dummy),
                unknown=_text(plan.unknown),
                noise=_text(plan.noise),
                ir=_text(plan.ir),
                queries=plan.queries,
                unknown_queries=plan.queries if plan.unknown is not None else 0,
                seed=plan.seed,
                snr_db=list(opened.config.augment.snr_db),
                augment=dataclasses.asdict(opened.config.augment),
            )
    return EvalReport(settings, results, indexed.seconds)


def evaluate_recordings(
    plan: RecordingsPlan, source: DatabaseSource, config: Config | None = None, progress: Progress | None = None
) -> EvalReport:
    """Score real recordings against their ground truth in an existing database, used as it is.

    `config` as for `evaluate_synthetic`.
    """
    rows = read_truth(plan.truth, plan.queries)
    if source.folder is None:
        raise EvalError("recordings are scored against an existing database: pass --db")
    with open_database(source.folder, source, config, writable=False) as opened:
        listed = {row.query.resolve() for row in rows}
        unlisted = [f for f in find_audio_files([plan.queries]) if f.resolve() not in listed]
        if unlisted:
            log.warning("%s: %d audio files are not in %s and are left out", plan.queries, len(unlisted), plan.truth)
        searcher = make_searcher(opened)
        result = run_recordings(searcher, rows, plan.lengths_s, plan.truth, progress or SILENT)
        unknown = sum(row.song is None for row in rows)
        settings = dataclasses.replace(
            _settings(opened, searcher, "recordings", plan.lengths_s, ["recordings"]),
            recordings=str(plan.queries),
            truth=str(plan.truth),
            queries=len(rows) - unknown,
            unknown_queries=unknown,
        )
    return EvalReport(settings, [result], 0.0)


@contextlib.contextmanager
def database_folder(source: DatabaseSource) -> Iterator[Path]:
    """`source.folder`, or a temporary folder removed afterwards."""
    if source.folder is not None:
        yield source.folder
        return
    with tempfile.TemporaryDirectory(prefix="fpkit-eval-") as tmp:
        yield Path(tmp) / "db"


@contextlib.contextmanager
def open_database(
    folder: Path, source: DatabaseSource, config: Config | None, writable: bool
) -> Iterator[OpenDatabase]:
    """The database in `folder` with its model and the run's settings, as `Database.open_for` decides them.

    Writable, it is held under the write lock, or made with `source.model` when missing; else it
    must exist. The settings are `config` when given, else the model's own with `source.overrides`.
    """
    if not writable and not Database.exists(folder):
        raise EvalError(f"{folder}: no database there (build one with fpkit index, or fpkit eval --songs)")
    overrides = list(source.overrides) if config is None else None
    with Database.open_for(folder, source.model, source.device, writable, overrides) as opened:
        yield OpenDatabase(opened.db, opened.model, config if config is not None else opened.config, _label(source))


def _label(source: DatabaseSource) -> str:
    return str(source.folder) if source.folder is not None else TEMPORARY_DB


@dataclass(frozen=True)
class IndexSummary:
    seconds: float  # adding songs and indexing
    failed: list[Failed]  # files that could not be added, each with its reason


def index_songs(opened: OpenDatabase, paths: list[Path], progress: Progress) -> IndexSummary:
    """Add every audio file under `paths` and bring the index up to date, with the run's settings.

    Files the database already holds unchanged are skipped unread, so a rerun on the same
    folders costs a directory scan. An interrupted run keeps what it committed (every minute).
    """
    started = time.perf_counter()
    db, config = opened.db, opened.config
    try:
        report = db.add_files(paths, opened.model, config.inference, progress)
    except KeyboardInterrupt:
        db.commit()  # keep the songs fingerprinted so far for the next run
        raise
    for failed in report.failed:
        log.warning("not indexed: %s", failed.reason)
    try:
        db.update_index(config.index, progress)
    except IndexConfigError as err:  # an index setting that does not suit this model, e.g. index.pq_m
        raise EvalError(f"{db.root}: cannot build the index: {err}") from None
    log.info(
        "%s: %d songs added, %d already there, %d failed; %d songs, %d fingerprints in all",
        db.root,
        len(report.stored),
        len(report.skipped),
        len(report.failed),
        len(db.songs),
        db.rows,
    )
    return IndexSummary(time.perf_counter() - started, report.failed)


def make_searcher(opened: OpenDatabase) -> Searcher:
    """A searcher with the run's settings and at least `EVAL_TOP_K` candidates."""
    config = opened.config
    search = dataclasses.replace(config.search, top_k=max(config.search.top_k, EVAL_TOP_K))
    return Searcher(opened.db, opened.model, search, config.inference)


# ---- synthetic queries ----------------------------------------------------------------------


@dataclass(frozen=True)
class QuerySet:
    """The queries of one protocol from one source (query songs or unknown songs)."""

    protocol: Protocol
    stream: int  # random stream of positions and degradations (`fpkit.evaluation.metrics.derive_rng`)
    known: bool  # from the query songs (else from the unknown songs)
    positions: QueryPositions
    slot0: int  # where its queries go in the protocol's outcome arrays


def plan_query_sets(
    plan: SyntheticPlan, durations_s: list[float], unknown_durations_s: list[float], hop_s: float
) -> list[QuerySet]:
    """Query positions per protocol; unknown-song queries join the random protocol after the known ones."""
    longest = max(plan.lengths_s)
    sets: list[QuerySet] = []
    try:
        for protocol in plan.protocols:
            if protocol == "random":
                positions = sample_positions(durations_s, plan.queries, longest, plan.seed, STREAM_RANDOM)
                sets.append(QuerySet("random", STREAM_RANDOM, True, positions, 0))
            else:
                # The random protocol's positions and degradations, snapped to the grid: a paired comparison.
                positions = sample_aligned_positions(
                    durations_s, plan.queries, longest, hop_s, plan.seed, STREAM_RANDOM
                )
                sets.append(QuerySet("aligned", STREAM_RANDOM, True, positions, 0))
    except ValueError as err:
        raise EvalError(f"{plan.songs}: {err}") from None
    if plan.unknown is not None and "random" in plan.protocols:
        try:
            extra = sample_positions(unknown_durations_s, plan.queries, longest, plan.seed, STREAM_UNKNOWN)
        except ValueError as err:
            raise EvalError(f"{plan.unknown}: {err}") from None
        sets.append(QuerySet("random", STREAM_UNKNOWN, False, extra, plan.queries))
    return sets


def run_synthetic(
    searcher: Searcher,
    sets: list[QuerySet],
    songs: list[Path],
    unknown: list[Path],
    plan: SyntheticPlan,
    degrader: Degrader,
    progress: Progress = SILENT,
) -> list[ProtocolResult]:
    """Cut, degrade and search every query of `sets`; one `ProtocolResult` per protocol.

    `songs` and `unknown` are the files the positions index. Each song is decoded once.
    """
    audio = searcher.model.config.audio
    paths = [record.path for record in searcher.db.songs]
    collectors = {
        p: [
            _Collector(sum(len(s.positions) for s in sets if s.protocol == p), p, length_s, paths)
            for length_s in plan.lengths_s
        ]
        for p in plan.protocols
    }
    progress.start("searching queries", sum(len(s.positions) for s in sets) * len(plan.lengths_s))
    by_sha = {record.sha: i for i, record in enumerate(searcher.db.songs)}
    ids = _song_ids(searcher)
    for known, files in ((False, unknown), (True, songs)):  # an indexed unknown song fails first
        for index, path in enumerate(files):
            wanted = [(s, q) for s in sets if s.known == known for q in np.flatnonzero(s.positions.song == index)]
            if not wanted:
                continue
            wave = load_audio(path, audio.sample_rate)
            song = _song_id(path, content_hash(wave), by_sha, known, searcher.db.root)
            for query_set, q in wanted:
                start_s = float(query_set.positions.start_s[q])
                for collector, length_s in zip(collectors[query_set.protocol], plan.lengths_s, strict=True):
                    excerpt = cut(wave, start_s, length_s, audio.sample_rate)
                    rng = derive_rng(plan.seed, query_set.stream, int(q))
                    query, applied = degrader.degrade_described(excerpt, rng)
                    result, seconds = _timed_search(searcher, query, f"{path}@{start_s:.3f}s+{length_s:g}s")
                    collector.put(query_set.slot0 + int(q), song, start_s, result, seconds, ids, applied)
                    progress.advance()
    return [_protocol_result(p, plan.lengths_s, collectors[p], audio.hop_s) for p in plan.protocols]


def cut(wave: np.ndarray, start_s: float, length_s: float, sample_rate: int) -> np.ndarray:
    """`length_s` seconds of `wave` from `start_s`; zero-padded where a song ends early.

    Durations come from file headers; an MP3 header may promise a little more than decodes.
    """
    start = round(start_s * sample_rate)
    n = round(length_s * sample_rate)
    excerpt = wave[start : start + n]
    if len(excerpt) < n:
        log.debug("query at %.3f s runs %d samples past the song's end", start_s, n - len(excerpt))
        excerpt = np.concatenate([excerpt, np.zeros(n - len(excerpt), dtype=wave.dtype)])
    return excerpt


def _audio_files(folder: Path) -> list[Path]:
    files = find_audio_files([folder])
    if not files:
        raise EvalError(f"{folder}: no audio files found")
    return files


def _durations(files: Sequence[Path]) -> list[float]:
    return [audio_info(f).duration_s for f in files]


def _song_id(path: Path, sha: str, by_sha: dict[str, int], known: bool, db_root: Path) -> int:
    song = by_sha.get(sha)
    if known and song is None:
        raise EvalError(f"{path}: not in the database {db_root} (index it, or leave it out of --songs)")
    if not known and song is not None:
        raise EvalError(f"{path}: is in the database {db_root}, so it cannot make unknown queries")
    return UNKNOWN if song is None else song


# ---- real recordings ------------------------------------------------------------------------


def run_recordings(
    searcher: Searcher,
    rows: list[TruthRow],
    lengths_s: list[float] | None,
    truth: Path,
    progress: Progress = SILENT,
) -> ProtocolResult:
    """Search every recording: whole (`lengths_s` None), or its first L seconds for each length.

    A recording shorter than L is left out of that length's figures. `truth` names the table
    in messages.
    """
    paths = [record.path for record in searcher.db.songs]
    ids = _song_ids(searcher)
    truth_songs = [_truth_song(row, paths, truth, searcher.db.root) for row in rows]
    lengths: list[float | None] = list(lengths_s) if lengths_s is not None else [None]
    audio = searcher.model.config.audio
    waves = [load_audio(row.query, audio.sample_rate) for row in rows]
    collectors = []
    progress.start("searching recordings", len(rows) * len(lengths))
    for length_s in lengths:
        take = [i for i, w in enumerate(waves) if length_s is None or len(w) >= round(length_s * audio.sample_rate)]
        collector = _Collector(len(take), "recordings", length_s, paths)
        for slot, i in enumerate(take):
            wave = waves[i] if length_s is None else cut(waves[i], 0.0, length_s, audio.sample_rate)
            result, seconds = _timed_search(searcher, wave, str(rows[i].query))
            collector.put(slot, truth_songs[i], rows[i].start_s or 0.0, result, seconds, ids)
        collectors.append(collector)
        progress.advance(len(rows))
    return _protocol_result("recordings", lengths, collectors, audio.hop_s)


def _truth_song(row: TruthRow, paths: list[str], truth: Path, db_root: Path) -> int:
    if row.song is None:
        return UNKNOWN
    found = match_song(row.song, paths)
    if not found:
        raise EvalError(f"{truth}: line {row.line}: song {row.song!r} is not in the database {db_root}")
    if len(found) > 1:
        names = ", ".join(paths[i] for i in found[:3])
        raise EvalError(f"{truth}: line {row.line}: song {row.song!r} matches several database songs ({names})")
    return found[0]


# ---- shared ---------------------------------------------------------------------------------


def _timed_search(searcher: Searcher, wave: np.ndarray, name: str) -> tuple[SearchResult, float]:
    """One search, and its wall-clock time in seconds (fingerprinting the query included).

    A query the searcher refuses (silent, shorter than a segment) finds nothing: a miss.
    """
    started = time.perf_counter()
    try:
        result = searcher.search_wave(wave, name)
    except AudioError as err:
        log.warning("counted as a miss: %s", err)
        result = SearchResult(name, None, [], len(wave) / searcher.model.config.audio.sample_rate)
    return result, time.perf_counter() - started


class _Collector:
    """Fills the `Outcomes` arrays and the `QueryRow`s of one protocol and length, one search at a time.

    `paths` are the database's stored paths, by song id.
    """

    def __init__(self, queries: int, protocol: str, length_s: float | None, paths: list[str]) -> None:
        self.protocol = protocol
        self.length_s = length_s
        self.paths = paths
        self.rows: list[QueryRow | None] = [None] * queries
        self.true_song = np.full(queries, UNKNOWN, dtype=np.int64)
        self.true_start_s = np.zeros(queries)
        self.cand_song = np.full((queries, EVAL_TOP_K), NO_SONG, dtype=np.int64)
        self.cand_offset_s = np.zeros((queries, EVAL_TOP_K))
        self.cand_score = np.full((queries, EVAL_TOP_K), -np.inf)
        self.matched = np.zeros(queries, dtype=bool)
        self.search_s = np.zeros(queries)

    def put(
        self,
        slot: int,
        song: int,
        start_s: float,
        result: SearchResult,
        seconds: float,
        ids: dict[str, int],
        applied: Degradation | None = None,
    ) -> None:
        """Record one search; `ids` maps a stored path to its database song id, `applied` what degraded the query."""
        self.true_song[slot] = song
        self.true_start_s[slot] = start_s
        for k, cand in enumerate(result.candidates[:EVAL_TOP_K]):
            self.cand_song[slot, k] = ids[cand.ref]
            self.cand_offset_s[slot, k] = cand.offset_s
            self.cand_score[slot, k] = cand.score
        self.matched[slot] = result.match is not None
        self.search_s[slot] = seconds
        best = result.candidates[0] if result.candidates else None
        known = song != UNKNOWN
        self.rows[slot] = QueryRow(
            self.protocol,
            self.length_s,
            result.query,
            self.paths[song] if known else None,
            start_s if known else None,
            best.ref if best else None,
            best.offset_s if best else None,
            best.score if best else None,
            result.match is not None,
            bool(known and self.cand_song[slot, 0] == song),
            *((applied.snr_db, applied.noise, applied.room) if applied else ()),
        )

    def outcomes(self) -> Outcomes:
        return Outcomes(
            self.true_song,
            self.true_start_s,
            self.cand_song,
            self.cand_offset_s,
            self.cand_score,
            self.matched,
            self.search_s,
        )


def _protocol_result(
    protocol: str, lengths: Sequence[float | None], collectors: list[_Collector], hop_s: float
) -> ProtocolResult:
    metric_protocol: Protocol = "aligned" if protocol == "aligned" else "random"
    outcomes = [c.outcomes() for c in collectors]
    return ProtocolResult(
        protocol,
        [length_metrics(o, length, metric_protocol, hop_s) for o, length in zip(outcomes, lengths, strict=True)],
        [timing(o, length) for o, length in zip(outcomes, lengths, strict=True)],
        [row for c in collectors for row in c.rows if row is not None],
    )


def _song_ids(searcher: Searcher) -> dict[str, int]:
    """Stored path -> song id; a path stored twice (its file changed) means its newest content."""
    return {record.path: i for i, record in enumerate(searcher.db.songs)}


def _settings(
    opened: OpenDatabase, searcher: Searcher, mode: str, lengths_s: list[float] | None, protocols: Sequence[str]
) -> EvalSettings:
    """What every mode records; the caller fills in its own fields."""
    audio = opened.model.config.audio
    return EvalSettings(
        mode=mode,
        model_id=opened.model.model_id,
        model_path=opened.model.path,
        database=opened.label,
        database_songs=len(opened.db.songs),
        database_segments=opened.db.rows,
        index=opened.db.index_factory,
        rescore=opened.db.kept_as,
        lengths_s=lengths_s,
        protocols=list(protocols),
        sample_rate=audio.sample_rate,
        hop_s=audio.hop_s,
        search=dataclasses.asdict(searcher.config),
    )


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)
