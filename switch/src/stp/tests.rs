//! The state machine in simulated networks: bridges joined by links, the
//! BPDUs of each delivered (through the wire format, so the parsers are in
//! the loop) in the order they were sent, time advanced in steps of 50 ms.
//! After every step the forwarding links must form a forest: a loop of
//! forwarding ports at any moment fails the test.

use super::*;
use shunt_parsers::stp::{Bpdu, BpduType};
use shunt_parsers::MacAddr;
use std::collections::VecDeque;

const STEP: Millis = 50;

/// A link's two ends, `(bridge, port)` each.
type Ends = ((usize, usize), (usize, usize));

struct Link {
    a: (usize, usize),
    b: (usize, usize),
    up: bool,
    /// BPDUs from `a` are lost (a one-way failure).
    mute_a: bool,
}

struct Net {
    bridges: Vec<Bridge>,
    links: Vec<Link>,
    now: Millis,
    /// Every event each bridge gave, with the time.
    log: Vec<(Millis, usize, Event)>,
}

fn mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, n]
}

impl Net {
    /// Bridges `(priority, mac's last byte, ports, force_stp)`; links
    /// between `(bridge, port)` pairs, all up.
    fn new(bridges: &[(u16, u8, usize, bool)], links: &[Ends]) -> Net {
        let bridges = bridges
            .iter()
            .map(|&(prio, m, n, stp)| {
                let cfg = BridgeConfig {
                    force_stp: stp,
                    ..BridgeConfig::new(prio, mac(m))
                };
                Bridge::new(cfg, &vec![PortConfig::default(); n], 0)
            })
            .collect();
        let links = links
            .iter()
            .map(|&(a, b)| Link {
                a,
                b,
                up: true,
                mute_a: false,
            })
            .collect();
        let mut net = Net {
            bridges,
            links,
            now: 0,
            log: Vec::new(),
        };
        // Ports without a link have no carrier.
        for b in 0..net.bridges.len() {
            for p in 0..net.bridges[b].port_count() {
                if net.link_of(b, p).is_none() {
                    let mut out = Vec::new();
                    net.bridges[b].set_enabled(p, false, 0, &mut out);
                    net.handle(b, out);
                }
            }
        }
        net
    }

    fn link_of(&self, b: usize, p: usize) -> Option<usize> {
        self.links
            .iter()
            .position(|l| l.a == (b, p) || l.b == (b, p))
    }

    fn handle(&mut self, b: usize, events: Vec<Event>) {
        let mut queue: VecDeque<(usize, Event)> = events.into_iter().map(|e| (b, e)).collect();
        let mut hops = 0;
        while let Some((from, e)) = queue.pop_front() {
            hops += 1;
            assert!(hops < 100_000, "BPDUs without end: a storm of them");
            self.log.push((self.now, from, e));
            let Event::Send { port, bpdu } = e else {
                continue;
            };
            let Some(l) = self.link_of(from, port) else {
                continue;
            };
            let l = &self.links[l];
            if !l.up || (l.mute_a && l.a == (from, port)) {
                continue;
            }
            let (to, to_port) = if l.a == (from, port) { l.b } else { l.a };
            // Through the wire format and back.
            let mut frame = [0u8; 60];
            let n = bpdu
                .emit_frame(MacAddr(mac(from as u8 + 100)), &mut frame)
                .unwrap();
            let got = Bpdu::parse_frame(&frame[..n]).unwrap();
            assert_eq!(got, bpdu);
            let mut out = Vec::new();
            self.bridges[to].receive(to_port, &got, self.now, &mut out);
            queue.extend(out.into_iter().map(|e| (to, e)));
        }
    }

    fn run_for(&mut self, ms: Millis) {
        let end = self.now + ms;
        while self.now < end {
            self.now += STEP;
            for b in 0..self.bridges.len() {
                let mut out = Vec::new();
                self.bridges[b].tick(self.now, &mut out);
                self.handle(b, out);
            }
            self.assert_no_loop();
        }
    }

    /// Runs until `done` holds (at most `limit` ms); returns how long.
    fn run_until(&mut self, limit: Millis, done: impl Fn(&Net) -> bool) -> Millis {
        let start = self.now;
        while !done(self) {
            assert!(
                self.now - start < limit,
                "not converged after {limit} ms:\n{}",
                self.show()
            );
            self.run_for(STEP);
        }
        self.now - start
    }

    fn set_link(&mut self, l: usize, up: bool) {
        self.links[l].up = up;
        let (a, b) = (self.links[l].a, self.links[l].b);
        for (br, p) in [a, b] {
            let mut out = Vec::new();
            self.bridges[br].set_enabled(p, up, self.now, &mut out);
            self.handle(br, out);
        }
    }

    fn state(&self, (b, p): (usize, usize)) -> PortState {
        self.bridges[b].state(p).unwrap()
    }

    fn role(&self, (b, p): (usize, usize)) -> Role {
        self.bridges[b].role(p).unwrap()
    }

    /// Links whose both ends forward.
    fn forwarding_links(&self) -> Vec<usize> {
        (0..self.links.len())
            .filter(|&i| {
                let l = &self.links[i];
                l.up && self.state(l.a) == PortState::Forwarding
                    && self.state(l.b) == PortState::Forwarding
            })
            .collect()
    }

    /// Bridges joined by forwarding links, as groups (union-find), and
    /// whether a forwarding link closed a loop.
    fn components(&self) -> (Vec<usize>, bool) {
        let mut parent: Vec<usize> = (0..self.bridges.len()).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut x = x;
            while p[x] != x {
                x = p[x];
            }
            x
        }
        let mut looped = false;
        for i in self.forwarding_links() {
            let (a, b) = (self.links[i].a.0, self.links[i].b.0);
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra == rb {
                looped = true;
            } else {
                parent[ra] = rb;
            }
        }
        let roots = (0..self.bridges.len())
            .map(|x| find(&mut parent, x))
            .collect();
        (roots, looped)
    }

    fn assert_no_loop(&self) {
        let (_, looped) = self.components();
        assert!(
            !looped,
            "a loop of forwarding ports at {} ms:\n{}",
            self.now,
            self.show()
        );
    }

    /// The bridges in `set` are all joined through forwarding links.
    fn connected(&self, set: &[usize]) -> bool {
        let (roots, _) = self.components();
        set.iter().all(|&b| roots[b] == roots[set[0]])
    }

    /// A spanning tree over every bridge: connected, no loop, and every up
    /// link either forwarding or blocked at one end exactly.
    fn is_tree(&self, set: &[usize]) -> bool {
        let (_, looped) = self.components();
        !looped
            && self.connected(set)
            && self.links.iter().filter(|l| l.up).all(|l| {
                let (sa, sb) = (self.state(l.a), self.state(l.b));
                // Settled: no port half way (learning).
                sa != PortState::Learning
                    && sb != PortState::Learning
                    && (sa == PortState::Forwarding || sb == PortState::Forwarding)
            })
    }

    fn discarding_ends(&self) -> Vec<(usize, usize)> {
        self.links
            .iter()
            .filter(|l| l.up)
            .flat_map(|l| [l.a, l.b])
            .filter(|&e| self.state(e) == PortState::Discarding)
            .collect()
    }

    fn show(&self) -> String {
        let mut s = String::new();
        for (i, b) in self.bridges.iter().enumerate() {
            let st = b.status();
            s += &format!("bridge {i} {} root {}:\n", st.bridge_id, st.root_id);
            for (j, p) in st.ports.iter().enumerate() {
                s += &format!(
                    "  port {j} {} {} {} designated {}.{:04x}\n",
                    p.role_name(),
                    p.state.name(),
                    if p.rstp { "rstp" } else { "stp" },
                    p.designated_bridge,
                    p.designated_port
                );
            }
        }
        s
    }

    fn sent_by(&self, b: usize, since: Millis) -> Vec<(usize, Bpdu)> {
        self.log
            .iter()
            .filter(|(t, from, _)| *from == b && *t >= since)
            .filter_map(|(_, _, e)| match e {
                Event::Send { port, bpdu } => Some((*port, *bpdu)),
                _ => None,
            })
            .collect()
    }

    fn flushes(&self, b: usize, since: Millis) -> Vec<usize> {
        self.log
            .iter()
            .filter(|(t, from, _)| *from == b && *t >= since)
            .filter_map(|(_, _, e)| match e {
                Event::Flush { port } => Some(*port),
                _ => None,
            })
            .collect()
    }
}

const P: u16 = DEFAULT_BRIDGE_PRIORITY;

#[test]
fn bridge_id_reads_like_the_linux_bridge() {
    let id = BridgeId::new(0x8000, [2, 0, 0, 0, 0, 1]);
    assert_eq!(id.to_string(), "8000.020000000001");
    assert_eq!(id.priority(), 0x8000);
    assert!(BridgeId::new(4096, [9; 6]) < id);
}

#[test]
fn a_lone_bridge_is_root_and_its_ports_designated() {
    let mut b = Bridge::new(
        BridgeConfig::new(P, mac(1)),
        &[
            PortConfig::default(),
            PortConfig {
                edge: true,
                ..PortConfig::default()
            },
        ],
        0,
    );
    let mut out = Vec::new();
    b.tick(0, &mut out);
    let st = b.status();
    assert_eq!(st.root_id, st.bridge_id);
    assert_eq!(st.root_port, None);
    assert_eq!(st.ports[0].role_name(), "designated");
    assert_eq!(st.ports[1].role_name(), "edge");
    // The edge port forwards at once; the other proposes, then waits.
    assert_eq!(b.state(1), Some(PortState::Forwarding));
    assert_eq!(b.state(0), Some(PortState::Discarding));
    let sent: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Event::Send { port: 0, bpdu } => Some(*bpdu),
            _ => None,
        })
        .collect();
    assert!(sent[0].kind == BpduType::Rst && sent[0].has(flags::PROPOSAL));
    // Nobody agrees: forward delay twice (15 s + 15 s), as 802.1D.
    b.tick(14_900, &mut out);
    assert_eq!(b.state(0), Some(PortState::Discarding));
    b.tick(15_000, &mut out);
    assert_eq!(b.state(0), Some(PortState::Learning));
    b.tick(30_000, &mut out);
    assert_eq!(b.state(0), Some(PortState::Forwarding));
}

#[test]
fn two_bridges_agree_in_no_time() {
    let mut net = Net::new(&[(P, 1, 1, false), (P, 2, 1, false)], &[((0, 0), (1, 0))]);
    let took = net.run_until(1000, |n| n.is_tree(&[0, 1]));
    assert!(took <= 2 * STEP, "proposal/agreement took {took} ms");
    assert_eq!(net.role((0, 0)), Role::Designated);
    assert_eq!(net.role((1, 0)), Role::Root);
    let st = net.bridges[1].status();
    assert_eq!(st.root_id, net.bridges[0].id());
    assert_eq!(st.root_path_cost, DEFAULT_PORT_COST);
}

#[test]
fn two_bridges_two_links_block_one_port() {
    let mut net = Net::new(
        &[(P, 1, 2, false), (P, 2, 2, false)],
        &[((0, 0), (1, 0)), ((0, 1), (1, 1))],
    );
    let took = net.run_until(2000, |n| n.is_tree(&[0, 1]));
    assert!(took <= 500, "took {took} ms");
    assert_eq!(net.discarding_ends(), vec![(1, 1)]);
    assert_eq!(net.role((1, 1)), Role::Alternate);
    assert_eq!(net.role((1, 0)), Role::Root);
    // And it stays so.
    net.run_for(60_000);
    assert!(net.is_tree(&[0, 1]));
    assert_eq!(net.discarding_ends(), vec![(1, 1)]);
}

/// A (root), B, C in a triangle: A0-B0, B1-C0, C1-A1.
fn triangle(stp: [bool; 3]) -> Net {
    Net::new(
        &[(P, 1, 3, stp[0]), (P, 2, 3, stp[1]), (P, 3, 3, stp[2])],
        &[((0, 0), (1, 0)), ((1, 1), (2, 0)), ((2, 1), (0, 1))],
    )
}

#[test]
fn three_bridges_in_a_loop_block_exactly_one_port() {
    let mut net = triangle([false; 3]);
    let took = net.run_until(2000, |n| n.is_tree(&[0, 1, 2]));
    assert!(took <= 500, "took {took} ms");
    // B and C have equal paths to A; on their link B (lower id) is
    // designated and C's port blocks.
    assert_eq!(net.discarding_ends(), vec![(2, 0)]);
    assert_eq!(net.role((2, 0)), Role::Alternate);
    assert_eq!(net.role((1, 1)), Role::Designated);
    for b in 1..3 {
        assert_eq!(net.bridges[b].status().root_id, net.bridges[0].id());
    }
}

#[test]
fn a_failed_link_reconverges_fast() {
    let mut net = triangle([false; 3]);
    net.run_until(2000, |n| n.is_tree(&[0, 1, 2]));
    let t = net.now;
    net.set_link(0, false); // A-B
    let took = net.run_until(3000, |n| n.is_tree(&[0, 1, 2]));
    assert!(took <= 500, "took {took} ms");
    assert!(net.discarding_ends().is_empty());
    // B reaches A through C now.
    assert_eq!(net.role((1, 1)), Role::Root);
    assert_eq!(net.role((2, 0)), Role::Designated);
    assert_eq!(
        net.bridges[1].status().root_path_cost,
        2 * DEFAULT_PORT_COST
    );
    // A topology change: C flushed what it learned on its port to A.
    assert!(net.flushes(2, t).contains(&1), "{:?}", net.flushes(2, t));
    // The link comes back: one port blocks again.
    net.set_link(0, true);
    net.run_until(3000, |n| {
        n.is_tree(&[0, 1, 2]) && n.discarding_ends().len() == 1
    });
    assert_eq!(net.discarding_ends(), vec![(2, 0)]);
}

#[test]
fn the_root_fails_and_the_next_best_takes_over() {
    let mut net = triangle([false; 3]);
    net.run_until(2000, |n| n.is_tree(&[0, 1, 2]));
    net.set_link(0, false);
    net.set_link(2, false);
    // B and C find each other; B (lower id) is the root. Without a
    // designated bridge to propose, C's info about A ages out first.
    net.run_until(10_000, |n| {
        n.is_tree(&[1, 2]) && n.bridges[2].status().root_id == n.bridges[1].id()
    });
    assert_eq!(net.bridges[1].status().root_port, None);
    assert_eq!(net.role((2, 0)), Role::Root);
}

#[test]
fn a_better_bridge_joins_and_becomes_root() {
    // The triangle, and D (priority 4096) on C's third port, unplugged.
    let mut net = Net::new(
        &[
            (P, 1, 3, false),
            (P, 2, 3, false),
            (P, 3, 3, false),
            (4096, 9, 1, false),
        ],
        &[
            ((0, 0), (1, 0)),
            ((1, 1), (2, 0)),
            ((2, 1), (0, 1)),
            ((2, 2), (3, 0)),
        ],
    );
    net.set_link(3, false);
    net.run_until(2000, |n| n.is_tree(&[0, 1, 2]));
    net.set_link(3, true);
    let took = net.run_until(5000, |n| {
        n.is_tree(&[0, 1, 2, 3]) && n.bridges[0].status().root_id == n.bridges[3].id()
    });
    assert!(took <= 1000, "took {took} ms");
    for b in 0..3 {
        assert_eq!(
            net.bridges[b].status().root_id,
            net.bridges[3].id(),
            "bridge {b}"
        );
    }
    // C is next to the root now; A and B share the triangle's far link,
    // and A (lower id) is designated on it: B blocks its port to A.
    assert_eq!(net.role((2, 2)), Role::Root);
    assert_eq!(net.discarding_ends(), vec![(1, 0)]);
}

#[test]
fn an_stp_neighbour_gets_stp_and_timers() {
    // A speaks RSTP, B only 802.1D (force version 0).
    let mut net = Net::new(&[(P, 1, 1, false), (P, 2, 1, true)], &[((0, 0), (1, 0))]);
    net.run_for(7000);
    // A heard config BPDUs and went over to them after Migrate Time.
    let st = net.bridges[0].status();
    assert!(!st.ports[0].rstp, "{}", net.show());
    let late = net.sent_by(0, 4500);
    assert!(!late.is_empty());
    assert!(
        late.iter().all(|(_, b)| b.kind == BpduType::Config),
        "{late:?}"
    );
    assert!(net
        .sent_by(1, 0)
        .iter()
        .all(|(_, b)| b.kind != BpduType::Rst));
    // No agreement: both ends wait forward delay twice.
    assert_eq!(net.state((1, 0)), PortState::Discarding);
    assert_eq!(net.role((1, 0)), Role::Root);
    net.run_until(40_000, |n| n.is_tree(&[0, 1]));
    assert!(net.now >= 30_000, "forwarding at {} ms", net.now);
}

#[test]
fn tcn_from_an_stp_bridge_is_acknowledged_and_flushes() {
    // A RSTP root with a second, edge-less port to an RSTP bridge C; B
    // speaks 802.1D.
    let mut net = Net::new(
        &[(P, 1, 2, false), (P, 2, 1, true), (P, 3, 1, false)],
        &[((0, 0), (1, 0)), ((0, 1), (2, 0))],
    );
    net.run_until(40_000, |n| n.is_tree(&[0, 1, 2]));
    // B's root port went forwarding: a change B announced with TCNs
    // until A acknowledged one.
    let tcns: Vec<_> = net
        .sent_by(1, 0)
        .into_iter()
        .filter(|(_, b)| b.kind == BpduType::Tcn)
        .collect();
    assert!(!tcns.is_empty() && tcns.len() <= 2, "{tcns:?}");
    assert!(net
        .sent_by(0, 0)
        .iter()
        .any(|(p, b)| *p == 0 && b.kind == BpduType::Config && b.has(flags::TCA)));
    // A flushed its other port, and told C with the TC flag.
    assert!(net.flushes(0, 0).contains(&1));
    assert!(net
        .sent_by(0, 0)
        .iter()
        .any(|(p, b)| *p == 1 && b.kind == BpduType::Rst && b.has(flags::TC)));
    let before = net.bridges[1].status().ports[0].tx_bpdus;
    net.run_for(10_000);
    let after = net.bridges[1].status().ports[0].tx_bpdus;
    assert_eq!(before, after, "B sends nothing more from its root port");
}

#[test]
fn a_loop_with_an_stp_bridge_converges() {
    for stp in [
        [false, true, false],
        [false, false, true],
        [true, false, false],
    ] {
        let mut net = triangle(stp);
        net.run_until(60_000, |n| n.is_tree(&[0, 1, 2]));
        assert_eq!(net.discarding_ends().len(), 1, "{stp:?}\n{}", net.show());
        net.set_link(0, false);
        net.run_until(60_000, |n| n.is_tree(&[0, 1, 2]));
        assert!(net.discarding_ends().is_empty());
    }
}

#[test]
fn an_edge_port_that_hears_a_bpdu_is_no_edge() {
    let edge = PortConfig {
        edge: true,
        ..PortConfig::default()
    };
    let mut a = Bridge::new(BridgeConfig::new(P, mac(1)), &[edge], 0);
    let mut out = Vec::new();
    a.tick(0, &mut out);
    assert_eq!(a.state(0), Some(PortState::Forwarding));
    assert!(a.status().ports[0].edge);
    // A better bridge behind it.
    let b = Bridge::new(BridgeConfig::new(4096, mac(2)), &[PortConfig::default()], 0);
    let bpdu = b.rst_bpdu(0);
    a.receive(0, &bpdu, 100, &mut out);
    let st = a.status();
    assert!(!st.ports[0].edge);
    assert_eq!(st.ports[0].role_name(), "root");
    // Link down and up: edge again.
    a.set_enabled(0, false, 200, &mut out);
    assert_eq!(a.status().ports[0].role_name(), "disabled");
    a.set_enabled(0, true, 300, &mut out);
    assert_eq!(a.status().ports[0].role_name(), "edge");
}

#[test]
fn two_ports_on_one_segment_make_a_backup() {
    // A cable from A's port 0 to its own port 1.
    let mut net = Net::new(&[(P, 1, 2, false)], &[((0, 0), (0, 1))]);
    net.run_for(2000);
    assert_eq!(net.role((0, 1)), Role::Backup, "{}", net.show());
    assert_eq!(net.state((0, 1)), PortState::Discarding);
    assert_eq!(net.role((0, 0)), Role::Designated);
}

#[test]
fn silent_designated_bridge_ages_out() {
    let mut net = Net::new(&[(P, 1, 1, false), (P, 2, 1, false)], &[((0, 0), (1, 0))]);
    net.run_until(1000, |n| n.is_tree(&[0, 1]));
    net.links[0].mute_a = true; // A's BPDUs stop arriving at B.
    net.run_for(5000);
    assert_eq!(net.role((1, 0)), Role::Root, "3 hellos not over yet");
    net.run_for(2000);
    // B thinks itself root and its port designated.
    assert_eq!(net.bridges[1].status().root_id, net.bridges[1].id());
    assert_eq!(net.role((1, 0)), Role::Designated);
}

#[test]
fn costs_and_priorities_choose_the_path() {
    // Two links A-B; B's port 0 is expensive, so port 1 is its root port.
    let cfg = |cost, priority| PortConfig {
        cost,
        priority,
        edge: false,
    };
    let a = Bridge::new(BridgeConfig::new(P, mac(1)), &[PortConfig::default(); 2], 0);
    let b = Bridge::new(
        BridgeConfig::new(P, mac(2)),
        &[cfg(200_000, 128), cfg(20_000, 128)],
        0,
    );
    let mut net = Net {
        bridges: vec![a, b],
        links: vec![
            Link {
                a: (0, 0),
                b: (1, 0),
                up: true,
                mute_a: false,
            },
            Link {
                a: (0, 1),
                b: (1, 1),
                up: true,
                mute_a: false,
            },
        ],
        now: 0,
        log: Vec::new(),
    };
    net.run_until(1000, |n| n.is_tree(&[0, 1]));
    assert_eq!(net.role((1, 1)), Role::Root);
    assert_eq!(net.discarding_ends(), vec![(1, 0)]);
    // Equal costs: A's port priority decides (lower is better): A's port 1
    // at 16 beats its port 0 at 128, so B's port 1 is the root port.
    let a = Bridge::new(
        BridgeConfig::new(P, mac(1)),
        &[cfg(20_000, 128), cfg(20_000, 16)],
        0,
    );
    net.bridges[0] = a;
    net.bridges[1] = Bridge::new(
        BridgeConfig::new(P, mac(2)),
        &[PortConfig::default(); 2],
        net.now,
    );
    net.run_until(5000, |n| n.is_tree(&[0, 1]) && n.role((1, 1)) == Role::Root);
    assert_eq!(net.discarding_ends(), vec![(1, 0)]);
    assert_eq!(net.bridges[0].status().ports[1].port_id, 0x1002);
}

#[test]
fn old_info_is_refused() {
    let mut a = Bridge::new(BridgeConfig::new(P, mac(1)), &[PortConfig::default()], 0);
    let b = Bridge::new(BridgeConfig::new(4096, mac(2)), &[PortConfig::default()], 0);
    let mut bpdu = b.rst_bpdu(0);
    bpdu.times.message_age = bpdu.times.max_age;
    let mut out = Vec::new();
    a.receive(0, &bpdu, 10, &mut out);
    assert_eq!(
        a.status().root_id,
        a.id(),
        "message age at max age: ignored"
    );
}

#[test]
fn random_link_flaps_in_a_mesh_never_loop_and_always_settle() {
    // Four bridges, every pair joined (six links, three ports each); one
    // of them speaks only 802.1D in half the rounds.
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for round in 0..4 {
        let stp = round % 2 == 1;
        let mut net = Net::new(
            &[
                (P, 1, 3, false),
                (P, 2, 3, false),
                (P, 3, 3, stp),
                (P, 4, 3, false),
            ],
            &[
                ((0, 0), (1, 0)),
                ((0, 1), (2, 0)),
                ((0, 2), (3, 0)),
                ((1, 1), (2, 1)),
                ((1, 2), (3, 1)),
                ((2, 2), (3, 2)),
            ],
        );
        for _ in 0..12 {
            let l = next() % 6;
            let up = !net.links[l].up;
            net.set_link(l, up);
            // Sometimes a second change before the first settled.
            if next() % 3 == 0 {
                net.run_for(100);
                let l = next() % 6;
                let up = !net.links[l].up;
                net.set_link(l, up);
            }
            // Which bridges can reach each other over up links at all.
            let mut reach: Vec<usize> = (0..4).collect();
            for _ in 0..4 {
                for l in net.links.iter().filter(|l| l.up) {
                    let m = reach[l.a.0].min(reach[l.b.0]);
                    reach[l.a.0] = m;
                    reach[l.b.0] = m;
                }
            }
            let took = net.run_until(90_000, |n| {
                (0..4).all(|g| {
                    let set: Vec<usize> = (0..4).filter(|&b| reach[b] == g).collect();
                    set.is_empty() || n.is_tree(&set)
                })
            });
            // Settled: a tree over each group, so links up minus blocked
            // links is the bridges minus the groups.
            let groups = (0..4).filter(|&g| reach.contains(&g)).count();
            let up = net.links.iter().filter(|l| l.up).count();
            assert_eq!(
                up - net.forwarding_links().len(),
                up + groups - 4,
                "took {took} ms"
            );
        }
    }
}
