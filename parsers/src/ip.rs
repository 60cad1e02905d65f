//! What IPv4 and IPv6 share: the protocol / next-header number.

use core::fmt;

/// IPv4 `protocol` / IPv6 `next_header` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// IPv6 hop-by-hop options (0).
    HopByHop,
    Icmp,
    Tcp,
    Udp,
    Icmpv6,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            v => IpProtocol::Unknown(v),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> Self {
        match p {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(v) => v,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::HopByHop => f.write_str("HopByHop"),
            IpProtocol::Icmp => f.write_str("ICMP"),
            IpProtocol::Tcp => f.write_str("TCP"),
            IpProtocol::Udp => f.write_str("UDP"),
            IpProtocol::Icmpv6 => f.write_str("ICMPv6"),
            IpProtocol::Unknown(v) => write!(f, "protocol {v}"),
        }
    }
}

/// The source and destination ports at the start of a TCP or UDP header
/// (its first 4 bytes, laid out the same in both), reading nothing else:
/// for a flow hash or a port match before the rest is checked. `None` if
/// `l4` is shorter than 4 bytes.
#[inline]
pub fn l4_ports(l4: &[u8]) -> Option<(u16, u16)> {
    match l4 {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_need_four_bytes() {
        assert_eq!(l4_ports(&[0xea, 0x07, 0x00, 0x35, 0x00]), Some((59911, 53)));
        assert_eq!(l4_ports(&[0xea, 0x07, 0x00, 0x35]), Some((59911, 53)));
        assert_eq!(l4_ports(&[0xea, 0x07, 0x00]), None);
        assert_eq!(l4_ports(&[]), None);
    }

    #[test]
    fn round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
    }
}
