//! mcast: IGMP/MLD snooping in the datapath (docs/multicast.md): which
//! multicast frames are control frames for the snooping protocol.

use super::{Context, Meta};
use crate::l2::CtlKind;

/// The kind of control frame a multicast frame `f` is for the snooping
/// protocol (IGMP, MLD), if it wants it.
#[inline]
pub fn control_kind(_ctx: &Context, _wants: u8, _m: &Meta, _f: &[u8]) -> Option<CtlKind> {
    None
}
