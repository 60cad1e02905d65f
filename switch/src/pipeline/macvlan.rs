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

use super::{Context, Verdict};
use crate::config::MacvlanMode;
use crate::counters::{DropReason, FloodCause};
use crate::ids::{Egress, NetId, PortId};
use shunt_parsers::MacAddr;

pub fn decide(
    ctx: &Context,
    net: NetId,
    mode: MacvlanMode,
    parent: PortId,
    ingress: Egress,
    dst: MacAddr,
    src: MacAddr,
) -> Verdict {
    let multicast = dst.is_multicast();
    let cause = if dst.is_broadcast() {
        FloodCause::Broadcast
    } else {
        FloodCause::Multicast
    };
    // The hosts are static entries on ports (never a VTEP or the stack).
    let host_of = |mac: MacAddr| {
        ctx.fdb
            .lookup(net.raw(), mac.as_bytes())
            .and_then(|e| Egress::decode(e.port)?.port())
            .filter(|&p| p != parent)
    };
    if ingress == Egress::Port(parent) {
        if multicast {
            return match host_of(src) {
                None => Verdict::Macvlan {
                    cause,
                    parent: false,
                    except: None,
                },
                Some(h) => match mode {
                    MacvlanMode::Vepa => Verdict::Macvlan {
                        cause,
                        parent: false,
                        except: Some(h),
                    },
                    MacvlanMode::Bridge => Verdict::Drop(DropReason::MacvlanFiltered),
                    MacvlanMode::Private | MacvlanMode::Passthru => Verdict::Unicast(h.into()),
                },
            };
        }
        if mode == MacvlanMode::Passthru {
            let only = ctx
                .plan
                .nets
                .get(net.index())
                .and_then(|n| n.members.iter().copied().find(|&p| p != parent));
            return only
                .map(|p| Verdict::Unicast(p.into()))
                .unwrap_or(Verdict::Drop(DropReason::NoDestination));
        }
        return match host_of(dst) {
            Some(h) => Verdict::Unicast(h.into()),
            None => Verdict::Drop(DropReason::MacvlanUnknown),
        };
    }
    // From a host.
    if mode != MacvlanMode::Bridge {
        return Verdict::Unicast(parent.into());
    }
    if multicast {
        return Verdict::Macvlan {
            cause,
            parent: true,
            except: None,
        };
    }
    match host_of(dst) {
        Some(h) if Egress::Port(h) == ingress => Verdict::Drop(DropReason::SamePort),
        Some(h) => Verdict::Unicast(h.into()),
        None => Verdict::Unicast(parent.into()),
    }
}
