//! The rig's impairment (`Rig::with_impair`, perf/benches/pipeline.rs
//! group `impair`): an impaired egress's copies are decided as a worker
//! decides them, an unimpaired port beside it is left alone.

use crate::counters::DropReason;
use crate::testing::{port, Rig};

const TOPO: &str = "[switch]\nname = \"t\"\n\n[[network]]\nname = \"lan\"\n\n\
    [[port]]\nname = \"p0\"\nkind = \"tap\"\nmode = \"access\"\nnetwork = \"lan\"\n\n\
    [[port]]\nname = \"p1\"\nkind = \"tap\"\nmode = \"access\"\nnetwork = \"lan\"\n\n\
    [[port]]\nname = \"p2\"\nkind = \"tap\"\nmode = \"access\"\nnetwork = \"lan\"\n";

/// A broadcast from p0 (one copy to p1, one to p2), numbered in its
/// last byte.
fn frame(n: u8) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[59] = n;
    f
}

fn send(rig: &mut Rig, n: u8) {
    assert!(rig.ports[0].push(&frame(n)));
    rig.step(port(0), 1000);
}

#[test]
fn lost_held_and_unimpaired_beside() {
    // p1 loses everything; p2 gets what p0 floods.
    let toml = format!("{TOPO}\n[[impair]]\nport = \"p1\"\nloss = \"100%\"\n");
    let mut rig = Rig::new(&toml).with_impair(&toml);
    send(&mut rig, 1);
    assert_eq!(rig.ports[1].sent().count(), 0);
    assert_eq!(rig.ports[2].sent().count(), 1);
    let lost = rig.counters.port(port(1).into()).drops[DropReason::ImpairLoss as usize].get();
    assert_eq!(lost, 1);

    // p1 delays 20 ms: held, then sent by a turn once due.
    let toml = format!("{TOPO}\n[[impair]]\nport = \"p1\"\ndelay = \"20ms\"\n");
    let mut rig = Rig::new(&toml).with_impair(&toml);
    send(&mut rig, 2);
    assert_eq!(rig.ports[1].sent().count(), 0, "sent before its delay");
    assert_eq!(rig.ports[2].sent().count(), 1, "p2 is not delayed");
    assert_eq!(rig.impair_turn(), 0);
    std::thread::sleep(std::time::Duration::from_millis(25));
    assert_eq!(rig.impair_turn(), 1);
    let got: Vec<Vec<u8>> = rig.ports[1].sent().map(|f| f.to_vec()).collect();
    assert_eq!(got, [frame(2)]);

    // Nothing impaired: a rig with impairment off sends as one without.
    let mut rig = Rig::new(TOPO).with_impair(TOPO);
    send(&mut rig, 3);
    assert_eq!(rig.impair_turn(), 0);
    assert_eq!(rig.ports[1].sent().count(), 1);
    assert_eq!(rig.ports[2].sent().count(), 1);
}
