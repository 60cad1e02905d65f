//! Removing what a switch created: after a clean stop, and after a switch
//! that was killed (by its state file).

use super::state::{log_path, pid_is_shunt, read_state, state_path};
use super::UpError;
use crate::config::Topology;
use crate::{control, netns};

/// Removes what a switch that is no longer running left behind. Returns
/// what was removed, or an error if that switch is in fact running.
pub fn clean_stale(name: &str) -> Result<Vec<String>, UpError> {
    let mut removed = Vec::new();
    if let Some(st) = read_state(name) {
        if pid_is_shunt(st.pid) {
            return Err(UpError::AlreadyRunning {
                name: name.to_string(),
                pid: st.pid,
            });
        }
        for ns in &st.namespaces {
            if netns::exists(ns) && netns::del(ns).is_ok() {
                removed.push(format!("namespace {ns}"));
            }
        }
        for d in &st.resolv_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        let _ = std::fs::remove_file(state_path(name));
        let _ = std::fs::remove_file(log_path(name));
    }
    if std::fs::remove_file(control::socket_path(name)).is_ok() {
        removed.push("control socket".into());
    }
    Ok(removed)
}

/// Removes the namespaces this switch owns, the hosts' resolver files, the
/// control socket and the state file.
pub(super) fn teardown(topo: &Topology, owned: &[String]) {
    for ns in owned {
        if netns::exists(ns) {
            if let Err(e) = netns::del(ns) {
                crate::say!("shunt: removing namespace {ns}: {e}");
            }
        }
    }
    crate::stack::resolv::remove(topo);
    let name = &topo.switch.name;
    let _ = std::fs::remove_file(control::socket_path(name));
    let _ = std::fs::remove_file(state_path(name));
    // The log stays: when a detached switch fails to come up, `shunt up`
    // shows it; `shunt down` removes it once the switch has stopped.
}
