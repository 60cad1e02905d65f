//! Running code inside a named network namespace (`/run/netns/NAME`, as
//! `ip netns add` makes them) without touching the calling thread.
//!
//! `setns` changes the namespace of the calling thread only. We do it on a
//! dedicated thread that ends right after: a socket created there stays in
//! that namespace for its whole life, whichever thread uses it later.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};

/// Where `ip netns` keeps its namespace handles.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Does the named namespace exist?
pub fn netns_exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Run `f` on a new thread that has entered the named network namespace,
/// and return what it returns. An empty name means "the caller's namespace"
/// (the thread is still used, so `f` behaves the same either way).
pub fn in_netns<T, F>(name: &str, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let path = if name.is_empty() {
        None
    } else {
        Some(netns_path(name))
    };
    let label = name.to_string();
    let handle = std::thread::Builder::new()
        .name(format!("netns-{label}"))
        .spawn(move || -> io::Result<T> {
            if let Some(path) = path {
                let ns = File::open(&path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("network namespace {label:?} ({}): {e}", path.display()),
                    )
                })?;
                setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    io::Error::other(format!("setns into {label:?}: {e} (are you root?)"))
                })?;
            }
            f()
        })?;
    handle
        .join()
        .map_err(|_| io::Error::other(format!("thread in namespace {name:?} panicked")))?
}
