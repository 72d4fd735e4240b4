#!/usr/bin/env bash
# Prepare everything the demo and the test suite need, from a fresh Debian machine with only
# Python 3.10+ and pip. Idempotent and fast on re-runs: system packages are installed only when
# missing, and a virtualenv is (re)installed only when what it should contain has changed
# (a fingerprint of its pip arguments and of the local pyproject.toml files they name).
#
# Environment knobs:
#   PYTHON=/path/to/python3   interpreter the virtualenvs are created from (default: newest 3.10+)
#   STEPTRACE_BOOTSTRAP_FORCE=1   reinstall every virtualenv even if its fingerprint matches
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# Phoenix is pinned: tests/phoenix_server.py patches its gRPC server start-up, an internal detail.
PHOENIX_SPEC="arize-phoenix==20.26.1"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- system packages -----------------------------------------------------------------------------

APT_UPDATED=0
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

# apt_install <package>...: install Debian packages (no recommends), updating the index once.
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install by hand: $*"
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            || die "need root (or passwordless sudo) to install: $*"
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_system_packages() {
    local missing=()
    # Headless Chromium for browser tests (Playwright drives it; never `playwright install`).
    [[ -x /usr/bin/chromium ]] || missing+=(chromium fonts-liberation)
    # Compose v1 validates docker-compose.yml without a Docker engine.
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_install "${missing[@]}"
    fi
}

# --- Python and virtualenvs ----------------------------------------------------------------------

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        printf '%s\n' "$PYTHON"
        return
    fi
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3.10 python3; do
        if command -v "$candidate" >/dev/null \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    die "no Python >= 3.10 found (set PYTHON=...)"
}

# create_venv <dir>: a fresh virtualenv with pip; on Debian, installs python3-venv if needed.
create_venv() {
    local dir="$1" python
    python="$(pick_python)"
    log "creating $dir with $python"
    if ! "$python" -m venv --clear "$dir" 2>/dev/null; then
        local version
        version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        log "'$python -m venv' failed; installing python${version}-venv"
        apt_install "python${version}-venv"
        "$python" -m venv --clear "$dir" || die "cannot create virtualenv $dir"
    fi
    # The pip bundled with older Pythons mishandles pre-release pins and extras' spelling.
    "$dir/bin/python" -m pip install -q --upgrade pip
}

# fingerprint <pip args>...: changes when the arguments, a named file (constraints), or a named
# local project's metadata change.
fingerprint() {
    {
        printf '%s\n' "$@"
        local arg path
        for arg in "$@"; do
            path="${arg%%\[*}"
            if [[ -f "$path" ]]; then
                cat "$path"
            elif [[ -f "$path/pyproject.toml" ]]; then
                cat "$path/pyproject.toml"
            fi
        done
    } | sha256sum | cut -d' ' -f1
}

# ensure_venv <dir> <pip install args>...: the one building block for every virtualenv.
ensure_venv() {
    local dir="$1"
    shift
    local stamp="$dir/.bootstrap-fingerprint" want
    want="$(fingerprint "$@")"
    if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c 'import pip' 2>/dev/null; then
        if [[ -z "${STEPTRACE_BOOTSTRAP_FORCE:-}" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
            log "$dir is up to date"
            return
        fi
    else
        create_venv "$dir"
    fi
    log "$dir: pip install $*"
    # Some machines configure missing local indexes; pip warns once per package about them.
    "$dir/bin/python" -m pip install -q "$@" \
        2> >(grep -v "^WARNING: Location 'file:.*' is ignored" >&2)
    printf '%s\n' "$want" >"$stamp"
}

# --- what this repository needs ------------------------------------------------------------------

# Exporters whose framework lives in its own virtualenv (see its block below), not in .venv.
OWN_VENV_EXPORTERS=(chainlit)

# The project venv: steptrace (editable, with dev extras), the other exporter distributions, the
# clients the browser/socket tests drive, and docker-py + PyYAML for tests/test_compose.py.
main_venv() {
    local args=(-c scripts/constraints.txt -e ".[dev]") project name
    for project in exporters/*/pyproject.toml; do
        [[ -f "$project" ]] || continue
        name="$(basename "$(dirname "$project")")"
        [[ " ${OWN_VENV_EXPORTERS[*]} " == *" $name "* ]] && continue
        args+=(-e "$(dirname "$project")")
    done
    args+=(playwright "python-socketio[asyncio-client]" "docker>=7" "pyyaml>=6")
    ensure_venv .venv "${args[@]}"
}

# Phoenix pins its own OpenTelemetry, protobuf and pydantic versions, so it lives apart.
phoenix_venv() {
    ensure_venv .venv-phoenix "$PHOENIX_SPEC"
}

# Chainlit pulls literalai -> traceloop-sdk -> dozens of opentelemetry-instrumentation-* packages;
# tests/chainlit runs `chainlit run` from here. Pins: exporters/chainlit/constraints.txt.
chainlit_venv() {
    ensure_venv .venv-chainlit -c exporters/chainlit/constraints.txt \
        -e . -e exporters/chainlit "openai>=1.40"
}

# To add another virtualenv, write a function like the two above, call it from main, and keep
# its directory name under `.venv-*` (ignored by git, ruff and .dockerignore).

main() {
    # One bootstrap at a time per checkout: concurrent pip runs into one venv corrupt it.
    local lock
    lock="${TMPDIR:-/tmp}/steptrace-bootstrap-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12).lock"
    exec 9>"$lock"
    if ! flock -n 9; then
        log "another bootstrap is running in $REPO_ROOT; waiting"
        flock 9
    fi

    ensure_system_packages
    main_venv
    phoenix_venv
    chainlit_venv
    log "done"
}

main "$@"
