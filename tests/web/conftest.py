"""Fixtures for the web channel tests: real servers on 127.0.0.1, stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import steptrace_web


@pytest.fixture
def make_channel() -> Iterator[Any]:
    """Start channels with ``make_channel(**serve_options)``; all are stopped afterwards."""
    started: list[steptrace_web.WebChannel] = []

    def make(**options: Any) -> steptrace_web.WebChannel:
        options.setdefault("listen", False)
        channel = steptrace_web.serve(**options)
        started.append(channel)
        return channel

    yield make
    for channel in started:
        channel.stop()


@pytest.fixture
def channel(make_channel: Any) -> steptrace_web.WebChannel:
    """A loopback channel fed by hand (``channel.publish``), not by steptrace."""
    return make_channel()
