"""Reading settings: the one parser of "WxH" resolutions."""

from __future__ import annotations

import pytest

from vidgen.specs import parse_resolution


@pytest.mark.parametrize(
    "text", ["512", "512x", "x512", "512x512x3", "\uff15\uff11\uff12x512", "-8x8", ""]
)
def test_parse_resolution_refuses_what_is_not_w_x_h(text: str) -> None:
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_resolution(text)


def test_parse_resolution() -> None:
    assert parse_resolution("1024x576") == (1024, 576)
