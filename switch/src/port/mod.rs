//! Ports: the ways frames enter and leave the switch. One file per kind.

pub mod afxdp;
pub mod sys;
pub mod tap;
pub mod umem;
pub mod xdp_loader;

pub use afxdp::{AfXdpError, AfXdpPort, AfXdpStats, TxError};
pub use tap::{Tap, TapError};
pub use umem::{SharedUmem, Slots, UmemFrame};

/// What backs a port when the switch starts.
pub enum Device {
    Tap(Tap),
    AfXdp(Box<AfXdpPort>),
}

pub use sys::{poll, pollfd};
