"""Exit statuses as the README documents them: 1 with one error line for unusable values, 2 for usage (issue 12)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY
from dbhelpers import RATE, SONG_S, db_config, save_model
from synth import make_song, write_audio, write_songs
from typer.testing import CliRunner

from fpkit.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("usage")
    model = save_model(folder / "tiny.pt", db_config(TINY))
    songs = write_songs(folder / "songs", 2, SONG_S, RATE)
    made = runner.invoke(app, ["index", *map(str, songs), "--db", str(folder / "db"), "--model", str(model)])
    assert made.exit_code == 0, made.output
    return folder / "db"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "2"], "--threshold 2: search.threshold: must be "),
        (["--threshold", "-5"], "--threshold -5: search.threshold: must be "),
        (["--top-k", "0"], "--top-k 0: search.top_k: must be positive"),
        (["--set", "search.threshold=2"], "--set: search.threshold: must be "),
    ],
)
def test_values_out_of_range_are_one_error_line_and_status_1(
    tmp_path: Path, db: Path, args: list[str], message: str
) -> None:
    query = write_audio(tmp_path / "q.wav", make_song(3.0, RATE, 50), RATE)
    refused = runner.invoke(app, ["search", str(query), "--db", str(db), *args])
    assert refused.exit_code == 1 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}")


@pytest.mark.parametrize(
    "args", [["search", "q.wav", "--bogus"], ["search", "q.wav", "--threshold", "high"], ["search"], ["index", "-x"]]
)
def test_a_command_line_that_does_not_parse_is_a_usage_error_with_status_2(args: list[str]) -> None:
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "Usage: " in refused.output


def test_the_readme_and_the_database_docs_state_these_statuses() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert re.search(r"one `error:` line .* exits with status 1", readme)
    assert re.search(r"usage message and exits with status 2", readme)
    database = " ".join((ROOT / "docs" / "database.md").read_text().split())
    assert "2 the command line does not parse" in database and "130 interrupted" in database


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    # `fpkit --help` and `--version` in a fraction of a second: torch, FAISS, matplotlib and numpy
    # are imported by the commands that use them, once they run.
    code = (
        "import sys, fpkit, fpkit.cli.app; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'faiss', 'matplotlib', 'numpy', 'yaml'}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["", "train", "generate", "index", "search", "monitor", "eval", "export", "info"])
def test_help_names_values_for_people_not_python_types(command: str) -> None:
    shown = runner.invoke(app, [command, "--help"] if command else ["--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    options = [line for line in shown.stdout.splitlines() if re.match(r"^│ +(\* +)?(--|[A-Z])", line)]
    assert options and not [line for line in options if re.search(r"<\w|\b(str|bool|int|float)\b|list\[", line)]
    assert re.search(r"--help +Show this", shown.stdout)  # a flag takes no value
