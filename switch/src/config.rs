//! The topology file (TOML): parsing and validation.
//!
//! Everything is checked before anything is created, and every error names
//! the line of the file and what is wrong with it.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use toml::Spanned;

mod vtep;
use vtep::vtep_section;
pub use vtep::VXLAN_OVERHEAD;

pub const DEFAULT_NAME: &str = "shunt";
pub const DEFAULT_MTU: u16 = 1500;
/// The largest MTU a port may have: a frame (with a VLAN tag) must fit a
/// frame buffer slot after its headroom (pipeline::MAX_FRAME).
pub const MAX_MTU: i64 = 3800;

/// The built-in topology of `shunt up` without a file (TOPOLOGY.md).
pub const DEFAULT_TOPOLOGY: &str = r#"# shunt's default topology: three hosts on one network.
[switch]
name = "shunt"

[[network]]
name = "lan"
subnet = "10.0.0.0/24"
address = "10.0.0.1"

[[host]]
name = "h1"
networks = ["lan"]

[[host]]
name = "h2"
networks = ["lan"]

[[host]]
name = "h3"
networks = ["lan"]
"#;

/// A topology error: where in the file, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for ConfigError {}

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

pub type Mac = [u8; 6];

pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in s.split(':') {
        if n == 6 || part.len() != 2 {
            return None;
        }
        out[n] = u8::from_str_radix(part, 16).ok()?;
        n += 1;
    }
    (n == 6).then_some(out)
}

pub fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    Tap,
    Afxdp,
}

impl PortKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Afxdp => "afxdp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    Native,
    Generic,
    Auto,
}

/// How a port meets its networks (DESIGN.md, decided behaviour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMode {
    /// Untagged (and VID 0) frames join `network`; other tags are dropped.
    Access { network: usize },
    /// Tagged frames of `allowed` networks (by their VLAN); untagged frames
    /// join `native` or are dropped without one.
    Trunk {
        allowed: Vec<usize>,
        native: Option<usize>,
    },
}

#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub vlan: Option<u16>,
    pub subnet: Option<Ipv4Net>,
    pub address: Option<Ipv4Addr>,
    pub domain: Option<String>,
    pub dns_upstream: Option<Ipv4Addr>,
    /// Answer ARP requests for known hosts instead of flooding them.
    pub arp_suppress: bool,
    /// A macvlan-style network: hosts hang off a parent port by MAC.
    pub macvlan: Option<Macvlan>,
    /// Carried over VXLAN with this VNI (needs a `[vtep]`).
    pub vni: Option<u32>,
    /// The remote VTEPs that get a copy of each flooded frame.
    pub vtep_peers: Vec<Ipv4Addr>,
    pub line: usize,
}

/// The Linux macvlan modes (ip-link(8)), decided per network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    Bridge,
    Vepa,
    Private,
    Passthru,
}

impl MacvlanMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Private => "private",
            MacvlanMode::Passthru => "passthru",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Macvlan {
    /// The parent port (index into `Topology::ports`).
    pub parent: usize,
    pub mode: MacvlanMode,
}

#[derive(Debug, Clone)]
pub struct HostLink {
    pub network: usize,
    /// Interface name inside the namespace (eth0, eth1, ...).
    pub ifname: String,
    pub ip: Option<Ipv4Net>,
    pub mac: Mac,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub links: Vec<HostLink>,
    pub aliases: Vec<String>,
    pub ipv6: bool,
    pub mtu: u16,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct PortCfg {
    pub name: String,
    pub kind: PortKind,
    /// For AF_XDP: the interface to attach to. For a bare TAP: its device name.
    pub interface: String,
    pub xdp_mode: XdpMode,
    pub mode: PortMode,
    pub learning: bool,
    pub flood_unknown: bool,
    pub flood_multicast: bool,
    pub mtu: u16,
    /// The host this port plugs in (host ports `H.N`).
    pub host: Option<String>,
    /// A host port on a veth (`link = "veth"`): the end in the switch's
    /// namespace that AF_XDP attaches to (named at bring-up).
    pub outer: Option<String>,
    /// Detached at run time: the id stays taken, the port carries nothing.
    pub removed: bool,
    /// The namespace the TAP device lives in: the host's, a `[[port]]`'s
    /// `namespace`, or None (the switch's own).
    pub netns: Option<String>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct StaticFdb {
    pub network: usize,
    pub mac: Mac,
    pub port: usize,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct SwitchCfg {
    pub name: String,
    pub workers: usize,
    pub fdb_aging_secs: u64,
    pub fdb_max_entries: usize,
    /// Benchmark baseline (`shunt bench --bare`): no switching logic; port
    /// 2k's frames go to port 2k+1 and back, untouched.
    pub bare: bool,
}

/// A validated topology: every index points into the vectors here.
#[derive(Debug, Clone)]
pub struct Topology {
    pub switch: SwitchCfg,
    pub networks: Vec<Network>,
    pub hosts: Vec<Host>,
    /// All ports: first one access port per host and network (named `H.N`),
    /// then the `[[port]]` tables.
    pub ports: Vec<PortCfg>,
    pub fdb: Vec<StaticFdb>,
    /// The switch as a VXLAN tunnel endpoint (docs/vxlan.md).
    pub vtep: Option<Vtep>,
}

/// Most remote VTEPs a topology may name.
pub use crate::ids::MAX_VTEPS;

/// `[vtep]`: the switch's VXLAN tunnel endpoint.
#[derive(Debug, Clone)]
pub struct Vtep {
    /// The underlay port (index into `Topology::ports`, `mode = "underlay"`).
    pub port: usize,
    /// The VTEP's address on the underlay, with its prefix.
    pub address: Ipv4Net,
    /// The next hop towards remote VTEPs outside `address`'s prefix.
    pub gateway: Option<Ipv4Addr>,
    pub udp_port: u16,
    pub ttl: u8,
    /// Every remote VTEP named (networks' peers, then static entries), each
    /// once: remote `k` is `ids::Egress::Vtep(k)`.
    pub remotes: Vec<Ipv4Addr>,
    /// Static entries behind a remote VTEP: (network, MAC, remote index).
    pub fdb: Vec<(usize, Mac, usize)>,
    pub line: usize,
}

impl Topology {
    pub fn network_index(&self, name: &str) -> Option<usize> {
        self.networks.iter().position(|n| n.name == name)
    }
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }
}

// ---- raw, as written in the file ----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    switch: Option<Spanned<RawSwitch>>,
    #[serde(default)]
    network: Vec<Spanned<RawNetwork>>,
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    fdb: Vec<Spanned<RawFdb>>,
    vtep: Option<Spanned<RawVtep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVtep {
    port: Spanned<String>,
    address: Spanned<String>,
    gateway: Option<Spanned<String>>,
    udp_port: Option<Spanned<i64>>,
    ttl: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSwitch {
    name: Option<Spanned<String>>,
    workers: Option<Spanned<i64>>,
    fdb_aging_secs: Option<Spanned<i64>>,
    fdb_max_entries: Option<Spanned<i64>>,
    bare: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    name: Spanned<String>,
    vlan: Option<Spanned<i64>>,
    subnet: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    dns_upstream: Option<Spanned<String>>,
    arp_suppress: Option<bool>,
    kind: Option<Spanned<String>>,
    parent: Option<Spanned<String>>,
    macvlan_mode: Option<Spanned<String>>,
    vni: Option<Spanned<i64>>,
    vtep_peers: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    networks: Spanned<Vec<String>>,
    ip: Option<Spanned<Vec<String>>>,
    mac: Option<Spanned<Vec<String>>>,
    aliases: Option<Spanned<Vec<String>>>,
    link: Option<Spanned<String>>,
    ipv6: Option<bool>,
    mtu: Option<Spanned<i64>>,
    xdp_mode: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    kind: Option<Spanned<String>>,
    interface: Option<Spanned<String>>,
    xdp_mode: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    network: Option<Spanned<String>>,
    networks: Option<Spanned<Vec<String>>>,
    native: Option<Spanned<String>>,
    learning: Option<bool>,
    flood_unknown: Option<bool>,
    flood_multicast: Option<bool>,
    mtu: Option<Spanned<i64>>,
    namespace: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFdb {
    network: Spanned<String>,
    mac: Spanned<String>,
    port: Option<Spanned<String>>,
    vtep: Option<Spanned<String>>,
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        msg: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.file.to_string(),
            line: self.line(span.start),
            message: msg.into(),
        })
    }
}

/// Names of hosts and networks become namespace names and parts of port
/// names (`H.N`): keep them short and free of dots and slashes.
fn check_name(ctx: &Ctx, what: &str, s: &Spanned<String>) -> Result<(), ConfigError> {
    let v = s.get_ref();
    let ok = !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return ctx.err(
            s.span(),
            format!(
                "{what} name {v:?} is not valid: use 1 to 32 letters, digits, '-' or '_' (no dots)"
            ),
        );
    }
    Ok(())
}

fn int_in(ctx: &Ctx, what: &str, v: &Spanned<i64>, min: i64, max: i64) -> Result<i64, ConfigError> {
    let x = *v.get_ref();
    if x < min || x > max {
        return ctx.err(
            v.span(),
            format!("{what} = {x} is out of range ({min} to {max})"),
        );
    }
    Ok(x)
}

/// Checks a switch name given on the command line (`shunt up --name`).
pub fn check_switch_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 12
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "switch name {n:?} is not valid: use 1 to 12 letters, digits, '-' or '_'"
        ))
    }
}

pub fn parse(file: &str, src: &str) -> Result<Topology, ConfigError> {
    let ctx = Ctx { file, src };
    let raw: RawFile = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| ctx.line(s.start)).unwrap_or(1);
            return Err(ConfigError {
                file: file.to_string(),
                line,
                message: e.message().trim().to_string(),
            });
        }
    };

    // [switch]
    let mut switch = SwitchCfg {
        name: DEFAULT_NAME.to_string(),
        workers: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        fdb_aging_secs: 300,
        fdb_max_entries: 65536,
        bare: false,
    };
    if let Some(s) = &raw.switch {
        let s = s.get_ref();
        if let Some(n) = &s.name {
            check_name(&ctx, "switch", n)?;
            if n.get_ref().len() > 12 {
                return ctx.err(n.span(), "switch name is longer than 12 characters (it names the control socket and files under /run/shunt; keep it short)");
            }
            switch.name = n.get_ref().clone();
        }
        switch.bare = s.bare.unwrap_or(false);
        if let Some(w) = &s.workers {
            switch.workers = int_in(&ctx, "workers", w, 1, 64)? as usize;
        }
        if let Some(a) = &s.fdb_aging_secs {
            switch.fdb_aging_secs = int_in(&ctx, "fdb_aging_secs", a, 1, 1_000_000)? as u64;
        }
        if let Some(m) = &s.fdb_max_entries {
            switch.fdb_max_entries = int_in(&ctx, "fdb_max_entries", m, 1, 16_777_216)? as usize;
        }
    }

    // [[network]]
    let mut networks: Vec<Network> = Vec::new();
    let mut vlans_seen: HashMap<u16, String> = HashMap::new();
    for n in &raw.network {
        let line = ctx.line(n.span().start);
        let n = n.get_ref();
        check_name(&ctx, "network", &n.name)?;
        let name = n.name.get_ref().clone();
        if networks.iter().any(|x| x.name == name) {
            return ctx.err(n.name.span(), format!("network {name:?} is defined twice"));
        }
        let vlan = match &n.vlan {
            Some(v) => {
                let vid = int_in(&ctx, "vlan", v, 1, 4094)? as u16;
                if let Some(other) = vlans_seen.insert(vid, name.clone()) {
                    return ctx.err(
                        v.span(),
                        format!("vlan {vid} is already used by network {other:?}"),
                    );
                }
                Some(vid)
            }
            None => None,
        };
        let subnet = match &n.subnet {
            Some(s) => match Ipv4Net::parse(s.get_ref()) {
                Some(net) if net.prefix <= 30 => Some(Ipv4Net {
                    addr: Ipv4Addr::from(net.network()),
                    prefix: net.prefix,
                }),
                _ => {
                    return ctx.err(
                        s.span(),
                        format!(
                            "subnet {:?} is not an IPv4 network with a prefix of at most 30 (like \"10.0.0.0/24\")",
                            s.get_ref()
                        ),
                    )
                }
            },
            None => None,
        };
        let address = match &n.address {
            Some(a) => {
                let ip: Ipv4Addr = match a.get_ref().parse() {
                    Ok(ip) => ip,
                    Err(_) => {
                        return ctx.err(
                            a.span(),
                            format!("address {:?} is not an IPv4 address", a.get_ref()),
                        )
                    }
                };
                match subnet {
                    Some(sn) if sn.contains(ip) => {}
                    Some(sn) => {
                        return ctx.err(a.span(), format!("address {ip} is outside subnet {sn}"))
                    }
                    None => return ctx.err(a.span(), "address needs a subnet on the network"),
                }
                Some(ip)
            }
            None => None,
        };
        let dns_upstream = match &n.dns_upstream {
            Some(a) => match a.get_ref().parse() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    return ctx.err(
                        a.span(),
                        format!("dns_upstream {:?} is not an IPv4 address", a.get_ref()),
                    )
                }
            },
            None => None,
        };
        networks.push(Network {
            name,
            vlan,
            subnet,
            address,
            domain: n
                .domain
                .as_ref()
                .map(|d| d.get_ref().trim_end_matches('.').to_ascii_lowercase()),
            dns_upstream,
            arp_suppress: n.arp_suppress.unwrap_or(false),
            macvlan: None,
            vni: None,
            vtep_peers: Vec::new(),
            line,
        });
    }
    let net_idx = |name: &Spanned<String>, what: &str| -> Result<usize, ConfigError> {
        match networks.iter().position(|n| &n.name == name.get_ref()) {
            Some(i) => Ok(i),
            None => ctx.err(
                name.span(),
                format!(
                    "{what} names network {:?}, which is not defined",
                    name.get_ref()
                ),
            ),
        }
    };

    // Addresses in use per network, for IPAM.
    let mut used: Vec<HashSet<u32>> = networks
        .iter()
        .map(|n| n.address.map(u32::from).into_iter().collect())
        .collect();
    let mut macs_seen: HashMap<Mac, String> = HashMap::new();
    let mut hosts: Vec<Host> = Vec::new();
    let mut ports: Vec<PortCfg> = Vec::new();

    // [[host]]: first pass validates explicit addresses so that IPAM never
    // hands out an address a later host asks for.
    for h in &raw.host {
        let h = h.get_ref();
        if let Some(ips) = &h.ip {
            for (i, s) in ips.get_ref().iter().enumerate() {
                if s.is_empty() {
                    continue;
                }
                let Some(net) = Ipv4Net::parse(s) else {
                    return ctx.err(
                        ips.span(),
                        format!(
                            "ip {s:?} is not an IPv4 address with a prefix (like \"10.0.0.11/24\")"
                        ),
                    );
                };
                if let Some(Some(ni)) = h
                    .networks
                    .get_ref()
                    .get(i)
                    .map(|n| networks.iter().position(|x| &x.name == n))
                {
                    if !used[ni].insert(u32::from(net.addr)) {
                        return ctx.err(
                            ips.span(),
                            format!(
                                "ip {} is used twice on network {:?}",
                                net.addr, networks[ni].name
                            ),
                        );
                    }
                }
            }
        }
    }
    for hs in &raw.host {
        let line = ctx.line(hs.span().start);
        let h = hs.get_ref();
        check_name(&ctx, "host", &h.name)?;
        let name = h.name.get_ref().clone();
        if hosts.iter().any(|x| x.name == name) {
            return ctx.err(h.name.span(), format!("host {name:?} is defined twice"));
        }
        let nets = h.networks.get_ref();
        if nets.is_empty() {
            return ctx.err(h.networks.span(), format!("host {name:?} has no networks"));
        }
        if nets.len() > 16 {
            return ctx.err(h.networks.span(), "a host has at most 16 networks");
        }
        let ips =
            h.ip.as_ref()
                .map(|v| v.get_ref().clone())
                .unwrap_or_default();
        if ips.len() > nets.len() {
            return ctx.err(
                h.ip.as_ref().map(|v| v.span()).unwrap_or(hs.span()),
                format!(
                    "host {name:?} has {} ip entries for {} networks",
                    ips.len(),
                    nets.len()
                ),
            );
        }
        let macs = h
            .mac
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default();
        if macs.len() > nets.len() {
            return ctx.err(
                h.mac.as_ref().map(|v| v.span()).unwrap_or(hs.span()),
                format!(
                    "host {name:?} has {} mac entries for {} networks",
                    macs.len(),
                    nets.len()
                ),
            );
        }
        let mtu = match &h.mtu {
            Some(m) => int_in(&ctx, "mtu", m, 68, MAX_MTU)? as u16,
            None => DEFAULT_MTU,
        };
        let mut veth = false;
        let host_xdp_mode = match h.xdp_mode.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("auto") => XdpMode::Auto,
            Some("native") => XdpMode::Native,
            Some("generic") => XdpMode::Generic,
            Some(other) => {
                return ctx.err(
                    h.xdp_mode.as_ref().map(|k| k.span()).unwrap_or(hs.span()),
                    format!("xdp_mode {other:?} is not one of \"native\", \"generic\", \"auto\""),
                )
            }
        };
        if let Some(l) = &h.link {
            match l.get_ref().as_str() {
                "tap" => {}
                "veth" => veth = true,
                other => {
                    return ctx.err(
                        l.span(),
                        format!("link {other:?} is not one of \"tap\", \"veth\""),
                    )
                }
            }
        }
        let mut links = Vec::new();
        let mut seen_nets = HashSet::new();
        for (i, nname) in nets.iter().enumerate() {
            let ni = match networks.iter().position(|n| &n.name == nname) {
                Some(ni) => ni,
                None => {
                    return ctx.err(
                        h.networks.span(),
                        format!("host {name:?} names network {nname:?}, which is not defined"),
                    )
                }
            };
            if !seen_nets.insert(ni) {
                return ctx.err(
                    h.networks.span(),
                    format!("host {name:?} names network {nname:?} twice"),
                );
            }
            let ip = match ips.get(i).filter(|s| !s.is_empty()) {
                Some(s) => {
                    let net = Ipv4Net::parse(s).ok_or_else(|| ConfigError {
                        file: file.into(),
                        line,
                        message: format!("bad ip {s:?}"),
                    })?;
                    if let Some(sn) = networks[ni].subnet {
                        if !sn.contains(net.addr) {
                            return ctx.err(h.ip.as_ref().map(|v| v.span()).unwrap_or(hs.span()), format!("ip {} of host {name:?} is outside subnet {sn} of network {nname:?}", net.addr));
                        }
                    }
                    Some(net)
                }
                None => {
                    match networks[ni].subnet {
                        // IPAM: the next free address, as Docker does.
                        Some(sn) => {
                            let mut a = sn.network() + 1;
                            let last = sn.broadcast();
                            while a < last && used[ni].contains(&a) {
                                a += 1;
                            }
                            if a >= last {
                                return ctx.err(hs.span(), format!("network {nname:?} has no free address left for host {name:?}"));
                            }
                            used[ni].insert(a);
                            Some(Ipv4Net {
                                addr: Ipv4Addr::from(a),
                                prefix: sn.prefix,
                            })
                        }
                        None => None,
                    }
                }
            };
            let mac = match macs.get(i).filter(|s| !s.is_empty()) {
                Some(s) => match parse_mac(s) {
                    Some(m) if m[0] & 1 == 0 && m != [0; 6] => m,
                    Some(_) => {
                        return ctx.err(
                            h.mac.as_ref().map(|v| v.span()).unwrap_or(hs.span()),
                            format!("mac {s:?} is not a unicast address"),
                        )
                    }
                    None => {
                        return ctx.err(
                            h.mac.as_ref().map(|v| v.span()).unwrap_or(hs.span()),
                            format!("mac {s:?} is not like \"02:00:00:00:00:01\""),
                        )
                    }
                },
                // Derived from the address, as Docker does (02:42 + IPv4).
                None => match ip {
                    Some(ip) => {
                        let o = ip.addr.octets();
                        [0x02, 0x42, o[0], o[1], o[2], o[3]]
                    }
                    None => {
                        // No address: derive from the names, stable across runs.
                        let mut hsh: u32 = 2166136261;
                        for b in name.bytes().chain([b'.']).chain(nname.bytes()) {
                            hsh = (hsh ^ b as u32).wrapping_mul(16777619);
                        }
                        let b = hsh.to_be_bytes();
                        [0x02, 0x43, b[0], b[1], b[2], b[3]]
                    }
                },
            };
            if let Some(other) = macs_seen.insert(mac, format!("{name}.{nname}")) {
                return ctx.err(
                    hs.span(),
                    format!(
                        "mac {} of host {name:?} is already used by {other}",
                        fmt_mac(&mac)
                    ),
                );
            }
            links.push(HostLink {
                network: ni,
                ifname: format!("eth{i}"),
                ip,
                mac,
            });
            ports.push(PortCfg {
                name: format!("{name}.{nname}"),
                kind: if veth { PortKind::Afxdp } else { PortKind::Tap },
                interface: format!("eth{i}"),
                xdp_mode: host_xdp_mode,
                mode: PortMode::Access { network: ni },
                learning: true,
                flood_unknown: true,
                flood_multicast: true,
                mtu,
                host: Some(name.clone()),
                outer: None,
                removed: false,
                netns: Some(name.clone()),
                line,
            });
        }
        let aliases = h
            .aliases
            .as_ref()
            .map(|a| a.get_ref().clone())
            .unwrap_or_default();
        hosts.push(Host {
            name,
            links,
            aliases,
            ipv6: h.ipv6.unwrap_or(false),
            mtu,
            line,
        });
    }

    // [[port]]
    for ps in &raw.port {
        let line = ctx.line(ps.span().start);
        let p = ps.get_ref();
        check_name(&ctx, "port", &p.name)?;
        let name = p.name.get_ref().clone();
        if name.len() > 15 {
            return ctx.err(
                p.name.span(),
                format!("port name {name:?} is longer than 15 characters (a device name)"),
            );
        }
        if ports.iter().any(|x| x.name == name) {
            return ctx.err(p.name.span(), format!("port {name:?} is defined twice"));
        }
        let kind = match p.kind.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("tap") => PortKind::Tap,
            Some("afxdp") => {
                if p.interface.is_none() {
                    return ctx.err(ps.span(), format!("afxdp port {name:?} needs `interface`: the existing interface it attaches to"));
                }
                PortKind::Afxdp
            }
            Some(other) => {
                return ctx.err(
                    p.kind.as_ref().map(|k| k.span()).unwrap_or(ps.span()),
                    format!("kind {other:?} is not one of \"tap\", \"afxdp\""),
                )
            }
        };
        let xdp_mode = match p.xdp_mode.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("auto") => XdpMode::Auto,
            Some("native") => XdpMode::Native,
            Some("generic") => XdpMode::Generic,
            Some(other) => {
                return ctx.err(
                    p.xdp_mode.as_ref().map(|k| k.span()).unwrap_or(ps.span()),
                    format!("xdp_mode {other:?} is not one of \"native\", \"generic\", \"auto\""),
                )
            }
        };
        let mode_s =
            p.mode
                .as_ref()
                .map(|m| m.get_ref().as_str())
                .unwrap_or(if p.networks.is_some() {
                    "trunk"
                } else {
                    "access"
                });
        let mode = match mode_s {
            "access" => {
                let Some(n) = &p.network else {
                    return ctx.err(ps.span(), format!("access port {name:?} needs `network`"));
                };
                if p.networks.is_some() || p.native.is_some() {
                    return ctx.err(
                        ps.span(),
                        format!("access port {name:?} takes `network`, not `networks` or `native`"),
                    );
                }
                PortMode::Access {
                    network: net_idx(n, &format!("port {name:?}"))?,
                }
            }
            "trunk" => {
                let mut allowed = Vec::new();
                if let Some(ns) = &p.networks {
                    for n in ns.get_ref() {
                        let Some(i) = networks.iter().position(|x| &x.name == n) else {
                            return ctx.err(
                                ns.span(),
                                format!("port {name:?} names network {n:?}, which is not defined"),
                            );
                        };
                        if networks[i].vlan.is_none() {
                            return ctx.err(ns.span(), format!("network {n:?} has no vlan, so trunk port {name:?} cannot carry it tagged (make it `native`, or give the network a vlan)"));
                        }
                        if !allowed.contains(&i) {
                            allowed.push(i);
                        }
                    }
                }
                let native = match &p.native {
                    Some(n) => Some(net_idx(n, &format!("port {name:?}"))?),
                    None => None,
                };
                if allowed.is_empty() && native.is_none() {
                    return ctx.err(ps.span(), format!("trunk port {name:?} carries no network: give `networks` and/or `native`"));
                }
                PortMode::Trunk { allowed, native }
            }
            "underlay" => {
                if p.network.is_some() || p.networks.is_some() || p.native.is_some() {
                    return ctx.err(
                        ps.span(),
                        format!("underlay port {name:?} carries no network: it takes no `network`, `networks` or `native`"),
                    );
                }
                // A trunk of no network: classify would drop everything;
                // the VTEP's decapsulation takes its frames first.
                PortMode::Trunk {
                    allowed: Vec::new(),
                    native: None,
                }
            }
            other => {
                return ctx.err(
                    p.mode.as_ref().map(|m| m.span()).unwrap_or(ps.span()),
                    format!("mode {other:?} is not one of \"access\", \"trunk\", \"underlay\""),
                )
            }
        };
        let interface = p
            .interface
            .as_ref()
            .map(|i| i.get_ref().clone())
            .unwrap_or_else(|| name.clone());
        if interface.is_empty() || interface.len() > 15 || interface.contains('/') {
            return ctx.err(
                p.interface.as_ref().map(|i| i.span()).unwrap_or(ps.span()),
                format!("interface {interface:?} is not a valid device name"),
            );
        }
        if interface == "lo"
            || interface.starts_with("eth") && kind == PortKind::Tap && p.interface.is_some()
        {
            return ctx.err(p.interface.as_ref().map(|i| i.span()).unwrap_or(ps.span()), format!("interface {interface:?}: a bare TAP port must not take the name of an existing interface of the machine"));
        }
        let mtu = match &p.mtu {
            Some(m) => int_in(&ctx, "mtu", m, 68, MAX_MTU)? as u16,
            None => DEFAULT_MTU,
        };
        let netns = match &p.namespace {
            Some(ns) => {
                check_name(&ctx, "namespace", ns)?;
                if kind != PortKind::Tap {
                    return ctx.err(ns.span(), "`namespace` is for TAP ports: an AF_XDP port attaches to an interface where it is");
                }
                if hosts.iter().any(|h| &h.name == ns.get_ref()) {
                    return ctx.err(
                        ns.span(),
                        format!(
                            "namespace {:?} is a host's: give the host another network instead",
                            ns.get_ref()
                        ),
                    );
                }
                Some(ns.get_ref().clone())
            }
            None => None,
        };
        ports.push(PortCfg {
            name,
            kind,
            interface,
            xdp_mode,
            mode,
            learning: p.learning.unwrap_or(true),
            flood_unknown: p.flood_unknown.unwrap_or(true),
            flood_multicast: p.flood_multicast.unwrap_or(true),
            mtu,
            host: None,
            outer: None,
            removed: false,
            netns,
            line,
        });
    }

    // macvlan networks: their parent must be a port that carries them.
    let mut macvlans = Vec::new();
    for (ni, rn) in raw.network.iter().enumerate() {
        let rn = rn.get_ref();
        let kind = rn
            .kind
            .as_ref()
            .map(|k| k.get_ref().as_str())
            .unwrap_or("bridge");
        match kind {
            "bridge" => {
                if let Some(p) = rn.parent.as_ref().or(rn.macvlan_mode.as_ref()) {
                    return ctx.err(
                        p.span(),
                        "`parent` and `macvlan_mode` are for networks of kind = \"macvlan\"",
                    );
                }
                continue;
            }
            "macvlan" => {}
            other => {
                let span = rn.kind.as_ref().map(|k| k.span()).unwrap_or(rn.name.span());
                return ctx.err(
                    span,
                    format!("kind {other:?} is not one of \"bridge\", \"macvlan\""),
                );
            }
        }
        let Some(parent) = &rn.parent else {
            return ctx.err(
                rn.name.span(),
                format!(
                    "macvlan network {:?} needs a `parent` port",
                    rn.name.get_ref()
                ),
            );
        };
        let Some(pi) = ports
            .iter()
            .position(|p| &p.name == parent.get_ref() && p.host.is_none())
        else {
            return ctx.err(
                parent.span(),
                format!(
                    "parent {:?} is not a [[port]] of this topology",
                    parent.get_ref()
                ),
            );
        };
        let carries = match &ports[pi].mode {
            PortMode::Access { network } => *network == ni,
            PortMode::Trunk { allowed, native } => allowed.contains(&ni) || *native == Some(ni),
        };
        if !carries {
            return ctx.err(parent.span(), format!(
                "parent port {:?} does not carry network {:?}: list it in the port's `networks` (tagged with the network's vlan, like a parent eth0.10), or make it the port's `network` or `native`",
                parent.get_ref(), rn.name.get_ref()));
        }
        let mode = match rn.macvlan_mode.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("bridge") => MacvlanMode::Bridge,
            Some("vepa") => MacvlanMode::Vepa,
            Some("private") => MacvlanMode::Private,
            Some("passthru") => MacvlanMode::Passthru,
            Some(other) => {
                let span = rn
                    .macvlan_mode
                    .as_ref()
                    .map(|m| m.span())
                    .unwrap_or(rn.name.span());
                return ctx.err(span, format!("macvlan_mode {other:?} is not one of \"bridge\", \"vepa\", \"private\", \"passthru\""));
            }
        };
        for (qi, q) in ports.iter().enumerate() {
            let member = match &q.mode {
                PortMode::Access { network } => *network == ni,
                PortMode::Trunk { allowed, native } => allowed.contains(&ni) || *native == Some(ni),
            };
            if member && qi != pi && q.host.is_none() {
                return ctx.err(
                    rn.name.span(),
                    format!(
                        "port {:?} carries macvlan network {:?}: only its parent and its hosts may",
                        q.name,
                        rn.name.get_ref()
                    ),
                );
            }
        }
        let nhosts = hosts
            .iter()
            .filter(|h| h.links.iter().any(|l| l.network == ni))
            .count();
        if mode == MacvlanMode::Passthru && nhosts > 1 {
            return ctx.err(rn.name.span(), format!("macvlan_mode \"passthru\" gives the parent to a single host; network {:?} has {nhosts}", rn.name.get_ref()));
        }
        macvlans.push((ni, Macvlan { parent: pi, mode }));
    }

    // [[fdb]]
    let mut fdb = Vec::new();
    let mut vtep_fdb = Vec::new();
    for fs in &raw.fdb {
        let line = ctx.line(fs.span().start);
        let f = fs.get_ref();
        let network = net_idx(&f.network, "static entry")?;
        let mac = match parse_mac(f.mac.get_ref()) {
            Some(m) if m[0] & 1 == 0 => m,
            Some(_) => {
                return ctx.err(
                    f.mac.span(),
                    format!("static entry mac {:?} is not unicast", f.mac.get_ref()),
                )
            }
            None => {
                return ctx.err(
                    f.mac.span(),
                    format!(
                        "static entry mac {:?} is not like \"02:00:00:00:00:99\"",
                        f.mac.get_ref()
                    ),
                )
            }
        };
        let port_s = match (&f.port, &f.vtep) {
            (Some(p), None) => p,
            (None, Some(v)) => {
                // Checked with the [vtep] below.
                vtep_fdb.push((network, mac, v.clone(), f.mac.span()));
                continue;
            }
            _ => return ctx.err(fs.span(), "static entry needs either `port` or `vtep`"),
        };
        let Some(port) = ports.iter().position(|p| &p.name == port_s.get_ref()) else {
            return ctx.err(port_s.span(), format!("static entry names port {:?}, which is not defined (host ports are named HOST.NETWORK)", port_s.get_ref()));
        };
        let carries = match &ports[port].mode {
            PortMode::Access { network: n } => *n == network,
            PortMode::Trunk { allowed, native } => {
                allowed.contains(&network) || *native == Some(network)
            }
        };
        if !carries {
            return ctx.err(
                port_s.span(),
                format!(
                    "port {:?} does not carry network {:?}",
                    port_s.get_ref(),
                    f.network.get_ref()
                ),
            );
        }
        if fdb
            .iter()
            .any(|e: &StaticFdb| e.network == network && e.mac == mac)
        {
            return ctx.err(f.mac.span(), "static entry is defined twice");
        }
        fdb.push(StaticFdb {
            network,
            mac,
            port,
            line,
        });
    }

    if ports.len() > 1000 {
        return Err(ConfigError {
            file: file.into(),
            line: 1,
            message: format!("{} ports: at most 1000 are supported", ports.len()),
        });
    }
    if networks.is_empty() {
        return Err(ConfigError {
            file: file.into(),
            line: 1,
            message: "the topology defines no [[network]]".into(),
        });
    }
    for (ni, m) in macvlans {
        networks[ni].macvlan = Some(m);
    }
    let vtep = vtep_section(&ctx, &raw, &mut networks, &mut hosts, &mut ports, vtep_fdb)?;
    Ok(Topology {
        switch,
        networks,
        hosts,
        ports,
        fdb,
        vtep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> ConfigError {
        parse("t.toml", src).expect_err("should be rejected")
    }

    #[test]
    fn default_topology_parses() {
        let t = parse("default", DEFAULT_TOPOLOGY).expect("default parses");
        assert_eq!(t.hosts.len(), 3);
        assert_eq!(t.ports[0].name, "h1.lan");
        // The switch holds .1, so IPAM starts at .2.
        assert_eq!(
            t.hosts[0].links[0].ip.map(|n| n.to_string()),
            Some("10.0.0.2/24".into())
        );
        assert_eq!(t.hosts[2].links[0].mac, [0x02, 0x42, 10, 0, 0, 4]);
    }

    #[test]
    fn ipam_skips_explicit_addresses() {
        let t = parse("t", "[[network]]\nname='n'\nsubnet='10.1.0.0/24'\n[[host]]\nname='a'\nnetworks=['n']\n[[host]]\nname='b'\nnetworks=['n']\nip=['10.1.0.1/24']\n").expect("ok");
        assert_eq!(
            t.hosts[0].links[0].ip.map(|n| n.addr.to_string()),
            Some("10.1.0.2".into())
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = err("[[network]]\nname = 'lan'\nsubnet = '10.0.0.0/24'\n\n[[host]]\nname = 'h1'\nnetworks = ['wan']\n");
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("wan"), "{e}");

        let e = err("[[network]]\nname = 'lan'\nsubnet = '10.0.0.300/24'\n");
        assert_eq!(e.line, 3, "{e}");

        let e = err("[switch]\nnmae = 'x'\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("nmae"), "{e}");

        let e = err("[[network]]\nname = 'a.b'\n");
        assert_eq!(e.line, 2);

        let e = err("[[network]]\nname='n'\n[[host]]\nname='h'\nnetworks=['n']\nmac=['01:00:00:00:00:01']\n");
        assert_eq!(e.line, 6, "{e}");

        let e = err("[switch]\nworkers = 0\n[[network]]\nname='n'\n");
        assert_eq!(e.line, 2);

        let e = err("this is not toml");
        assert_eq!(e.line, 1);
    }

    #[test]
    fn trunk_ports() {
        let t = parse("t", "[[network]]\nname='a'\nvlan=10\n[[network]]\nname='b'\nvlan=20\n[[network]]\nname='c'\n[[port]]\nname='up0'\nmode='trunk'\nnetworks=['a','b']\nnative='c'\n").expect("ok");
        assert_eq!(
            t.ports[0].mode,
            PortMode::Trunk {
                allowed: vec![0, 1],
                native: Some(2)
            }
        );
        let e = err("[[network]]\nname='a'\n[[port]]\nname='up0'\nmode='trunk'\nnetworks=['a']\n");
        assert!(e.message.contains("no vlan"), "{e}");
        assert_eq!(e.line, 6);
    }

    const VTEP: &str = "[vtep]\nport = \"ul0\"\naddress = \"192.0.2.1/24\"\n[[port]]\nname = \"ul0\"\nmode = \"underlay\"\n";

    #[test]
    fn vxlan_keys() {
        let t = parse(
            "t",
            &format!("[[network]]\nname='n'\nvni=1000\nvtep_peers=['192.0.2.2','192.0.2.3']\n[[host]]\nname='h'\nnetworks=['n']\n{VTEP}[[fdb]]\nnetwork='n'\nmac='02:00:00:00:00:99'\nvtep='192.0.2.3'\n"),
        )
        .expect("vxlan topology parses");
        assert_eq!(t.networks[0].vni, Some(1000));
        assert_eq!(t.networks[0].vtep_peers.len(), 2);
        // Hosts on a VXLAN network get the underlay MTU minus 50.
        assert_eq!(t.hosts[0].mtu, 1450);
    }

    #[test]
    fn vxlan_errors_name_the_line() {
        // A vni without [vtep].
        let e = err("[[network]]\nname='n'\nvni=1000\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("[vtep]"), "{e}");
        // A peer outside the prefix with no gateway.
        let e = err(&format!(
            "[[network]]\nname='n'\nvni=7\nvtep_peers=['198.51.100.9']\n{VTEP}"
        ));
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("gateway"), "{e}");
        // The same VNI twice.
        let e = err(&format!(
            "[[network]]\nname='a'\nvni=7\n[[network]]\nname='b'\nvni=7\n{VTEP}"
        ));
        assert_eq!(e.line, 6, "{e}");
        // [vtep] naming a port that is not an underlay.
        let e = err("[vtep]\nport = \"p\"\naddress = \"192.0.2.1/24\"\n[[network]]\nname='n'\n[[port]]\nname='p'\nnetwork='n'\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("underlay"), "{e}");
        // A VNI out of range.
        let e = err(&format!("[[network]]\nname='n'\nvni=16777216\n{VTEP}"));
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn macvlan_errors() {
        // The parent must carry the network.
        let e = err("[[network]]\nname='mv'\nkind='macvlan'\nparent='up'\n[[network]]\nname='x'\n[[port]]\nname='up'\nnetwork='x'\n");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("does not carry"), "{e}");
        // passthru takes one host.
        let e = err("[[network]]\nname='mv'\nkind='macvlan'\nparent='up'\nmacvlan_mode='passthru'\n[[host]]\nname='a'\nnetworks=['mv']\n[[host]]\nname='b'\nnetworks=['mv']\n[[port]]\nname='up'\nnetwork='mv'\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("single host"), "{e}");
    }
}
