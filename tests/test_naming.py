"""Project names and conventional file names (docs/architecture.md, "File names")."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidgen.db.session import Database
from vidgen.errors import StorageError
from vidgen.naming import (
    MAX_PROJECT_NAME,
    FileType,
    allocate_path,
    file_name,
    project_name,
    publish,
)


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("My NAS videos", "myNasVideos"),
        ("Summer Trip", "summerTrip"),
        ("summer-trip_2024", "summerTrip2024"),
        ("내 프로젝트", "내프로젝트"),
        ("여름 여행 🏖️ 2024", "여름여행2024"),
        ("🎬 Movie night!!", "movieNight"),
        ("Café  au lait", "caféAuLait"),
        ("../../etc/passwd", "etcPasswd"),
        ("a/b\\c", "aBC"),
    ],
)
def test_project_name(display: str, expected: str) -> None:
    assert project_name(display) == expected


def test_emoji_only_gets_a_fallback() -> None:
    name = project_name("🎬🍿✨")
    assert re.fullmatch(r"project[0-9a-f]{8}", name)
    assert name == project_name("🎬🍿✨")  # stable: the same display name, the same project
    assert name != project_name("🎉")


def test_decomposed_korean_is_normalised() -> None:
    decomposed = unicodedata.normalize("NFD", "내 프로젝트")
    assert project_name(decomposed) == "내프로젝트"


def test_at_most_64_characters() -> None:
    assert len(project_name("word " * 40)) == MAX_PROJECT_NAME


@settings(max_examples=1000, deadline=None)
@given(st.text())
def test_any_display_name_gives_a_safe_name(display: str) -> None:
    name = project_name(display)
    assert 0 < len(name) <= MAX_PROJECT_NAME
    assert "/" not in name
    assert "\\" not in name
    assert ".." not in name
    assert name not in (".", "..")
    assert Path(name).name == name


def test_file_name_convention() -> None:
    day = date(2025, 2, 5)
    assert file_name(day, "myProject", FileType.CLIP, 1, "mp4") == "20250205_myProject_clip_001.mp4"


def test_allocate_path_takes_the_next_free_index(database: Database, tmp_path: Path) -> None:
    day = date(2025, 2, 5)
    first = allocate_path(database, tmp_path, "내프로젝트", FileType.MANIFEST, "yaml", day)
    assert first.name == "20250205_내프로젝트_manifest_001.yaml"
    (tmp_path / "20250205_내프로젝트_manifest_002.yaml").write_text("taken by an older database")
    assert allocate_path(database, tmp_path, "내프로젝트", FileType.MANIFEST, "yaml", day).name == (
        "20250205_내프로젝트_manifest_003.yaml"
    )


def test_a_publish_error_names_the_file_and_folder_not_the_path(tmp_path: Path) -> None:
    source = tmp_path / "work" / "export.mp4"
    source.parent.mkdir()
    source.write_bytes(b"video")
    taken = tmp_path / "outbox" / "20250205_p_export_001.mp4"
    taken.mkdir(parents=True)  # a folder where the file should go: the rename fails
    with pytest.raises(StorageError) as refused:
        publish(source, taken)
    message = refused.value.user_message
    assert message.startswith("cannot write 20250205_p_export_001.mp4 into the folder outbox: ")
    assert str(tmp_path) not in message
