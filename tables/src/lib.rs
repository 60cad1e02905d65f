//! shunt-tables: the forwarding state of shunt.
//!
//! For now: the FDB ([`Fdb`]), a lock-free, fixed-capacity map
//! (network, MAC) -> (port, static flag, last seen). Pure data structures:
//! no I/O, no threads, time passed in. See `README.md` for the slot layout
//! and why concurrent readers and learners are safe.
#![forbid(unsafe_code)]

mod fdb;
mod slot;

pub use fdb::{Entry, Fdb, FdbConfig, FdbError, Learn, NetworkId, PortId, SLOTS_PER_BUCKET};
