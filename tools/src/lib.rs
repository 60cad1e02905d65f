//! Helpers for shunt's users and tests: crafting Ethernet frames (with VLAN
//! tags and test markers) and sending / capturing raw frames on an interface
//! inside a network namespace.
//!
//! No `unsafe` here: namespaces are entered with `nix::sched::setns` on a
//! dedicated thread, raw frames go through AF_PACKET sockets made by `nix`
//! and `pnet_datalink`.

#![forbid(unsafe_code)]

pub mod frame;
pub mod netns;
pub mod rawport;

pub use frame::{test_mac, FrameBuilder, FrameSummary, MacAddr, Marker, VlanTag, XorShift};
pub use netns::{in_netns, netns_exists};
pub use rawport::{Capture, RawPort, Received};
