"""Fixtures for the LLM auto-instrumentation tests: local provider servers, real clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

import steptrace
from steptrace.testing import AnthropicServer, OpenAIServer


@pytest.fixture(scope="package", autouse=True)
def instrumented() -> Iterator[None]:
    """Both libraries instrumented for the package; tests that uninstrument re-instrument."""
    steptrace.instrument()
    yield
    steptrace.uninstrument()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicServer]:
    with AnthropicServer() as server:
        yield server


@pytest.fixture
def oai(openai_server: OpenAIServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)
    yield client
    client.close()


@pytest.fixture
async def aoai(openai_server: OpenAIServer) -> Any:
    client = openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def claude(anthropic_server: AnthropicServer) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        base_url=anthropic_server.base_url, api_key="test-key", max_retries=0
    )
    yield client
    client.close()


@pytest.fixture
async def aclaude(anthropic_server: AnthropicServer) -> Any:
    client = anthropic.AsyncAnthropic(
        base_url=anthropic_server.base_url, api_key="test-key", max_retries=0
    )
    yield client
    await client.close()
