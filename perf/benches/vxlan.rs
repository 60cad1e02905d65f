//! VXLAN encapsulation and decapsulation, ns per frame (docs/PERF.md,
//! "VXLAN"). In memory, no I/O, as benches/pipeline.rs.
//!
//! - `decap`: a batch of 64 VXLAN frames (64-byte inner frames) from the
//!   underlay port through the whole pipeline: decapsulation, learning
//!   behind the remote VTEP, forwarding to the local port that holds the
//!   inner destination.
//! - `encap`: a batch of 64 frames from a local port to a MAC learned
//!   behind a remote VTEP through the pipeline, then each queued frame's
//!   50-byte outer header built and [outer, inner] copied out, the bytes a
//!   TAP's writev would gather.
//! - `encap_header`: the outer header alone.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shunt_parsers::vxlan::{emit_vxlan_encap, VxlanEncap};
use shunt_parsers::MacAddr;
use shunt_perf::{frame, mac, port, Rig, NET0, OUT_BYTES};
use shunt_switch::config;
use shunt_switch::ids::{Egress, PortId, VtepId};
use shunt_switch::pipeline::{self, vxlan, Context, BATCH, SLOT};
use shunt_switch::stack::underlay::Underlay;
use std::net::Ipv4Addr;

const NOW: u64 = 1_000_000;
const TOPO: &str = r#"[switch]
name = "perf"
[[network]]
name = "ovl"
vni = 1000
vtep_peers = ["192.0.2.2"]
[[port]]
name = "p0"
network = "ovl"
[[port]]
name = "ul0"
mode = "underlay"
[vtep]
port = "ul0"
address = "192.0.2.1/24"
"#;
const UNDERLAY: usize = 1;
const REMOTE_K: VtepId = match VtepId::new(0) {
    Some(k) => k,
    None => panic!("VTEP 0"),
};
const REMOTE: Egress = Egress::Vtep(REMOTE_K);

fn rig() -> (Rig, Underlay) {
    let topo = config::parse("bench.toml", TOPO).expect("topology");
    let rig = Rig::with_fdb(TOPO, 4096);
    let ul = Underlay::new(
        topo.vtep.as_ref().expect("vtep"),
        MacAddr([2, 0, 0, 0, 0, 1]),
    )
    .expect("underlay");
    ul.set_nexthop(Ipv4Addr::new(192, 0, 2, 2), MacAddr([2, 0, 0, 0, 0, 2]));
    (rig, ul)
}

/// A VXLAN frame from 192.0.2.2 carrying `inner`.
fn vxlan_frame(inner: &[u8]) -> Vec<u8> {
    let mut hdr = [0u8; 50];
    let e = VxlanEncap {
        src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
        dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        src_ip: Ipv4Addr::new(192, 0, 2, 2),
        dst_ip: Ipv4Addr::new(192, 0, 2, 1),
        src_port: 50000,
        dst_port: 4789,
        ttl: 64,
        vni: 1000,
        ident: 0,
        dont_frag: true,
    };
    emit_vxlan_encap(&mut hdr, &e, inner.len()).expect("encap");
    [&hdr[..], inner].concat()
}

fn decap(c: &mut Criterion) {
    let (mut rig, _ul) = rig();
    // The inner destination is a local host on p0; the source is remote.
    rig.fdb.learn(NET0, &mac(1), 0, NOW);
    let f = vxlan_frame(&frame(mac(1), mac(2), None));
    rig.batch.clear();
    for _ in 0..BATCH {
        rig.batch.push(&f);
    }
    let mut g = c.benchmark_group("vxlan");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("decap", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                rig.batch.set_received(i, f.len());
            }
            black_box(rig.run(port(UNDERLAY), NOW))
        })
    });
    g.finish();
}

fn encap(c: &mut Criterion) {
    let (mut rig, ul) = rig();
    rig.fdb.learn(NET0, &mac(1), REMOTE.encode(), NOW);
    rig.fdb.learn(NET0, &mac(2), 0, NOW);
    rig.load(&[frame(mac(1), mac(2), None); BATCH]);
    let mut out = vec![0u8; OUT_BYTES];
    let mut g = c.benchmark_group("vxlan");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("encap", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                rig.batch.set_received(i, 64);
            }
            let ctx = Context {
                plan: &rig.plan,
                fdb: &rig.fdb,
                counters: &rig.counters,
                port_up: &rig.port_up,
                tracer: &rig.tracer,
                capture: &rig.capture,
                stack: None,
                stp: None,
                l2: None,
                mdb: None,
                worker: 0,
                guard: &rig.guard,
                dry: false,
            };
            let p0 = PortId::new(0).expect("port 0");
            pipeline::run(&ctx, p0, &mut rig.batch, &mut rig.tx, NOW);
            let v = rig.plan.vxlan.as_ref().expect("vxlan plan");
            let mut k = 0;
            for e in rig.tx.queue(REMOTE) {
                let i = e.frame as usize;
                let f = rig.batch.frame(i);
                let m = &rig.batch.meta[i];
                let vni = m
                    .net
                    .and_then(|n| rig.plan.nets.get(n.index()))
                    .and_then(|n| n.vni);
                let Ok(h) = vxlan::outer_header(v, Some(&ul), REMOTE_K, vni, f, m.tag_len as usize)
                else {
                    continue;
                };
                let o = &mut out[k * SLOT..];
                o[..50].copy_from_slice(&h);
                o[50..50 + f.len()].copy_from_slice(f);
                k += 1;
            }
            rig.tx.clear();
            black_box(k)
        })
    });
    let f = frame(mac(1), mac(2), None);
    let v = rig.plan.vxlan.clone().expect("vxlan plan");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encap_header", |b| {
        b.iter(|| {
            black_box(vxlan::outer_header(
                &v,
                Some(&ul),
                REMOTE_K,
                Some(1000),
                black_box(&f),
                0,
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, decap, encap);
criterion_main!(benches);
