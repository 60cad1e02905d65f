//! Namespaces and the devices that plug them into the switch: TAPs moved
//! into a namespace, veth pairs, packet and AF_XDP sockets. Used by
//! bring-up and by `shunt attach`.

use crate::config::{Ipv4Net, XdpMode};
use crate::netns::{self, NetnsError};
use crate::port::sys::ChecksumOffError;
use crate::port::{
    AfXdpError, AfXdpPort, Device, PacketError, PacketPort, SharedUmem, Tap, TapError,
};
use shunt_parsers::MacAddr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// What went wrong while creating a namespace or a device, and for whom.
#[derive(Debug, thiserror::Error)]
pub enum PlugError {
    #[error("host {host}: {source}")]
    Netns { host: String, source: NetnsError },
    #[error("port {port}: {source}")]
    Tap { port: String, source: TapError },
    #[error("port {port}: {source}")]
    AfXdp { port: String, source: AfXdpError },
    #[error("port {port}: {source}")]
    Packet { port: String, source: PacketError },
    #[error("host {host}: {source}")]
    ChecksumOff {
        host: String,
        source: ChecksumOffError,
    },
}

pub(super) fn nerr(who: &str) -> impl Fn(NetnsError) -> PlugError {
    let host = who.to_string();
    move |source| PlugError::Netns {
        host: host.clone(),
        source,
    }
}

/// Creates namespace `ns` with loopback up and, unless `ipv6`, IPv6 off
/// (no router solicitations, DAD or MLD noise on the wire: devices that
/// arrive in the namespace take the default).
pub(super) fn make_namespace(ns: &str, ipv6: bool) -> Result<(), PlugError> {
    netns::add(ns).map_err(nerr(ns))?;
    if !ipv6 {
        netns::in_netns(ns, || {
            for k in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1");
            }
        })
        .map_err(nerr(ns))?;
    }
    netns::ip(&["-n", ns, "link", "set", "lo", "up"]).map_err(nerr(ns))?;
    Ok(())
}

/// Frames a host's TAP holds on their way to the switch (the kernel's
/// default is 1,000, and tun drops what does not fit as the device's
/// `tx_dropped`). One TCP stream at 2-3 Gbit/s overflowed 1,000 whenever a
/// worker was away for a moment: 22,000 to 43,000 drops and as many
/// retransmits in 5 s; with 4,096, none to a few (docs/reliability.md).
pub(super) const TAP_TXQUEUELEN: u32 = 4096;

/// Creates a TAP for `port` and plugs it into namespace `ns` as `ifname`,
/// with the given MAC, MTU and address, up.
///
/// The TAP is created in the switch's namespace and then moved: a TAP
/// opened inside the other namespace would hold that namespace alive, and
/// deleting it must take the port down.
pub(super) fn plug_tap(
    port: &str,
    ns: &str,
    ifname: &str,
    mac: Option<MacAddr>,
    mtu: u16,
    ip: Option<Ipv4Net>,
    queues: usize,
) -> Result<Tap, PlugError> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let temp = format!("sht{:x}x{}", std::process::id(), SEQ.fetch_add(1, Relaxed));
    let tap = Tap::open_queues(&temp, queues).map_err(|source| PlugError::Tap {
        port: port.to_string(),
        source,
    })?;
    netns::ip(&["link", "set", "dev", &temp, "netns", ns]).map_err(nerr(ns))?;
    let mtu = mtu.to_string();
    let qlen = TAP_TXQUEUELEN.to_string();
    let mut args = vec![
        "-n",
        ns,
        "link",
        "set",
        "dev",
        &temp,
        "name",
        ifname,
        "mtu",
        &mtu,
        "txqueuelen",
        &qlen,
    ];
    let mac_s = mac.map(|m| m.to_string());
    if let Some(m) = &mac_s {
        args.extend(["address", m]);
    }
    args.push("up");
    netns::ip(&args).map_err(nerr(ns))?;
    add_address(ns, ifname, ip)?;
    Ok(tap)
}

/// Gives `ifname` in namespace `ns` its address, if it has one.
fn add_address(ns: &str, ifname: &str, ip: Option<Ipv4Net>) -> Result<(), PlugError> {
    if let Some(ip) = ip {
        netns::ip(&["-n", ns, "addr", "add", &ip.to_string(), "dev", ifname]).map_err(nerr(ns))?;
    }
    Ok(())
}

/// Creates a veth pair for a host port: one end in namespace `ns` as
/// `ifname` (MAC, MTU, address, up), the other in the switch's namespace,
/// where a packet socket or an AF_XDP socket attaches to it. `offloads`:
/// the switch's port carries the virtio-net header (a packet port), so the
/// host keeps its checksum offload and TSO; otherwise (AF_XDP) transmit
/// checksum offload is turned off in the host. `queues` > 1: both ends get
/// that many transmit and receive queues (the host's kernel spreads its
/// flows over its transmit queues by hash, and veth delivers transmit
/// queue k of one end on receive queue k of the other; native XDP wants
/// the peer's transmit queues no more than the receive queues). Returns
/// the outer name.
pub(super) fn plug_veth(
    ns: &str,
    ifname: &str,
    mac: MacAddr,
    mtu: u16,
    ip: Option<Ipv4Net>,
    offloads: bool,
    queues: usize,
) -> Result<String, PlugError> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let outer = format!("shv{:x}x{}", std::process::id(), SEQ.fetch_add(1, Relaxed));
    // The outer end takes frames larger than the port's MTU, so that the
    // switch sees them and counts them (oversize) instead of the kernel
    // dropping them unseen; 3000 stays under veth's limit for native XDP.
    let outer_mtu = mtu.max(3000).to_string();
    let mtu = mtu.to_string();
    let n = queues.max(1).to_string();
    let q: &[&str] = if queues > 1 {
        &["numtxqueues", &n, "numrxqueues", &n]
    } else {
        &[]
    };
    let mut args = vec!["link", "add", &outer];
    args.extend_from_slice(q);
    args.extend(["mtu", &outer_mtu, "type", "veth", "peer", "name", ifname]);
    args.extend_from_slice(q);
    args.extend(["netns", ns]);
    netns::ip(&args).map_err(nerr(ns))?;
    // The outer end is the switch's port, not an interface of the switch's
    // namespace: no IPv6 address, no router solicitations or MLD reports of
    // its own into the host.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{outer}/disable_ipv6"), "1");
    netns::ip(&[
        "-n",
        ns,
        "link",
        "set",
        "dev",
        ifname,
        "address",
        &mac.to_string(),
        "mtu",
        &mtu,
        "up",
    ])
    .map_err(nerr(ns))?;
    add_address(ns, ifname, ip)?;
    let set = if offloads {
        // TSO, USO and checksum offload stay on; what the header cannot say
        // (a tunnel's super-frames, a VLAN tag kept aside) goes off.
        crate::port::sys::vnet_features_only(ns, ifname)
    } else {
        // A veth offloads TCP/UDP checksums to its peer: the host's frames
        // would leave with a partial checksum, and AF_XDP carries no word
        // of that, so the switch's own stack and the hosts behind other
        // ports would see bad checksums and drop the frames. With the
        // offload off the host's kernel writes complete checksums.
        crate::port::sys::tx_checksum_off(ns, ifname)
    };
    set.map_err(|source| PlugError::ChecksumOff {
        host: ns.to_string(),
        source,
    })?;
    netns::ip(&["link", "set", "dev", &outer, "up"]).map_err(nerr(ns))?;
    Ok(outer)
}

/// Opens a packet port (AF_PACKET with the virtio-net header) on `ifname`.
pub(super) fn open_packet(port: &str, ifname: &str) -> Result<Device, PlugError> {
    let p = PacketPort::open(ifname).map_err(|source| PlugError::Packet {
        port: port.to_string(),
        source,
    })?;
    Ok(Device::Packet(std::sync::Arc::new(p)))
}

/// Opens an AF_XDP port on `ifname` with one socket on each of its first
/// `queues` queues, saying at start-up which mode it got and the largest
/// frame it carries.
pub(super) fn open_afxdp(
    port: &str,
    ifname: &str,
    mode: XdpMode,
    umem: &SharedUmem,
    queues: usize,
) -> Result<Device, PlugError> {
    let queues = u32::try_from(queues).unwrap_or(1);
    let x =
        AfXdpPort::open_queues(ifname, mode, umem, queues).map_err(|source| PlugError::AfXdp {
            port: port.to_string(),
            source,
        })?;
    crate::say!("shunt: port {port}: {}", x.summary());
    Ok(Device::AfXdp(Box::new(x)))
}

/// For an AF_XDP port on an interface the user brought: if it is a veth,
/// says at start-up what its peer's checksum offload does to TCP and UDP
/// (shunt's own veth hosts have it turned off).
pub(super) fn note_veth_checksums(port: &str, ifname: &str) {
    if is_veth(ifname) {
        crate::say!(
            "shunt: port {port}: {ifname} is a veth: TCP and UDP its peer's kernel sends carry partial checksums unless transmit checksum offload is off on the peer (`ethtool -K PEER tx off`); see docs/afxdp.md#checksums"
        );
    }
}

/// For a packet port on an interface the user brought: if it is a veth,
/// says which of its peer's offloads the virtio-net header cannot carry
/// (shunt's own veth hosts have them turned off).
pub(super) fn note_veth_tunnels(port: &str, ifname: &str) {
    if is_veth(ifname) {
        crate::say!(
            "shunt: port {port}: {ifname} is a veth: its peer's tunnel super-frames (VXLAN, GRE) cannot cross a packet port and are dropped unless their segmentation offload is off on the peer (`ethtool -K PEER tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off tx-gre-segmentation off`); see docs/afxdp.md#veth-hosts-packet-sockets"
        );
    }
}

fn is_veth(ifname: &str) -> bool {
    crate::port::sys::driver_name(ifname).is_ok_and(|d| d == "veth")
}
