//! Bringing a topology up and down: namespaces, TAP devices, workers, the
//! control socket, and the record that lets a later run clean up after a
//! switch that was killed. One file per concern:
//!
//! - state.rs: the state file under /run/shunt;
//! - cleanup.rs: removing what a switch created (also after a kill);
//! - plug.rs: namespaces, TAPs, veths, AF_XDP sockets;
//! - bringup.rs: `shunt up` in the foreground;
//! - serve.rs: the running switch (FDB, stack, runtime) until it stops;
//! - threads.rs: its threads beside the workers;
//! - requests.rs: the control socket's server;
//! - attach.rs: hosts plugged in and out at run time;
//! - lifecycle.rs: `shunt up --detach` and `shunt down`.

mod attach;
mod bringup;
mod cleanup;
mod flap;
mod impair;
mod lifecycle;
pub(crate) mod link;
mod mirror;
mod plug;
mod requests;
mod serve;
mod snoop;
mod state;
mod storm;
mod threads;

pub use attach::{attach, detach, AttachError};
pub use bringup::run;
pub use cleanup::clean_stale;
pub use lifecycle::{down, up_detached};
pub use plug::PlugError;
pub use requests::REQUEST_TIMEOUT;
pub use state::{log_path, state_path, State, StateError};

use crate::control::ControlError;

/// Why a switch did not come up, or did not go down.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("shunt needs root (it creates namespaces and devices): run it with sudo")]
    NotRoot,
    #[error("switch {name:?} is already running (pid {pid}): `shunt down {name}` first")]
    AlreadyRunning { name: String, pid: u32 },
    #[error("network namespace {0:?} already exists and was not created by this switch: remove it (`ip netns del {0}`) or rename the host")]
    NamespaceTaken(String),
    #[error(transparent)]
    Plug(#[from] PlugError),
    #[error(transparent)]
    Umem(#[from] crate::port::umem::UmemError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("starting {what}: {source}")]
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the switch did not come up: {what}: {source}")]
    StaticEntry {
        what: String,
        source: shunt_tables::FdbError,
    },
    #[error("the switch did not come up: port {port} has no device")]
    NoDevice { port: String },
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("the switch did not come up: it exited ({status}):\n{log}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("the switch did not come up: no answer on the control socket after {secs} s")]
    NoAnswer { secs: u64 },
    #[error("switch {name:?} (pid {pid}) did not stop within 30 s")]
    DidNotStop { name: String, pid: u32 },
}
