//! Finding and loading ONNX Runtime. `ort` is built with `load-dynamic`:
//! nothing is downloaded or linked at build time; the shared library is
//! opened at start-up, from the first of:
//!
//! 1. `ORT_DYLIB_PATH` (made absolute against the working directory: `ort`
//!    itself would resolve a relative path against the executable's
//!    directory, a surprise nobody wants);
//! 2. `ml.runtime` in the config;
//! 3. the PyPI `onnxruntime` wheel of `ml.python` (default `python3` on
//!    `PATH`): `<site-packages>/onnxruntime/capi/libonnxruntime.so.<version>`.
//!    The interpreter is asked once, at start-up (not on the engine thread),
//!    and without importing the package (no second copy of the library).
//!
//! A path given explicitly (1 or 2) that does not work is an error, not a
//! reason to look elsewhere: the operator asked for that library.
//!
//! The library is process-global once loaded (`ort` keeps it for the life
//! of the process), so [`OnnxRuntime::load`] loads it once and hands out
//! the same environment afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::error::{MlError, RuntimeSource};

/// The `ort` release is built for this ONNX Runtime API (feature `api-31`):
/// an older library is refused by `ort`, a newer one is accepted.
pub const EXPECTED_VERSION: &str = "1.31";

/// A runtime library found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub source: RuntimeSource,
}

/// Where the runtime is: see the module docs for the order. `env_path` is
/// the value of `ORT_DYLIB_PATH` (taken as a parameter so that tests need
/// not touch the process environment).
pub fn locate(env_path: Option<&str>, config_path: &Path, python: &str) -> Result<Located, MlError> {
    let explicit = |path: &Path, source| -> Result<Located, MlError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        if path.is_file() {
            Ok(Located { path, source })
        } else {
            Err(MlError::RuntimeMissing { path, source_name: source })
        }
    };
    if let Some(p) = env_path.filter(|p| !p.is_empty()) {
        return explicit(Path::new(p), RuntimeSource::Env);
    }
    if !config_path.as_os_str().is_empty() {
        return explicit(config_path, RuntimeSource::Config);
    }
    from_python(python).map(|path| Located { path, source: RuntimeSource::Python })
}

/// Asks `python` where its `onnxruntime` package lives (without importing
/// it) and picks the versioned library in its `capi/` directory.
fn from_python(python: &str) -> Result<PathBuf, MlError> {
    const SCRIPT: &str = "import importlib.util as u\n\
s = u.find_spec('onnxruntime')\n\
print(list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else '')";
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .output()
        .map_err(|e| MlError::NoRuntime { why: format!("`{python}` cannot be run to look for its wheel ({e})") })?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || dir.is_empty() {
        return Err(MlError::NoRuntime { why: format!("`{python}` has no `onnxruntime` package") });
    }
    let capi = Path::new(&dir).join("capi");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .map_err(|e| MlError::NoRuntime { why: format!("{} cannot be read ({e})", capi.display()) })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so.") || (n.starts_with("libonnxruntime.") && n.ends_with(".dylib"))
            })
        })
        .collect();
    // The most specific name (libonnxruntime.so.1.31.1 over .so.1).
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.into_iter().next().ok_or_else(|| MlError::NoRuntime {
        why: format!("{} holds no libonnxruntime.so.* (a broken onnxruntime install?)", capi.display()),
    })
}

/// The loaded runtime: `ort`'s environment and where it came from.
#[derive(Clone)]
pub struct OnnxRuntime {
    pub(crate) env: ort::environment::Environment,
    pub located: Located,
    /// The library's version, from its file name (`libonnxruntime.so.1.31.1`)
    /// or else its build info.
    pub version: String,
}

impl std::fmt::Debug for OnnxRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxRuntime").field("located", &self.located).field("version", &self.version).finish()
    }
}

/// The one load of this process (ort keeps the first library it opens).
static LOADED: OnceLock<OnnxRuntime> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

impl OnnxRuntime {
    /// Opens the library at `located` and creates the environment, once per
    /// process: later calls return the first runtime (whatever they name).
    /// A failure leaves nothing loaded, so no `ort` call may follow it.
    pub fn load(located: &Located) -> Result<OnnxRuntime, MlError> {
        let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rt) = LOADED.get() {
            return Ok(rt.clone());
        }
        let load_err =
            |message: String| MlError::RuntimeLoad { path: located.path.clone(), source_name: located.source, message };
        let builder = ort::init_from(&located.path).map_err(|e| load_err(e.to_string()))?;
        let env = builder.with_name("tickhost").build().map_err(|e| load_err(e.to_string()))?;
        let version = version_of(&located.path, ort::info());
        let rt = OnnxRuntime { env, located: located.clone(), version };
        Ok(LOADED.get_or_init(|| rt).clone())
    }

    /// The runtime this process loaded, if any.
    pub fn loaded() -> Option<OnnxRuntime> {
        LOADED.get().cloned()
    }
}

fn version_of(path: &Path, build_info: &str) -> String {
    let from_name = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.split_once(".so.")).map(|(_, v)| v);
    let from_info = || build_info.split("git-branch=rel-").nth(1).and_then(|v| v.split([',', ' ']).next());
    from_name.or_else(from_info).unwrap_or("unknown").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_that_does_not_exist_is_an_error_naming_it_and_its_source() {
        let e = locate(Some("/no/such/libonnxruntime.so"), Path::new(""), "python3").expect_err("missing");
        let msg = e.to_string();
        assert!(msg.contains("ORT_DYLIB_PATH") && msg.contains("/no/such/libonnxruntime.so"), "{msg}");
        assert!(msg.contains("pip install onnxruntime==1.31.1"), "says what to do: {msg}");
        let e = locate(None, Path::new("/nope/libonnxruntime.so"), "python3").expect_err("missing");
        assert!(e.to_string().contains("ml.runtime"), "{e}");
    }

    #[test]
    fn a_relative_env_path_is_made_absolute_against_the_working_directory() {
        let e = locate(Some("relative/lib.so"), Path::new(""), "python3").expect_err("missing");
        let MlError::RuntimeMissing { path, .. } = e else { panic!("{e}") };
        assert!(path.is_absolute() && path.ends_with("relative/lib.so"), "{}", path.display());
    }

    #[test]
    fn the_version_comes_from_the_file_name_or_the_build_info() {
        assert_eq!(version_of(Path::new("/x/libonnxruntime.so.1.31.1"), ""), "1.31.1");
        assert_eq!(
            version_of(Path::new("/x/ort.so"), "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=1"),
            "1.31.1"
        );
    }

    #[test]
    fn an_interpreter_that_does_not_exist_is_reported_as_such() {
        let e = locate(None, Path::new(""), "/no/such/python3").expect_err("no python");
        assert!(e.to_string().contains("/no/such/python3"), "{e}");
    }
}
