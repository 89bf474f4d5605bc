"""Random paths, queries and headers thrown at every route of the status page (with and without
a token) through Flask's test client: whatever arrives, the answer is below 500 and shows no
traceback and no folder of this machine."""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from status import create_app
from status.context import status_context
from tests.fixtures.browser import SeededStatus, assert_same_site
from vidgen.config import Settings
from vidgen.db.session import Database

ROUTES = [
    "/",
    "/projects",
    "/projects/",
    "/jobs/",
    "/rejected",
    "/health",
    "/api/jobs",
    "/api/jobs/",
    "/api/projects",
    "/api/projects/",
    "/api/events",
    "/files/",
    "/files/storage/",
    "/files/storage/summerTrip/clips/",
    "/files/outbox/",
    "/static/",
    "",
]
HEADERS = [
    "Last-Event-ID",
    "Range",
    "If-Range",
    "If-None-Match",
    "If-Modified-Since",
    "Authorization",
    "Cookie",
    "Accept",
    "Accept-Encoding",
]
# What a path segment may hold: anything a URL can carry once percent-encoded, plus raw
# percent escapes of any byte (so invalid UTF-8, NUL, CR and LF arrive decoded).
_ANY_CHARACTER = st.characters(blacklist_categories=("Cs",))
_TRICKY = st.sampled_from(
    ["..", ".", "", "%2e%2e", "%2F", "%5C", "%00", "%0d%0a", "%09", "%ff", "%C0%AE", "a" * 300]
)
_ESCAPE = st.integers(0, 255).map(lambda byte: f"%{byte:02X}")
_SEGMENT = st.one_of(
    _TRICKY,
    st.lists(
        st.one_of(_ESCAPE, st.text(_ANY_CHARACTER, max_size=12).map(lambda t: quote(t, safe=""))),
        max_size=4,
    ).map("".join),
)
_NUMBERS = st.one_of(
    st.sampled_from([str(2**63 // 50), str(2**63), str(2**64), "-1", "0", "9" * 5000, "1e9"]),
    st.integers().map(str),
    st.integers(2**40, 2**70).map(str),
    st.text("0123456789\u00b2\u0661\u0662", min_size=1, max_size=30),  # and digits int() refuses
)
# Header values travel as Latin-1 and can hold no line break.
_HEADER_VALUE = st.one_of(
    _NUMBERS,
    st.text(st.sampled_from(string.printable[:-5] + "\t\x7f\xa0\xe9\xff"), max_size=40),
)
_TEXT = st.text(_ANY_CHARACTER, max_size=20)
_QUERY = st.fixed_dictionaries(
    {},
    optional={
        "page": st.one_of(_NUMBERS, _TEXT),
        "perPage": st.one_of(_NUMBERS, _TEXT),
        "token": st.one_of(st.just("t"), _TEXT),
        "x": _TEXT,
    },
)


@dataclass(frozen=True)
class Request:
    token_app: bool
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    route = draw(st.sampled_from(ROUTES))
    # Half the requests go to a route as it is, the rest below it.
    segments = draw(st.one_of(st.just([]), st.lists(_SEGMENT, min_size=1, max_size=4)))
    path = (route.rstrip("/") or "/") if not segments else route + "/".join(segments)
    headers = st.dictionaries(st.sampled_from(HEADERS), _HEADER_VALUE, max_size=3)
    return Request(
        token_app=draw(st.integers(0, 3)) == 0,  # a quarter: the rest get past the token
        path=path if path.startswith("/") else "/" + path,
        query=draw(_QUERY),
        headers=draw(headers),
    )


@dataclass(frozen=True)
class Apps:
    open: Flask
    with_token: Flask
    folders: tuple[str, ...]


@pytest.fixture
def apps(settings: Settings, database: Database, seeded: SeededStatus) -> Iterator[Apps]:
    quick = replace(settings, status=replace(settings.status, sse_max_seconds=0.01))
    token = replace(quick, status=replace(quick.status, token="t"))
    made = Apps(
        create_app(quick, database, backend_probes=[]),
        create_app(token, database, backend_probes=[]),
        (str(settings.storage.parent), str(Path(settings.storage.parent).resolve())),
    )
    yield made
    for app in (made.open, made.with_token):
        status_context(app).feed.stop()
    assert seeded.project_name


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_no_request_gets_a_500(apps: Apps, request: Request) -> None:
    app = apps.with_token if request.token_app else apps.open
    # The path goes to the app as a server hands it over (PATH_INFO: percent-decoded bytes as
    # Latin-1), so the test client's own URL parsing cannot take "//x" for a host.
    raw = unquote_to_bytes(request.path).decode("latin-1")
    with app.test_client() as client:
        response = client.get(
            "/",
            query_string=request.query,
            headers=request.headers,
            environ_overrides={"PATH_INFO": raw, "REQUEST_URI": request.path},
        )
        body = response.get_data(as_text=True)
        response.close()
    assert response.status_code < 500, (request, body[:300])
    assert "Traceback" not in body
    assert not any(folder in body for folder in apps.folders), request
    if response.status_code in (301, 302, 303, 307, 308):
        assert_same_site(response.headers["Location"])
