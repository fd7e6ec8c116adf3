//! tickhost's patch of zmq-sys 0.12.0: the one change is that libzmq is
//! built with libsodium, and so with CURVE, whenever a static libsodium and
//! its headers are found (Debian: `apt-get install libsodium-dev`, which
//! scripts/setup.sh does). Upstream always passes `with_libsodium(None)`,
//! which leaves the vendored libzmq without CURVE (`zmq::has("curve")` is
//! false). Without libsodium the build is the upstream one.
//!
//! Where to look: SODIUM_INCLUDE_DIR and SODIUM_LIB_DIR if set, else the
//! usual system directories. After installing libsodium on a machine that
//! already built tickhost, `cargo clean -p zmq-sys` rebuilds libzmq with it.

use std::env;
use std::path::PathBuf;

fn libsodium() -> Option<zeromq_src::LibLocation> {
    println!("cargo:rerun-if-env-changed=SODIUM_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=SODIUM_LIB_DIR");
    let from_env = |key: &str| env::var_os(key).map(PathBuf::from);
    let multiarch = format!(
        "/usr/lib/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default()
    );
    let include = from_env("SODIUM_INCLUDE_DIR").into_iter().chain(
        ["/usr/include", "/usr/local/include", "/opt/homebrew/include"].map(PathBuf::from),
    );
    let include = include.into_iter().find(|d| d.join("sodium.h").is_file())?;
    let lib = from_env("SODIUM_LIB_DIR").into_iter().chain(
        [multiarch.as_str(), "/usr/lib64", "/usr/lib", "/usr/local/lib", "/opt/homebrew/lib"].map(PathBuf::from),
    );
    let lib = lib.into_iter().find(|d| d.join("libsodium.a").is_file())?;
    println!("cargo:rerun-if-changed={}", include.join("sodium.h").display());
    println!("cargo:rerun-if-changed={}", lib.join("libsodium.a").display());
    // zeromq-src prints this path with `{:?}` (quoted), which rustc cannot use.
    println!("cargo:rustc-link-search=native={}", lib.display());
    Some(zeromq_src::LibLocation::new(lib, include))
}

pub fn configure() {
    println!("cargo:rerun-if-changed=build/main.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");

    // libzmq's bundled tweetnacl was never audited, so zeromq-src only
    // enables CURVE with libsodium.
    let sodium = libsodium();
    if sodium.is_none() {
        println!(
            "cargo:warning=libsodium (static library and headers) not found: libzmq is built without CURVE; \
             install libsodium-dev (scripts/setup.sh does) and `cargo clean -p zmq-sys` to get it"
        );
    }
    zeromq_src::Build::new().with_libsodium(sodium).build();
}

fn main() {
    configure()
}
