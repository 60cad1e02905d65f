//! Ports: the ways frames enter and leave the switch. One file per kind.

pub mod tap;

pub use tap::{Tap, TapError};
