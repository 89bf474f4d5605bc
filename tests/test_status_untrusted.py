"""The status page facing what others put in its folders and send it: links, FIFOs, devices and
sockets in ``rejected/`` and in storage, names that are not UTF-8, crowded folders, files
swapped while they are served, names too long for the filesystem, absurd page numbers and
``Last-Event-ID``s, line breaks and NULs, and token redirects aimed at another site."""

from __future__ import annotations

import http.client
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from status import create_app
from status.context import status_context
from status.rejected import MAX_SCANNED, MAX_SHOWN, NOT_PLAIN
from tests.fixtures.browser import SeededStatus, ServeStatus, assert_same_site
from vidgen.config import Settings
from vidgen.db.session import Database

SECRET = "root:x:0:0:the secret the page must never show"
DEADLINE_S = 10.0  # a request that blocks on a FIFO never ends: this tells it apart


@pytest.fixture
def app(settings: Settings, database: Database) -> Iterator[Flask]:
    quick = replace(settings, status=replace(settings.status, sse_max_seconds=0.2))
    app = create_app(quick, database, backend_probes=[])
    yield app
    status_context(app).feed.stop()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


@pytest.fixture
def rejected(settings: Settings) -> Path:
    folder = settings.inboxes[0].path / "rejected"
    folder.mkdir()
    return folder


def _get_within(client: FlaskClient, url: str, **kwargs: object) -> TestResponse:
    """GET in a thread with a deadline, the body read: a request stuck on a FIFO fails the
    test instead of hanging it."""
    answered: list[TestResponse] = []

    def fetch() -> None:
        response = client.get(url, **kwargs)  # type: ignore[arg-type]
        response.get_data()
        response.close()
        answered.append(response)

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert answered, f"GET {url} did not answer within {DEADLINE_S} s"
    return answered[0]


def _text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


# --- rejected/ ------------------------------------------------------------------------------------


def test_a_symlinked_error_file_is_not_followed(
    client: FlaskClient, rejected: Path, secret: Path
) -> None:
    (rejected / "x.yaml").write_text("clips: 3\n", encoding="utf-8")
    (rejected / "x.yaml.error.txt").symlink_to(secret)
    (rejected / "gone.yaml.error.txt").symlink_to(secret)  # a link alone is no rejection
    (rejected / "link.yaml").symlink_to(secret)  # nor is a linked manifest
    page = _text(_get_within(client, "/rejected"))
    assert SECRET not in page
    assert "x.yaml" in page
    assert NOT_PLAIN in page
    assert "gone.yaml" not in page
    assert "link.yaml" not in page


def test_a_symlinked_rejected_folder_is_not_read(
    client: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.yaml").write_text("x: 1\n", encoding="utf-8")
    (elsewhere / "private.yaml.error.txt").write_text(SECRET, encoding="utf-8")
    (settings.inboxes[0].path / "rejected").symlink_to(elsewhere)
    page = _text(_get_within(client, "/rejected"))
    assert SECRET not in page
    assert "private.yaml" not in page
    assert "Nothing was rejected" in page


def test_fifos_devices_and_sockets_are_skipped_without_blocking(
    client: FlaskClient, rejected: Path
) -> None:
    (rejected / "x.yaml").write_text("clips: 3\n", encoding="utf-8")
    os.mkfifo(rejected / "x.yaml.error.txt")  # opening it for reading would wait for a writer
    os.mkfifo(rejected / "pipe.yaml")
    os.mkfifo(rejected / "lonely.yaml.error.txt")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(rejected / "sock.yaml"))
    devices = _device(rejected / "null.yaml.error.txt")
    (rejected / "fine.yaml").write_text("x\n", encoding="utf-8")
    (rejected / "fine.yaml.error.txt").write_text("fine.yaml:1: (manifest): bad\n", "utf-8")
    try:
        for _ in range(3):  # more than once: an earlier request must not have left one stuck
            page = _text(_get_within(client, "/rejected"))
            assert "fine.yaml:1: (manifest): bad" in page
            assert NOT_PLAIN in page  # x.yaml's error file is a FIFO
            for name in ("pipe.yaml", "lonely.yaml", "sock.yaml", *devices):
                assert name not in page
    finally:
        listener.close()


def _device(path: Path) -> list[str]:
    """A character device like /dev/null at ``path`` where this user may make one."""
    try:
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        return []
    return ["null.yaml"]


def test_names_that_are_not_utf8_are_shown_escaped(client: FlaskClient, rejected: Path) -> None:
    name = os.fsdecode(b"caf\xe9.yaml")  # the byte 0xe9 alone is no UTF-8
    (rejected / name).write_bytes(b"x\n")
    (rejected / (name + ".error.txt")).write_bytes(
        b"caf\\xe9.yaml:1: (manifest): the name is not UTF-8 \xff\n"
    )
    response = _get_within(client, "/rejected")
    assert response.status_code == 200
    page = _text(response)
    assert page.count("caf\\xe9.yaml") == 2  # the name, and the error file's first line
    assert "\ufffd" in page  # the undecodable byte inside the text is a replacement character


def test_a_crowded_folder_shows_the_newest_and_counts_the_rest(
    client: FlaskClient, rejected: Path
) -> None:
    for number in range(MAX_SHOWN + 5):
        path = rejected / f"m{number:04d}.yaml"
        path.write_text("x\n", encoding="utf-8")
        os.utime(path, (1_700_000_000 + number, 1_700_000_000 + number))
    page = _text(_get_within(client, "/rejected"))
    assert page.count('<li class="card">') == MAX_SHOWN
    assert f"m{MAX_SHOWN + 4:04d}.yaml" in page  # the newest
    assert "m0000.yaml" not in page  # among the five oldest, counted only
    assert "and 5 older rejected manifests not shown here" in page


def test_a_huge_folder_is_looked_at_only_in_part(client: FlaskClient, rejected: Path) -> None:
    for number in range(MAX_SCANNED + 10):
        (rejected / f"m{number:05d}.yaml").touch()
    page = _text(_get_within(client, "/rejected"))
    assert page.count('<li class="card">') == MAX_SHOWN
    assert "or more older rejected manifests not shown here" in page


# --- /files ---------------------------------------------------------------------------------------


def test_files_never_serves_a_fifo_or_device(
    client: FlaskClient, seeded: SeededStatus, settings: Settings
) -> None:
    clips = settings.storage / seeded.project_name / "clips"
    os.mkfifo(clips / "pipe.mp4")
    os.mkfifo(settings.outbox / "pipe.mp4")
    made = _device(clips / "null.mp4")
    for url in [
        f"/files/storage/{seeded.project_name}/clips/pipe.mp4",
        "/files/outbox/pipe.mp4",
        *(f"/files/storage/{seeded.project_name}/clips/null.mp4" for _ in made),
    ]:
        assert _get_within(client, url).status_code == 404, url


def _swapping(target: Path, swap_in: Callable[[Path], None], stop: threading.Event) -> None:
    """Replace ``target`` over and over: a regular file, then what ``swap_in`` makes."""
    regular, other = target.with_name(".regular"), target.with_name(".other")
    while not stop.is_set():
        regular.write_bytes(b"a plain video")
        regular.replace(target)
        swap_in(other)
        other.replace(target)


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_a_file_swapped_while_it_is_served_is_never_followed_or_waited_for(
    client: FlaskClient, seeded: SeededStatus, settings: Settings, secret: Path, kind: str
) -> None:
    target = settings.outbox / "swapped.mp4"
    target.write_bytes(b"a plain video")

    def swap_in(path: Path) -> None:
        if kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to(secret)

    stop = threading.Event()
    swapper = threading.Thread(target=_swapping, args=(target, swap_in, stop), daemon=True)
    swapper.start()
    try:
        served = 0
        for _ in range(3000):
            response = _get_within(client, "/files/outbox/swapped.mp4")
            assert SECRET.encode() not in response.get_data()
            served += response.status_code == 200
        assert served  # the plain file was served whenever it was there
    finally:
        stop.set()
        swapper.join()
    assert seeded.project_name


def test_a_symlink_inside_storage_is_not_served(
    client: FlaskClient, seeded: SeededStatus, settings: Settings
) -> None:
    clips = settings.storage / seeded.project_name / "clips"
    first = sorted(clips.iterdir())[0]
    (clips / "alias.mp4").symlink_to(first)  # even one that stays inside
    linked = settings.storage / seeded.project_name / "refs" / "more"
    linked.symlink_to(clips)
    assert (
        _get_within(client, f"/files/storage/{seeded.project_name}/clips/{first.name}").status_code
        == 200
    )
    assert (
        _get_within(client, f"/files/storage/{seeded.project_name}/clips/alias.mp4").status_code
        == 404
    )
    assert (
        _get_within(
            client, f"/files/storage/{seeded.project_name}/refs/more/{first.name}"
        ).status_code
        == 404
    )


# --- bad input is a 4xx -------------------------------------------------------------------------

LONG = "a" * 300  # more than the 255 bytes a file name may have


@pytest.mark.parametrize(
    "url",
    [
        f"/files/storage/{LONG}/clips/x.mp4",
        f"/files/storage/summerTrip/clips/{LONG}.mp4",
        f"/files/outbox/{LONG}",
        f"/files/outbox/{'é' * 200}.mp4",
        f"/projects/{LONG}",
        f"/api/projects/{LONG}",
        f"/jobs/{LONG}",
        f"/api/jobs/{LONG}",
        f"/static/{LONG}",
        f"/{LONG}",
        f"/{LONG}/{LONG}",
    ],
)
def test_a_name_too_long_for_the_filesystem_is_not_found(
    client: FlaskClient, seeded: SeededStatus, url: str
) -> None:
    response = _get_within(client, url)
    assert response.status_code == 404
    assert "Traceback" not in _text(response)
    assert seeded.project_name


@pytest.mark.parametrize("path", ["/", "/api/jobs"])
@pytest.mark.parametrize(
    "query",
    [
        f"page={2**63 // 50}",
        f"page={2**63}",
        f"page={2**64 + 1}&perPage=200",
        "page=9" + "9" * 30,
        "page=" + "9" * 5000,
        "page=-1",
        f"page=-{2**63}",
        "perPage=-5",
        f"perPage={2**70}",
        "perPage=0&page=0",
        "page=%EF%BC%91",  # a fullwidth digit one
        "page=1e9",
    ],
)
def test_absurd_page_numbers_give_a_page(
    client: FlaskClient, seeded: SeededStatus, path: str, query: str
) -> None:
    response = _get_within(client, f"{path}?{query}")
    assert response.status_code == 200, (path, query)
    if path.startswith("/api/"):
        body = response.get_json()
        assert 1 <= body["page"] <= 10**9
        assert 1 <= body["perPage"] <= 200
    assert seeded.running_job_id


@pytest.mark.parametrize(
    "last_event_id",
    [
        "9" * 5000,  # beyond the digits Python turns into an int
        "9" * 25,
        "99999999999999999999",  # 20 digits: beyond the years a datetime holds
        "²",  # a digit to str.isdigit, not to int()
        "١٢٣",
        "-5",
        "0",
        "1.5",
        " 12",
        "",
    ],
)
def test_any_last_event_id_gives_the_stream(
    client: FlaskClient, seeded: SeededStatus, last_event_id: str
) -> None:
    response = _get_within(client, "/api/events", headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert seeded.running_job_id in _text(response)


@pytest.mark.parametrize(
    "url",
    [
        "/projects/a%0d%0ab",
        "/projects/a%00b",
        "/jobs/%0d%0aSet-Cookie:%20x=1",
        "/api/jobs/%00",
        "/files/outbox/a%0d%0a.mp4",
        "/files/outbox/a%00.mp4",
        "/static/%00",
        "/%0d%0a",
        "/?page=1%0d%0aX:%20y",
        "/api/jobs?perPage=%00",
    ],
)
def test_line_breaks_and_nuls_are_refused_or_not_found(client: FlaskClient, url: str) -> None:
    response = _get_within(client, url)
    assert response.status_code < 500, url
    assert "Traceback" not in _text(response)


def test_raw_bytes_in_the_request_line_never_give_a_500(
    serve_status: ServeStatus, seeded: SeededStatus
) -> None:
    """Through waitress, with what a browser would never send."""
    port = int(serve_status().rsplit(":", 1)[1])
    for target in [
        b"/projects/a\x00b",
        b"/projects/a\tb",
        b"/projects/caf\xe9",
        b"/files/outbox/\xff\xfe.mp4",
        b"/" + b"a" * 300,
        b"/api/jobs?page=" + str(2**64).encode(),
    ]:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as connection:
            connection.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status_line = connection.recv(4096).split(b"\r\n", 1)[0]
        code = int(status_line.split()[1])
        assert code < 500, (target, status_line)
    assert seeded.running_job_id


# --- the token redirect ---------------------------------------------------------------------------

# Known open-redirect shapes: each would send a browser to evil.example if the path were
# echoed into Location as it came.
OPEN_REDIRECTS = [
    "//evil.example",
    "///evil.example",
    "////evil.example/",
    "/%09/evil.example",
    "/%09%09/evil.example",
    "/%0a/evil.example",
    "/%0d%0a/evil.example",
    "/%0d/evil.example",
    "/%00/evil.example",
    "/%20/evil.example",
    "/\\evil.example",
    "/%5Cevil.example",
    "/%5C%5Cevil.example",
    "/\\/evil.example",
    "/%5C/evil.example",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "/%2F/%2Fevil.example",
    "/%252F%252Fevil.example",
    "/%E3%80%82evil.example",
    "/.//evil.example",
    "/./%09/evil.example",
    "/http://evil.example",
    "/https:evil.example",
    "/https:/evil.example",
    "/%68%74%74%70%3A%2F%2Fevil.example",
    "/javascript:alert(1)",
    "/@evil.example",
    "/%40evil.example",
    "/;/evil.example",
    "/%0d%0aLocation:%20//evil.example",
    "/projects/%2F%2Fevil.example",
    "/%C0%AFevil.example",
    "/%E2%80%AE//evil.example",
]


@pytest.mark.parametrize("path", OPEN_REDIRECTS)
def test_the_token_redirect_never_leaves_the_site(
    settings: Settings, database: Database, path: str
) -> None:
    public = replace(settings, status=replace(settings.status, token="t"))
    client = create_app(public, database, backend_probes=[]).test_client()
    response = client.get(f"{path}?token=t&next=//evil.example")
    assert response.status_code == 303
    location = response.headers["Location"]
    assert_same_site(location)


def test_the_token_redirect_keeps_the_page_and_its_query(
    settings: Settings, database: Database
) -> None:
    public = replace(settings, status=replace(settings.status, token="t"))
    client = create_app(public, database, backend_probes=[]).test_client()
    response = client.get("/projects/%EB%B4%84?token=t&page=2&q=a%20b")
    assert response.headers["Location"] == "/projects/%EB%B4%84?page=2&q=a+b"
    assert client.get("/projects/?token=t").headers["Location"] == "/projects/"
    assert client.get("/?token=t").headers["Location"] == "/"


def test_the_token_redirect_survives_a_line_break_in_the_path(
    serve_status: ServeStatus, seeded: SeededStatus
) -> None:
    """Through waitress: a CR LF percent-encoded in the path ends up in no header."""
    port = int(serve_status(token="t").rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_S)
    connection.request("GET", "/%0d%0aSet-Cookie:%20evil=1?token=t")
    response = connection.getresponse()
    assert response.status == 303
    assert_same_site(response.getheader("Location") or "")
    assert "evil=1" not in (response.getheader("Set-Cookie") or "")
    connection.close()
    assert seeded.running_job_id
