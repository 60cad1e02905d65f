//! shunt: a userspace Ethernet switch. See docs/ and DESIGN.md.

// Tests may unwrap: a failed unwrap is a failed test. The datapath may not.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod capture;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod ids;
pub mod impair;
pub mod l2;
pub mod netns;
pub mod pipeline;
pub mod port;
pub mod runtime;
pub mod stack;
pub mod stp;
pub mod testing;
pub mod trace;
pub mod worker;
