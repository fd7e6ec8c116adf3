//! A plugin rebuilt or copied over on disk is redeployed into the running
//! slot once the write has settled; a broken file is refused and the running
//! plugin stays.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::channel;
use std::time::Duration;

use common::*;
use tickhost_core::hooks::FeatureExtensions;
use tickhost_plugin::{FeatureSlot, FeatureSlots, PluginManager, PluginWatcher, SlotPolicy};

const SLOT: &str = "feature.good-counter-features";

#[test]
fn a_component_copied_over_in_pieces_is_deployed_once_settled_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin_dir = dir.path().join("good-counter-features");
    std::fs::create_dir(&plugin_dir).expect("mkdir");
    let built = manifest("good-counter-features");
    let built_dir = built.parent().expect("dir");
    std::fs::copy(&built, plugin_dir.join("plugin.toml")).expect("copy manifest");
    let component = plugin_dir.join("good-counter-features.wasm");
    std::fs::copy(built_dir.join("good-counter-features.wasm"), &component).expect("copy component");
    let v2 = std::fs::read(
        manifest("good-counter-features-v2").parent().expect("dir").join("good-counter-features-v2.wasm"),
    )
    .expect("v2 component");

    let plugin = runtime().load(&plugin_dir.join("plugin.toml")).expect("load");
    let policy = SlotPolicy { deadline_factor: 20.0, ..SlotPolicy::default() };
    let mut slots = FeatureSlots::new(vec![FeatureSlot::plugin(plugin)], policy).expect("slots");
    let manager = PluginManager::new(runtime().clone()).expect("manager");
    manager.register(slots.controls());
    let stop = Arc::new(AtomicBool::new(false));
    let engine = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let frame = v3_frame();
            let mut i = 0;
            while !stop.load(Relaxed) {
                i += 1;
                slots.on_trade(&trade(i), &frame);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };

    let (tx, rx) = channel();
    let _watcher = PluginWatcher::start(manager.clone(), dir.path(), Duration::from_millis(300), move |slot, _, r| {
        let _ = tx.send((slot.to_string(), r));
    })
    .expect("watcher");

    // A copy in progress: half the file, a pause, then the rest.
    std::fs::write(&component, &v2[..v2.len() / 2]).expect("write half");
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&component, &v2).expect("write all");
    let (slot, outcome) = rx.recv_timeout(Duration::from_secs(30)).expect("a redeploy");
    assert_eq!(slot, SLOT);
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(manager.status(SLOT).expect("status").active_version, "0.2.0");
    assert!(rx.recv_timeout(Duration::from_millis(800)).is_err(), "the settled copy is deployed once");

    std::fs::write(&component, b"\0asm not a component").expect("write garbage");
    let (_, outcome) = rx.recv_timeout(Duration::from_secs(30)).expect("an attempt");
    assert!(outcome.is_err_and(|e| e.contains("not a valid WebAssembly component")));
    assert_eq!(manager.status(SLOT).expect("status").active_version, "0.2.0", "the running plugin stays");

    stop.store(true, Relaxed);
    engine.join().expect("engine thread");
}
