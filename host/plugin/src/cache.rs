//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift costs 30-50 ms for a Rust guest and
//! seconds for a Python guest (an 18 MB interpreter). The cache keeps the
//! native code that `Component::serialize` produces, so a restart or a
//! re-deploy of the same bytes loads in milliseconds.
//!
//! # Trust
//!
//! An entry is native machine code that the host maps executable and runs.
//! Whoever can write the cache directory can therefore run arbitrary code in
//! this process: give the directory the same protection as the tickhost
//! binary itself (owned by the service user, not writable by others, not a
//! shared or world-writable location such as `/tmp`). The checksum in each
//! entry catches accidents (a torn write, a truncated file, a bit flip), not
//! an attacker, who can simply write a matching checksum.
//!
//! # Key
//!
//! An entry is named `<sha256>.cwasm`, the hash covering everything that
//! decides whether compiled code is valid for this process: the component's
//! bytes, the wasmtime version, whether the engine meters fuel, the host
//! architecture and OS, and wasmtime's own compatibility hash of the engine
//! (compiler target and flags, detected CPU features, tunables, wasm
//! features). A change to any of them is a different key, hence a miss, never
//! a stale hit; old entries are simply left behind.
//!
//! # File format
//!
//! `THCACHE1` (8 bytes), the SHA-256 of the payload (32 bytes), the payload
//! (`Component::serialize`). Entries are written to a temporary file and
//! renamed into place, so a reader sees either no entry or a whole one.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::PluginError;

/// The wasmtime version compiled code is tied to. wasmtime exposes no
/// reliable version at runtime, so this MUST move together with the
/// `wasmtime = "=…"` pin in the root Cargo.toml (a stale value is caught by
/// wasmtime's own checks at deserialisation and rebuilt, but costs a
/// rebuild on every load until it is fixed).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// First bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"THCACHE1";
const HEADER_LEN: usize = MAGIC.len() + 32;
/// Extension of an entry.
pub const ENTRY_EXTENSION: &str = "cwasm";

/// What the cache did since the runtime was created. Each load through a
/// cache counts exactly one of `hits`, `misses` and `corrupt_rebuilt`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Loaded from a valid entry, without compiling.
    pub hits: u64,
    /// No entry (or an unreadable one): compiled from source.
    pub misses: u64,
    /// An entry failed its magic, checksum or deserialisation: it was
    /// deleted, the component compiled from source and the entry rewritten.
    pub corrupt_rebuilt: u64,
    /// Entries that could not be written (the load itself succeeded).
    pub write_failures: u64,
}

/// A directory of compiled components, shared by the clones of a runtime.
#[derive(Debug)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt_rebuilt: AtomicU64,
    write_failures: AtomicU64,
    /// Distinguishes the temporary files of concurrent writers in this
    /// process (the pid alone only separates processes).
    tmp_seq: AtomicU64,
}

/// What is in the cache for a key.
enum Lookup {
    Hit(Component),
    Miss,
    Corrupt(String),
}

impl ComponentCache {
    /// Creates `dir` if needed. Failing here, at start-up, is a configuration
    /// error; failing later, at a write, is only a warning.
    pub(crate) fn open(dir: PathBuf) -> Result<ComponentCache, PluginError> {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return Err(PluginError::Cache { path: dir, message: format!("cannot create the cache directory: {e}") });
        }
        if !dir.is_dir() {
            return Err(PluginError::Cache { path: dir, message: "exists but is not a directory".into() });
        }
        Ok(ComponentCache {
            dir,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            corrupt_rebuilt: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            tmp_seq: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            corrupt_rebuilt: self.corrupt_rebuilt.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
        }
    }

    /// The entry for `bytes` compiled by `engine`.
    pub(crate) fn entry_path(&self, engine: &Engine, fuel: bool, bytes: &[u8]) -> PathBuf {
        let key = key(engine, fuel, bytes);
        let mut name = String::with_capacity(key.len() * 2 + 1 + ENTRY_EXTENSION.len());
        for b in key {
            let _ = write!(name, "{b:02x}");
        }
        name.push('.');
        name.push_str(ENTRY_EXTENSION);
        self.dir.join(name)
    }

    /// The component for `bytes`: from its entry if there is a valid one,
    /// otherwise from `compile`, then written to the cache. Only `compile`'s
    /// errors are errors; cache trouble is logged and counted.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        fuel: bool,
        bytes: &[u8],
        compile: impl FnOnce() -> Result<Component, PluginError>,
    ) -> Result<Component, PluginError> {
        let path = self.entry_path(engine, fuel, bytes);
        match lookup(engine, &path) {
            Lookup::Hit(component) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(path = %path.display(), "plugin cache hit");
                return Ok(component);
            }
            Lookup::Miss => {
                self.misses.fetch_add(1, Ordering::Relaxed);
            }
            Lookup::Corrupt(why) => {
                self.corrupt_rebuilt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    path = %path.display(),
                    "plugin cache entry {} is corrupt ({why}); deleting it and compiling from source",
                    path.display()
                );
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(
                        path = %path.display(),
                        "cannot delete corrupt plugin cache entry {}: {e}; it will be overwritten",
                        path.display()
                    );
                }
            }
        }
        let component = compile()?;
        if let Err(message) = self.store(&path, &component) {
            self.write_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                path = %path.display(),
                "cannot write plugin cache entry {}: {message}; the plugin loaded, but the next start will compile it again (check that the cache directory is writable and the disk not full)",
                path.display()
            );
        }
        Ok(component)
    }

    /// Writes an entry atomically: a temporary file in the same directory,
    /// then a rename over the final name, so a crash or a concurrent reader
    /// never sees a half-written entry under that name. No fsync: after a
    /// power loss the rename may survive without the data, but the checksum
    /// turns that into a rebuild, and a cache is not worth an fsync per load.
    fn store(&self, path: &Path, component: &Component) -> Result<(), String> {
        let payload = component.serialize().map_err(|e| format!("cannot serialise the component: {e:#}"))?;
        let checksum = Sha256::digest(&payload);
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp.{}.{}", std::process::id(), self.tmp_seq.fetch_add(1, Ordering::Relaxed)));
        let tmp = PathBuf::from(tmp_name);
        let written = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&checksum)?;
            f.write_all(&payload)?;
            f.flush()?;
            drop(f);
            std::fs::rename(&tmp, path)
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{e} (writing {})", tmp.display())
        })
    }
}

/// Reads and checks an entry. A missing or unreadable file is a miss; a file
/// that is there but wrong is corrupt.
fn lookup(engine: &Engine, path: &Path) -> Lookup {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                "cannot read plugin cache entry {}: {e}; compiling from source",
                path.display()
            );
            return Lookup::Miss;
        }
    };
    let Some((header, payload)) = data.split_at_checked(HEADER_LEN) else {
        return Lookup::Corrupt(format!("{} bytes, shorter than the {HEADER_LEN}-byte header", data.len()));
    };
    let (magic, checksum) = header.split_at(MAGIC.len());
    if magic != MAGIC {
        return Lookup::Corrupt("wrong magic: not a tickhost cache entry of this format".into());
    }
    if Sha256::digest(payload).as_slice() != checksum {
        return Lookup::Corrupt("checksum mismatch: truncated or modified".into());
    }
    match deserialize(engine, payload) {
        Ok(component) => Lookup::Hit(component),
        Err(e) => Lookup::Corrupt(format!("wasmtime refused it: {e:#}")),
    }
}

/// Turns a checked payload back into a component.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` trusts its input to be native code
    // that wasmtime itself produced for a compatible engine; given anything
    // else, behaviour is undefined. That holds here because:
    // - the entry's name is a hash of the wasmtime version, the engine's
    //   compatibility hash (target, flags, CPU features, tunables, features)
    //   and fuel metering, so only an entry written by `Component::serialize`
    //   of this same wasmtime version and engine configuration is looked up
    //   under it (wasmtime also re-checks version and config itself);
    // - the caller verified the SHA-256 stored with the payload, so the bytes
    //   are byte-for-byte what `store` wrote, not a torn or flipped file;
    // - the cache directory is documented (module docs, `cache_dir`) as
    //   trusted like the binary itself: whoever can write it can run code in
    //   this process anyway, so a forged entry is outside the threat model.
    unsafe { Component::deserialize(engine, payload) }
}

/// SHA-256 of everything that decides whether compiled code is reusable.
/// Every variable-length field is length-prefixed so fields cannot run into
/// each other.
fn key(engine: &Engine, fuel: bool, bytes: &[u8]) -> [u8; 32] {
    fn field(h: &mut Sha256, data: &[u8]) {
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    let mut h = Sha256::new();
    field(&mut h, MAGIC);
    field(&mut h, WASMTIME_VERSION.as_bytes());
    field(&mut h, &[u8::from(fuel)]);
    field(&mut h, std::env::consts::ARCH.as_bytes());
    field(&mut h, std::env::consts::OS.as_bytes());
    let mut engine_hash = ShaHasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut engine_hash);
    field(&mut h, &engine_hash.0.finalize());
    field(&mut h, bytes);
    h.finalize().into()
}

/// Feeds a [`std::hash::Hash`] value (wasmtime's engine compatibility hash)
/// into SHA-256, so that it is stable across processes, unlike `DefaultHasher`
/// whose algorithm is unspecified.
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&d[..8]);
        u64::from_le_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_fuel_and_bytes() {
        let e = Engine::default();
        let a = key(&e, false, b"abc");
        assert_eq!(a, key(&e, false, b"abc"), "deterministic");
        assert_ne!(a, key(&e, true, b"abc"));
        assert_ne!(a, key(&e, false, b"abd"));
    }

    #[test]
    fn short_and_foreign_files_are_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Engine::default();
        let p = dir.path().join("x.cwasm");
        assert!(matches!(lookup(&e, &p), Lookup::Miss));
        std::fs::write(&p, b"THCACHE1").expect("write");
        assert!(matches!(lookup(&e, &p), Lookup::Corrupt(_)));
        let mut data = b"NOTCACHE".to_vec();
        data.extend_from_slice(&Sha256::digest(b"x"));
        data.push(b'x');
        std::fs::write(&p, &data).expect("write");
        assert!(matches!(lookup(&e, &p), Lookup::Corrupt(ref why) if why.contains("magic")));
        data[..8].copy_from_slice(MAGIC);
        data.push(b'y');
        std::fs::write(&p, &data).expect("write");
        assert!(matches!(lookup(&e, &p), Lookup::Corrupt(ref why) if why.contains("checksum")));
    }
}
