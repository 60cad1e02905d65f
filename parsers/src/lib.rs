//! Zero-copy typed views over the headers a userspace Ethernet switch reads
//! and writes: Ethernet, 802.1Q / 802.1ad tags, ARP, IPv4, IPv6, UDP, TCP,
//! VXLAN, IGMP and MLD ([`igmp`], [`mld`]: snooping) and the virtio-net
//! header, plus builders for the headers the
//! switch prepends and the software offloads ([`gso`]: checking offload
//! metadata, completing a checksum, segmenting a GSO super-frame).
//!
//! # Contract
//!
//! - **No panics on any input.** Every view (`EthernetFrame`, `VlanTag`,
//!   `ArpPacket`, `Ipv4Packet`, `Ipv6Packet`, `UdpPacket`, `TcpPacket`,
//!   `VxlanPacket`, `BpduPacket`)
//!   wraps any `T: AsRef<[u8]>`. `new_checked` / `check_len` verify that
//!   every field and every length-derived range (payload, options) lies
//!   inside the buffer; after that no accessor can panic. `new_unchecked`
//!   skips the check and is for buffers the caller just built.
//!   Raw-frame helpers (`vlan::outer_tag`, `vlan::push_tag`, `vlan::pop_tag`,
//!   `vxlan::encap_in_place`, `gso::check_header`, `gso::Segmenter`, ...)
//!   return `None`/`Err` instead of panicking.
//! - **No unsafe** (`#![forbid(unsafe_code)]`), **no allocation**, `no_std`
//!   (the default `std` feature only adds `std::error::Error` impls), and no
//!   dependencies.
//! - **Unknown values are data**: `EtherType::Unknown(0x88cc)`,
//!   `ArpOp::Unknown(..)`, `IpProtocol::Unknown(..)`. An 802.3 length field
//!   (STP BPDU, LLC) is `EtherType::Length(..)`, never an EtherType.
//! - Setters exist only on views over `T: AsMut<[u8]>`.
//!
//! # Hot path
//!
//! The forwarding path reads only the MAC addresses and the outer tag, and
//! needs no view for that: [`ethernet::dst_addr`], [`ethernet::src_addr`],
//! [`vlan::outer_tag`] each read a few fixed bytes; [`vlan::Untagged`] reads
//! past the tag a stage already knows of, [`ip::l4_ports`] the ports of a
//! TCP/UDP header, and [`vxlan::decap_for`] walks an outer frame for a VTEP
//! and says why it refused one. Tag and tunnel edits work
//! in place in a buffer with headroom and move only the 12 MAC bytes (or
//! nothing): [`vlan::push_tag`], [`vlan::pop_tag`], [`vlan::set_outer_tag`],
//! [`vxlan::encap_in_place`].
//!
//! # Example
//!
//! ```
//! use shunt_parsers::{EtherType, EthernetFrame, MacAddr};
//!
//! // An ARP request from 02:00:00:00:00:02, broadcast.
//! let frame = [
//!     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x06,
//! ];
//! let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
//! assert!(eth.dst_addr().is_broadcast());
//! assert_eq!(eth.src_addr(), "02:00:00:00:00:02".parse::<MacAddr>().unwrap());
//! assert_eq!(eth.ethertype(), EtherType::Arp);
//! assert!(EthernetFrame::new_checked(&frame[..13]).is_err());
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(any(feature = "std", test))]
extern crate std;

mod bytes;
mod error;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod gso;
pub mod igmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod mld;
pub mod stp;
pub mod tcp;
pub mod udp;
pub mod virtio_net;
pub mod vlan;
pub mod vxlan;

pub use arp::{ArpOp, ArpPacket, ArpRepr};
pub use error::{Error, Result};
pub use ethernet::{EtherType, EthernetFrame, MacAddr, ParseMacAddrError};
pub use ip::IpProtocol;
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use stp::{Bpdu, BpduPacket, BpduType};
pub use tcp::TcpPacket;
pub use udp::UdpPacket;
pub use vlan::{outer_tag, pop_tag, push_tag, Tag, Untagged, VlanTag};
pub use vxlan::{emit_vxlan_encap, VxlanEncap, VxlanPacket, VXLAN_HEADER_LEN};
