#!/usr/bin/env python3
"""Writes seeds/<target>/ for the switch's fuzz targets from the captures
(parsers/tests/data, the same files as ../shared/captures, one frame per
file in parsers/fuzz/seeds) and from the
topology files in the tree. The frame targets take steps (see
switch/src/testing/fuzz.rs): ctl, a 2-byte length, the frame; the port
numbers are those of switch/src/testing/fuzz_topology.toml."""
import pathlib, re, shutil, struct

here = pathlib.Path(__file__).resolve().parent
root = here.parent
frame_seeds = root / "parsers" / "fuzz" / "seeds"
out = here / "seeds"

# Ports of the fuzz topology.
WEB, DB1, DB2_LAN, DB2_BLUE, M1, M2, O1, UP, TRUNK, UL = range(10)
LAST, AGE, VNET = 0x10, 0x20, 0x40


def capture(stem):
    """The frames of parsers/tests/data/STEM.pcap, in order, as
    parsers/fuzz/make_seeds.py wrote them (one file per frame)."""
    return [f.read_bytes() for f in sorted(frame_seeds.glob(f"{stem}-[0-9][0-9]"))]


def tag(frame, tci, tpid=0x8100):
    return frame[:12] + struct.pack(">HH", tpid, tci) + frame[12:]


def step(port, frame, flags=0):
    return bytes([port | flags]) + struct.pack(">H", len(frame)) + frame


def toggle(port):
    return bytes([0x80 | port])


def write(target, name, blob):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(blob)


def switch_mac(name, net):
    """stack::switch_mac: FNV-1a of the switch name, then the network."""
    h = 2166136261
    for b in name.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return bytes([0x02, 0x53, h >> 24, (h >> 16) & 0xFF]) + struct.pack(">H", net)


def ip_csum(hdr):
    s = sum(struct.unpack(">%dH" % (len(hdr) // 2), hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


PEER, SELF = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
# The captures' 10.0.0.2 is the switch on lan; on blue it is 10.0.1.1,
# asked by db2 (10.0.1.13).
ADDRS = {0: {}, 1: {bytes([10, 0, 0, 2]): bytes([10, 0, 1, 1]),
                    bytes([10, 0, 0, 1]): bytes([10, 0, 1, 13])}}


def to_switch(fs, net):
    """The frames the capture's 10.0.0.1 sent, addressed to the switch on
    network `net` (its MAC, and on blue its address, checksums mended; the
    UDP checksum zeroed, which IPv4 allows), plus an ARP request for the
    switch made from the first reply."""
    mac = switch_mac("fz", net)
    out = []
    for f in fs:
        if f[6:12] != PEER:
            continue
        f = bytearray(f.replace(SELF, mac))
        for old, new in ADDRS[net].items():
            f = bytearray(bytes(f).replace(old, new))
        if f[12:14] == b"\x08\x00":
            ihl = (f[14] & 0xF) * 4
            f[24:26] = b"\0\0"
            f[24:26] = struct.pack(">H", ip_csum(bytes(f[14:14 + ihl])))
            if f[23] == 17:
                f[14 + ihl + 6:14 + ihl + 8] = b"\0\0"
        if f[12:14] == b"\x08\x06" and not any(g[12:14] == b"\x08\x06" and g[21] == 1 for g in out):
            req = bytearray(f)
            req[0:6] = b"\xff" * 6
            req[21] = 1
            out.append(bytes(req))
        out.append(bytes(f))
    return out


cap = {s: capture(s) for s in ("arp_icmp", "dns", "ipv6_nd_icmp6", "stp_bpdu", "vxlan")}
if out.exists():
    shutil.rmtree(out)

# pipeline: each capture in from an access port, from the trunk tagged
# (VLAN 10, lan) and untagged (native blue), from the macvlan parent and a
# macvlan host; VXLAN from the underlay; a conversation across ports.
for name, fs in cap.items():
    if name == "vxlan":
        write("pipeline", "vxlan-underlay", b"".join(step(UL, f) for f in fs))
        write("pipeline", "vxlan-underlay-then-lan",
              b"".join(step(UL, f) for f in fs[:4]) +
              b"".join(step(O1, f[50:]) for f in fs[:4]))
        continue
    write("pipeline", f"{name}-access", b"".join(step(WEB, f) for f in fs))
    write("pipeline", f"{name}-trunk-tagged",
          b"".join(step(TRUNK, tag(f, 10)) for f in fs))
    write("pipeline", f"{name}-trunk-native", b"".join(step(TRUNK, f) for f in fs))
    write("pipeline", f"{name}-macvlan",
          b"".join(step(UP, f) for f in fs[:4]) + b"".join(step(M1, f) for f in fs[:4]))
    write("pipeline", f"{name}-ovl", b"".join(step(O1, f) for f in fs))
# Request and reply between two ports (learn, then known unicast), a port
# down in between, and ageing.
arp = cap["arp_icmp"]
conversation = (step(WEB, arp[0], LAST) + step(DB1, arp[1], LAST) + step(WEB, arp[2], LAST) +
                toggle(DB1) + step(WEB, arp[2], LAST) + toggle(DB1) + step(WEB, arp[2], AGE))
write("pipeline", "conversation", conversation)
# The same with a trace of every port running (0xc0 starts it).
write("pipeline", "conversation-traced", b"\xc0" + conversation)

# Super-frames and checksum-only frames with their virtio-net header
# (parsers/fuzz/seeds_gso, as the gso tests wrote them; those that fit an
# in-memory port's 3.8 KB): from lan (TAP ports take them whole), from a
# macvlan host (the AF_XDP parent takes none: segments) and from ovl (the
# trunk whole and tagged, the VTEPs in segments with their outer headers).
gso = [f.read_bytes() for f in sorted((root / "parsers" / "fuzz" / "seeds_gso").glob("gso-*"))]
gso = [g for g in gso if len(g) <= 12 + 3800]
# One frame a seed: libFuzzer sizes its inputs after the largest seed, and
# small inputs run faster.
for port, name in ((WEB, "lan"), (M1, "macvlan"), (O1, "ovl")):
    for i, g in enumerate(gso):
        write("pipeline", f"offload-{name}-{i:02}", step(port, g, VNET))

# stack: frames to the switch on lan (ARP, ping, DNS at 10.0.0.2) and on
# blue (DNS forwarded upstream).
for name in ("arp_icmp", "dns"):
    write("stack", f"{name}-lan", b"".join(step(0, f) for f in to_switch(cap[name], 0)))
    write("stack", f"{name}-blue", b"".join(step(1, f, LAST) for f in to_switch(cap[name], 1)))
    write("pipeline", f"{name}-to-switch",
          b"".join(step(WEB, f) for f in to_switch(cap[name], 0)) +
          b"".join(step(DB2_BLUE, f) for f in to_switch(cap[name], 1)))


# dns: the UDP payloads to and from port 53, on each network.
def udp_payloads(fs):
    for f in fs:
        if len(f) < 42 or f[12:14] != b"\x08\x00" or f[23] != 17:
            continue
        ihl = (f[14] & 0xF) * 4
        u = f[14 + ihl:]
        yield struct.unpack(">HH", u[:4]), u[8:]


for i, ((sp, dp), p) in enumerate(udp_payloads(cap["dns"])):
    kind = "query" if dp == 53 else "answer"
    for net in (0, 1):
        write("dns", f"{kind}-{i:02}-net{net}", bytes([net]) + p)

# topology: the fuzz topology, the built-in default and every TOML example
# in the docs and the tree.
write("topology", "fuzz_topology.toml",
      (root / "switch" / "src" / "testing" / "fuzz_topology.toml").read_bytes())
src = (root / "switch" / "src" / "config" / "mod.rs").read_text()
m = re.search(r'DEFAULT_TOPOLOGY: &str = r#"(.*?)"#;', src, re.S)
if m:
    write("topology", "default.toml", m.group(1).encode())
for md in sorted((root / "docs").glob("*.md")):
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", md.read_text(), re.S)):
        write("topology", f"{md.stem}-{i}.toml", block.encode())
for t in sorted(root.glob("perf/**/*.toml")):
    write("topology", f"perf-{t.parent.name}-{t.name}", t.read_bytes())

# control: one line of each request.
lines = [
    '{"cmd":"ping"}', '{"cmd":"ports"}', '{"cmd":"fdb","network":"lan"}',
    '{"cmd":"fdb_delete","network":"lan","mac":"02:00:00:00:00:01"}',
    '{"cmd":"stats"}', '{"cmd":"dns","network":null}',
    '{"cmd":"trace","port":"h1","targets":["lan"],"mac":"02:00:00:00:00:01","count":10,"seconds":2.5}',
    '{"cmd":"trace_packet","packet":"in=h1.lan dst=02:42:0a:00:00:03 vlan=10 type=arp"}',
    '{"cmd":"attach","host":"h1","network":"lan"}',
    '{"cmd":"detach","host":"h1","network":"lan"}', '{"cmd":"shutdown"}',
]
for line in lines:
    cmd = re.search(r'"cmd":"(\w+)"', line).group(1)
    write("control", cmd, (line + "\n").encode())

# packet: `shunt trace --packet` descriptions (docs/trace.md).
specs = [
    "in=h1.lan dst=02:42:0a:00:00:03 vlan=10 type=arp",
    "in=up0,src=02:00:00:00:00:01 type=0x88cc dst=switch len=100",
    "in=h1 type=ipv6 src_ip=fe80::1 dst_ip=ff02::1",
    "in=t vlan=4095 src=01:00:5e:00:00:01 len=9216",
    "in=h1 colour=red",
]
for i, spec in enumerate(specs):
    write("packet", f"spec-{i}", spec.encode())
