//! Raw Ethernet frames in and out of one interface of a network namespace.
//!
//! Two AF_PACKET sockets, both created inside the namespace:
//! - sending goes through a `pnet_datalink` channel bound to the interface;
//! - receiving uses an unbound `ETH_P_ALL` socket read with `recvfrom`, which
//!   tells for each frame its interface and its packet type, so that we keep
//!   the frames of our interface and drop our own outgoing frames
//!   (`PACKET_OUTGOING`: a packet socket sees what its interface sends, too).
//!
//! Limitation (kernel, not ours): the receive path strips a VLAN tag before
//! packet sockets see the frame (`skb_vlan_untag`) and passes it out of band
//! (`PACKET_AUXDATA`), which the safe socket API used here cannot read. So
//! received frames show their payload untagged; sent frames keep their tags.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    recvfrom, setsockopt, socket, sockopt, AddressFamily, LinkAddr, SockFlag, SockProtocol,
    SockType,
};
use nix::sys::time::TimeVal;
use pnet_datalink::{Channel, DataLinkSender};

use crate::frame::Marker;
use crate::netns::in_netns;

/// `sll_pkttype` of a frame the interface sent (linux/if_packet.h).
pub const PACKET_OUTGOING: u8 = 4;
/// `sll_pkttype` values of received frames, for reference.
pub const PACKET_HOST: u8 = 0;
pub const PACKET_BROADCAST: u8 = 1;
pub const PACKET_MULTICAST: u8 = 2;
pub const PACKET_OTHERHOST: u8 = 3;

/// Largest frame we read (jumbo frames included).
const RECV_BUF: usize = 65536;

/// A received frame and how the kernel classified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub bytes: Vec<u8>,
    /// `PACKET_HOST`, `PACKET_BROADCAST`, `PACKET_MULTICAST`, `PACKET_OTHERHOST`.
    pub pkttype: u8,
}

/// One interface of one namespace, for sending and sniffing raw frames.
pub struct RawPort {
    netns: String,
    ifname: String,
    ifindex: usize,
    tx: Box<dyn DataLinkSender>,
    rx: OwnedFd,
    buf: Vec<u8>,
}

impl std::fmt::Debug for RawPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPort")
            .field("netns", &self.netns)
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .finish()
    }
}

fn errno(context: &str, e: Errno) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{context}: {e}"))
}

impl RawPort {
    /// Open `ifname` inside the network namespace `netns` (`/run/netns/NAME`;
    /// an empty name: the caller's namespace). Frames are captured from now on.
    pub fn open(netns: &str, ifname: &str) -> io::Result<RawPort> {
        let ifname_owned = ifname.to_string();
        let netns_owned = netns.to_string();
        in_netns(netns, move || {
            let iface = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == ifname_owned)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no interface {ifname_owned:?} in namespace {netns_owned:?}"),
                    )
                })?;
            // Receive first, so nothing sent after open() is missed.
            let rx = socket(
                AddressFamily::Packet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::EthAll,
            )
            .map_err(|e| errno("AF_PACKET socket (root needed)", e))?;
            // A generous buffer: tests send bursts and read them later.
            let _ = setsockopt(&rx, sockopt::RcvBuf, &(4 << 20));
            let config = pnet_datalink::Config {
                write_buffer_size: RECV_BUF,
                read_buffer_size: 2048,
                promiscuous: false,
                write_timeout: Some(Duration::from_secs(2)),
                ..Default::default()
            };
            let tx = match pnet_datalink::channel(&iface, config)? {
                Channel::Ethernet(tx, _rx) => tx,
                _ => {
                    return Err(io::Error::other(format!(
                        "{ifname_owned}: not an Ethernet channel"
                    )))
                }
            };
            Ok(RawPort {
                netns: netns_owned,
                ifname: ifname_owned,
                ifindex: iface.index as usize,
                tx,
                rx,
                buf: vec![0; RECV_BUF],
            })
        })
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Send one frame as it is (no padding, no FCS). ENOBUFS (the
    /// device's queue was full for a moment, as on a loaded machine) is
    /// retried a few times before it is an error.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut tries = 0;
        loop {
            match self.tx.send_to(frame, None) {
                Some(Err(e))
                    if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32)
                        && tries < 20 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => return Self::sent(other, frame.len(), &self.netns, &self.ifname),
            }
        }
    }

    fn sent(r: Option<io::Result<()>>, len: usize, netns: &str, ifname: &str) -> io::Result<()> {
        match r {
            Some(result) => result.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("send {len} bytes on {netns}/{ifname}: {e}"),
                )
            }),
            None => Err(io::Error::other("send: frame larger than the write buffer")),
        }
    }

    /// Send each frame in turn.
    pub fn send_all<I, F>(&mut self, frames: I) -> io::Result<()>
    where
        I: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        for f in frames {
            self.send(f.as_ref())?;
        }
        Ok(())
    }

    /// Receive one frame that came *in* on our interface, waiting at most
    /// until `deadline`. `Ok(None)` when the deadline passed.
    pub fn recv_until(&mut self, deadline: Instant) -> io::Result<Option<Received>> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let left = (deadline - now).max(Duration::from_millis(1));
            let tv = TimeVal::new(
                left.as_secs() as nix::sys::time::time_t,
                left.subsec_micros() as nix::sys::time::suseconds_t,
            );
            setsockopt(&self.rx, sockopt::ReceiveTimeout, &tv)
                .map_err(|e| errno("SO_RCVTIMEO", e))?;
            match recvfrom::<LinkAddr>(self.rx.as_raw_fd(), &mut self.buf) {
                Ok((len, Some(addr))) => {
                    if addr.ifindex() != self.ifindex || addr.pkttype() == PACKET_OUTGOING {
                        continue;
                    }
                    let bytes = self.buf.get(..len).unwrap_or(&self.buf[..]).to_vec();
                    return Ok(Some(Received {
                        bytes,
                        pkttype: addr.pkttype(),
                    }));
                }
                Ok((_, None)) => continue,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(errno("recvfrom", e)),
            }
        }
    }

    /// All frames that come in during `dur`, with their packet types.
    pub fn recv_detailed_for(&mut self, dur: Duration) -> io::Result<Vec<Received>> {
        let deadline = Instant::now() + dur;
        let mut out = Vec::new();
        while let Some(r) = self.recv_until(deadline)? {
            out.push(r);
        }
        Ok(out)
    }

    /// All frames that come in during `dur` (our own outgoing frames excluded).
    /// Errors end the collection early; what was received is returned.
    pub fn recv_for(&mut self, dur: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + dur;
        let mut out = Vec::new();
        while let Ok(Some(r)) = self.recv_until(deadline) {
            out.push(r.bytes);
        }
        out
    }

    /// Throw away what was received so far (frames already queued).
    pub fn drain(&mut self) {
        let _ = self.recv_for(Duration::from_millis(20));
    }

    /// Count the frames coming in during `dur` that match `pred`.
    pub fn count_for<P: FnMut(&[u8]) -> bool>(&mut self, dur: Duration, mut pred: P) -> usize {
        self.recv_for(dur).iter().filter(|f| pred(f)).count()
    }

    /// The markers of test `test_id` seen during `dur`, in arrival order.
    pub fn markers_for(&mut self, dur: Duration, test_id: u32) -> Vec<Marker> {
        self.recv_for(dur)
            .iter()
            .filter_map(|f| Marker::in_frame(f))
            .filter(|m| m.test_id == test_id)
            .collect()
    }
}

/// Counts what several sniffers saw of one test's frames. Typical use: send,
/// then `Capture::collect(&mut ports, wait, test_id, |m| m.seq >= 100)`.
pub struct Capture;

impl Capture {
    /// Wait `dur` once (frames queue in each socket meanwhile), then read every
    /// port and count the frames carrying a marker of `test_id` that pass
    /// `pred`. The counts come back in the order of `ports`.
    pub fn collect<P: Fn(&Marker) -> bool>(
        ports: &mut [&mut RawPort],
        dur: Duration,
        test_id: u32,
        pred: P,
    ) -> Vec<usize> {
        std::thread::sleep(dur);
        ports
            .iter_mut()
            .map(|p| {
                p.markers_for(Duration::from_millis(30), test_id)
                    .iter()
                    .filter(|m| pred(m))
                    .count()
            })
            .collect()
    }
}
