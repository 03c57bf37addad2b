#!/bin/sh
# The storage fabric of the storage_network scenario, inside the VM, built
# with ip(8) in network namespaces (the idea of tests/lab/netns_lab.py,
# with the VM's own root namespace as the host):
#
#   stor0 (VM, systemd-networkd) ---- eth0 hp-r1 eth1 ===9000=== eth0 hp-t9000  198.18.2.10
#   198.18.1.2/24                   198.18.1.1   eth2 ---1500--- eth0 hp-t1500  198.18.3.10
#
# systemd-networkd creates stor0 and its peer stor0p (20-stor0.netdev); this
# script moves stor0p into hp-r1 and waits until networkd has configured
# stor0. It is idempotent and prints "changed"
# when it built something.
set -eu
changed=no
# networkd creates stor0/stor0p from 20-stor0.netdev (reload: harmless when nothing changed)
networkctl reload
i=0
until ip link show stor0p >/dev/null 2>&1 || ip -n hp-r1 link show eth0 >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -le 300 ] || { echo "systemd-networkd did not create stor0/stor0p" >&2; exit 1; }
  sleep 0.2
done
ns() { ip netns list | grep -qw "$1" || { ip netns add "$1"; ip -n "$1" link set lo up; changed=yes; }; }
for n in hp-r1 hp-t9000 hp-t1500; do ns "$n"; done
ip netns exec hp-r1 sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# stor0's peer into the router
if ip link show stor0p >/dev/null 2>&1; then
  ip link set stor0p netns hp-r1
  ip -n hp-r1 link set stor0p name eth0
  ip -n hp-r1 link set eth0 mtu 9000 up
  ip -n hp-r1 addr add 198.18.1.1/24 dev eth0
  ip -n hp-r1 addr add fd42:1ab:0:1::1/64 dev eth0 nodad
  changed=yes
fi
# veth router <-> target: ROUTER_IF NET MTU_ROUTER TARGET_NS MTU_TARGET
link() {
  ip -n hp-r1 link show "$1" >/dev/null 2>&1 && return 0
  ip link add hpa$2 mtu "$3" type veth peer name hpb$2 mtu "$5"
  ip link set hpa$2 netns hp-r1
  ip link set hpb$2 netns "$4"
  ip -n hp-r1 link set hpa$2 name "$1" up
  ip -n "$4" link set hpb$2 name eth0 up
  ip -n hp-r1 addr add 198.18.$2.1/24 dev "$1"
  ip -n hp-r1 addr add fd42:1ab:0:$2::1/64 dev "$1" nodad
  ip -n "$4" addr add 198.18.$2.10/24 dev eth0
  ip -n "$4" addr add fd42:1ab:0:$2::10/64 dev eth0 nodad
  ip -n "$4" route add default via 198.18.$2.1
  ip -n "$4" -6 route add default via fd42:1ab:0:$2::1
  changed=yes
}
link eth1 2 9000 hp-t9000 9000
link eth2 3 1500 hp-t1500 1500
# With its peer up stor0 has carrier, and networkd finishes configuring it
# (addresses, routes): "routable (configured)".
i=0
until networkctl status stor0 2>/dev/null | grep -q 'State: .*(configured)'; do
  i=$((i + 1))
  if [ $i -gt 300 ]; then networkctl status stor0 >&2 || true; echo "systemd-networkd did not configure stor0" >&2; exit 1; fi
  sleep 0.2
done
echo "$changed"
