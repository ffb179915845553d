"""Reading the ground-truth CSV of real query recordings."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpkit.evaluation.truth import TruthError, match_song, read_truth


@pytest.fixture
def queries(tmp_path: Path) -> Path:
    folder = tmp_path / "queries"
    (folder / "phone").mkdir(parents=True)
    for name in ("a.wav", "b.wav", "phone/c.wav"):
        (folder / name).write_bytes(b"")
    return folder


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "truth.csv"
    path.write_text(text)
    return path


def test_reads_known_and_unknown_rows(tmp_path: Path, queries: Path) -> None:
    path = write(tmp_path, "query,song,start_s,note\na.wav,x/song_1.wav,12.5,loud\nphone/c.wav,,,street\n")
    rows = read_truth(path, queries)
    assert [(r.query, r.song, r.start_s, r.line) for r in rows] == [
        (queries / "a.wav", "x/song_1.wav", 12.5, 2),
        (queries / "phone/c.wav", None, None, 3),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("query,song\na.wav,s\n", r"line 1: header must name the columns query, song, start_s \(missing start_s\)"),
        ("query,song,start_s\na.wav,s,abc\n", "line 2: start_s 'abc' is not a number"),
        ("query,song,start_s\na.wav,s,1\nb.wav,s,-3\n", "line 3: start_s must be a time in seconds >= 0"),
        ("query,song,start_s\nmissing.wav,s,1\n", "line 2: query file"),
        ("query,song,start_s\na.wav,s,\n", "line 2: song 's' needs a start_s"),
        ("query,song,start_s\na.wav,,4\n", "line 2: start_s given for a query with no song"),
        ("query,song,start_s\na.wav,s,1\na.wav,s,2\n", "line 3: .* is already listed on line 2"),
        ("query,song,start_s\na.wav,s,1,extra\n", "line 2: expected 3 fields"),
        ("query,song,start_s\n", "no query rows"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, queries: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TruthError, match=message) as err:
        read_truth(path, queries)
    assert str(err.value).startswith(str(path))


def test_unreadable_file(tmp_path: Path, queries: Path) -> None:
    with pytest.raises(TruthError, match="cannot read ground truth"):
        read_truth(tmp_path / "nope.csv", queries)


def test_song_names_match_the_end_of_stored_paths() -> None:
    stored = ["/data/a/song.ogg", "/data/b/song.ogg", "/data/b/other.ogg"]
    assert match_song("other.ogg", stored) == [2]
    assert match_song("song.ogg", stored) == [0, 1]
    assert match_song("b/song.ogg", stored) == [1]
    assert match_song("/data/a/song.ogg", stored) == [0]
    assert match_song("ong.ogg", stored) == []
