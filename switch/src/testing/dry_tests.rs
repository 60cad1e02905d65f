//! The dry run of `shunt trace --packet` (pipeline/dry.rs): it decides as
//! the workers do and changes nothing.

use crate::counters::DropReason;
use crate::pipeline::dry::*;
use crate::pipeline::{Stage, Verdict};
use crate::testing::{port, Rig};

const TOPO: &str = r#"
[switch]
name = "dry"
[[network]]
name = "lan"
vlan = 10
subnet = "10.0.0.0/24"
[[host]]
name = "h1"
networks = ["lan"]
[[host]]
name = "h2"
networks = ["lan"]
[[port]]
name = "t"
kind = "tap"
mode = "trunk"
networks = ["lan"]
[[storm]]
port = "h1.lan"
broadcast = 1
"#;

fn frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f
}

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

#[test]
fn decides_as_the_datapath_and_changes_nothing() {
    let mut rig = Rig::new(TOPO);
    // h2 is known: a real frame from it.
    rig.ports[1].push(&frame(B, [0xff; 6]));
    rig.step(port(1), 1000);
    let fdb_before = rig.fdb.entries();
    let rx_before = rig.counters.port(port(0).into()).rx_frames.get();
    let mut scratch = Scratch::new();
    let ctx = rig.context();
    // Known unicast from h1 to h2: to h2.lan, h1's MAC not learned.
    let d = run(&ctx, &mut scratch, port(0), &frame(A, B), 2000).expect("fits");
    assert_eq!(d.record.verdict, Verdict::Unicast(port(1).into()));
    assert_eq!(d.stages.len(), 8);
    assert_eq!(d.stages[0].0, Stage::Classify);
    assert_eq!(d.sent.len(), 1);
    assert_eq!(d.sent[0].dev, port(1));
    // Unknown: flooded to h2 and the trunk, tagged 10 there.
    let d = run(
        &ctx,
        &mut scratch,
        port(0),
        &frame(A, [2, 0, 0, 0, 0, 0xc]),
        2000,
    )
    .expect("fits");
    assert!(matches!(d.record.verdict, Verdict::Flood(_)), "{d:?}");
    let trunk = d
        .sent
        .iter()
        .find(|s| s.dev == port(2))
        .expect("trunk copy");
    assert_eq!(&trunk.bytes[12..16], &[0x81, 0, 0, 10]);
    // Broadcasts at 1/s: the bucket holds one token; a dry run never
    // takes it, however often it asks.
    for _ in 0..5 {
        let d = run(&ctx, &mut scratch, port(0), &frame(A, [0xff; 6]), 2000).expect("fits");
        assert!(matches!(d.record.verdict, Verdict::Flood(_)), "{d:?}");
    }
    // A tag not allowed on the trunk: dropped at classify.
    let mut tagged = frame(A, B);
    tagged.splice(12..12, [0x81, 0, 0, 30]);
    let d = run(&ctx, &mut scratch, port(2), &tagged, 2000).expect("fits");
    assert_eq!(d.record.verdict, Verdict::Drop(DropReason::VlanNotAllowed));
    assert_eq!(d.stages[0].1.verdict, d.record.verdict);
    // A jumbo frame (`len=9216`) on a 1500 port: oversize, no panic.
    let mut big = frame(A, B);
    big.resize(9216, 0); // probe::MAX_LEN, the largest `len=`
    let d = run(&ctx, &mut scratch, port(0), &big, 2000).expect("fits a slot");
    assert_eq!(d.record.verdict, Verdict::Drop(DropReason::Oversize));
    assert_eq!(rig.fdb.entries(), fdb_before, "nothing learned");
    assert!(rig.fdb.entries().iter().all(|(_, m, _)| *m != A));
    assert_eq!(
        rig.counters.port(port(0).into()).rx_frames.get(),
        rx_before,
        "nothing counted"
    );
    // The real frame after five dry broadcasts still finds its token.
    rig.ports[0].push(&frame(A, [0xff; 6]));
    rig.step(port(0), 2000);
    assert_eq!(
        rig.counters.port(port(0).into()).drops[DropReason::StormBroadcast as usize].get(),
        0
    );
}

const VXLAN: &str = r#"
[switch]
name = "dryx"
[[network]]
name = "ovl"
subnet = "10.0.0.0/24"
address = "10.0.0.1"
vni = 1000
vtep_peers = ["192.0.2.2"]
[[port]]
name = "t0"
kind = "tap"
interface = "t0"
mode = "access"
network = "ovl"
[[port]]
name = "ul0"
kind = "tap"
interface = "ul0"
mode = "underlay"
[vtep]
port = "ul0"
address = "192.0.2.1/24"
"#;

#[test]
fn a_flood_to_a_vtep_is_shown_encapsulated_and_nothing_leaves() {
    let topo = crate::config::parse("t.toml", VXLAN).expect("topology");
    let rig = Rig::new(VXLAN).with_stack(&topo).expect("stack");
    let ul = rig.stack.as_ref().and_then(|s| s.underlay.as_ref());
    ul.expect("underlay").set_nexthop(
        std::net::Ipv4Addr::new(192, 0, 2, 2),
        shunt_parsers::MacAddr([2, 0, 0, 0, 0, 2]),
    );
    let mut scratch = Scratch::new();
    let ctx = rig.context();
    let d = run(&ctx, &mut scratch, port(0), &frame(A, [0xff; 6]), 1000).expect("fits");
    assert!(matches!(d.record.verdict, Verdict::Flood(_)), "{d:?}");
    let copy = d
        .sent
        .iter()
        .find(|s| s.to.is_vtep())
        .expect("a copy for the VTEP");
    assert_eq!(copy.dev, port(1), "it leaves by the underlay");
    let x = shunt_parsers::vxlan::decap_for(&copy.bytes, None).expect("VXLAN");
    assert_eq!(
        (x.vni, x.dst_ip),
        (1000, std::net::Ipv4Addr::new(192, 0, 2, 2))
    );
    assert_eq!(
        &copy.bytes[x.inner.clone()][..12],
        &frame(A, [0xff; 6])[..12]
    );
    // For the switch itself: said so, and nothing handed to its stack.
    let stack = rig.stack.as_ref().expect("stack");
    let own = stack.nets[0].mac;
    let d = run(&ctx, &mut scratch, port(0), &frame(A, own.0), 1000).expect("fits");
    assert_eq!(d.record.verdict, Verdict::Local);
    assert!(
        stack.to_host.is_empty(),
        "a dry run hands the stack nothing"
    );
    // Nothing was sent, nothing learned.
    assert!(rig.ports.iter().all(|p| p.sent().next().is_none()));
    assert!(rig.fdb.is_empty());
}
