"""A step tree exported over real OTLP (HTTP and gRPC) to a real Phoenix, and read back.

The app runs in a subprocess configured only through the standard `OTEL_*` variables, the way a
user deploys it, so `steptrace.configure()` reads them at start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.integration

# Streamed into the `generate` step: enough tokens to be coalesced, with awkward characters.
TOKENS = [f"tok{i} " for i in range(150)] + ["ünïcødé ✓", "\n", "  two spaces", "", "end."]
STREAMED_TEXT = "".join(TOKENS)

APP = textwrap.dedent(
    """
    import asyncio
    import json
    import sys

    import steptrace

    TOKENS = json.loads(sys.argv[1])
    ids = {}


    @steptrace.step(name="retrieve", type="retrieval")
    def retrieve(query):
        ids["retrieve"] = steptrace.current_step().span_id
        return ["doc-1", "doc-2"]


    async def main():
        steptrace.configure()
        async with steptrace.Step(
            name="answer", type="run", tags=["it", "phoenix"], metadata={"user": "u-1", "n": 3}
        ) as root:
            root.input = {"question": "what is steptrace?"}
            retrieve("steptrace")
            async with steptrace.Step(name="generate", type="llm") as generate:
                for token in TOKENS:
                    await generate.stream_token(token)
            with steptrace.Step(name="rewrite", type="tool") as rewrite:
                rewrite.stream_token("draft text")
                rewrite.stream_token("final text", is_sequence=True)
            try:
                with steptrace.Step(name="lookup", type="tool") as lookup:
                    lookup.input = "missing-key"
                    lookup.stream_token("partial ")
                    raise LookupError("no such key: missing-key")
            except LookupError:
                pass
            root.output = "steptrace traces steps"
        for step in (root, generate, rewrite, lookup):
            ids[step.name] = step.span_id
        ids["trace_id"] = root.trace_id
        print(json.dumps(ids))


    asyncio.run(main())
    steptrace.flush()
    """
)


def run_app(phoenix: Any, protocol: str, project: str) -> dict[str, str]:
    """Run the app with only OTEL_* configuration; returns its trace id and span ids by name."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    endpoint = phoenix.grpc_endpoint if protocol == "grpc" else phoenix.http_endpoint
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_SERVICE_NAME="steptrace-it",
        OTEL_RESOURCE_ATTRIBUTES=f"openinference.project.name={project}",
    )
    result = subprocess.run(
        [sys.executable, "-c", APP, json.dumps(TOKENS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys, whether Phoenix returns attributes flat or nested."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def rebuild_streams(events: list[dict[str, Any]]) -> dict[str, str]:
    """Apply `step.token` events in order, as a consumer of the trace would."""
    text = {"output": "", "input": ""}
    for event in events:
        if event["name"] != "step.token":
            continue
        attributes = flatten(event["attributes"])
        target = attributes["step.token.target"]
        token = attributes["step.token.text"]
        if attributes.get("step.token.replace"):
            text[target] = token
        else:
            text[target] += token
    return text


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_step_tree_round_trips_through_phoenix(phoenix, protocol):
    project = f"steptrace-it-{protocol.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
    ids = run_app(phoenix, protocol, project)

    spans = phoenix.spans(project, ids["trace_id"], count=5)
    assert sorted(span["name"] for span in spans) == [
        "answer",
        "generate",
        "lookup",
        "retrieve",
        "rewrite",
    ]
    by_name = {span["name"]: span for span in spans}
    attrs = {name: flatten(span["attributes"]) for name, span in by_name.items()}

    # ids and parent links: one tree under `answer`
    for name, span in by_name.items():
        assert span["context"]["trace_id"] == ids["trace_id"]
        assert span["context"]["span_id"] == ids[name]
    assert by_name["answer"]["parent_id"] is None
    for child in ("retrieve", "generate", "rewrite", "lookup"):
        assert by_name[child]["parent_id"] == ids["answer"], child

    # step.* attributes and the OpenInference span kind
    expected_types = {
        "answer": ("run", "CHAIN"),
        "retrieve": ("retrieval", "RETRIEVER"),
        "generate": ("llm", "LLM"),
        "rewrite": ("tool", "TOOL"),
        "lookup": ("tool", "TOOL"),
    }
    for name, (step_type, kind) in expected_types.items():
        assert attrs[name]["step.type"] == step_type, name
        # Phoenix moves `openinference.span.kind` out of the attributes into `span_kind`.
        assert by_name[name]["span_kind"] == kind, name
        uuid.UUID(attrs[name]["step.id"])
    assert list(attrs["answer"]["step.tags"]) == ["it", "phoenix"]
    assert attrs["answer"]["step.metadata.user"] == "u-1"
    assert attrs["answer"]["step.metadata.n"] == 3
    for name in ("answer", "retrieve", "generate", "rewrite"):
        assert attrs[name]["step.status"] == "success", name
        assert by_name[name]["status_code"] != "ERROR", name

    # input / output values and their MIME types
    assert json.loads(attrs["answer"]["input.value"]) == {"question": "what is steptrace?"}
    assert attrs["answer"]["input.mime_type"] == "application/json"
    assert attrs["answer"]["output.value"] == "steptrace traces steps"
    assert attrs["answer"]["output.mime_type"] == "text/plain"
    assert json.loads(attrs["retrieve"]["output.value"]) == ["doc-1", "doc-2"]
    assert attrs["retrieve"]["output.mime_type"] == "application/json"
    assert attrs["generate"]["output.value"] == STREAMED_TEXT

    # streamed tokens: the events rebuild the text exactly, coalesced into fewer events
    generate_events = [e for e in by_name["generate"]["events"] if e["name"] == "step.token"]
    assert 0 < len(generate_events) <= len(TOKENS)
    assert rebuild_streams(by_name["generate"]["events"])["output"] == STREAMED_TEXT
    assert rebuild_streams(by_name["rewrite"]["events"])["output"] == "final text"
    assert isinstance(attrs["generate"]["step.time_to_first_token_s"], float)
    assert attrs["generate"]["step.time_to_first_token_s"] >= 0

    # the failed step: ERROR status with a description, the exception event, output kept
    lookup = by_name["lookup"]
    assert attrs["lookup"]["step.status"] == "failed"
    assert lookup["status_code"] == "ERROR"
    assert "no such key: missing-key" in lookup["status_message"]
    exceptions = [e for e in lookup["events"] if e["name"] == "exception"]
    assert len(exceptions) == 1
    exception = flatten(exceptions[0]["attributes"])
    assert exception["exception.type"] == "LookupError"
    assert "no such key: missing-key" in exception["exception.message"]
    assert "Traceback" in exception["exception.stacktrace"]
    assert attrs["lookup"]["input.value"] == "missing-key"
    assert rebuild_streams(lookup["events"])["output"] == "partial "
    assert attrs["lookup"]["output.value"].startswith("partial ")
