#!/usr/bin/env bash
# Installs what the test suite needs, idempotently: running it twice does
# nothing the second time. Later parts (Valkey, guest toolchains, ONNX
# Runtime) add their steps here.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "setup: python3 not found" >&2; exit 1; }

# rustfmt and clippy come with the default rustup profile; add them if missing.
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
echo "setup: ok"
