"""The documentation stays true: every config key documented with its real default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from fpkit.config import Config

ROOT = Path(__file__).resolve().parent.parent


def documented_keys() -> dict[str, dict[str, str]]:
    """{section: {key: default as written}} from the tables of docs/config.md."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in (ROOT / "docs" / "config.md").read_text().splitlines():
        if line.startswith("## "):
            heading = re.match(r"^## `(\w+)`", line)
            current = sections.setdefault(heading[1], {}) if heading else None
            continue
        row = re.match(r"^\| `(\w+)` \| `([^`]*)` \|", line)
        if row and current is not None:
            current[row[1]] = row[2]
    return sections


def test_every_config_key_is_documented_with_its_default() -> None:
    docs = documented_keys()
    config = Config()
    assert set(docs) == {f.name for f in dataclasses.fields(config)}
    for section in dataclasses.fields(config):
        defaults = getattr(config, section.name)
        keys = {f.name for f in dataclasses.fields(defaults)}
        rows = docs[section.name]
        assert set(rows) == keys, f"docs/config.md, section {section.name}: documented keys differ from config.py"
        for key in keys:
            assert yaml.safe_load(rows[key]) == getattr(defaults, key), f"docs/config.md: {section.name}.{key}"


def test_readme_starts_with_the_set_up_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[2:6] == ["```sh", "make install", "make test", "```"]
