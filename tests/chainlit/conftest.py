"""Fixtures for the Chainlit exporter: real ``chainlit run`` servers from ``.venv-chainlit``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chainlit_harness import ChainlitServer, require_chainlit, run_chainlit


@pytest.fixture(scope="module")
def chainlit_server() -> Iterator[ChainlitServer]:
    """The test app (``tests/chainlit/app.py``) with the default ``cot = "full"``."""
    require_chainlit()
    with run_chainlit() as server:
        yield server


@pytest.fixture(scope="module")
def chainlit_server_hidden_cot() -> Iterator[ChainlitServer]:
    """The same app with ``[UI] cot = "hidden"``."""
    require_chainlit()
    with run_chainlit(cot="hidden") as server:
        yield server


@pytest.fixture(scope="module")
def chainlit_server_tool_call_cot() -> Iterator[ChainlitServer]:
    """The same app with ``[UI] cot = "tool_call"``."""
    require_chainlit()
    with run_chainlit(cot="tool_call") as server:
        yield server
