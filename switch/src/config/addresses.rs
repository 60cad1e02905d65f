//! Host addresses and MACs: IPv4 prefixes, the next free address of a
//! subnet (IPAM, as Docker's) and the MAC a host link gets when the file
//! gives none. `shunt up` (the parser) and `shunt attach` (at run time)
//! both assign through here, so a host gets the same address and MAC
//! either way.

use super::Topology;
use shunt_parsers::MacAddr;
use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn parse(s: &str) -> Option<Ipv4Net> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.trim().parse().ok()?;
        let prefix: u8 = p.trim().parse().ok()?;
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    pub fn network(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network()
    }
    pub fn broadcast(&self) -> u32 {
        self.network() | !self.mask()
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The subnet has no address left between its network and broadcast
/// addresses that the switch or a host does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFreeAddress;

/// Addresses in use, per network (by index): the switch's own and every
/// host's. IPAM hands out the lowest address not in use.
#[derive(Debug, Clone, Default)]
pub struct Ipam {
    used: Vec<HashSet<u32>>,
}

impl Ipam {
    /// The switch's own `address` of each network, taken.
    pub fn new(networks: &[super::Network]) -> Ipam {
        Ipam {
            used: networks
                .iter()
                .map(|n| n.address.map(u32::from).into_iter().collect())
                .collect(),
        }
    }

    /// What a running topology holds: the switch's addresses and every
    /// host link's (for `shunt attach`).
    pub fn from_topology(topo: &Topology) -> Ipam {
        let mut ipam = Ipam::new(&topo.networks);
        for l in topo.hosts.iter().flat_map(|h| &h.links) {
            if let Some(ip) = l.ip {
                ipam.take(l.network, ip.addr);
            }
        }
        ipam
    }

    /// Marks `ip` as used on network `ni`; false if it already was.
    pub fn take(&mut self, ni: usize, ip: Ipv4Addr) -> bool {
        match self.used.get_mut(ni) {
            Some(u) => u.insert(u32::from(ip)),
            None => false,
        }
    }

    /// The next free address of `subnet` on network `ni`, now taken: the
    /// search starts after the network address and stops before the
    /// broadcast address. Ok(None) for a network without a subnet.
    pub fn assign(
        &mut self,
        ni: usize,
        subnet: Option<Ipv4Net>,
    ) -> Result<Option<Ipv4Net>, NoFreeAddress> {
        let Some(sn) = subnet else {
            return Ok(None);
        };
        let Some(used) = self.used.get_mut(ni) else {
            return Err(NoFreeAddress);
        };
        let last = sn.broadcast();
        let mut a = sn.network() + 1;
        while a < last && used.contains(&a) {
            a += 1;
        }
        if a >= last {
            return Err(NoFreeAddress);
        }
        used.insert(a);
        Ok(Some(Ipv4Net {
            addr: Ipv4Addr::from(a),
            prefix: sn.prefix,
        }))
    }
}

/// The MAC of host `host`'s link into network `network` when the file
/// gives none: with an address, `02:42` and its four bytes (as Docker
/// does); without one, `02:43` and a hash of `HOST.NETWORK`, the same on
/// every run.
pub fn derived_mac(host: &str, network: &str, ip: Option<Ipv4Net>) -> MacAddr {
    match ip {
        Some(ip) => {
            let o = ip.addr.octets();
            MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
        }
        None => {
            // FNV-1a: stable across runs and builds.
            let mut h: u32 = 2166136261;
            for b in host.bytes().chain([b'.']).chain(network.bytes()) {
                h = (h ^ b as u32).wrapping_mul(16777619);
            }
            let b = h.to_be_bytes();
            MacAddr([0x02, 0x43, b[0], b[1], b[2], b[3]])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_macs() {
        let ip = Ipv4Net::parse("10.0.0.2/24");
        assert_eq!(derived_mac("h", "n", ip).to_string(), "02:42:0a:00:00:02");
        let a = derived_mac("h1", "lan", None);
        assert_eq!(a.0[..2], [0x02, 0x43]);
        assert_eq!(a, derived_mac("h1", "lan", None));
        assert_ne!(a, derived_mac("h2", "lan", None));
    }

    #[test]
    fn ipam_skips_taken_and_runs_out() {
        let mut ipam = Ipam {
            used: vec![HashSet::new()],
        };
        let sn = Ipv4Net::parse("10.0.0.0/30");
        assert!(ipam.take(0, "10.0.0.1".parse().expect("ip")));
        let got = ipam.assign(0, sn).expect("one left").map(|n| n.to_string());
        assert_eq!(got.as_deref(), Some("10.0.0.2/30"));
        assert_eq!(ipam.assign(0, sn), Err(NoFreeAddress));
        assert_eq!(ipam.assign(0, None), Ok(None));
    }
}
