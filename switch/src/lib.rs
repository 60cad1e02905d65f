//! shunt: a userspace Ethernet switch. See docs/ and DESIGN.md.

pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod ids;
pub mod netns;
pub mod pipeline;
pub mod port;
pub mod runtime;
pub mod stack;
pub mod trace;
pub mod worker;
