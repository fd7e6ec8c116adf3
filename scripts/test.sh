#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, format and lint checks, the
# plugins (built by script, with their own unit tests), then every test
# optimised (wasmtime is unusable unoptimised, so the suite is always built
# with --release).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
python3 scripts/build_plugins.py --test
cargo clippy --workspace --all-targets --release --locked -- -D warnings
cargo test --workspace --release --locked
