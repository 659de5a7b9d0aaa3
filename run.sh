#!/usr/bin/env bash
# Runs a command inside the project's virtual environment, creating it first.
#
#   ./run.sh python -m train.main --config=configs/sent140.py   # the main job
#   ./run.sh pytest                                             # the test suite
#
# Set-up is idempotent: the venv (.venv/, or $MAMBA_JAX_VENV) is created once and
# the package (with its test and study extras) is re-installed only when
# setup.cfg changes. Safe to run twice, safe to interrupt.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${MAMBA_JAX_VENV:-.venv}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3 python3.12 python3.11 python3.10; do
    if "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "run.sh: no Python >= 3.10 found; install one (e.g. apt-get install python3 python3-venv)" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "run.sh: creating virtual environment $VENV with $PY" >&2
  if ! "$PY" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "run.sh: '$PY -m venv' failed. On Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  fi
fi

stamp="$VENV/.mamba_jax_installed"
want="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "run.sh: installing mamba-jax and its dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[test,study]"
  echo "$want" > "$stamp"
fi

# shellcheck disable=SC1091
source "$VENV/bin/activate"
export PYTHONUNBUFFERED=1
# Raw Sentiment140 files: an explicit SENT140_DATA_DIR wins; otherwise use the
# project's shared copy beside the checkout when there is one.
if [ -z "${SENT140_DATA_DIR:-}" ] && [ -d ../shared/data/sentiment140 ]; then
  SENT140_DATA_DIR="$(cd ../shared/data/sentiment140 && pwd)"
  export SENT140_DATA_DIR
fi
exec "$@"
