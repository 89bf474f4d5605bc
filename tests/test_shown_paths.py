"""How paths read for a person: relative to the storage, outbox or inbox they lie in."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.database import make_settings
from vidgen.shown_paths import ShownPaths


def _shown(tmp_path: Path, **overrides: object) -> ShownPaths:
    return ShownPaths.from_settings(make_settings(tmp_path, "sqlite://", **overrides))


def test_paths_are_relative_to_their_folder(tmp_path: Path) -> None:
    shown = _shown(tmp_path)
    assert shown.path(tmp_path / "storage" / "p" / "refs" / "a.png") == "storage/p/refs/a.png"
    assert shown.path(str(tmp_path / "outbox")) == "outbox"
    assert shown.path(tmp_path / "inbox" / "refs" / "x.png") == "inbox/refs/x.png"
    assert shown.path("/srv/elsewhere/secret.txt") == "secret.txt"  # outside: the name alone
    assert shown.path("refs/girl.png") == "refs/girl.png"


def test_an_inbox_with_its_own_outbox_goes_by_the_folders_names(tmp_path: Path) -> None:
    share = tmp_path / "nas" / "vidgen-inbox"
    own = tmp_path / "nas" / "vidgen-outbox"
    share.mkdir(parents=True)
    own.mkdir()
    shown = _shown(tmp_path, inboxes=[{"path": str(share), "outbox": str(own)}])
    assert shown.text(f"cannot read {share}/refs/a.png") == "cannot read vidgen-inbox/refs/a.png"
    assert shown.path(own / "x.mp4") == "vidgen-outbox/x.mp4"


def test_text_replaces_whole_folders_only(tmp_path: Path) -> None:
    shown = _shown(tmp_path)
    storage = tmp_path / "storage"
    message = (
        f"cannot write '{storage}/p/work/1/x.mp4': no space; "
        f"file:{storage}/p/clips/c.mp4; {storage}2/other; {storage}.bak; "
        f"see http://host{storage}/x"
    )
    assert shown.text(message) == (
        "cannot write 'storage/p/work/1/x.mp4': no space; "
        f"file:storage/p/clips/c.mp4; {storage}2/other; {storage}.bak; "
        f"see http://host{storage}/x"
    )


def test_a_folder_reached_through_a_link_is_known_by_both_spellings(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    linked = tmp_path / "linked"
    linked.symlink_to(real, target_is_directory=True)
    shown = _shown(linked)  # the settings name the link; the OS may print the real folder
    assert shown.path(linked / "storage" / "x") == "storage/x"
    assert shown.path(real / "storage" / "x") == "storage/x"


def test_json_shows_paths_and_texts_in_every_string(tmp_path: Path) -> None:
    shown = _shown(tmp_path)
    settings = {
        "clip": {"video": str(tmp_path / "storage" / "p" / "refs" / "v.mp4"), "seed": 42},
        "outbox": str(tmp_path / "outbox"),
        "notes": [f"read {tmp_path / 'inbox'}/a.mp4", "/elsewhere/b.mp4", "a prompt / a slash"],
    }
    assert shown.json(settings) == {
        "clip": {"video": "storage/p/refs/v.mp4", "seed": 42},
        "outbox": "outbox",
        "notes": ["read inbox/a.mp4", "b.mp4", "a prompt / a slash"],
    }
