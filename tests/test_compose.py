"""docker-compose.yml is valid, and the Dockerfile only copies what its build context holds.

No Docker engine runs here: Compose v1 (`docker-compose`, Debian) validates the file without
one, and docker-py (the library Compose v1 builds with) computes the build context from
`.dockerignore` exactly as a build would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from docker.utils.build import exclude_paths

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        message = "docker-compose is missing: run `bash scripts/bootstrap.sh` to install it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def compose_config(docker_compose: str, compose_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [docker_compose, "-f", str(compose_file), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        # no DOCKER_HOST or engine is needed (or wanted) to validate
        env={**os.environ, "STEPTRACE_WEB_TOKEN": "test-token"},
    )


def test_compose_file_is_valid(docker_compose):
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_validation_rejects_a_broken_file(docker_compose, tmp_path):
    """The check above can fail: an invalid port mapping is refused."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  jaeger:\n    image: x\n    ports: [{not: a-port}]\n")
    assert compose_config(docker_compose, broken).returncode != 0


def test_compose_wires_the_demo_to_jaeger(docker_compose):
    result = compose_config(docker_compose, COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]

    jaeger = services["jaeger"]
    assert re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", jaeger["image"]), jaeger["image"]
    published = {str(port).split(":")[-1].removesuffix("/tcp") for port in jaeger["ports"]}
    assert {"16686", "4317", "4318"} <= published

    demo = services["demo"]
    assert Path(demo["build"]["context"]).resolve() == REPO_ROOT
    assert "jaeger" in demo["depends_on"]
    environment = demo["environment"]
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert environment["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert environment["OTEL_SERVICE_NAME"]
    assert environment["STEPTRACE_WEB_TOKEN"] == "test-token"
    assert demo["ports"], "the demo's web chat port is published"


def dockerfile_copy_sources(text: str) -> list[str]:
    """Source paths of every COPY/ADD from the build context (not `--from=` another stage)."""
    logical_lines = re.sub(r"\\\n", " ", text).splitlines()
    sources: list[str] = []
    for line in logical_lines:
        words = line.strip().split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        rest = words[1].strip()
        flags = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if any(flag.startswith("--from") for flag in flags):
            continue
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        sources.extend(args[:-1])
    return sources


def test_copy_parser_reads_every_form():
    text = (
        "FROM x AS build\nCOPY a.txt b/ /dst/\ncopy --chown=1:1 c \\\n  /dst\n"
        'ADD ["d e", "/dst/"]\nCOPY --from=build /app /app\n# COPY commented /x\n'
    )
    assert dockerfile_copy_sources(text) == ["a.txt", "b/", "c", "d e"]


def test_dockerfile_copies_only_what_the_context_holds():
    sources = dockerfile_copy_sources(DOCKERFILE.read_text())
    assert sources, "the Dockerfile copies the project in"
    ignore_file = REPO_ROOT / ".dockerignore"
    patterns = [
        line.strip()
        for line in ignore_file.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = exclude_paths(str(REPO_ROOT), patterns)
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")

    for source in sources:
        source = source.rstrip("/")
        path = REPO_ROOT / source
        assert path.exists(), f"COPY {source}: no such path in the build context"
        assert source in context, f"COPY {source}: excluded by .dockerignore"
        if path.is_dir():
            wanted = [f for f in tracked if f.startswith(f"{source}/")]
            excluded = [f for f in wanted if f not in context]
            assert not excluded, f"COPY {source}: .dockerignore drops tracked files {excluded}"


def test_dockerignore_keeps_virtualenvs_and_history_out():
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = exclude_paths(str(REPO_ROOT), patterns)
    assert not any(p == ".git" or p.startswith((".git/", ".venv")) for p in context)
