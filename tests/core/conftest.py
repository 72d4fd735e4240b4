"""Fixtures of the core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import steptrace
from core.helpers import Recorder


@pytest.fixture
def events() -> Iterator[Recorder]:
    """Every live event of the test, through a real listener."""
    steptrace.flush()  # nothing from an earlier test reaches this recorder
    recorder = Recorder()
    steptrace.add_listener(recorder)
    yield recorder
    steptrace.flush()
    steptrace.remove_listener(recorder)
