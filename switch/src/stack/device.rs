//! device: a smoltcp `phy::Device` over the frames of one network.
//!
//! Receive: frames the host thread took from `StackLink::to_host` for this
//! network, queued here. Transmit: a frame written straight into a
//! `StackPkt` and pushed to `StackLink::from_host`; full is a counted drop.
//! The host thread signals `from_host_event` once per round when frames
//! were sent.

use super::{StackLink, StackPkt, STACK_FRAME};
use crate::ids::{NetId, Segment};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use std::collections::VecDeque;
use std::sync::Arc;

/// Frames waiting for smoltcp, per network. More than the queue from the
/// workers holds, so only a burst larger than that is dropped.
const RX_QUEUE: usize = 2048;

pub struct NetDevice {
    pub net: NetId,
    link: Arc<StackLink>,
    rx: VecDeque<StackPkt>,
    /// Frames pushed to `from_host` since the thread last looked.
    pub sent: usize,
}

impl NetDevice {
    pub fn new(net: NetId, link: Arc<StackLink>) -> NetDevice {
        NetDevice {
            net,
            link,
            rx: VecDeque::new(),
            sent: 0,
        }
    }

    /// Queues a received frame; false (and counted) when full.
    pub fn push_rx(&mut self, p: StackPkt) -> bool {
        if self.rx.len() >= RX_QUEUE {
            if let Some(c) = self.link.net_counters.get(self.net.index()) {
                c.rx_dropped_full.add(1);
            }
            return false;
        }
        self.rx.push_back(p);
        true
    }
}

pub struct Rx(StackPkt);

impl phy::RxToken for Rx {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0.frame())
    }
}

pub struct Tx<'a> {
    net: NetId,
    link: &'a StackLink,
    sent: &'a mut usize,
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let counters = self.link.net_counters.get(self.net.index());
        if len > STACK_FRAME {
            // Cannot happen with the MTU we announce; never panic for it.
            let mut scratch = vec![0u8; len];
            if let Some(c) = counters {
                c.tx_dropped_full.add(1);
            }
            return f(&mut scratch);
        }
        let mut p = StackPkt {
            net: Segment::Net(self.net),
            len: len as u16,
            data: [0; STACK_FRAME],
        };
        let r = f(&mut p.data[..len]);
        if self.link.from_host.push(p).is_ok() {
            *self.sent += 1;
        } else if let Some(c) = counters {
            c.tx_dropped_full.add(1);
        }
        r
    }
}

impl phy::Device for NetDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((
            Rx(p),
            Tx {
                net: self.net,
                link: &self.link,
                sent: &mut self.sent,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            net: self.net,
            link: &self.link,
            sent: &mut self.sent,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // An Ethernet frame without FCS at the hosts' default MTU.
        caps.max_transmission_unit = 1514;
        caps
    }
}
