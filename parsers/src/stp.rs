//! Spanning-tree BPDUs (IEEE 802.1D-2004 clause 9): the configuration BPDU
//! and the topology change notification of 802.1D STP, and the RST BPDU of
//! 802.1w RSTP, carried in an 802.3 frame (a length, not an EtherType) to
//! 01:80:c2:00:00:00 behind the LLC header `42 42 03`.
//!
//! ```text
//!  octet  0..2  protocol identifier (0)
//!         2     protocol version (0 STP, 2 RSTP)
//!         3     BPDU type (0x00 config, 0x80 TCN, 0x02 RST)
//!         4     flags (TC, proposal, port role, learning, forwarding, agreement, TCA)
//!         5..13 root identifier           13..17 root path cost
//!        17..25 bridge identifier         25..27 port identifier
//!        27..29 message age  29..31 max age  31..33 hello time  33..35 forward delay
//!        35     version 1 length (RST BPDU only, 0)
//! ```
//!
//! Times are in units of 1/256 second, as on the wire. [`BpduPacket`] is
//! the view over the BPDU (what follows the LLC header); [`Bpdu`] its
//! decoded form; [`bpdu_payload`] finds the BPDU in a whole frame and
//! [`Bpdu::emit_frame`] writes one.

use crate::bytes::{get_array, get_u16, get_u32, set_u16, set_u32};
use crate::error::{Error, Result};
use crate::ethernet::{self, EthernetFrame, MacAddr};

/// The bridge group address every BPDU is sent to.
pub const BRIDGE_GROUP: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]);
/// The LLC header of a BPDU: DSAP 0x42, SSAP 0x42, UI.
pub const LLC: [u8; 3] = [0x42, 0x42, 0x03];
/// Length of a topology change notification BPDU.
pub const TCN_LEN: usize = 4;
/// Length of a configuration BPDU.
pub const CONFIG_LEN: usize = 35;
/// Length of an RST BPDU.
pub const RST_LEN: usize = 36;
/// The longest frame [`Bpdu::emit_frame`] writes: Ethernet, LLC, RST BPDU,
/// padded to the 60-byte minimum.
pub const MAX_FRAME_LEN: usize = 60;

mod field {
    use core::ops::Range;

    pub const PROTOCOL: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const TYPE: usize = 3;
    pub const FLAGS: usize = 4;
    pub const ROOT: Range<usize> = 5..13;
    pub const COST: Range<usize> = 13..17;
    pub const BRIDGE: Range<usize> = 17..25;
    pub const PORT: Range<usize> = 25..27;
    pub const MESSAGE_AGE: Range<usize> = 27..29;
    pub const MAX_AGE: Range<usize> = 29..31;
    pub const HELLO: Range<usize> = 31..33;
    pub const FORWARD_DELAY: Range<usize> = 33..35;
    pub const V1_LEN: usize = 35;
}

/// Flag bits of the flags octet (802.1D-2004 9.3.3).
pub mod flags {
    pub const TC: u8 = 0x01;
    pub const PROPOSAL: u8 = 0x02;
    /// The two bits of the port role.
    pub const ROLE_MASK: u8 = 0x0c;
    pub const ROLE_SHIFT: u8 = 2;
    pub const LEARNING: u8 = 0x10;
    pub const FORWARDING: u8 = 0x20;
    pub const AGREEMENT: u8 = 0x40;
    pub const TCA: u8 = 0x80;
}

/// The BPDU type octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BpduType {
    Config,
    Tcn,
    Rst,
    Unknown(u8),
}

impl From<u8> for BpduType {
    fn from(v: u8) -> Self {
        match v {
            0x00 => BpduType::Config,
            0x80 => BpduType::Tcn,
            0x02 => BpduType::Rst,
            v => BpduType::Unknown(v),
        }
    }
}

impl From<BpduType> for u8 {
    fn from(t: BpduType) -> u8 {
        match t {
            BpduType::Config => 0x00,
            BpduType::Tcn => 0x80,
            BpduType::Rst => 0x02,
            BpduType::Unknown(v) => v,
        }
    }
}

/// The port role an RST BPDU announces (two bits of the flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BpduRole {
    /// 0: unknown (also what a configuration BPDU implies: designated is
    /// the receiver's reading, 802.1D-2004 9.3.4).
    Unknown,
    AlternateOrBackup,
    Root,
    Designated,
}

impl BpduRole {
    pub const fn from_bits(bits: u8) -> BpduRole {
        match (bits & flags::ROLE_MASK) >> flags::ROLE_SHIFT {
            0 => BpduRole::Unknown,
            1 => BpduRole::AlternateOrBackup,
            2 => BpduRole::Root,
            _ => BpduRole::Designated,
        }
    }

    pub const fn bits(self) -> u8 {
        let v = match self {
            BpduRole::Unknown => 0,
            BpduRole::AlternateOrBackup => 1,
            BpduRole::Root => 2,
            BpduRole::Designated => 3,
        };
        v << flags::ROLE_SHIFT
    }
}

/// A read/write view of a BPDU (the bytes after the LLC header).
///
/// Once [`check_len`](Self::check_len) has succeeded, no accessor panics:
/// it checks the 4 bytes every BPDU has, and the 35 of a configuration or
/// RST BPDU when the type says so. The priority-vector getters of a TCN
/// (4 bytes) read zero rather than past the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpduPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> BpduPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> BpduPacket<T> {
        BpduPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<BpduPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensures the buffer holds the 4-byte common header and, for any type
    /// but a TCN, the 35 bytes of a configuration BPDU (the RST BPDU's
    /// version 1 length octet is optional: some bridges leave it out).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < TCN_LEN {
            return Err(Error::Truncated);
        }
        if self.bpdu_type() != BpduType::Tcn && len < CONFIG_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = self.buffer.as_ref();
        if b.len() < r.end {
            0
        } else {
            get_u16(b, r)
        }
    }

    fn u64_at(&self, r: core::ops::Range<usize>) -> u64 {
        let b = self.buffer.as_ref();
        if b.len() < r.end {
            0
        } else {
            u64::from_be_bytes(get_array(b, r.start))
        }
    }

    #[inline]
    pub fn protocol_id(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PROTOCOL)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    #[inline]
    pub fn bpdu_type(&self) -> BpduType {
        BpduType::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The flags octet (0 for a TCN).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref().get(field::FLAGS).copied().unwrap_or(0)
    }

    /// Root identifier: priority (16 bits) then MAC (48 bits).
    #[inline]
    pub fn root_id(&self) -> u64 {
        self.u64_at(field::ROOT)
    }

    #[inline]
    pub fn root_path_cost(&self) -> u32 {
        let b = self.buffer.as_ref();
        if b.len() < field::COST.end {
            0
        } else {
            get_u32(b, field::COST)
        }
    }

    #[inline]
    pub fn bridge_id(&self) -> u64 {
        self.u64_at(field::BRIDGE)
    }

    #[inline]
    pub fn port_id(&self) -> u16 {
        self.u16_at(field::PORT)
    }

    #[inline]
    pub fn message_age(&self) -> u16 {
        self.u16_at(field::MESSAGE_AGE)
    }

    #[inline]
    pub fn max_age(&self) -> u16 {
        self.u16_at(field::MAX_AGE)
    }

    #[inline]
    pub fn hello_time(&self) -> u16 {
        self.u16_at(field::HELLO)
    }

    #[inline]
    pub fn forward_delay(&self) -> u16 {
        self.u16_at(field::FORWARD_DELAY)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> BpduPacket<T> {
    // Setters: the buffer must be long enough for the field (the caller
    // built it; `Bpdu::emit` checks).
    #[inline]
    pub fn set_header(&mut self, version: u8, t: BpduType) {
        let b = self.buffer.as_mut();
        set_u16(b, field::PROTOCOL, 0);
        b[field::VERSION] = version;
        b[field::TYPE] = t.into();
    }

    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    #[inline]
    pub fn set_root_id(&mut self, v: u64) {
        self.buffer.as_mut()[field::ROOT].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn set_root_path_cost(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::COST, v);
    }

    #[inline]
    pub fn set_bridge_id(&mut self, v: u64) {
        self.buffer.as_mut()[field::BRIDGE].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn set_port_id(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::PORT, v);
    }

    #[inline]
    pub fn set_times(&mut self, t: Times) {
        let b = self.buffer.as_mut();
        set_u16(b, field::MESSAGE_AGE, t.message_age);
        set_u16(b, field::MAX_AGE, t.max_age);
        set_u16(b, field::HELLO, t.hello_time);
        set_u16(b, field::FORWARD_DELAY, t.forward_delay);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for BpduPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The four timer fields, in 1/256 s as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Times {
    pub message_age: u16,
    pub max_age: u16,
    pub hello_time: u16,
    pub forward_delay: u16,
}

impl Times {
    /// One second in wire units.
    pub const SECOND: u16 = 256;

    /// Times of whole seconds.
    pub const fn secs(message_age: u8, max_age: u8, hello_time: u8, forward_delay: u8) -> Times {
        Times {
            message_age: message_age as u16 * Self::SECOND,
            max_age: max_age as u16 * Self::SECOND,
            hello_time: hello_time as u16 * Self::SECOND,
            forward_delay: forward_delay as u16 * Self::SECOND,
        }
    }
}

/// A decoded BPDU. A TCN has only its type: its other fields are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bpdu {
    pub kind: BpduType,
    /// The protocol version octet (0 STP, 2 RSTP; 3 and up are MSTP and
    /// later, which a RSTP bridge reads as RSTP, 802.1Q 14.4).
    pub version: u8,
    pub flags: u8,
    pub root_id: u64,
    pub root_path_cost: u32,
    pub bridge_id: u64,
    pub port_id: u16,
    pub times: Times,
}

impl Bpdu {
    /// A topology change notification.
    pub const TCN: Bpdu = Bpdu {
        kind: BpduType::Tcn,
        version: 0,
        flags: 0,
        root_id: 0,
        root_path_cost: 0,
        bridge_id: 0,
        port_id: 0,
        times: Times {
            message_age: 0,
            max_age: 0,
            hello_time: 0,
            forward_delay: 0,
        },
    };

    /// Decodes a checked view. [`Error::Unsupported`] for a protocol
    /// identifier other than 0 or an unknown type.
    pub fn parse<T: AsRef<[u8]>>(p: &BpduPacket<T>) -> Result<Bpdu> {
        p.check_len()?;
        if p.protocol_id() != 0 {
            return Err(Error::Unsupported);
        }
        let kind = p.bpdu_type();
        if let BpduType::Unknown(_) = kind {
            return Err(Error::Unsupported);
        }
        if kind == BpduType::Tcn {
            return Ok(Bpdu {
                version: p.version(),
                ..Bpdu::TCN
            });
        }
        // A configuration BPDU has only TC and TCA (802.1D-2004 9.3.1).
        let f = p.flags();
        let flags = if kind == BpduType::Config {
            f & (flags::TC | flags::TCA)
        } else {
            f
        };
        Ok(Bpdu {
            kind,
            version: p.version(),
            flags,
            root_id: p.root_id(),
            root_path_cost: p.root_path_cost(),
            bridge_id: p.bridge_id(),
            port_id: p.port_id(),
            times: Times {
                message_age: p.message_age(),
                max_age: p.max_age(),
                hello_time: p.hello_time(),
                forward_delay: p.forward_delay(),
            },
        })
    }

    /// The BPDU in a whole frame (see [`bpdu_payload`]).
    pub fn parse_frame(frame: &[u8]) -> Result<Bpdu> {
        Bpdu::parse(&BpduPacket::new_checked(bpdu_payload(frame)?)?)
    }

    /// The role an RST BPDU announces; a configuration BPDU is always sent
    /// by a designated port.
    pub fn role(&self) -> BpduRole {
        match self.kind {
            BpduType::Rst => BpduRole::from_bits(self.flags),
            _ => BpduRole::Designated,
        }
    }

    pub const fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Bytes this BPDU takes after the LLC header.
    pub const fn buffer_len(&self) -> usize {
        match self.kind {
            BpduType::Tcn => TCN_LEN,
            BpduType::Rst => RST_LEN,
            _ => CONFIG_LEN,
        }
    }

    /// Writes the BPDU into the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len).ok_or(Error::NoRoom)?;
        let mut p = BpduPacket::new_unchecked(&mut *buf);
        p.set_header(self.version, self.kind);
        if self.kind == BpduType::Tcn {
            return Ok(len);
        }
        p.set_flags(self.flags);
        p.set_root_id(self.root_id);
        p.set_root_path_cost(self.root_path_cost);
        p.set_bridge_id(self.bridge_id);
        p.set_port_id(self.port_id);
        p.set_times(self.times);
        if self.kind == BpduType::Rst {
            buf[field::V1_LEN] = 0;
        }
        Ok(len)
    }

    /// Writes a whole frame from `src` to the bridge group address (802.3
    /// length, LLC, the BPDU, zero padding to 60 bytes) into the start of
    /// `buf` and returns its length. [`Error::NoRoom`] if `buf` is shorter
    /// than [`MAX_FRAME_LEN`].
    pub fn emit_frame(&self, src: MacAddr, buf: &mut [u8]) -> Result<usize> {
        let buf = buf.get_mut(..MAX_FRAME_LEN).ok_or(Error::NoRoom)?;
        buf.fill(0);
        let body = LLC.len() + self.buffer_len();
        let mut eth = EthernetFrame::new_unchecked(&mut *buf);
        eth.set_dst_addr(BRIDGE_GROUP);
        eth.set_src_addr(src);
        let payload = eth.payload_mut();
        payload[..3].copy_from_slice(&LLC);
        self.emit(&mut payload[3..])?;
        // The length field counts LLC and BPDU, not the padding.
        buf[12..14].copy_from_slice(&(body as u16).to_be_bytes());
        Ok(MAX_FRAME_LEN)
    }
}

/// True for a frame to the bridge group address (01:80:c2:00:00:00), the
/// only thing the datapath checks before handing a frame to spanning tree.
#[inline]
pub fn is_bpdu_dst(frame: &[u8]) -> bool {
    ethernet::dst_addr(frame) == Some(BRIDGE_GROUP)
}

/// The BPDU bytes of a whole untagged frame: to 01:80:c2:00:00:00, an
/// 802.3 length (not an EtherType) that fits the frame, and the LLC header
/// `42 42 03`. Trailing padding beyond the length is cut off.
pub fn bpdu_payload(frame: &[u8]) -> Result<&[u8]> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.dst_addr() != BRIDGE_GROUP {
        return Err(Error::Unsupported);
    }
    let len = eth.length_field().ok_or(Error::Unsupported)? as usize;
    let payload = frame.get(ethernet::HEADER_LEN..).unwrap_or(&[]);
    let llc = payload.get(..len).ok_or(Error::Truncated)?;
    match llc {
        [0x42, 0x42, 0x03, bpdu @ ..] => Ok(bpdu),
        _ if llc.len() < LLC.len() => Err(Error::Truncated),
        _ => Err(Error::Unsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // stp_bpdu.pcap frame 1: a Linux kernel bridge's configuration BPDU,
    // root and bridge 8000.02:00:00:00:00:02, port 0x8001, 20/2/15 s.
    static KERNEL: [u8; 52] = [
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x26, 0x42,
        0x42, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x80, 0x01, 0x00,
        0x00, 0x14, 0x00, 0x02, 0x00, 0x0f, 0x00,
    ];
    const KERNEL_BRIDGE: u64 = 0x8000_0200_0000_0002;

    #[test]
    fn test_deconstruct() {
        let p = BpduPacket::new_checked(bpdu_payload(&KERNEL).unwrap()).unwrap();
        assert_eq!(p.protocol_id(), 0);
        assert_eq!(p.version(), 0);
        assert_eq!(p.bpdu_type(), BpduType::Config);
        assert_eq!(p.flags(), 0);
        assert_eq!(p.root_id(), KERNEL_BRIDGE);
        assert_eq!(p.root_path_cost(), 0);
        assert_eq!(p.bridge_id(), KERNEL_BRIDGE);
        assert_eq!(p.port_id(), 0x8001);
        assert_eq!(p.message_age(), 0);
        assert_eq!(p.max_age(), 20 * 256);
        assert_eq!(p.hello_time(), 2 * 256);
        assert_eq!(p.forward_delay(), 15 * 256);
        let b = Bpdu::parse(&p).unwrap();
        assert_eq!(b.times, Times::secs(0, 20, 2, 15));
        assert_eq!(b.role(), BpduRole::Designated);
    }

    #[test]
    fn test_construct() {
        let b = Bpdu::parse_frame(&KERNEL).unwrap();
        let mut buf = [0u8; 64];
        let n = b.emit_frame(MacAddr([2, 0, 0, 0, 0, 2]), &mut buf).unwrap();
        assert_eq!(n, 60);
        // Byte for byte what the kernel sent, then padding.
        assert_eq!(&buf[..KERNEL.len()], &KERNEL[..]);
        assert!(buf[KERNEL.len()..n].iter().all(|&x| x == 0));
        assert_eq!(Bpdu::parse_frame(&buf[..n]).unwrap(), b);
        assert_eq!(
            b.emit_frame(MacAddr::ZERO, &mut buf[..59]),
            Err(Error::NoRoom)
        );
    }

    #[test]
    fn rst_round_trip() {
        let b = Bpdu {
            kind: BpduType::Rst,
            version: 2,
            flags: flags::PROPOSAL | BpduRole::Designated.bits() | flags::LEARNING,
            root_id: 0x1000_0200_0000_0001,
            root_path_cost: 20000,
            bridge_id: 0x8000_0200_0000_0003,
            port_id: 0x8002,
            times: Times::secs(1, 20, 2, 15),
        };
        let mut buf = [0u8; 60];
        let n = b.emit_frame(MacAddr([2, 0, 0, 0, 0, 3]), &mut buf).unwrap();
        assert_eq!(&buf[12..14], &[0, 39]);
        assert_eq!(buf[14 + 3 + 35], 0, "version 1 length");
        let back = Bpdu::parse_frame(&buf[..n]).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.role(), BpduRole::Designated);
        assert!(back.has(flags::PROPOSAL) && !back.has(flags::AGREEMENT));
        for r in [
            BpduRole::Unknown,
            BpduRole::AlternateOrBackup,
            BpduRole::Root,
            BpduRole::Designated,
        ] {
            assert_eq!(BpduRole::from_bits(r.bits() | flags::TC), r);
        }
    }

    #[test]
    fn tcn_round_trip() {
        let mut buf = [0u8; 60];
        let n = Bpdu::TCN
            .emit_frame(MacAddr([2, 0, 0, 0, 0, 9]), &mut buf)
            .unwrap();
        assert_eq!(&buf[12..17], &[0, 7, 0x42, 0x42, 0x03]);
        assert_eq!(&buf[17..21], &[0, 0, 0, 0x80]);
        assert_eq!(Bpdu::parse_frame(&buf[..n]).unwrap(), Bpdu::TCN);
        // A TCN view is only 4 bytes; its other getters read zero.
        let p = BpduPacket::new_checked(&buf[17..21]).unwrap();
        assert_eq!((p.flags(), p.root_id(), p.port_id()), (0, 0, 0));
    }

    #[test]
    fn config_flags_keep_only_tc_and_tca() {
        let mut f = KERNEL;
        f[14 + 3 + 4] = 0xff;
        let b = Bpdu::parse_frame(&f).unwrap();
        assert_eq!(b.flags, flags::TC | flags::TCA);
    }

    #[test]
    fn refuses_what_is_not_a_bpdu() {
        for n in 0..17 {
            assert!(Bpdu::parse_frame(&KERNEL[..n]).is_err(), "{n}");
        }
        // Shorter than its length field claims.
        assert_eq!(Bpdu::parse_frame(&KERNEL[..40]), Err(Error::Truncated));
        let mut other = KERNEL;
        other[5] = 0x0e; // LLDP's address
        assert_eq!(bpdu_payload(&other), Err(Error::Unsupported));
        let mut ether = KERNEL;
        ether[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert_eq!(bpdu_payload(&ether), Err(Error::Unsupported));
        let mut llc = KERNEL;
        llc[14] = 0xaa;
        assert_eq!(bpdu_payload(&llc), Err(Error::Unsupported));
        let mut proto = KERNEL;
        proto[17] = 1;
        assert_eq!(Bpdu::parse_frame(&proto), Err(Error::Unsupported));
        let mut kind = KERNEL;
        kind[20] = 0x55;
        assert_eq!(Bpdu::parse_frame(&kind), Err(Error::Unsupported));
        // A config BPDU cut short is truncated, a TCN of 4 bytes is not.
        let mut short = KERNEL;
        short[12..14].copy_from_slice(&[0, 30]);
        assert_eq!(Bpdu::parse_frame(&short), Err(Error::Truncated));
        assert!(is_bpdu_dst(&KERNEL) && !is_bpdu_dst(&other) && !is_bpdu_dst(&[]));
    }
}
