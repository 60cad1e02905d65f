//! The topology file (TOML): parsing and validation.
//!
//! Everything is checked before anything is created, and every error names
//! the line of the file and what is wrong with it.

use serde::Deserialize;
use shunt_parsers::MacAddr;
use std::fmt;
use std::net::Ipv4Addr;
use toml::Spanned;

use crate::ids::MAX_PORTS;

pub mod addresses;
mod fdb;
pub mod guard;
mod host;
mod impair;
pub mod mirror;
mod network;
mod port;
mod stp;
mod switch;
mod vtep;
pub use addresses::Ipv4Net;
pub use guard::{FlapAction, LinkLocal, MacFlapCfg, StormCfg, StormRate};
pub use impair::{port_impairs, ImpairCfg};
pub use mirror::{MirrorCfg, MirrorDir};
pub use stp::{StpCfg, StpMode, StpPortCfg};
use vtep::vtep_section;
pub use vtep::{inner_mtu, VXLAN_OVERHEAD};

pub const DEFAULT_NAME: &str = "shunt";
pub const DEFAULT_MTU: u16 = 1500;
/// The largest MTU a port may have: jumbo frames. A TAP's and a packet
/// port's frames go into own slots of 64 KiB (pipeline::MAX_FRAME).
pub const MAX_MTU: i64 = 9000;
/// The largest MTU of an AF_XDP port: a frame (with a VLAN tag) must fit a
/// UMEM frame after its headroom (port::MAX_UMEM_FRAME).
pub const MAX_AFXDP_MTU: i64 = 3800;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    Tap,
    Afxdp,
    /// An AF_PACKET socket with the virtio-net header (port/packet.rs).
    Packet,
}

impl PortKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Afxdp => "afxdp",
            PortKind::Packet => "packet",
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

impl PortMode {
    /// Whether the port carries network `ni`, tagged or not.
    pub fn carries(&self, ni: usize) -> bool {
        match self {
            PortMode::Access { network } => *network == ni,
            PortMode::Trunk { allowed, native } => allowed.contains(&ni) || *native == Some(ni),
        }
    }
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
    /// 01:80:c2:00:00:0X frames: dropped or flooded (`link_local`).
    pub link_local: LinkLocal,
    /// IGMP/MLD snooping (docs/multicast.md).
    pub mcast: McastCfg,
    pub line: usize,
}

/// A network's multicast keys (docs/topology.md, docs/multicast.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McastCfg {
    /// `multicast_snooping`, default true (as the Linux bridge).
    pub snooping: bool,
    /// `multicast_querier`, default false (as the Linux bridge).
    pub querier: bool,
    /// `multicast_flood_unregistered`, default false: the Linux bridge's
    /// way (unregistered groups flooded while no querier is known, to the
    /// router ports once one is); true: always flooded.
    pub flood_unregistered: bool,
}

impl Default for McastCfg {
    fn default() -> McastCfg {
        McastCfg {
            snooping: true,
            querier: false,
            flood_unregistered: false,
        }
    }
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
    pub mac: MacAddr,
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
    /// Most MACs learned behind the port (`max_learned`; 0: no limit).
    pub max_learned: usize,
    /// A host port on a veth (`link = "veth"`): the end in the switch's
    /// namespace that the packet socket or AF_XDP attaches to (named at
    /// bring-up).
    pub outer: Option<String>,
    /// Detached at run time: the id stays taken, the port carries nothing.
    pub removed: bool,
    /// The namespace the TAP device lives in: the host's, a `[[port]]`'s
    /// `namespace`, or None (the switch's own).
    pub netns: Option<String>,
    /// Spanning tree: cost, priority, edge (`stp_cost`, ...).
    pub stp: StpPortCfg,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct StaticFdb {
    pub network: usize,
    pub mac: MacAddr,
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
    /// How workers wait for frames (`poll`, docs/topology.md).
    pub poll: PollMode,
    /// How TAP frames reach the kernel (`tap_io`).
    pub tap_io: TapIo,
    /// Queues of each TAP and of each AF_XDP veth host's veth (`multiqueue
    /// = true`: one per worker, spread by the kernel by flow hash; else 1).
    pub tap_queues: usize,
    /// Spanning tree (`stp`, `stp_priority`, timers; docs/stp.md).
    pub stp: StpCfg,
    /// MAC-flap detection (`mac_flap`; None: off).
    pub mac_flap: Option<MacFlapCfg>,
}

/// How TAP frames move (`[switch] tap_io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapIo {
    /// One readv(2) or writev(2) per frame.
    Syscall,
    /// A batch of reads or writes per io_uring_enter(2), one ring per
    /// worker (docs/decisions.md, "Batched TAP I/O").
    Uring,
}

impl TapIo {
    pub fn name(self) -> &'static str {
        match self {
            TapIo::Syscall => "syscall",
            TapIo::Uring => "uring",
        }
    }
}

/// How a worker waits for frames (`[switch] poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Sleep in poll(2) whenever no port has a frame: no CPU when idle, a
    /// wake-up's latency on the next frame.
    Interrupt,
    /// After the last frame keep polling without sleeping for `budget_us`
    /// microseconds, then sleep: a busy port never waits for a wake-up, an
    /// idle switch sleeps.
    Adaptive { budget_us: u32 },
    /// Never sleep (a core given to the switch).
    Busy,
}

impl PollMode {
    /// The budget when `poll_budget_us` is not given: about the gap between
    /// a TCP stream's frames on this machine (docs/PERF.md).
    pub const DEFAULT_BUDGET_US: u32 = 50;

    pub fn name(self) -> &'static str {
        match self {
            PollMode::Interrupt => "interrupt",
            PollMode::Adaptive { .. } => "adaptive",
            PollMode::Busy => "busy",
        }
    }
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
    /// Link impairment and flap schedules (`[[impair]]`, docs/impair.md).
    pub impair: Vec<ImpairCfg>,
    /// Storm control (`[[storm]]`, docs/storm.md).
    pub storm: Vec<StormCfg>,
    /// Mirror ports (`[[mirror]]`, `shunt mirror`, docs/mirror.md).
    pub mirror: Vec<MirrorCfg>,
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
    pub fdb: Vec<(usize, MacAddr, usize)>,
    pub line: usize,
}

impl Topology {
    pub fn network_index(&self, name: &str) -> Option<usize> {
        self.networks.iter().position(|n| n.name == name)
    }
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }
    /// What a new mirror is checked against (`shunt mirror add`).
    pub fn mirror_view(&self) -> mirror::MirrorView<'_> {
        mirror::MirrorView {
            hosts: &self.hosts,
            ports: &self.ports,
            networks: &self.networks,
            underlay: self.vtep.as_ref().map(|v| v.port),
            mirrors: &self.mirror,
        }
    }
}

// ---- raw, as written in the file; each table's in its own file ----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    switch: Option<Spanned<switch::RawSwitch>>,
    #[serde(default)]
    network: Vec<Spanned<network::RawNetwork>>,
    #[serde(default)]
    host: Vec<Spanned<host::RawHost>>,
    #[serde(default)]
    port: Vec<Spanned<port::RawPort>>,
    #[serde(default)]
    fdb: Vec<Spanned<fdb::RawFdb>>,
    vtep: Option<Spanned<vtep::RawVtep>>,
    #[serde(default)]
    impair: Vec<Spanned<impair::RawImpair>>,
    #[serde(default)]
    storm: Vec<Spanned<guard::RawStorm>>,
    #[serde(default)]
    mirror: Vec<Spanned<mirror::RawMirror>>,
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

/// A switch name given on the command line that cannot be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("switch name {0:?} is not valid: use 1 to 12 letters, digits, '-' or '_'")]
pub struct BadSwitchName(pub String);

/// Checks a switch name given on the command line (`shunt up --name`).
pub fn check_switch_name(n: &str) -> Result<(), BadSwitchName> {
    let ok = !n.is_empty()
        && n.len() <= 12
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BadSwitchName(n.to_string()))
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
    let switch = switch::section(&ctx, raw.switch.as_ref())?;
    let mut networks = network::sections(&ctx, &raw.network)?;
    let (mut hosts, mut ports) = host::sections(&ctx, &raw.host, &networks)?;
    let roles = port::Roles {
        underlay: raw
            .vtep
            .as_ref()
            .map(|v| v.get_ref().port.get_ref().as_str()),
        parents: raw
            .network
            .iter()
            .enumerate()
            .filter(|(_, n)| n.get_ref().is_macvlan())
            .filter_map(|(i, n)| Some((n.get_ref().parent.as_ref()?.get_ref().as_str(), i)))
            .collect(),
    };
    let underlay = port::sections(&ctx, &raw.port, &networks, &hosts, &roles, &mut ports)?;
    let macvlans = network::macvlans(&ctx, &raw.network, &hosts, &ports)?;
    let (fdb, vtep_fdb) = fdb::sections(&ctx, &raw.fdb, &networks, &ports)?;
    if ports.len() > MAX_PORTS {
        return Err(ConfigError {
            file: file.into(),
            line: 1,
            message: format!("{} ports: at most {MAX_PORTS} are supported", ports.len()),
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
    let vtep = vtep_section(
        &ctx,
        &raw,
        &mut networks,
        &mut hosts,
        &mut ports,
        vtep_fdb,
        &underlay,
    )?;
    let impair = impair::sections(&ctx, &raw.impair, &hosts, &ports)?;
    let storm = guard::storm_sections(&ctx, &raw.storm, &hosts, &ports)?;
    let view = mirror::MirrorView {
        hosts: &hosts,
        ports: &ports,
        networks: &networks,
        underlay: vtep.as_ref().map(|v| v.port),
        mirrors: &[],
    };
    let mirror = mirror::sections(&ctx, &raw.mirror, view)?;
    Ok(Topology {
        switch,
        networks,
        hosts,
        ports,
        fdb,
        vtep,
        impair,
        storm,
        mirror,
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
        assert_eq!(t.hosts[2].links[0].mac, MacAddr([0x02, 0x42, 10, 0, 0, 4]));
    }

    #[test]
    fn poll_modes() {
        let net = "[[network]]\nname = 'n'\nsubnet = '10.1.0.0/24'\n";
        let t = |src: &str| parse("t", &format!("{src}{net}")).map(|t| t.switch.poll);
        assert_eq!(t("").ok(), Some(PollMode::Interrupt));
        assert_eq!(t("[switch]\npoll = 'busy'\n").ok(), Some(PollMode::Busy));
        assert_eq!(
            t("[switch]\npoll = 'adaptive'\npoll_budget_us = 20\n").ok(),
            Some(PollMode::Adaptive { budget_us: 20 })
        );
        let e = err("[switch]\nname = 'x'\npoll = 'spin'\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("\"adaptive\""), "{e}");
    }

    #[test]
    fn veth_hosts_attach_with_packet_sockets_unless_told() {
        let net = "[[network]]\nname = 'n'\n[[host]]\nname = 'a'\nnetworks = ['n']\n";
        let kind = |keys: &str| parse("t", &format!("{net}{keys}")).map(|t| t.ports[0].kind);
        assert_eq!(kind("").ok(), Some(PortKind::Tap));
        assert_eq!(kind("link = 'veth'\n").ok(), Some(PortKind::Packet));
        assert_eq!(
            kind("link = 'veth'\nveth_attach = 'packet'\n").ok(),
            Some(PortKind::Packet)
        );
        assert_eq!(
            kind("link = 'veth'\nveth_attach = 'afxdp'\n").ok(),
            Some(PortKind::Afxdp)
        );
        let e = err(&format!("{net}link = 'veth'\nveth_attach = 'xdp'\n"));
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("\"packet\", \"afxdp\""), "{e}");
        let e = err(&format!("{net}veth_attach = 'afxdp'\n"));
        assert!(e.message.contains("link = \"veth\""), "{e}");
        // Jumbo frames where the buffers take them: not into a UMEM frame.
        assert!(kind("link = 'veth'\nmtu = 9000\n").is_ok());
        assert!(kind("mtu = 9000\n").is_ok());
        let e = err(&format!(
            "{net}link = 'veth'\nveth_attach = 'afxdp'\nmtu = 9000\n"
        ));
        assert!(e.message.contains("68 to 3800"), "{e}");
        assert!(err(&format!("{net}mtu = 9001\n"))
            .message
            .contains("68 to 9000"));
        let port = |kind: &str, mtu: u16| {
            parse(
                "t",
                &format!(
                    "[[network]]\nname = 'n'\n[[port]]\nname = 'p'\nkind = '{kind}'\n\
                     interface = 'x0'\nnetwork = 'n'\nmtu = {mtu}\n"
                ),
            )
            .map(|t| t.ports[0].kind)
        };
        assert_eq!(port("packet", 9000).ok(), Some(PortKind::Packet));
        assert!(port("afxdp", 9000).is_err());
        assert!(err(
            "[[network]]\nname = 'n'\n[[port]]\nname = 'p'\nkind = 'packet'\nnetwork = 'n'\n"
        )
        .message
        .contains("needs `interface`"));
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
    #[test]
    fn underlay_inferred_from_vtep() {
        // No `mode = "underlay"`: the port [vtep] names is the underlay.
        let t = parse("t", "[[network]]\nname='n'\nvni=1000\n[vtep]\nport = 'ul'\naddress = '192.0.2.1/24'\n[[port]]\nname = 'ul'\nnamespace = 'under'\n").expect("the [vtep] port is the underlay");
        let v = t.vtep.as_ref().expect("vtep");
        assert_eq!(t.ports[v.port].name, "ul");
        assert_eq!(
            t.ports[v.port].mode,
            PortMode::Trunk {
                allowed: vec![],
                native: None
            }
        );
        // Another port that names no network still needs one, and is told so.
        let e = err("[[network]]\nname='n'\nvni=1000\n[vtep]\nport = 'ul'\naddress = '192.0.2.1/24'\n[[port]]\nname = 'ul'\n[[port]]\nname = 'x'\n");
        assert_eq!(e.line, 9, "{e}");
        assert!(
            e.message.contains("access port \"x\" needs `network`"),
            "{e}"
        );
        assert!(e.message.contains("[vtep]"), "{e}");
        // The [vtep] port naming a network is still no underlay.
        let e = err("[[network]]\nname='n'\n[vtep]\nport = 'ul'\naddress = '192.0.2.1/24'\n[[port]]\nname = 'ul'\nnetwork = 'n'\n");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("must have mode = \"underlay\""), "{e}");
    }

    #[test]
    fn macvlan_parent_carries_its_network() {
        // No `network` on the parent: it carries the macvlan network.
        let t = parse("t", "[[network]]\nname='mv'\nkind='macvlan'\nparent='up'\n[[host]]\nname='a'\nnetworks=['mv']\n[[port]]\nname='up'\nnamespace='outside'\n").expect("the parent carries mv");
        let up = t.port_index("up").expect("port up");
        assert_eq!(t.ports[up].mode, PortMode::Access { network: 0 });
        assert_eq!(t.networks[0].macvlan.map(|m| m.parent), Some(up));
        // The parent of two macvlan networks carries both tagged.
        let t = parse("t", "[[network]]\nname='m1'\nvlan=10\nkind='macvlan'\nparent='up'\n[[network]]\nname='m2'\nvlan=20\nkind='macvlan'\nparent='up'\n[[port]]\nname='up'\n").expect("a trunk of both");
        assert_eq!(
            t.ports[0].mode,
            PortMode::Trunk {
                allowed: vec![0, 1],
                native: None
            }
        );
        let e = err("[[network]]\nname='m1'\nkind='macvlan'\nparent='up'\n[[network]]\nname='m2'\nvlan=20\nkind='macvlan'\nparent='up'\n[[port]]\nname='up'\n");
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("\"m1\" has no vlan"), "{e}");
        // A parent that names another network is still told it does not carry it.
        let e = err("[[network]]\nname='mv'\nkind='macvlan'\nparent='up'\n[[network]]\nname='x'\n[[port]]\nname='up'\nnetwork='x'\n");
        assert!(e.message.contains("does not carry"), "{e}");
    }

    #[test]
    fn port_cap_is_the_runtime_s() {
        let mut src = String::from("[[network]]\nname='n'\n");
        for i in 0..=MAX_PORTS {
            src += &format!("[[port]]\nname='p{i}'\nnetwork='n'\n");
        }
        let e = err(&src);
        assert!(e.message.contains(&format!("at most {MAX_PORTS}")), "{e}");
    }
    #[test]
    fn attach_assigns_as_the_file_does() {
        // What `shunt attach a lan` then `shunt attach a bare` compute
        // (daemon/attach.rs) against host a written in the file.
        let base = "[[network]]\nname='lan'\nsubnet='10.1.0.0/24'\naddress='10.1.0.1'\n[[network]]\nname='bare'\n[[host]]\nname='b'\nnetworks=['lan']\n";
        let file = parse(
            "t",
            &format!("{base}[[host]]\nname='a'\nnetworks=['lan','bare']\n"),
        )
        .expect("with a");
        let mut running = parse("t", base).expect("without a");
        let mut got = Vec::new();
        for ni in 0..2 {
            let (ip, mac) = addresses::assign_link(&running, "a", ni).expect("an address");
            got.push((ip, mac));
            running.hosts.push(Host {
                name: "a".into(),
                links: vec![HostLink {
                    network: ni,
                    ifname: format!("eth{ni}"),
                    ip,
                    mac,
                }],
                aliases: vec![],
                ipv6: false,
                mtu: DEFAULT_MTU,
                line: 0,
            });
        }
        let want: Vec<_> = file.hosts[1].links.iter().map(|l| (l.ip, l.mac)).collect();
        assert_eq!(got, want);
        assert_eq!(want[0].1.to_string(), "02:42:0a:01:00:03");
        assert_eq!(want[1].1 .0[..2], [0x02, 0x43]);
    }
    #[test]
    fn attach_steps_over_a_taken_mac() {
        // b wrote the MAC a's address derives: a gets the next one up.
        let t = parse("t", "[[network]]\nname='lan'\nsubnet='10.1.0.0/24'\n[[host]]\nname='b'\nnetworks=['lan']\nmac=['02:42:0a:01:00:02']\n").expect("ok");
        let (ip, mac) = addresses::assign_link(&t, "a", 0).expect("an address");
        assert_eq!(ip.map(|i| i.to_string()).as_deref(), Some("10.1.0.2/24"));
        assert_eq!(mac.to_string(), "02:42:0a:01:00:03");
        assert!(addresses::assign_link(&t, "a", 7).is_err());
    }
}
