"""Shared pytest set-up: each area's fixtures live in tests/fixtures/<area>.py, registered here."""

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.media",
    "tests.fixtures.browser",
    "tests.fixtures.comfyui",
    "tests.fixtures.pipeline",
]
