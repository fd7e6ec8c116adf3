//! The compiled-component cache: misses write one entry, restarts hit it,
//! corrupt entries are rebuilt, and different bytes or engines never share
//! an entry. Each test has its own cache directory and runtimes.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use tickhost_plugin::cache::CacheStats;
use tickhost_plugin::{LoadedPlugin, PluginError, PluginRuntime};

fn cached(dir: &Path) -> PluginRuntime {
    PluginRuntime::with_cache(dir).expect("runtime with cache")
}

fn load_from(rt: &PluginRuntime, manifest_path: &Path) -> LoadedPlugin {
    rt.load(manifest_path).unwrap_or_else(|e| panic!("load {}: {e}", manifest_path.display()))
}

fn timed_load(rt: &PluginRuntime, manifest_path: &Path) -> (LoadedPlugin, Duration) {
    let t = Instant::now();
    let p = load_from(rt, manifest_path);
    (p, t.elapsed())
}

/// The `.cwasm` entries in `dir`, sorted; fails on stray temporary files.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("read cache dir").map(|e| e.expect("dir entry").path()).collect();
    all.sort();
    assert!(all.iter().all(|p| p.extension().is_some_and(|e| e == "cwasm")), "only entries, no temp files: {all:?}");
    all
}

fn stats(hits: u64, misses: u64, corrupt_rebuilt: u64) -> CacheStats {
    CacheStats { hits, misses, corrupt_rebuilt, write_failures: 0 }
}

/// Loads good-counter into a fresh cache and returns its only entry.
fn warm(dir: &Path) -> PathBuf {
    let rt = cached(dir);
    load_from(&rt, &manifest("good-counter"));
    assert_eq!(rt.cache_stats(), stats(0, 1, 0));
    let e = entries(dir);
    assert_eq!(e.len(), 1, "{e:?}");
    e.into_iter().next().expect("one entry")
}

/// A damaged entry is detected, counted, rebuilt, and valid afterwards.
fn damaged_entry_is_rebuilt(damage: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = warm(dir.path());
    let good = std::fs::read(&entry).expect("read entry");
    damage(&entry);
    assert_ne!(std::fs::read(&entry).expect("read damaged"), good);

    let rt = cached(dir.path());
    let p = load_from(&rt, &manifest("good-counter"));
    assert_eq!(rt.cache_stats(), stats(0, 0, 1));
    assert_eq!(p.instantiate().expect("instantiate").describe().expect("describe").name, "good-counter");
    assert_eq!(entries(dir.path()), vec![entry.clone()]);
    // Rebuilt from the same bytes and engine, and a later start trusts it.
    assert_eq!(std::fs::read(&entry).expect("read rebuilt").len(), good.len());
    let third = cached(dir.path());
    load_from(&third, &manifest("good-counter"));
    assert_eq!(third.cache_stats(), stats(1, 0, 0));
}

#[test]
fn first_load_misses_and_writes_one_entry_then_a_restart_hits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = cached(dir.path());
    assert_eq!(first.cache_stats(), CacheStats::default());
    let p1 = load_from(&first, &manifest("good-counter"));
    assert_eq!(first.cache_stats(), stats(0, 1, 0));
    let entry = entries(dir.path());
    assert_eq!(entry.len(), 1, "{entry:?}");
    let bytes = std::fs::read(&entry[0]).expect("read entry");
    assert_eq!(&bytes[..8], b"THCACHE1");

    let second = cached(dir.path());
    let p2 = load_from(&second, &manifest("good-counter"));
    assert_eq!(second.cache_stats(), stats(1, 0, 0));
    assert_eq!(entries(dir.path()), entry, "a hit writes nothing");
    assert_eq!(p2.description(), p1.description());
    let d1 = p1.instantiate().expect("instantiate from source").describe().expect("describe");
    let d2 = p2.instantiate().expect("instantiate from cache").describe().expect("describe");
    assert_eq!(d2, d1);

    // Clones share the counters; the same runtime hits its own entry too.
    let clone = second.clone();
    load_from(&clone, &manifest("good-counter"));
    assert_eq!(second.cache_stats(), stats(2, 0, 0));
}

#[test]
fn a_flipped_byte_in_the_payload_is_detected_and_rebuilt() {
    damaged_entry_is_rebuilt(|entry| {
        let mut bytes = std::fs::read(entry).expect("read entry");
        let mid = 40 + (bytes.len() - 40) / 2;
        bytes[mid] ^= 0xFF;
        std::fs::write(entry, bytes).expect("write entry");
    });
}

#[test]
fn a_truncated_entry_is_detected_and_rebuilt() {
    damaged_entry_is_rebuilt(|entry| {
        let f = std::fs::OpenOptions::new().write(true).open(entry).expect("open entry");
        let len = f.metadata().expect("metadata").len();
        f.set_len(len / 2).expect("truncate");
    });
}

#[test]
fn an_entry_shorter_than_its_header_is_detected_and_rebuilt() {
    damaged_entry_is_rebuilt(|entry| std::fs::write(entry, b"THCACHE1").expect("write entry"));
}

#[test]
fn different_components_get_different_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = cached(dir.path());
    load_from(&rt, &manifest("good-counter"));
    load_from(&rt, &manifest("trend"));
    assert_eq!(rt.cache_stats(), stats(0, 2, 0));
    assert_eq!(entries(dir.path()).len(), 2);

    let again = cached(dir.path());
    let t = load_from(&again, &manifest("trend"));
    let g = load_from(&again, &manifest("good-counter"));
    assert_eq!(again.cache_stats(), stats(2, 0, 0));
    assert_eq!(t.description().name, "trend");
    assert_eq!(g.description().name, "good-counter");
}

/// No fixture sets `fuel`, so this writes a manifest for good-counter's
/// component with fuel metering on: same bytes, other engine.
#[test]
fn fuel_and_plain_engines_do_not_share_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin_dir = tempfile::tempdir().expect("tempdir");
    let plain = manifest("good-counter");
    let component = plain.parent().expect("manifest dir").join("good-counter.wasm");
    let fueled = plugin_dir.path().join("plugin.toml");
    std::fs::write(
        &fueled,
        format!(
            "name = \"good-counter\"\nversion = \"0.1.0\"\nworld = \"regime-strategy\"\ncomponent = '{}'\n\
             [capabilities]\nlog = true\n[limits]\ndeadline_us = 50000\nmemory_mib = 32\nfuel = 100000000\n",
            component.display()
        ),
    )
    .expect("write manifest");

    let rt = cached(dir.path());
    load_from(&rt, &plain);
    let f = load_from(&rt, &fueled);
    assert_eq!(f.manifest().limits.fuel, 100_000_000);
    assert_eq!(rt.cache_stats(), stats(0, 2, 0), "the fuel engine does not take the plain entry");
    assert_eq!(entries(dir.path()).len(), 2);

    let again = cached(dir.path());
    let f = load_from(&again, &fueled);
    load_from(&again, &plain);
    assert_eq!(again.cache_stats(), stats(2, 0, 0));
    assert_eq!(f.instantiate().expect("instantiate").describe().expect("describe").name, "good-counter");
}

#[test]
fn a_failed_cache_write_is_counted_and_the_load_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = warm(dir.path());
    // A directory where the entry belongs: unreadable as a file, and the
    // rename of a new entry over it fails.
    std::fs::remove_file(&entry).expect("remove entry");
    std::fs::create_dir(&entry).expect("dir in the way");

    let rt = cached(dir.path());
    let p = load_from(&rt, &manifest("good-counter"));
    assert_eq!(rt.cache_stats(), CacheStats { hits: 0, misses: 1, corrupt_rebuilt: 0, write_failures: 1 });
    assert_eq!(p.description().name, "good-counter");
    assert!(entry.is_dir());
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
    assert_eq!(left.len(), 1, "no temporary file left behind: {left:?}");
}

#[test]
fn a_cache_dir_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let e = PluginRuntime::with_cache(&file).expect_err("a file is no cache dir");
    assert!(matches!(e, PluginError::Cache { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("not-a-dir") && msg.contains("cache_dir"), "{msg}");
}

/// The point of the cache: a Python guest (18 MB) compiles in seconds but
/// loads from the cache in milliseconds. Prints the times (run with
/// `--nocapture`); asserts only what happened, not how fast.
#[test]
fn a_python_plugin_loads_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manifest("mean_reversion");
    let cold_rt = cached(dir.path());
    let (cold, cold_t) = timed_load(&cold_rt, &m);
    assert_eq!(cold_rt.cache_stats(), stats(0, 1, 0));
    let entry = entries(dir.path());
    assert_eq!(entry.len(), 1);
    let size = std::fs::metadata(&entry[0]).expect("metadata").len();

    let warm_rt = cached(dir.path());
    let (warm, warm_t) = timed_load(&warm_rt, &m);
    assert_eq!(warm_rt.cache_stats(), stats(1, 0, 0));
    assert_eq!(warm.description(), cold.description());
    // What a load spends besides compiling or the cache: instantiating the
    // guest once and calling describe().
    let t = Instant::now();
    let warm_described = warm.instantiate().expect("instantiate").describe().expect("describe");
    let instantiate_t = t.elapsed();
    assert_eq!(warm_described, cold.instantiate().expect("instantiate").describe().expect("describe"));
    eprintln!(
        "mean_reversion load: cold (miss, compile + write) {:.1} ms, warm (hit) {:.1} ms \
         (instantiate + describe alone: {:.1} ms); entry {:.1} MiB",
        cold_t.as_secs_f64() * 1e3,
        warm_t.as_secs_f64() * 1e3,
        instantiate_t.as_secs_f64() * 1e3,
        size as f64 / (1024.0 * 1024.0)
    );
}
