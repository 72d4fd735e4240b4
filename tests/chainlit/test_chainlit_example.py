"""``examples/chainlit_app.py``, run as a user would run it, shows its steps to a real user."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chainlit_harness import REPO_ROOT, ChainlitServer, ChainlitUser, require_chainlit, run_chainlit

pytestmark = pytest.mark.integration

EXAMPLE = REPO_ROOT / "examples" / "chainlit_app.py"


@pytest.fixture(scope="module")
def example_server() -> Iterator[ChainlitServer]:
    require_chainlit()
    with run_chainlit(EXAMPLE) as server:
        yield server


async def test_the_example_streams_nested_steps_into_the_session(
    example_server: ChainlitServer,
) -> None:
    user = ChainlitUser(example_server)
    await user.connect()
    try:
        await user.send("what is chainlit")
        answer = await user.wait_for(
            lambda: [text for text in user.assistant_messages() if text.startswith("Based on")],
            "the example's answer",
        )
        run = await user.wait_for(lambda: user.ended("answer the question"), "the run's end")
        tree = user.tree
        assert tree.dropped == []
        assert tree.path(run["id"]) == ["User", "on_message", "answer the question"]
        search = tree.one("search documents")
        draft = tree.one("draft answer")
        for node in (search, draft):
            assert tree.path(node["id"]) == [
                "User",
                "on_message",
                "answer the question",
                node["name"],
            ]
        assert "stream_token" in user.step_events(draft["id"])
        assert "Chainlit builds chat UIs" in search["output"]
        assert draft["output"].strip() == answer[0].strip()
        assert run["status"] == "success"
    finally:
        await user.close()
