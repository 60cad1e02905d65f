#!/usr/bin/env bash
# Installs what shunt and its tests need and is missing (Debian packages),
# then builds the workspace. Safe to run again: it installs only what lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (shunt creates namespaces and devices): sudo $0" >&2
  exit 1
fi

# Command -> Debian package that provides it.
need=()
declare -A pkg=(
  [ip]=iproute2 [ping]=iputils-ping [arping]=iputils-arping [tcpdump]=tcpdump
  [dig]=dnsutils [iperf3]=iperf3 [trafgen]=netsniff-ng [dnsperf]=dnsperf
  [bridge]=iproute2 [sysctl]=procps [taskset]=util-linux
  [ethtool]=ethtool [nc]=netcat-openbsd [tshark]=tshark [sha256sum]=coreutils [dd]=coreutils
  [ovs-vswitchd]=openvswitch-switch
)
had_ovs=$(command -v ovs-vswitchd >/dev/null 2>&1 && echo yes || echo no)
for cmd in "${!pkg[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${pkg[$cmd]}")
done
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Open vSwitch is here for `shunt bench --vs-ovs`, which runs a daemon of
# its own: the machine-wide service its package starts (where systemd
# runs) is stopped again if this script installed it.
if [ "$had_ovs" = no ] && command -v systemctl >/dev/null 2>&1 &&
   systemctl is-active --quiet openvswitch-switch 2>/dev/null; then
  systemctl disable --now openvswitch-switch >/dev/null 2>&1 || true
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing: install a Rust toolchain (https://rustup.rs) and run again" >&2
  exit 1
fi
[ -e /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && chmod 0666 /dev/net/tun; }
echo "setup: all present"
