//! Helpers for the in-memory pipeline benchmarks (`cargo bench -p shunt-perf`).
//!
//! The [`Rig`] is the switch's own (`shunt_switch::testing`, the one the
//! pipeline tests use): everything `pipeline::run` needs, built the way a
//! worker builds it, with an in-memory port behind every port of the
//! topology. The benchmarks "receive" by writing frames straight into the
//! rig's batch ([`Rig::load`], [`Rig::readdress`]); [`Rig::run`] leaves
//! what the ports would send in the transmit queues and empties them, and
//! [`run_and_send`] also runs the edit stage into the in-memory ports. See
//! docs/PERF.md.

// `unsafe` only in the module that talks to the kernel (linerate::packet).
#![deny(unsafe_code)]

pub mod linerate;

use shunt_switch::ids::PortId;
use shunt_switch::pipeline::{BATCH, SLOT};
pub use shunt_switch::testing::{port, Rig};

/// Bytes of an output area of a batch of slots (the VXLAN benchmark's
/// gather target).
pub const OUT_BYTES: usize = BATCH * SLOT;

/// The network id of the first `[[network]]` of a topology.
pub const NET0: u16 = 0;

/// Runs the pipeline over the rig's batch as if it came in on `ingress`,
/// then the edit stage, and sends every copy to its in-memory port (the
/// copy a copying port such as TAP's writev makes). The ports' sent frames
/// are then forgotten, so that every iteration finds them empty. Returns
/// the copies sent.
#[inline]
pub fn run_and_send(rig: &mut Rig, ingress: PortId, now_ms: u64) -> usize {
    rig.process(ingress, now_ms);
    let n = rig.transmit();
    for p in &mut rig.ports {
        p.clear_sent();
    }
    n
}

/// A locally administered unicast MAC for index `i` (up to 2^40).
#[inline]
pub fn mac(i: u64) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// A 64-byte Ethernet frame (60 bytes before the FCS, as a port hands it
/// over; the bench counts it as 64) from `src` to `dst`, optionally tagged.
pub fn frame(dst: [u8; 6], src: [u8; 6], vid: Option<u16>) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    let mut o = 12;
    if let Some(v) = vid {
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        f[14..16].copy_from_slice(&v.to_be_bytes());
        o = 16;
    }
    f[o..o + 2].copy_from_slice(&0x0800u16.to_be_bytes());
    f
}

/// xorshift64*: a reproducible stream of indexes, no allocation.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform enough in `0..n` for picking table entries.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }
}

/// A topology of `n` bare TAP access ports on one network.
pub fn access_ports(n: usize) -> String {
    let mut s = String::from("[switch]\nname = \"perf\"\n\n[[network]]\nname = \"lan\"\n");
    for i in 0..n {
        s.push_str(&format!(
            "\n[[port]]\nname = \"p{i}\"\nkind = \"tap\"\nmode = \"access\"\nnetwork = \"lan\"\n"
        ));
    }
    s
}

/// A trunk port (p0, carrying network `v10` tagged with VLAN 10) and an
/// access port (p1) on `v10`.
pub fn trunk_and_access() -> String {
    "[switch]\nname = \"perf\"\n\n[[network]]\nname = \"v10\"\nvlan = 10\n\n\
     [[port]]\nname = \"p0\"\nkind = \"tap\"\nmode = \"trunk\"\nnetworks = [\"v10\"]\n\n\
     [[port]]\nname = \"p1\"\nkind = \"tap\"\nmode = \"access\"\nnetwork = \"v10\"\n"
        .to_string()
}
