#!/usr/bin/env bash
# Run the demo: bootstrap, then `steptrace demo` (extra arguments are passed on).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

bash scripts/bootstrap.sh
exec .venv/bin/steptrace demo "$@"
