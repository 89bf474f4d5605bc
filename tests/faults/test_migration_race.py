"""Several vidgen processes starting at once on an empty database: the migrations run once, under
a lock, and every process comes up (or says in one line why not)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect

from tests.mariadb import own_database
from vidgen.db.session import migration_state, open_database

VIDGEN = str(Path(sys.executable).with_name("vidgen"))
_STARTS = 4


def _upgrade_at_once(url: str, cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "VIDGEN_DATABASE_URL": url, "VIDGEN_STORAGE": str(cwd / "storage")}
    started = [
        subprocess.Popen(
            [VIDGEN, "db", "upgrade"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(_STARTS)
    ]
    done = []
    for process in started:
        stdout, stderr = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return done


def _check_all_came_up(url: str, done: list[subprocess.CompletedProcess[str]]) -> None:
    for result in done:
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 0, result.stderr
        assert "is up to date" in result.stdout
    database = open_database(url)
    try:
        state = migration_state(database)
        assert state.current == state.head
        assert "name_counter" in inspect(database.engine).get_table_names()
    finally:
        database.dispose()


def test_processes_starting_at_once_on_an_empty_mariadb_all_come_up(
    mariadb_url: str, tmp_path: Path
) -> None:
    url = own_database(mariadb_url, f"race_{uuid.uuid4().hex[:8]}")
    _check_all_came_up(url, _upgrade_at_once(url, tmp_path))


def test_processes_starting_at_once_on_a_new_sqlite_file_all_come_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'storage' / 'vidgen.db'}"
    _check_all_came_up(url, _upgrade_at_once(url, tmp_path))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VIDGEN_DATABASE_URL", "mysql+pymysql://nobody:wrong@127.0.0.1:9/vidgen"),
        ("VIDGEN_STORAGE", "{tmp}/a-file/storage"),  # a folder that cannot be made
    ],
)
def test_a_start_up_error_is_one_line(variable: str, value: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    env = {**os.environ, variable: value.format(tmp=tmp_path)}
    done = subprocess.run(
        [VIDGEN, "work"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("vidgen: ")
