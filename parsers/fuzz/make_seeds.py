#!/usr/bin/env python3
"""Writes seeds/ from ../tests/data/*.pcap: every real frame, plus each
frame of the first few with an 802.1Q tag and an 802.1ad+802.1Q stack
inserted, so the VLAN paths start from real shapes too."""
import pathlib, struct

here = pathlib.Path(__file__).resolve().parent
out = here / "seeds"
out.mkdir(exist_ok=True)

def frames(path):
    d = path.read_bytes()
    le = d[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    off = 24
    while off + 16 <= len(d):
        incl = struct.unpack("<I" if le else ">I", d[off + 8:off + 12])[0]
        off += 16
        yield d[off:off + incl]
        off += incl

def tag(frame, tpid, tci):
    return frame[:12] + struct.pack(">HH", tpid, tci) + frame[12:]

for pcap in sorted((here.parent / "tests" / "data").glob("*.pcap")):
    for i, f in enumerate(frames(pcap)):
        (out / f"{pcap.stem}-{i:02}").write_bytes(f)
        if i < 2:
            (out / f"{pcap.stem}-{i:02}-vlan").write_bytes(tag(f, 0x8100, 0xA064))
            (out / f"{pcap.stem}-{i:02}-qinq").write_bytes(
                tag(tag(f, 0x8100, 100), 0x88A8, 20))
