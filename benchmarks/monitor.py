"""`fpkit monitor` on a long noisy recording: span accuracy, unknown time attributed, speed.

Builds a recording (issue 14's setting): excerpts of 20-60 s of songs stored in the database
(cut from their audible part: `audible_extent`), each after a stretch of 10-30 s of music that
is not stored, mixed with background noise at a fixed SNR per piece; runs `fpkit monitor` on it
as a user would (a fresh process, start-up included, timed) and scores the spans against the truth:

* a song excerpt is found when a span of its song overlapping it starts and ends within
  `--tolerance` seconds (1.5) of it and places the recording in the song within `--offset-tolerance`
  (0.5 s): the error of (span offset - span start) against (true offset - true start), so a
  boundary error is not counted twice;
* unknown time attributed: the share of the unstored stretches covered by any span;
* speed: seconds of recording per second of wall time, the fastest of `--repeats` runs, with the
  CPU time (user + system) of that run and the load average before and after, as a shared
  machine's wall times say little alone.
  `--baseline` also times, in the same run and as fresh processes, the monitor on the first 2 s
  (its start-up), `fpkit index` of the recording (fingerprinting it once at the hop: the model's
  share of the monitor's work) and `fpkit search` of the recording cut into 10 s clips (the way
  to do it without the monitor), so that figures from a busy machine can be put in proportion.

    python benchmarks/monitor.py --db test-db --songs ../shared/data/music/test \\
        --unknown ../shared/data/music/train --noise ../shared/data/noise/test --recordings 3 --repeats 3 --baseline

The database is built from `--songs` with `fpkit index` when it does not exist. Recordings are
written under `--work` (default: a temporary folder) and reused when their truth file is there.
`--set search.monitor_level=0.6` (repeatable) runs the monitor with other settings: to choose a
model's own path level on recordings of its training songs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from fpkit.atomic import atomic_write
from fpkit.audio import AudioError, find_audio_files, load_audio
from fpkit.db import Database
from fpkit.fingerprint import silent_block_samples, sounding_blocks

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
FADE_S = 0.01  # pieces are joined with 10 ms fades, as a hard cut would click


@dataclass(frozen=True)
class Piece:
    start_s: float  # in the recording
    end_s: float
    song: str | None  # stored path of the song; None for music that is not stored
    offset_s: float  # where in its source file the piece starts
    source: str  # the file the audio came from


@dataclass(frozen=True)
class Found:
    song: str
    start_s: float
    end_s: float
    offset_s: float


def make_recording(
    stored: list[str], unknown: list[Path], noise: list[Path], minutes: float, snr_db: float, rate: int, seed: int
) -> tuple[np.ndarray, list[Piece]]:
    """Alternate unknown stretches (10-30 s) and stored excerpts (20-60 s) for `minutes`, then an unknown one."""
    rng = np.random.default_rng(seed)
    cache: dict[str, np.ndarray] = {}

    def audio(path: str) -> np.ndarray:
        if path not in cache:
            cache[path] = load_audio(path, rate)
        return cache[path]

    def cut(files: list[str], low_s: float, high_s: float, avoid: str | None) -> tuple[str, float, np.ndarray]:
        while True:
            path = files[int(rng.integers(len(files)))]
            if path == avoid:
                continue
            try:
                wave = audio(path)
            except AudioError as err:
                print(f"skipped: {err}", file=sys.stderr)
                files.remove(path)
                continue
            first, last = audible_extent(wave, rate)
            length = min(rng.uniform(low_s, high_s), (last - first) / rate)
            if length < low_s:
                continue
            start = first + int(rng.integers(0, last - first - int(length * rate) + 1))
            return path, start / rate, wave[start : start + int(length * rate)]

    songs, others = list(stored), [str(p) for p in unknown]
    parts, pieces, t = [], [], 0.0
    last_song: str | None = None
    while True:
        source, offset, wave = cut(others, 10.0, 30.0, None)
        parts.append(wave)
        pieces.append(Piece(t, t + len(wave) / rate, None, offset, source))
        t += len(wave) / rate
        if t >= minutes * 60:
            break
        last_song, offset, wave = cut(songs, 20.0, 60.0, last_song)
        parts.append(wave)
        pieces.append(Piece(t, t + len(wave) / rate, last_song, offset, last_song))
        t += len(wave) / rate
    background = _noise_track(noise, sum(len(p) for p in parts), rate, rng)
    mixed, at = [], 0
    for part in parts:
        n = len(part)
        signal_power = max(float(np.mean(part.astype(np.float64) ** 2)), 1e-10)
        bed = background[at : at + n]
        scale = np.sqrt(signal_power / (max(float(np.mean(bed.astype(np.float64) ** 2)), 1e-10) * 10 ** (snr_db / 10)))
        piece = part + scale * bed
        fade = min(int(FADE_S * rate), n // 2)
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        piece[:fade] *= ramp
        piece[n - fade :] *= ramp[::-1]
        mixed.append(piece)
        at += n
    wave = np.concatenate(mixed)
    return (0.9 * wave / max(float(np.abs(wave).max()), 1e-9)).astype(np.float32), pieces


def audible_extent(wave: np.ndarray, rate: int) -> tuple[int, int]:
    """The samples from a file's first to its last sound: excerpts leave out leading and trailing silence.

    Digital silence, as `fpkit.fingerprint.blank_segments` measures it (20 ms blocks swinging less
    than -80 dBFS), is stored as blank segments that match nothing, and under the background noise
    nothing of the song is heard there: a song ending in 8 s of it would otherwise count those
    seconds as the song's, missed by any monitor.
    """
    block = silent_block_samples(rate)
    loud = np.flatnonzero(sounding_blocks(wave, rate))
    if not len(loud):
        return 0, 0
    return int(loud[0]) * block, min(len(wave), (int(loud[-1]) + 1) * block)


def _noise_track(files: list[Path], length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Random noise files one after another, from random points, up to `length` samples."""
    out, filled = np.zeros(length, dtype=np.float32), 0
    while filled < length:
        try:
            clip = load_audio(files[int(rng.integers(len(files)))], rate)
        except AudioError:
            continue
        if np.abs(clip).max() == 0:
            continue
        clip = clip[int(rng.integers(0, max(1, len(clip) - rate))) :]
        take = min(len(clip), length - filled)
        out[filled : filled + take] = clip[:take]
        filled += take
    return out


@dataclass(frozen=True)
class Run:
    found: list[Found]
    wall_s: float
    cpu_s: float  # user + system, every thread


def run_monitor(recording: Path, db: Path, settings: list[str]) -> Run:
    """Spans from `fpkit monitor` (with `--set` `settings`) in a fresh process, and its wall and CPU time in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    begin = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fpkit", "--quiet", "monitor", str(recording), "--db", str(db), "--format", "jsonl"]
        + [arg for setting in settings for arg in ("--set", setting)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - begin
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    found = []
    for line in done.stdout.splitlines():
        span = json.loads(line)
        found.append(Found(span["match"], span["start_s"], span["end_s"], span["offset_s"]))
    return Run(found, wall, cpu)


def run_index(recording: Path, folder: Path) -> float:
    """Wall time of `fpkit index` of the recording into a new database (the shipped model)."""
    begin = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fpkit", "--quiet", "index", str(recording), "--db", str(folder)],
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - begin


def run_clip_search(wave: np.ndarray, rate: int, db: Path, folder: Path, clip_s: float = 10.0) -> float:
    """Wall time of `fpkit search` on the recording cut into `clip_s` clips (writing them not timed)."""
    folder.mkdir(parents=True, exist_ok=True)
    step = int(clip_s * rate)
    paths = []
    for i in range(0, len(wave) - step + 1, step):
        path = folder / f"clip{i // step:05d}.wav"
        sf.write(str(path), wave[i : i + step], rate)
        paths.append(str(path))
    begin = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fpkit", "--quiet", "search", "-", "--db", str(db), "--format", "jsonl"],
        input="\n".join(paths),
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - begin


@dataclass(frozen=True)
class Miss:
    """An excerpt without a span of its song within tolerance; errors signed (span - truth), seconds."""

    excerpt: Piece
    spans: int  # spans of its song overlapping it
    start_error: float | None  # None when no span of its song overlaps it
    end_error: float | None
    offset_error: float | None


@dataclass(frozen=True)
class Score:
    excerpts: int
    found: int  # excerpts whose span has start, end and offset within tolerance
    start_errors: list[float]  # per excerpt with a span of its song: |start error|, s
    end_errors: list[float]
    offset_errors: list[float]
    unknown_s: float
    unknown_attributed_s: float  # unknown time covered by spans
    wrong_song_s: float  # time of stored excerpts covered by a span of another song
    spans: int
    stray_spans: int  # spans that overlap no excerpt of their song
    misses: list[Miss]


def score(pieces: list[Piece], found: list[Found], tolerance: float, offset_tolerance: float) -> Score:
    def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
        return max(0.0, min(a1, b1) - max(a0, b0))

    excerpts = [p for p in pieces if p.song is not None]
    hits, start_errors, end_errors, offset_errors = 0, [], [], []
    misses = []
    for e in excerpts:
        own = [s for s in found if s.song == e.song and overlap(s.start_s, s.end_s, e.start_s, e.end_s) > 0]
        if not own:
            misses.append(Miss(e, 0, None, None, None))
            continue
        best = max(own, key=lambda s: overlap(s.start_s, s.end_s, e.start_s, e.end_s))
        start_err, end_err = best.start_s - e.start_s, best.end_s - e.end_s
        offset_err = (best.offset_s - best.start_s) - (e.offset_s - e.start_s)
        start_errors.append(abs(start_err))
        end_errors.append(abs(end_err))
        offset_errors.append(abs(offset_err))
        if abs(start_err) <= tolerance and abs(end_err) <= tolerance and abs(offset_err) <= offset_tolerance:
            hits += 1
        else:
            misses.append(Miss(e, len(own), start_err, end_err, offset_err))
    unknown = [p for p in pieces if p.song is None]
    attributed = sum(overlap(s.start_s, s.end_s, p.start_s, p.end_s) for s in found for p in unknown)
    wrong = sum(overlap(s.start_s, s.end_s, e.start_s, e.end_s) for s in found for e in excerpts if s.song != e.song)
    stray = sum(
        not any(s.song == e.song and overlap(s.start_s, s.end_s, e.start_s, e.end_s) > 0 for e in excerpts)
        for s in found
    )
    return Score(
        len(excerpts),
        hits,
        start_errors,
        end_errors,
        offset_errors,
        sum(p.end_s - p.start_s for p in unknown),
        attributed,
        wrong,
        len(found),
        stray,
        misses,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True, help="database of --songs (built when missing)")
    parser.add_argument("--songs", type=Path, default=DATA / "music" / "test", help="the stored songs")
    parser.add_argument("--unknown", type=Path, default=DATA / "music" / "train", help="music that is not stored")
    parser.add_argument("--noise", type=Path, default=DATA / "noise" / "test")
    parser.add_argument("--recordings", type=int, default=1, help="recordings made and scored (seeds 0, 1, ...)")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--snr", type=float, default=10.0, help="noise, dB below each piece's power")
    parser.add_argument("--rate", type=int, default=16000, help="sample rate of the recordings written")
    parser.add_argument("--tolerance", type=float, default=1.5, help="span start and end, seconds")
    parser.add_argument("--offset-tolerance", type=float, default=0.5, help="seconds")
    parser.add_argument("--work", type=Path, default=None, help="folder for the recordings (default: temporary)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per recording; the fastest counts")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="passed to `fpkit monitor --set` (repeatable)"
    )
    parser.add_argument("--baseline", action="store_true", help="also time start-up, fpkit index, search of clips")
    args = parser.parse_args()
    if not (args.db / "manifest.json").exists():
        subprocess.run(
            [sys.executable, "-m", "fpkit", "--quiet", "index", str(args.songs), "--db", str(args.db)], check=True
        )
    with Database.open(args.db) as db:
        stored = [record.path for record in db.songs]
        model_path = str(db.model_path)
        model_id = db.model_id
    known = {os.path.realpath(p) for p in stored}
    unknown = [p for p in find_audio_files([args.unknown]) if os.path.realpath(p) not in known]
    noise = find_audio_files([args.noise])
    work = args.work or Path(tempfile.mkdtemp(prefix="fpkit-monitor-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    print(f"model {model_id} ({model_path}); {len(stored)} stored songs; {len(unknown)} unknown; noise {args.noise}")
    totals: list[Score] = []
    recorded_s = wall_s = cpu_s = 0.0
    for seed in range(args.recordings):
        recording, truth = work / f"recording-{seed}.wav", work / f"recording-{seed}.json"
        if truth.exists():
            pieces = [Piece(**p) for p in json.loads(truth.read_text())]
            wave, _ = sf.read(str(recording), dtype="float32")
        else:
            wave, pieces = make_recording(stored, unknown, noise, args.minutes, args.snr, args.rate, seed)
            # Written whole or not at all: a rerun reuses a recording whose truth file is there.
            with atomic_write(recording, ".wav") as tmp:
                sf.write(str(tmp), wave, args.rate, subtype="PCM_16")
            with atomic_write(truth) as tmp:
                tmp.write_text(json.dumps([asdict(p) for p in pieces], indent=1))
        duration = len(wave) / args.rate
        runs = [run_monitor(recording, args.db, args.set) for _ in range(args.repeats)]
        fastest = min(runs, key=lambda r: r.wall_s)
        result = score(pieces, runs[0].found, args.tolerance, args.offset_tolerance)
        totals.append(result)
        recorded_s += duration
        wall_s += fastest.wall_s
        cpu_s += fastest.cpu_s
        print(
            f"recording {seed}: {duration / 60:.1f} min, {result.excerpts} excerpts, {result.found} found, "
            f"{result.spans} spans ({result.stray_spans} stray), unknown attributed "
            f"{result.unknown_attributed_s:.1f} of {result.unknown_s:.0f} s; monitor {fastest.wall_s:.1f} s = "
            f"{duration / fastest.wall_s:.0f}x real time ({fastest.cpu_s:.1f} s CPU)",
            flush=True,
        )
        for miss in result.misses:
            e = miss.excerpt
            detail = (
                "no span of its song"
                if miss.start_error is None
                else (
                    f"start {miss.start_error:+.2f} s, end {miss.end_error:+.2f} s, offset {miss.offset_error:+.2f} s"
                    f" ({miss.spans} span{'s' if miss.spans > 1 else ''})"
                )
            )
            print(f"  missed {e.start_s:.1f}-{e.end_s:.1f} s, {Path(e.source).name} from {e.offset_s:.1f} s: {detail}")
        if args.baseline and seed == 0:
            start = work / "start-up.wav"
            sf.write(str(start), wave[: 2 * args.rate], args.rate, subtype="PCM_16")
            start_wall = min(run_monitor(start, args.db, args.set).wall_s for _ in range(args.repeats))
            index_wall = min(
                run_index(recording, Path(tempfile.mkdtemp(prefix="fpkit-monitor-index-"))) for _ in range(args.repeats)
            )
            clip_wall = run_clip_search(wave, args.rate, args.db, work / f"clips-{seed}")
            print(
                f"  same machine, same run: monitor of 2 s (start-up) {start_wall:.1f} s; fpkit index of the "
                f"recording {index_wall:.1f} s = {duration / index_wall:.0f}x; fpkit search of it as 10 s clips "
                f"{clip_wall:.1f} s = {duration / clip_wall:.0f}x",
                flush=True,
            )
    excerpts = sum(t.excerpts for t in totals)
    found_count = sum(t.found for t in totals)
    starts = np.concatenate([t.start_errors for t in totals])
    ends = np.concatenate([t.end_errors for t in totals])
    offsets = np.concatenate([t.offset_errors for t in totals])
    unknown_s = sum(t.unknown_s for t in totals)
    print(
        f"song spans within {args.tolerance} s (start, end) and {args.offset_tolerance} s (offset): "
        f"{found_count}/{excerpts} = {found_count / excerpts:.1%}"
    )
    print(f"excerpts with a span of their song: {len(starts)}/{excerpts}")
    for name, errors in (("start", starts), ("end", ends), ("offset", offsets)):
        if len(errors):
            median, p90, worst = np.median(errors), np.percentile(errors, 90), errors.max()
            print(f"  {name} error: median {median:.2f} s, p90 {p90:.2f} s, max {worst:.2f} s")
    print(
        f"unknown time attributed to a song: {sum(t.unknown_attributed_s for t in totals):.1f} of {unknown_s:.0f} s = "
        f"{sum(t.unknown_attributed_s for t in totals) / unknown_s:.2%}; stored time given to another song: "
        f"{sum(t.wrong_song_s for t in totals):.1f} s; stray spans: {sum(t.stray_spans for t in totals)}"
    )
    print(
        f"speed: {recorded_s / wall_s:.0f}x real time (start-up included, {os.cpu_count()} cores; "
        f"{recorded_s / cpu_s:.0f}x per CPU second); load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
