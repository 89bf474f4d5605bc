"""Shared pytest set-up: each area's fixtures live in tests/fixtures/<area>.py, registered here."""

import os

from hypothesis import settings

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.media",
    "tests.fixtures.comfyui",
    "tests.fixtures.mounts",  # before pipeline, which imports it
    "tests.fixtures.pipeline",
    "tests.fixtures.browser",
    "tests.fixtures.receiver",
]

# In CI the property tests run the same examples every time, so a landing never depends on
# chance; on a developer's machine they keep exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
