"""`Database.open_for`: the one place that decides which model goes with which database."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY
from dbhelpers import db_config, save_model

from fpkit.db import Database, ModelMismatch
from fpkit.model import load_model


def test_the_model_given_or_the_databases_own_and_never_another(tmp_path: Path) -> None:
    mine = save_model(tmp_path / "mine.pt", db_config(TINY), seed=0)
    other = save_model(tmp_path / "other.pt", db_config(TINY), seed=1)
    folder = tmp_path / "db"
    with Database.open_for(folder, mine, writable=True) as created:  # a new database, made with `mine`
        assert created.model.model_id == load_model(mine).model_id == created.db.model_id
    with Database.open_for(folder, None) as opened:
        assert opened.model.model_id == opened.db.model_id
        assert Path(opened.model.path) == folder / "model.pt"  # its own copy
    with pytest.raises(ModelMismatch, match="built with model"):
        Database.open_for(folder, other, writable=True)
    with Database.open_for(folder, mine, writable=True) as again:  # the refused open let go of the lock
        assert again.model.model_id == again.db.model_id
