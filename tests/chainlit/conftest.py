"""Fixtures for the Chainlit exporter: real ``chainlit run`` servers from ``.venv-chainlit``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from chainlit_harness import ChainlitServer, chainlit_available, run_chainlit


def _require_chainlit() -> None:
    if not chainlit_available():
        message = ".venv-chainlit is missing: run `bash scripts/bootstrap.sh` to create it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def chainlit_server() -> Iterator[ChainlitServer]:
    """The test app (``tests/chainlit/app.py``) with the default ``cot = "full"``."""
    _require_chainlit()
    with run_chainlit() as server:
        yield server


@pytest.fixture(scope="module")
def chainlit_server_hidden_cot() -> Iterator[ChainlitServer]:
    """The same app with ``[UI] cot = "hidden"``."""
    _require_chainlit()
    with run_chainlit(cot="hidden") as server:
        yield server
