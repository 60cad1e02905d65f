//! Spanning tree: RSTP (802.1w, as IEEE 802.1D-2004 clause 17 has it), one
//! instance per switch, with the 802.1D fallback towards STP-only
//! neighbours. See docs/stp.md.
//!
//! [`Bridge`] is the protocol as pure code: its inputs are BPDUs received
//! on a port ([`Bridge::receive`]), link changes ([`Bridge::set_enabled`])
//! and the passing of time ([`Bridge::tick`]), each with the time passed in
//! (milliseconds from any origin); its outputs are [`Event`]s: BPDUs to
//! send out of a port, port state changes and FDB flushes. It knows
//! nothing of frames, threads or the FDB: the glue (`stp::glue`) turns
//! events into frames, the per-port state the workers read, and
//! `Fdb::flush_port`. Ports are indices `0..n` of the instance.
//!
//! The state machine imports nothing from the crate; `glue` (ports and
//! parameters from the topology, what the workers and `shunt stp` read)
//! and `protocol` (RSTP as an l2 protocol) import config, ids and l2.

pub mod glue;
pub mod protocol;
#[cfg(test)]
mod tests;

use shunt_parsers::stp::{flags, Bpdu, BpduRole, BpduType, Times};
use std::fmt;

/// Milliseconds from an origin the caller chooses (the glue: the
/// daemon's start).
pub type Millis = u64;

/// How long a port waits after changing protocol (STP/RSTP) before it may
/// change again (802.1D-2004 17.13.9, Migrate Time).
pub const MIGRATE_MS: Millis = 3000;
/// BPDUs a port may send per second (Transmit Hold Count, 17.13.12).
pub const TX_HOLD_COUNT: u8 = 6;
/// The default path cost of a port: 802.1D-2004 table 17-3 for 1 Gb/s.
/// TAPs and veths have no meaningful speed, so every port starts equal.
pub const DEFAULT_PORT_COST: u32 = 20_000;
/// The default port priority (8 bits, a multiple of 16).
pub const DEFAULT_PORT_PRIORITY: u8 = 128;
/// The default bridge priority (a multiple of 4096).
pub const DEFAULT_BRIDGE_PRIORITY: u16 = 32_768;

/// A bridge identifier: priority (16 bits) then MAC (48 bits). Lower is
/// better. Shown like the Linux bridge's `bridge_id`: `8000.020000000001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BridgeId(pub u64);

impl BridgeId {
    pub fn new(priority: u16, mac: [u8; 6]) -> BridgeId {
        let mut b = [0u8; 8];
        b[..2].copy_from_slice(&priority.to_be_bytes());
        b[2..].copy_from_slice(&mac);
        BridgeId(u64::from_be_bytes(b))
    }
    pub fn priority(self) -> u16 {
        (self.0 >> 48) as u16
    }
    /// The MAC part (what tells bridges apart whatever their priority).
    pub fn mac(self) -> u64 {
        self.0 & 0xffff_ffff_ffff
    }
}

impl fmt::Display for BridgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}.{:012x}", self.priority(), self.mac())
    }
}

/// A port's role (802.1D-2004 17.7). An edge port is a designated port
/// whose `edge` is true; [`PortStatus::role_name`] shows it as `edge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Root,
    Designated,
    Alternate,
    Backup,
    Disabled,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Designated => "designated",
            Role::Alternate => "alternate",
            Role::Backup => "backup",
            Role::Disabled => "disabled",
        }
    }
}

/// A port's state: what the datapath does with its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PortState {
    /// Frames in are dropped (`stp_discarding`), nothing goes out.
    Discarding = 0,
    /// Frames in are learned from, then dropped; nothing goes out.
    Learning = 1,
    Forwarding = 2,
}

impl PortState {
    pub fn name(self) -> &'static str {
        match self {
            PortState::Discarding => "discarding",
            PortState::Learning => "learning",
            PortState::Forwarding => "forwarding",
        }
    }
    pub fn from_u8(v: u8) -> PortState {
        match v {
            1 => PortState::Learning,
            2 => PortState::Forwarding,
            _ => PortState::Discarding,
        }
    }
}

/// The bridge's own parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeConfig {
    /// A multiple of 4096, 0..=61440.
    pub priority: u16,
    pub mac: [u8; 6],
    /// Seconds, as 802.1D-2004 table 17-1 allows: hello 1..=2 (we take
    /// 1..=10), max age 6..=40, forward delay 4..=30.
    pub hello_secs: u8,
    pub max_age_secs: u8,
    pub forward_delay_secs: u8,
    /// Force version 0: speak 802.1D only (config and TCN BPDUs, timers,
    /// no proposal/agreement) and discard RST BPDUs, as an STP-only
    /// bridge such as the Linux kernel's does; the tests use it as the
    /// legacy neighbour.
    pub force_stp: bool,
}

impl BridgeConfig {
    pub fn new(priority: u16, mac: [u8; 6]) -> BridgeConfig {
        BridgeConfig {
            priority,
            mac,
            hello_secs: 2,
            max_age_secs: 20,
            forward_delay_secs: 15,
            force_stp: false,
        }
    }
}

/// A port's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Path cost, 1..=200,000,000.
    pub cost: u32,
    /// A multiple of 16, 0..=240.
    pub priority: u8,
    /// Administratively an edge port (a host's port: portfast). A BPDU
    /// received on it makes it a normal port until its link goes down.
    pub edge: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            cost: DEFAULT_PORT_COST,
            priority: DEFAULT_PORT_PRIORITY,
            edge: false,
        }
    }
}

/// What the bridge asks of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Send this BPDU out of `port`.
    Send { port: usize, bpdu: Bpdu },
    /// The port's state is now `state`.
    State { port: usize, state: PortState },
    /// Remove the dynamic FDB entries learned on `port`.
    Flush { port: usize },
}

/// A priority vector (802.1D-2004 17.6): lower is better, compared field
/// by field in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Vector {
    root: u64,
    cost: u32,
    bridge: u64,
    port: u16,
    rx_port: u16,
}

impl Vector {
    /// 17.6: `self` is superior to `port` (the port's priority vector):
    /// better, or sent by the same designated bridge and port (their
    /// news replaces their old news, even when it is worse).
    fn supersedes(&self, port: &Vector) -> bool {
        *self < *port
            || (BridgeId(self.bridge).mac() == BridgeId(port.bridge).mac()
                && self.port & 0x0fff == port.port & 0x0fff)
    }
}

/// Where a port's priority vector came from (17.19.10 infoIs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Info {
    Disabled,
    Aged,
    Mine,
    Received,
}

#[derive(Debug, Clone)]
struct Port {
    cfg: PortConfig,
    /// The port identifier: priority (4 bits) and number (12 bits).
    id: u16,
    enabled: bool,
    info: Info,
    prio: Vector,
    times: Times,
    role: Role,
    state: PortState,
    edge: bool,
    /// Sends RST BPDUs (false: config and TCN, towards an STP bridge).
    send_rstp: bool,
    mdelay_until: Millis,
    /// Designated and discarding: our BPDUs carry the proposal flag.
    proposing: bool,
    /// Root or alternate: a proposal came in and wants an agreement.
    proposed: bool,
    /// Designated: the port beyond agreed to our proposal.
    agreed: bool,
    /// Our BPDUs carry the agreement flag.
    agree: bool,
    /// Next state step (discarding -> learning -> forwarding) by timer.
    fd_until: Option<Millis>,
    rcvd_info_until: Millis,
    /// Our BPDUs say topology change (and, from an STP root port, TCNs
    /// go out) until then.
    tc_until: Millis,
    /// A config BPDU with TCA is owed (a TCN came in).
    tc_ack: bool,
    /// The last BPDU received had TC set (we act on its rising edge).
    rx_tc: bool,
    hello_due: Millis,
    tx_count: u8,
    new_info: bool,
    rx_bpdus: u64,
    tx_bpdus: u64,
}

/// A port as `shunt stp` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortStatus {
    pub role: Role,
    pub state: PortState,
    pub edge: bool,
    pub cost: u32,
    pub priority: u8,
    /// `8001` style, hex.
    pub port_id: u16,
    /// `rstp` or `stp`: which BPDUs the port sends.
    pub rstp: bool,
    pub designated_bridge: BridgeId,
    pub designated_port: u16,
    pub rx_bpdus: u64,
    pub tx_bpdus: u64,
}

impl PortStatus {
    /// The role as `shunt stp` names it: `edge` for an edge port.
    pub fn role_name(&self) -> &'static str {
        if self.edge && self.role == Role::Designated {
            "edge"
        } else {
            self.role.name()
        }
    }
}

/// The bridge as `shunt stp` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub bridge_id: BridgeId,
    pub root_id: BridgeId,
    pub root_port: Option<usize>,
    pub root_path_cost: u32,
    pub topology_changes: u64,
    /// When the last topology change was detected or heard of.
    pub last_topology_change: Option<Millis>,
    pub ports: Vec<PortStatus>,
}

/// One RSTP bridge. See the module documentation.
#[derive(Debug, Clone)]
pub struct Bridge {
    cfg: BridgeConfig,
    id: BridgeId,
    times: Times,
    ports: Vec<Port>,
    root: Vector,
    root_times: Times,
    root_port: Option<usize>,
    topology_changes: u64,
    last_tc: Option<Millis>,
    last_second: Millis,
    now: Millis,
}

fn ms(t: u16) -> Millis {
    // Wire units are 1/256 s.
    Millis::from(t) * 1000 / 256
}

impl Bridge {
    /// A bridge whose ports are all enabled, at time `now`. Call
    /// [`Bridge::tick`] right after to have the first BPDUs.
    pub fn new(cfg: BridgeConfig, ports: &[PortConfig], now: Millis) -> Bridge {
        let id = BridgeId::new(cfg.priority, cfg.mac);
        let times = Times::secs(0, cfg.max_age_secs, cfg.hello_secs, cfg.forward_delay_secs);
        let ports = ports
            .iter()
            .enumerate()
            .map(|(i, c)| Port {
                cfg: *c,
                id: (u16::from(c.priority & 0xf0) << 8) | ((i as u16 + 1) & 0x0fff),
                enabled: true,
                info: Info::Aged,
                prio: Vector::default(),
                times,
                role: Role::Disabled,
                state: PortState::Discarding,
                edge: c.edge,
                send_rstp: !cfg.force_stp,
                mdelay_until: now + MIGRATE_MS,
                proposing: false,
                proposed: false,
                agreed: false,
                agree: false,
                fd_until: None,
                rcvd_info_until: 0,
                tc_until: 0,
                tc_ack: false,
                rx_tc: false,
                hello_due: now,
                tx_count: 0,
                new_info: true,
                rx_bpdus: 0,
                tx_bpdus: 0,
            })
            .collect();
        let mut b = Bridge {
            cfg,
            id,
            times,
            ports,
            root: Vector::default(),
            root_times: times,
            root_port: None,
            topology_changes: 0,
            last_tc: None,
            last_second: now / 1000,
            now,
        };
        b.select_roles();
        b
    }

    pub fn id(&self) -> BridgeId {
        self.id
    }

    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    pub fn state(&self, port: usize) -> Option<PortState> {
        self.ports.get(port).map(|p| p.state)
    }

    pub fn role(&self, port: usize) -> Option<Role> {
        self.ports.get(port).map(|p| p.role)
    }

    fn rstp_version(&self) -> bool {
        !self.cfg.force_stp
    }

    fn forward_delay(&self) -> Millis {
        ms(self.root_times.forward_delay).max(1000)
    }

    fn hello(&self) -> Millis {
        Millis::from(self.cfg.hello_secs.max(1)) * 1000
    }

    /// A BPDU received on `port` at `now`.
    pub fn receive(&mut self, port: usize, bpdu: &Bpdu, now: Millis, out: &mut Vec<Event>) {
        self.advance(now);
        let rstp = self.rstp_version();
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        if !p.enabled {
            return;
        }
        if !rstp && bpdu.kind == BpduType::Rst {
            // Version 0 only: what an 802.1D-1998 bridge (the Linux
            // kernel's) does with a BPDU of type 2, discard it.
            return;
        }
        p.rx_bpdus += 1;
        // 802.1D-2004 17.20.4: a BPDU on an edge port makes it a normal
        // port (the host behind it is a bridge after all).
        p.edge = false;
        // Port protocol migration (17.24), after Migrate Time.
        let rx_rstp = bpdu.kind == BpduType::Rst && rstp;
        if now >= p.mdelay_until && rx_rstp != p.send_rstp && (rstp || !rx_rstp) {
            p.send_rstp = rx_rstp;
            p.mdelay_until = now + MIGRATE_MS;
            p.new_info = true;
            if !rx_rstp {
                p.proposing = false;
            }
        }
        let mut reselect = false;
        let mut tc_heard = false;
        match bpdu.kind {
            BpduType::Tcn => {
                // From an STP bridge's root port: our designated port owes
                // it an acknowledgement, and the change goes everywhere.
                if p.role == Role::Designated {
                    p.tc_ack = true;
                    p.new_info = true;
                    tc_heard = true;
                }
            }
            BpduType::Config | BpduType::Rst => {
                let tc = bpdu.has(flags::TC);
                tc_heard = tc && !p.rx_tc;
                p.rx_tc = tc;
                if bpdu.kind == BpduType::Config && bpdu.has(flags::TCA) && p.role == Role::Root {
                    p.tc_until = 0;
                }
                reselect = self.record(port, bpdu, now);
            }
            BpduType::Unknown(_) => return,
        }
        if reselect {
            self.select_roles();
        }
        self.after_receive(port, bpdu);
        // 17.25: only an active port (root or designated) hears of
        // changes; an alternate port's TC flags are the root's, heard
        // through the root port too.
        if tc_heard && matches!(self.ports[port].role, Role::Root | Role::Designated) {
            self.topology_change(port, false, now, out);
        }
        self.run(now, out);
    }

    /// Records what `bpdu` says about the port's segment (17.21.8
    /// rcvInfo, 17.27 Port Information); true when roles must be chosen
    /// again.
    fn record(&mut self, port: usize, bpdu: &Bpdu, now: Millis) -> bool {
        let p = &mut self.ports[port];
        let msg = Vector {
            root: bpdu.root_id,
            cost: bpdu.root_path_cost,
            bridge: bpdu.bridge_id,
            port: bpdu.port_id,
            rx_port: p.id,
        };
        let t = bpdu.times;
        // Info that has lived longer than its Max Age is dropped (17.21.23).
        let fresh = u32::from(t.message_age) + u32::from(Times::SECOND) <= u32::from(t.max_age);
        if bpdu.role() != BpduRole::Designated || !fresh {
            // Root, alternate and backup ports' BPDUs carry agreements
            // (see after_receive), not information about the segment.
            return false;
        }
        let hold = now + 3 * ms(t.hello_time).max(1000);
        if p.info == Info::Received && msg == p.prio {
            // Repeated designated info: it still holds. (An STP bridge's
            // message age moves a little from one BPDU to the next: the
            // times are taken, the flags stay.)
            p.rcvd_info_until = hold;
            let moved = t != p.times;
            p.times = t;
            return moved;
        }
        let superior = match p.info {
            Info::Received | Info::Mine => msg.supersedes(&p.prio),
            Info::Aged | Info::Disabled => true,
        };
        if !superior {
            // Inferior designated info: on our designated port, answer
            // with ours at once so that the other bridge learns better.
            if p.info == Info::Mine {
                p.new_info = true;
            }
            return false;
        }
        p.prio = msg;
        p.times = t;
        p.info = Info::Received;
        p.rcvd_info_until = hold;
        p.agreed = false;
        p.agree = false;
        p.proposing = false;
        true
    }

    /// Proposal and agreement flags, after roles are chosen.
    fn after_receive(&mut self, port: usize, bpdu: &Bpdu) {
        if bpdu.kind != BpduType::Rst || !self.rstp_version() {
            return;
        }
        let root = self.root.root;
        let p = &mut self.ports[port];
        match (bpdu.role(), p.role) {
            (BpduRole::Designated, Role::Root | Role::Alternate | Role::Backup)
                if bpdu.has(flags::PROPOSAL) =>
            {
                p.proposed = true;
            }
            (BpduRole::Root | BpduRole::AlternateOrBackup, Role::Designated)
                if bpdu.has(flags::AGREEMENT) && bpdu.root_id == root =>
            {
                p.agreed = true;
                p.proposing = false;
            }
            _ => {}
        }
    }

    /// The port's link went up or down.
    pub fn set_enabled(&mut self, port: usize, up: bool, now: Millis, out: &mut Vec<Event>) {
        self.advance(now);
        let rstp = self.rstp_version();
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        if p.enabled == up {
            return;
        }
        p.enabled = up;
        if up {
            p.info = Info::Aged;
            p.edge = p.cfg.edge;
            // mcheck: start with RST BPDUs again.
            p.send_rstp = rstp;
            p.mdelay_until = now + MIGRATE_MS;
            p.new_info = true;
            p.hello_due = now;
        } else {
            p.info = Info::Disabled;
        }
        p.rx_tc = false;
        self.select_roles();
        self.run(now, out);
    }

    /// Timers. Call it often (every 100 ms or so); `now` never goes back.
    pub fn tick(&mut self, now: Millis, out: &mut Vec<Event>) {
        self.advance(now);
        let mut reselect = false;
        for p in &mut self.ports {
            if p.info == Info::Received && now >= p.rcvd_info_until {
                // Nothing heard for three hellos: the info is gone.
                p.info = Info::Aged;
                reselect = true;
            }
        }
        if reselect {
            self.select_roles();
        }
        self.run(now, out);
    }

    fn advance(&mut self, now: Millis) {
        self.now = self.now.max(now);
        let sec = self.now / 1000;
        if sec > self.last_second {
            let gone = (sec - self.last_second).min(u64::from(TX_HOLD_COUNT)) as u8;
            for p in &mut self.ports {
                p.tx_count = p.tx_count.saturating_sub(gone);
            }
            self.last_second = sec;
        }
    }

    /// 17.21.25 updtRolesTree and updtRoles: the root priority vector, the
    /// root port, and each port's role.
    fn select_roles(&mut self) {
        let me = self.id.0;
        let my_mac = self.id.mac();
        let mut best = Vector {
            root: me,
            cost: 0,
            bridge: me,
            port: 0,
            rx_port: 0,
        };
        let mut best_times = self.times;
        let mut root_port = None;
        for (i, p) in self.ports.iter().enumerate() {
            if p.info != Info::Received || BridgeId(p.prio.bridge).mac() == my_mac {
                continue;
            }
            let v = Vector {
                cost: p.prio.cost.saturating_add(p.cfg.cost),
                rx_port: p.id,
                ..p.prio
            };
            if v < best {
                best = v;
                root_port = Some(i);
                best_times = Times {
                    message_age: p.times.message_age.saturating_add(Times::SECOND),
                    ..p.times
                };
            }
        }
        self.root = best;
        self.root_port = root_port;
        self.root_times = best_times;
        let now = self.now;
        let fd = self.forward_delay();
        for i in 0..self.ports.len() {
            let desig = Vector {
                root: best.root,
                cost: best.cost,
                bridge: me,
                port: self.ports[i].id,
                rx_port: self.ports[i].id,
            };
            let p = &mut self.ports[i];
            let role = if !p.enabled {
                Role::Disabled
            } else if root_port == Some(i) {
                Role::Root
            } else if p.info == Info::Received && desig >= p.prio {
                if BridgeId(p.prio.bridge).mac() == my_mac {
                    Role::Backup
                } else {
                    Role::Alternate
                }
            } else {
                // Designated: our info is the port's now. An agreement
                // stands only while our news is as good as before.
                if p.info == Info::Mine && desig > p.prio {
                    p.agreed = false;
                }
                if p.info != Info::Mine || p.prio != desig {
                    p.new_info = true;
                }
                p.info = Info::Mine;
                p.prio = desig;
                p.times = best_times;
                Role::Designated
            };
            if role != p.role {
                p.role = role;
                p.proposed = false;
                p.agree = false;
                p.new_info = true;
                match role {
                    Role::Designated => {
                        p.agreed = false;
                        if p.state != PortState::Forwarding {
                            p.fd_until = Some(now + fd);
                        }
                    }
                    Role::Root => {
                        p.proposing = false;
                        p.fd_until = Some(now + fd);
                    }
                    _ => {
                        p.proposing = false;
                        p.agreed = false;
                        p.fd_until = None;
                    }
                }
            }
        }
    }

    fn set_state(&mut self, i: usize, state: PortState, out: &mut Vec<Event>) {
        let p = &mut self.ports[i];
        if p.state == state {
            return;
        }
        let was_active = p.state != PortState::Discarding;
        p.state = state;
        out.push(Event::State { port: i, state });
        match state {
            PortState::Forwarding => {
                p.fd_until = None;
                if !p.edge && matches!(p.role, Role::Root | Role::Designated) {
                    let now = self.now;
                    self.topology_change(i, true, now, out);
                }
            }
            PortState::Learning => {}
            PortState::Discarding => {
                // 17.25 INACTIVE: what was learned here is stale.
                if was_active && !p.edge {
                    out.push(Event::Flush { port: i });
                }
            }
        }
    }

    /// A topology change, detected on `port` (it went forwarding) or heard
    /// on it (TC flag, TCN): flush every other port, and tell the others
    /// (17.25 DETECTED, NOTIFIED_TC, PROPAGATING).
    fn topology_change(&mut self, port: usize, detected: bool, now: Millis, out: &mut Vec<Event>) {
        self.topology_changes += 1;
        self.last_tc = Some(now);
        let hello = self.hello();
        let stp_tc = ms(self.root_times.max_age) + self.forward_delay();
        for (i, p) in self.ports.iter_mut().enumerate() {
            let active = matches!(p.role, Role::Root | Role::Designated)
                && p.state == PortState::Forwarding
                && !p.edge;
            if i == port {
                if detected && active {
                    p.tc_until = p
                        .tc_until
                        .max(now + if p.send_rstp { hello + 1000 } else { stp_tc });
                    p.new_info = true;
                }
                continue;
            }
            if !p.edge && p.enabled {
                out.push(Event::Flush { port: i });
            }
            if active && p.tc_until <= now {
                p.tc_until = now + if p.send_rstp { hello + 1000 } else { stp_tc };
                p.new_info = p.new_info || p.send_rstp || p.role == Role::Root;
            }
        }
    }

    /// Whether every port but `except` is in sync with the root priority
    /// vector (17.21.? allSynced): discarding, agreed, edge or not
    /// designated.
    fn all_synced(&self, except: usize) -> bool {
        self.ports.iter().enumerate().all(|(i, p)| {
            i == except
                || p.role != Role::Designated
                || p.edge
                || p.agreed
                || p.state == PortState::Discarding
        })
    }

    /// States from roles, proposals and timers, then transmission.
    fn run(&mut self, now: Millis, out: &mut Vec<Event>) {
        let rstp = self.rstp_version();
        let fd = self.forward_delay();
        // A proposal on the root port: put every designated port that has
        // not agreed in discarding (sync), then agree (17.29.2).
        if let Some(r) = self.root_port {
            if self.ports[r].proposed {
                for i in 0..self.ports.len() {
                    let p = &self.ports[i];
                    if i != r
                        && p.role == Role::Designated
                        && !p.edge
                        && !p.agreed
                        && p.state != PortState::Discarding
                    {
                        self.set_state(i, PortState::Discarding, out);
                        self.ports[i].fd_until = Some(now + fd);
                    }
                }
                if self.all_synced(r) {
                    let p = &mut self.ports[r];
                    p.proposed = false;
                    p.agree = true;
                    p.new_info = true;
                }
            }
        }
        for i in 0..self.ports.len() {
            let p = &mut self.ports[i];
            match p.role {
                Role::Disabled | Role::Alternate | Role::Backup => {
                    if p.proposed {
                        // Discarding already: agree at once (17.29.1
                        // ALTERNATE_AGREED).
                        p.proposed = false;
                        p.agree = true;
                        p.new_info = true;
                    }
                    self.set_state(i, PortState::Discarding, out);
                }
                Role::Root => {
                    if rstp {
                        // Every other former root port is discarding by
                        // now (roles are applied at once): forward.
                        self.set_state(i, PortState::Forwarding, out);
                    } else {
                        self.step_by_timer(i, now, fd, out);
                    }
                }
                Role::Designated => {
                    if p.edge || p.agreed {
                        self.set_state(i, PortState::Forwarding, out);
                    } else {
                        if p.state != PortState::Forwarding && p.send_rstp && !p.proposing {
                            p.proposing = true;
                            p.new_info = true;
                        }
                        self.step_by_timer(i, now, fd, out);
                    }
                }
            }
        }
        self.transmit(now, out);
    }

    /// Discarding -> learning -> forwarding, one Forward Delay each.
    fn step_by_timer(&mut self, i: usize, now: Millis, fd: Millis, out: &mut Vec<Event>) {
        let p = &mut self.ports[i];
        if p.state == PortState::Forwarding {
            return;
        }
        let due = *p.fd_until.get_or_insert(now + fd);
        if now < due {
            return;
        }
        match p.state {
            PortState::Discarding => {
                p.fd_until = Some(now + fd);
                p.new_info = true;
                self.set_state(i, PortState::Learning, out);
            }
            _ => self.set_state(i, PortState::Forwarding, out),
        }
    }

    /// 17.26 Port Transmit: what each port sends now.
    fn transmit(&mut self, now: Millis, out: &mut Vec<Event>) {
        let hello = self.hello();
        for i in 0..self.ports.len() {
            let p = &self.ports[i];
            if !p.enabled {
                continue;
            }
            let tc = p.tc_until > now;
            let periodic = now >= p.hello_due;
            let bpdu = match (p.send_rstp, p.role) {
                (_, Role::Disabled) => None,
                (true, Role::Designated) if periodic || p.new_info => Some(self.rst_bpdu(i)),
                (true, Role::Root) if p.new_info || (periodic && tc) => Some(self.rst_bpdu(i)),
                (true, Role::Alternate | Role::Backup) if p.new_info && p.agree => {
                    Some(self.rst_bpdu(i))
                }
                (false, Role::Designated) if periodic || p.new_info => Some(self.config_bpdu(i)),
                (false, Role::Root) if tc && (periodic || p.new_info) => Some(Bpdu::TCN),
                _ => None,
            };
            let p = &mut self.ports[i];
            if periodic {
                p.hello_due = now + hello;
            }
            let Some(bpdu) = bpdu else {
                p.new_info = false;
                continue;
            };
            if p.tx_count >= TX_HOLD_COUNT {
                // Held back: new_info stays for the next second.
                continue;
            }
            p.tx_count += 1;
            p.tx_bpdus += 1;
            p.new_info = false;
            if bpdu.kind == BpduType::Config {
                p.tc_ack = false;
            }
            out.push(Event::Send { port: i, bpdu });
        }
    }

    fn rst_bpdu(&self, i: usize) -> Bpdu {
        let p = &self.ports[i];
        let role = match p.role {
            Role::Root => BpduRole::Root,
            Role::Designated => BpduRole::Designated,
            Role::Alternate | Role::Backup => BpduRole::AlternateOrBackup,
            Role::Disabled => BpduRole::Unknown,
        };
        let mut f = role.bits();
        if p.tc_until > self.now {
            f |= flags::TC;
        }
        if p.proposing && p.role == Role::Designated {
            f |= flags::PROPOSAL;
        }
        if p.agree {
            f |= flags::AGREEMENT;
        }
        match p.state {
            PortState::Forwarding => f |= flags::LEARNING | flags::FORWARDING,
            PortState::Learning => f |= flags::LEARNING,
            PortState::Discarding => {}
        }
        Bpdu {
            kind: BpduType::Rst,
            version: 2,
            flags: f,
            ..self.vector_bpdu(i)
        }
    }

    fn config_bpdu(&self, i: usize) -> Bpdu {
        let p = &self.ports[i];
        let mut f = 0;
        if p.tc_until > self.now || self.any_tc() {
            f |= flags::TC;
        }
        if p.tc_ack {
            f |= flags::TCA;
        }
        Bpdu {
            kind: BpduType::Config,
            version: 0,
            flags: f,
            ..self.vector_bpdu(i)
        }
    }

    /// 802.1D: a designated bridge carries the root's TC flag on.
    fn any_tc(&self) -> bool {
        self.root_port.is_some_and(|r| self.ports[r].rx_tc)
    }

    fn vector_bpdu(&self, i: usize) -> Bpdu {
        Bpdu {
            kind: BpduType::Config,
            version: 0,
            flags: 0,
            root_id: self.root.root,
            root_path_cost: self.root.cost,
            bridge_id: self.id.0,
            port_id: self.ports[i].id,
            times: self.root_times,
        }
    }

    /// What `shunt stp` shows.
    pub fn status(&self) -> Status {
        Status {
            bridge_id: self.id,
            root_id: BridgeId(self.root.root),
            root_port: self.root_port,
            root_path_cost: self.root.cost,
            topology_changes: self.topology_changes,
            last_topology_change: self.last_tc,
            ports: self
                .ports
                .iter()
                .map(|p| PortStatus {
                    role: p.role,
                    state: p.state,
                    edge: p.edge,
                    cost: p.cfg.cost,
                    priority: p.cfg.priority,
                    port_id: p.id,
                    rstp: p.send_rstp,
                    designated_bridge: BridgeId(p.prio.bridge),
                    designated_port: p.prio.port,
                    rx_bpdus: p.rx_bpdus,
                    tx_bpdus: p.tx_bpdus,
                })
                .collect(),
        }
    }
}
