#!/usr/bin/env bash
# Installs the peers that `llama_bench --peer jax` runs beside Candle into a local virtual
# environment, `.venv-peers/` (git-ignored), with pinned versions. Needs python3 >= 3.11 with pip
# and access to PyPI; nothing is installed system-wide. Not part of `cargo test` or CI.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-peers
.venv-peers/bin/pip install --quiet --disable-pip-version-check \
    jax==0.10.0 jaxlib==0.10.0 numpy==2.3.5
.venv-peers/bin/python -c 'import jax, numpy; print("peers ready: jax", jax.__version__, "numpy", numpy.__version__)'
