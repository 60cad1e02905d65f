//! The record a running switch keeps under /run/shunt: what it created, so
//! that a later run can clean up after one that was killed.

use crate::control::RUN_DIR;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a running switch created, written before it creates anything.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub pid: u32,
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub resolv_dirs: Vec<String>,
}

/// Writing the state file failed.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct StateError {
    pub path: String,
    pub source: std::io::Error,
}

pub fn state_path(name: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(format!("{name}.state"))
}

pub fn log_path(name: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(format!("{name}.log"))
}

/// The state of switch `name`; None when there is none (or it is
/// unreadable: then there is nothing we could clean up by it).
pub(super) fn read_state(name: &str) -> Option<State> {
    let s = std::fs::read_to_string(state_path(name)).ok()?;
    serde_json::from_str(&s).ok()
}

pub(super) fn write_state(name: &str, st: &State) -> Result<(), StateError> {
    let io = |source| StateError {
        path: state_path(name).display().to_string(),
        source,
    };
    std::fs::create_dir_all(RUN_DIR).map_err(io)?;
    let s = serde_json::to_string_pretty(st).unwrap_or_default();
    // Whole or not at all: written beside and renamed over, so a full /run
    // never leaves a cut record (which `down` could not read, and so not
    // clean up by) in place of the last good one.
    let tmp = state_path(name).with_extension("state.tmp");
    let written = std::fs::write(&tmp, s).and_then(|()| std::fs::rename(&tmp, state_path(name)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// A live shunt process (a zombie has finished: its parent just has not
/// reaped it yet).
pub(super) fn pid_is_shunt(pid: u32) -> bool {
    pid != std::process::id()
        && !is_zombie(pid)
        && std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim() == "shunt")
            .unwrap_or(false)
}

/// Process `pid` has finished and waits to be reaped (or is going away).
pub(super) fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    matches!(state, Some("Z") | Some("X"))
}
