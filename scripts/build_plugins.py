#!/usr/bin/env python3
"""Builds every plugin under plugins/ into target/plugins/.

Each plugin is a directory with a `plugin.toml` manifest. Its `[build]`
table says how to build it:

    kind = "rust"     crate = "trend"  (features = ["..."] optional)
                      cargo build --release --target wasm32-wasip2 in the
                      guest workspace plugins/ (CARGO_TARGET_DIR=target/wasm)
    kind = "python"   source = "app.py"   componentize-py (module "app")
    kind = "js"       source = "app.js"   componentize-js (npm, in .cache/npm)
    kind = "wat"      source = "x.wat"    copied: wasmtime loads WAT text

Output, per plugin: target/plugins/<name>/plugin.toml (a copy of the
manifest) and the component it names; and target/plugins/index.txt with one
line `<name>\\t<absolute path of the copied plugin.toml>` per built plugin.
Tests and configs find plugins through that index, never by hard-coded paths.

Incremental: a plugin whose inputs (its directory, its manifest, wit/, and
for Rust the guest workspace files, plugins/shared and host/core, for Python/JS the tool's
version) hash as at its last build is skipped. `--force` rebuilds anyway.

Python 3.11+, standard library only. Run `scripts/setup.sh` first for the
toolchains (wasm32-wasip2 target, componentize-py, componentize-js).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
WIT = ROOT / "wit"
OUT = ROOT / "target" / "plugins"
BUILD = ROOT / "target" / "plugins-build"
WASM_TARGET_DIR = ROOT / "target" / "wasm"
RUST_TARGET = "wasm32-wasip2"
NPM_PREFIX = ROOT / ".cache" / "npm"
COMPONENTIZE_JS = NPM_PREFIX / "node_modules" / ".bin" / "componentize-js"
# Without these, componentize-js imports wasi:http and the component fails to link.
JS_DISABLED_FEATURES = ["stdio", "random", "clocks", "http", "fetch-event"]

WORLDS = ("feature-extension", "regime-strategy", "hmarl-agent")
KINDS = ("rust", "python", "js", "wat")
SLOW_KINDS = ("python", "js")
# Directories never searched for manifests nor hashed.
SKIP_DIRS = {"node_modules", "target", "__pycache__", ".git", ".cache"}

# Bump when a build command changes, so every plugin rebuilds once.
RECIPE = "build_plugins recipe 1"

COMPONENT_HEADER = b"\x00asm\x0d\x00\x01\x00"
CORE_MODULE_HEADER = b"\x00asm\x01\x00\x00\x00"


class BuildError(Exception):
    """A failure to report against one plugin."""


@dataclass
class Plugin:
    manifest_path: Path
    name: str
    world: str
    component: str
    kind: str
    build: dict
    stamp: str = ""
    status: str = ""
    seconds: float = 0.0
    note: str = ""
    error: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.manifest_path.parent

    @property
    def out_dir(self) -> Path:
        return OUT / self.name

    @property
    def out_component(self) -> Path:
        return self.out_dir / self.component

    @property
    def rel(self) -> str:
        return str(self.manifest_path.relative_to(ROOT))


def log(message: str) -> None:
    print(message, flush=True)


def fail(message: str) -> None:
    print(f"build_plugins: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


# ---------------------------------------------------------------- discovery


def find_manifests() -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(PLUGINS):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        if "plugin.toml" in filenames:
            found.append(Path(dirpath) / "plugin.toml")
    return sorted(found)


def load_plugin(path: Path) -> Plugin:
    rel = path.relative_to(ROOT)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BuildError(f"{rel}: cannot read the manifest: {e}") from e

    def need(table: dict, key: str, where: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value:
            raise BuildError(f"{rel}: `{where}{key}` must be a non-empty string")
        return value

    name = need(doc, "name", "")
    if not all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        raise BuildError(f"{rel}: name {name!r}: use ASCII letters, digits, '-' and '_'")
    world = need(doc, "world", "")
    if world not in WORLDS:
        # Hostile fixtures may target a wrong world on purpose; the build only warns.
        log(f"  note    {name}: world {world!r} is none of {', '.join(WORLDS)}")
    component = need(doc, "component", "")
    if "/" in component or "\\" in component or component in (".", ".."):
        raise BuildError(f"{rel}: `component` must be a file name (it is placed next to the copied manifest)")
    build = doc.get("build")
    if not isinstance(build, dict):
        raise BuildError(f"{rel}: missing [build] table (kind = rust | python | js | wat)")
    kind = need(build, "kind", "build.")
    if kind not in KINDS:
        raise BuildError(f"{rel}: build.kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind == "rust":
        need(build, "crate", "build.")
        features = build.get("features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise BuildError(f"{rel}: build.features must be a list of strings")
    else:
        source = need(build, "source", "build.")
        if not (path.parent / source).is_file():
            raise BuildError(f"{rel}: build.source {source!r} does not exist")
    return Plugin(path, name, world, component, kind, build)


# ------------------------------------------------------------------ hashing


def hash_tree(h: "hashlib._Hash", base: Path, skip_outputs: bool = True) -> None:
    """Feeds every file under `base` (path and content) into `h`."""
    if base.is_file():
        h.update(str(base.relative_to(ROOT)).encode() + b"\0" + base.read_bytes() + b"\0")
        return
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not (skip_outputs and d in SKIP_DIRS))
        for f in sorted(filenames):
            if f.endswith((".pyc", ".wasm", ".cwasm")):
                continue
            p = Path(dirpath) / f
            h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")


_tool_versions: dict[str, str] = {}


def tool_version(kind: str) -> str:
    if kind not in _tool_versions:
        if kind == "rust":
            _tool_versions[kind] = run_capture(["rustc", "-V"])
        elif kind == "python":
            _tool_versions[kind] = run_capture([componentize_py(), "--version"])
        elif kind == "js":
            pkg = NPM_PREFIX / "node_modules" / "@bytecodealliance" / "componentize-js" / "package.json"
            _tool_versions[kind] = pkg.read_text() if pkg.is_file() else "missing"
        else:
            _tool_versions[kind] = ""
    return _tool_versions[kind]


def compute_stamp(p: Plugin) -> str:
    h = hashlib.sha256()
    h.update(RECIPE.encode() + b"\0" + p.kind.encode() + b"\0")
    hash_tree(h, WIT)
    hash_tree(h, p.dir)
    if p.kind == "rust":
        crate_dir = crate_dirs().get(p.build["crate"])
        if crate_dir is None:
            raise BuildError(f"no crate named {p.build['crate']!r} under plugins/ (build.crate)")
        hash_tree(h, crate_dir)
        for f in ("Cargo.toml", "Cargo.lock", ".cargo", "shared"):
            if (PLUGINS / f).exists():
                hash_tree(h, PLUGINS / f)
        # The example guests wrap the native code in host/core.
        hash_tree(h, ROOT / "host" / "core" / "src")
        hash_tree(h, ROOT / "host" / "core" / "Cargo.toml")
        hash_tree(h, ROOT / "Cargo.toml")
    h.update(tool_version(p.kind).encode())
    return h.hexdigest()


_crate_dirs: dict[str, Path] = {}


def crate_dirs() -> dict[str, Path]:
    """Package name -> directory, for every crate under plugins/."""
    if not _crate_dirs:
        for dirpath, dirnames, filenames in os.walk(PLUGINS):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
            if "Cargo.toml" in filenames and Path(dirpath) != PLUGINS:
                try:
                    doc = tomllib.loads((Path(dirpath) / "Cargo.toml").read_text())
                except (OSError, tomllib.TOMLDecodeError):
                    continue
                name = doc.get("package", {}).get("name")
                if isinstance(name, str):
                    _crate_dirs[name] = Path(dirpath)
    return _crate_dirs


def stamp_path(p: Plugin) -> Path:
    return p.out_dir / ".stamp"


def is_fresh(p: Plugin) -> bool:
    s = stamp_path(p)
    return (
        s.is_file()
        and s.read_text().strip() == p.stamp
        and p.out_component.is_file()
        and (p.out_dir / "plugin.toml").is_file()
    )


# ------------------------------------------------------------------ running


def run_capture(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        return f"unavailable ({e})"


def run(cmd: list[str], what: str, cwd: Path = ROOT, env: dict | None = None) -> None:
    """Runs `cmd`; on failure raises BuildError with the tail of its output."""
    try:
        r = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
    except OSError as e:
        raise BuildError(f"{what}: cannot run {cmd[0]}: {e}") from e
    if r.returncode != 0:
        tail = "\n".join(r.stdout.rstrip().splitlines()[-40:])
        raise BuildError(f"{what}: `{' '.join(map(str, cmd))}` exited with {r.returncode}:\n{tail}")


def componentize_py() -> str:
    # pip puts it next to the interpreter; pyenv's shims may not know it yet.
    beside = Path(sys.executable).parent / "componentize-py"
    exe = str(beside) if beside.is_file() else shutil.which("componentize-py")
    if exe is None:
        raise BuildError("componentize-py not found: run scripts/setup.sh (pip install componentize-py)")
    return exe


def check_component(p: Plugin, path: Path) -> None:
    head = path.read_bytes()[:8]
    if head == CORE_MODULE_HEADER:
        raise BuildError(f"{path} is a core module, not a component")
    if head != COMPONENT_HEADER:
        raise BuildError(f"{path} is not a WebAssembly component (header {head!r})")


def publish(p: Plugin, built: Path | None) -> None:
    """Copies the manifest and the component into target/plugins/<name>/ and stamps them."""
    p.out_dir.mkdir(parents=True, exist_ok=True)
    if built is not None:
        tmp = p.out_component.with_name(f"{p.out_component.name}.{os.getpid()}.tmp")
        shutil.copyfile(built, tmp)
        os.replace(tmp, p.out_component)
    shutil.copyfile(p.manifest_path, p.out_dir / "plugin.toml")
    stamp_path(p).write_text(p.stamp + "\n")


def ensure_rust_target() -> None:
    installed = run_capture(["rustup", "target", "list", "--installed"])
    if RUST_TARGET not in installed.split():
        log(f"  rustup target add {RUST_TARGET}")
        run(["rustup", "target", "add", RUST_TARGET], f"installing the {RUST_TARGET} target")


def check_workspace_members() -> None:
    """Cargo refuses a workspace whose member glob matches a directory without a
    crate; say which directory and what to do, instead of cargo's message."""
    doc = tomllib.loads((PLUGINS / "Cargo.toml").read_text())
    ws = doc.get("workspace", {})
    excluded = {(PLUGINS / e).resolve() for e in ws.get("exclude", [])}
    for pattern in ws.get("members", []):
        for d in sorted(PLUGINS.glob(pattern)):
            if d.is_dir() and d.resolve() not in excluded and not (d / "Cargo.toml").is_file():
                raise BuildError(
                    f"plugins/{d.relative_to(PLUGINS)} matches the guest workspace's members {pattern!r} "
                    "but has no Cargo.toml: move it (WAT fixtures go under plugins/fixtures/wat/) "
                    "or add it to `exclude` in plugins/Cargo.toml"
                )


def build_rust(group: list[Plugin], features: tuple[str, ...]) -> None:
    """One cargo invocation for plugins sharing a feature set (usually all
    plugins without features at once)."""
    crates = sorted({p.build["crate"] for p in group})
    cmd = ["cargo", "build", "--release", "--target", RUST_TARGET]
    for c in crates:
        cmd += ["-p", c]
    if features:
        cmd += ["--features", ",".join(f"{crates[0]}/{f}" for f in features)]
    env = dict(os.environ, CARGO_TARGET_DIR=str(WASM_TARGET_DIR))
    names = ", ".join(p.name for p in group)
    run(cmd, f"cargo build of {names}", cwd=PLUGINS, env=env)
    out = WASM_TARGET_DIR / RUST_TARGET / "release"
    for p in group:
        built = out / (p.build["crate"].replace("-", "_") + ".wasm")
        if not built.is_file():
            raise BuildError(f"cargo did not produce {built}: is crate {p.build['crate']!r} a cdylib?")
        check_component(p, built)
        publish(p, built)


def build_python(p: Plugin) -> None:
    source = p.dir / p.build["source"]
    if source.suffix != ".py":
        raise BuildError(f"build.source {source.name!r} must be a .py file (its stem is the module name)")
    work = BUILD / p.name
    work.mkdir(parents=True, exist_ok=True)
    out = work / p.component
    cmd = [componentize_py(), "-d", str(WIT), "-w", p.world, "componentize", source.stem, "-p", str(p.dir), "-o", str(out)]
    # No Rust backtrace: the Python error is what the author needs to see.
    run(cmd, f"componentize-py of {p.name}", cwd=work, env=dict(os.environ, RUST_BACKTRACE="0"))
    check_component(p, out)
    publish(p, out)


def build_js(p: Plugin) -> None:
    if not COMPONENTIZE_JS.exists():
        raise BuildError(f"{COMPONENTIZE_JS.relative_to(ROOT)} not found: run scripts/setup.sh")
    work = BUILD / p.name
    work.mkdir(parents=True, exist_ok=True)
    # componentize-js reports a syntax error without its location; node does.
    check = work / "syntax-check.mjs"
    shutil.copyfile(p.dir / p.build["source"], check)
    run(["node", "--check", str(check)], f"syntax check of {p.build['source']} ({p.name})")
    out = work / p.component
    cmd = [str(COMPONENTIZE_JS), "--wit", str(WIT), "--world-name", p.world, "-d", *JS_DISABLED_FEATURES]
    cmd += ["-o", str(out), str(p.dir / p.build["source"])]
    run(cmd, f"componentize-js of {p.name}", cwd=work, env=dict(os.environ, RUST_BACKTRACE="0"))
    check_component(p, out)
    publish(p, out)


def build_wat(p: Plugin) -> None:
    publish(p, p.dir / p.build["source"])


# ------------------------------------------------------------------ testing


def run_tests(plugins: list[Plugin]) -> list[str]:
    """Unit tests of the example plugins' logic on the build machine: cargo
    test of the Rust crates (native target), unittest of the Python apps with
    their bindings, node --test of the JS apps. Fixtures are not tested here."""
    failures = []
    examples = [p for p in plugins if PLUGINS / "fixtures" not in p.dir.parents]
    crates = sorted({p.build["crate"] for p in examples if p.kind == "rust"})
    if crates:
        t = time.monotonic()
        cmd = ["cargo", "test", "--release"] + [a for c in crates for a in ("-p", c)]
        try:
            run(cmd, "cargo test of the Rust plugins", cwd=PLUGINS, env=dict(os.environ, CARGO_TARGET_DIR=str(WASM_TARGET_DIR)))
            log(f"  tested  rust: {', '.join(crates)} ({time.monotonic() - t:.1f}s)")
        except BuildError as e:
            failures.append(str(e))
    for p in examples:
        tests = sorted(p.dir.glob("test_*.py")) if p.kind == "python" else sorted(p.dir.glob("*.test.mjs"))
        if p.kind not in ("python", "js") or not tests:
            continue
        t = time.monotonic()
        try:
            if p.kind == "python":
                bindings = BUILD / p.name / "bindings"
                shutil.rmtree(bindings, ignore_errors=True)
                run([componentize_py(), "-d", str(WIT), "-w", p.world, "bindings", str(bindings)], f"bindings of {p.name}")
                env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(bindings), str(p.dir)]), PYTHONDONTWRITEBYTECODE="1")
                run([sys.executable, "-m", "unittest", *[t.stem for t in tests]], f"tests of {p.name}", cwd=p.dir, env=env)
            else:
                run(["node", "--test", *map(str, tests)], f"tests of {p.name}", cwd=p.dir)
            log(f"  tested  {p.name} ({time.monotonic() - t:.1f}s)")
        except BuildError as e:
            failures.append(f"plugin {p.name!r} ({p.rel}): {e}")
    return failures


# --------------------------------------------------------------------- main


def write_index(plugins: list[Plugin]) -> None:
    lines = []
    for p in sorted(plugins, key=lambda p: p.name):
        manifest = p.out_dir / "plugin.toml"
        if manifest.is_file() and p.out_component.is_file():
            lines.append(f"{p.name}\t{manifest.resolve()}\n")
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = OUT / f"index.txt.{os.getpid()}.tmp"
    tmp.write_text("".join(lines))
    os.replace(tmp, OUT / "index.txt")


def human_size(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", metavar="NAME", help="build only this plugin (repeatable)")
    ap.add_argument("--skip-slow", action="store_true", help="skip Python and JS plugins (~20 s each)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel Python/JS/WAT builds")
    ap.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    ap.add_argument("--test", action="store_true", help="also run the example plugins' unit tests")
    ap.add_argument("--list", action="store_true", help="list the plugins found and exit")
    args = ap.parse_args()

    plugins: list[Plugin] = []
    errors: list[str] = []
    for path in find_manifests():
        try:
            plugins.append(load_plugin(path))
        except BuildError as e:
            errors.append(str(e))
    if errors:
        fail("bad manifest(s):\n  " + "\n  ".join(errors))
    seen: dict[str, Plugin] = {}
    for p in plugins:
        if p.name in seen:
            fail(f"plugin name {p.name!r} is used by both {seen[p.name].rel} and {p.rel}")
        seen[p.name] = p
    if args.list:
        for p in plugins:
            log(f"{p.name}\t{p.kind}\t{p.world}\t{p.rel}")
        return 0
    selected = plugins
    if args.only:
        unknown = sorted(set(args.only) - seen.keys())
        if unknown:
            fail(f"no plugin named {', '.join(unknown)}; found: {', '.join(sorted(seen))}")
        selected = [p for p in plugins if p.name in args.only]
    skipped = [p for p in selected if args.skip_slow and p.kind in SLOW_KINDS]
    selected = [p for p in selected if p not in skipped]

    started = time.monotonic()
    todo: list[Plugin] = []
    for p in selected:
        try:
            p.stamp = compute_stamp(p)
        except (OSError, BuildError) as e:
            p.status, p.error = "FAILED", str(e)
            continue
        if not args.force and is_fresh(p):
            p.status = "fresh"
        else:
            todo.append(p)

    # Rust: one cargo invocation per feature set; cargo parallelises inside.
    rust = [p for p in todo if p.kind == "rust"]
    if rust:
        try:
            ensure_rust_target()
            check_workspace_members()
        except BuildError as e:
            for p in rust:
                p.status, p.error = "FAILED", str(e)
            rust = []
    groups: dict[tuple[str, ...], list[Plugin]] = {}
    for p in rust:
        feats = tuple(sorted(p.build.get("features", [])))
        key = (p.build["crate"],) + feats if feats else ()
        groups.setdefault(key, []).append(p)
    for key, group in groups.items():
        t = time.monotonic()
        try:
            build_rust(group, tuple(key[1:]))
            status, err = "built", ""
        except BuildError as e:
            status, err = "FAILED", str(e)
        for p in group:
            p.status, p.error, p.seconds = status, err, time.monotonic() - t
            if len(group) > 1:
                p.note = f"one cargo build for {len(group)}"

    # The rest in parallel: componentize-py/-js are single-threaded and slow.
    builders = {"python": build_python, "js": build_js, "wat": build_wat}
    others = [p for p in todo if p.kind != "rust"]

    def build_one(p: Plugin) -> None:
        t = time.monotonic()
        try:
            builders[p.kind](p)
            p.status = "built"
        except (BuildError, OSError) as e:
            p.status, p.error = "FAILED", str(e)
        p.seconds = time.monotonic() - t

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(build_one, others))

    for p in selected:
        size = human_size(p.out_component.stat().st_size) if p.out_component.is_file() else "-"
        note = f"  ({p.note})" if p.note else ""
        log(f"  {p.status:<7} {p.name:<24} {p.kind:<6} {p.seconds:6.1f}s  {size:>9}{note}")
    for p in skipped:
        log(f"  {'skipped':<7} {p.name:<24} {p.kind:<6} (--skip-slow)")
    write_index(plugins)

    failed = [p for p in selected if p.status == "FAILED"]
    test_failures = run_tests(selected) if args.test and not failed else []
    built = sum(p.status == "built" for p in selected)
    fresh = sum(p.status == "fresh" for p in selected)
    log(
        f"build_plugins: {built} built, {fresh} unchanged, {len(failed)} failed, {len(skipped)} skipped "
        f"in {time.monotonic() - started:.1f}s; index: {(OUT / 'index.txt').relative_to(ROOT)}"
    )
    for p in failed:
        print(f"\nbuild_plugins: plugin {p.name!r} ({p.rel}) failed:\n{p.error}", file=sys.stderr)
    for f in test_failures:
        print(f"\nbuild_plugins: {f}", file=sys.stderr)
    return 1 if failed or test_failures else 0


if __name__ == "__main__":
    sys.exit(main())
