#!/usr/bin/env python3
"""Captures real offload metadata from the Linux kernel: what a TAP opened
with IFF_VNET_HDR hands to userspace (the 12-byte virtio_net_hdr_v1, then
the frame) when its namespace sends TCP over IPv4 and IPv6 and UDP with
UDP_SEGMENT. Two TAPs, one per namespace, relayed by this script (a
two-port switch), so TCP's handshake works; every record that crosses is
kept, up to a few of each kind, in tap_offloads.vnet: a pcap file of link
type USER0 (147) whose records are header + frame.

Run as root:  python3 capture_vnet.py [out]   (writes ./tap_offloads.vnet)
Makes and deletes: namespaces vnetcap-a / vnetcap-b, TAPs vcap0 / vcap1.
"""

import fcntl
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN = 0x01, 0x02, 0x04, 0x08
TUN_F_USO4, TUN_F_USO6 = 0x20, 0x40
NS = ["vnetcap-a", "vnetcap-b"]
TAPS = ["vcap0", "vcap1"]
ADDRS = [("10.0.0.1", "fd00::1", "02:00:00:00:00:01"),
         ("10.0.0.2", "fd00::2", "02:00:00:00:00:02")]
KEEP = 3  # records of each (gso_type, ethertype) kind


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", 12))
    fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN
                | TUN_F_USO4 | TUN_F_USO6)
    return fd


def cleanup():
    for ns in NS:
        sh("ip", "netns", "del", ns, check=False)


def in_ns(ns, code):
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=20)


SERVER = r"""
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1); c, _ = s.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
print(n)
"""

CLIENT = r"""
import socket, sys, time
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
c = socket.create_connection((sys.argv[1], 5001)); c.sendall(bytes(range(256)) * 40); time.sleep(0.3); c.close()
"""

UDP_GSO = r"""
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT
s.sendto(bytes(range(251)) * 18, (sys.argv[1], 5002))
"""


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tap_offloads.vnet"
    cleanup()
    fds = [open_tap(t) for t in TAPS]
    try:
        for ns, tap, (v4, v6, mac) in zip(NS, TAPS, ADDRS):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", tap, "netns", ns)
            for cmd in (["ip", "link", "set", tap, "address", mac],
                        ["ip", "addr", "add", v4 + "/24", "dev", tap],
                        ["ip", "-6", "addr", "add", v6 + "/64", "dev", tap, "nodad"],
                        ["ip", "link", "set", tap, "up"],
                        ["ip", "link", "set", "lo", "up"]):
                sh("ip", "netns", "exec", ns, *cmd)
        k = sh("ip", "netns", "exec", NS[0], "ethtool", "-k", TAPS[0], check=False).stdout
        print([l.strip() for l in k.splitlines() if "segmentation-offload:" in l or "tx-checksumming" in l])
        kept, counts, stop = [], {}, threading.Event()

        def relay():
            while not stop.is_set():
                r, _, _ = select.select(fds, [], [], 0.1)
                for fd in r:
                    rec = os.read(fd, 70000)
                    os.write(fds[1 - fds.index(fd)], rec)
                    kind = (rec[1], rec[12 + 12:12 + 14])
                    if counts.get(kind, 0) < KEEP:
                        counts[kind] = counts.get(kind, 0) + 1
                        kept.append(rec)

        t = threading.Thread(target=relay)
        t.start()
        time.sleep(0.5)
        for dst in ("10.0.0.2", "fd00::2"):
            srv = subprocess.Popen(["ip", "netns", "exec", NS[1], sys.executable, "-c", SERVER, dst],
                                   stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            in_ns(NS[0], CLIENT.replace("sys.argv[1]", repr(dst)))
            print("tcp", dst, "received", srv.communicate(timeout=10)[0].strip(), "bytes")
            in_ns(NS[0], UDP_GSO.replace("sys.argv[1]", repr(dst)))
        time.sleep(0.5)
        stop.set()
        t.join()
    finally:
        for fd in fds:
            os.close(fd)
        cleanup()
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 70000, 147))
        for rec in kept:
            f.write(struct.pack("<IIII", 0, 0, len(rec), len(rec)))
            f.write(rec)
    kinds = sorted((g, e.hex()) for g, e in counts)
    print(f"{len(kept)} records in {out}; (gso_type, ethertype): {kinds}")


if __name__ == "__main__":
    main()
