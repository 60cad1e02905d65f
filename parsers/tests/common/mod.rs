//! Test support shared by the integration tests.

#![allow(dead_code, clippy::unwrap_used)]

pub mod exercise;
pub mod pcap;
pub mod superframe;
