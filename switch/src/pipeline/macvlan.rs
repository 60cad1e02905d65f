//! macvlan networks: hosts hang off a parent port with fixed MACs, as Linux
//! macvlan devices hang off a lower device (drivers/net/macvlan.c). Nothing
//! is learned: the hosts' MACs are static entries of the network. The modes
//! decide as the kernel does:
//!
//! - from a host: in `bridge` mode, a frame to another host's MAC goes to
//!   it directly, multicast goes to the other hosts and the parent, the
//!   rest to the parent; in `vepa`, `private` and `passthru` mode,
//!   everything goes to the parent.
//! - from the parent: unicast goes to the host whose MAC it carries (in
//!   `passthru`, to the one host) and is never flooded; multicast from
//!   outside goes to every host; multicast a host sent, reflected back by
//!   the outside, goes to the other hosts in `vepa` mode, to no host in
//!   `bridge` mode (they saw it on the way out), and back to its sender
//!   only in `private` and `passthru` mode.

use super::{Context, Verdict, NO_NET};
use crate::config::MacvlanMode;
use crate::counters::{DropReason, FloodCause};
use shunt_parsers::MacAddr;

pub fn decide(
    ctx: &Context,
    net: u16,
    mode: MacvlanMode,
    parent: u16,
    ingress: u16,
    dst: MacAddr,
    src: MacAddr,
) -> Verdict {
    let multicast = dst.is_multicast();
    let cause = if dst.is_broadcast() {
        FloodCause::Broadcast
    } else {
        FloodCause::Multicast
    };
    let host_of = |mac: MacAddr| {
        ctx.fdb
            .lookup(net, mac.as_bytes())
            .map(|e| e.port)
            .filter(|&p| p != parent)
    };
    if ingress == parent {
        if multicast {
            return match host_of(src) {
                None => Verdict::Macvlan {
                    cause,
                    parent: false,
                    except: NO_NET,
                },
                Some(h) => match mode {
                    MacvlanMode::Vepa => Verdict::Macvlan {
                        cause,
                        parent: false,
                        except: h,
                    },
                    MacvlanMode::Bridge => Verdict::Drop(DropReason::MacvlanFiltered),
                    MacvlanMode::Private | MacvlanMode::Passthru => Verdict::Unicast(h),
                },
            };
        }
        if mode == MacvlanMode::Passthru {
            let only = ctx
                .plan
                .nets
                .get(net as usize)
                .and_then(|n| n.members.iter().copied().find(|&p| p != parent));
            return only
                .map(Verdict::Unicast)
                .unwrap_or(Verdict::Drop(DropReason::NoDestination));
        }
        return match host_of(dst) {
            Some(h) => Verdict::Unicast(h),
            None => Verdict::Drop(DropReason::MacvlanUnknown),
        };
    }
    // From a host.
    if mode != MacvlanMode::Bridge {
        return Verdict::Unicast(parent);
    }
    if multicast {
        return Verdict::Macvlan {
            cause,
            parent: true,
            except: NO_NET,
        };
    }
    match host_of(dst) {
        Some(h) if h == ingress => Verdict::Drop(DropReason::SamePort),
        Some(h) => Verdict::Unicast(h),
        None => Verdict::Unicast(parent),
    }
}
