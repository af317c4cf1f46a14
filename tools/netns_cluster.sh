#!/usr/bin/env bash
# tools/netns_cluster.sh — run a command inside a private network namespace holding a bridge
# (10.77.0.1/24) and N node namespaces node0..node<N-1> (10.77.0.2, 10.77.0.3, ...) joined to it:
# several "hosts" on one machine, without touching the machine's own network. Inside, start a
# node's processes with `ip netns exec node<i> ...`.
#
#   tools/netns_cluster.sh N COMMAND [ARGS...]   # COMMAND's exit status
#   tools/netns_cluster.sh --check N             # 0 when this machine allows it (root, or user
#                                                # namespaces), else 1
# As root it uses `unshare --net --mount`; otherwise an unprivileged user namespace
# (`unshare -Urnm`), where processes see themselves as root of the namespace.
set -euo pipefail

if [ "${1:-}" = "--setup" ]; then   # internal: inside the new namespaces
  n=$2; shift 2
  mount -t tmpfs none /run 2>/dev/null || true   # a private /run for /run/netns
  mkdir -p /run/netns
  ip link set lo up
  ip link add br0 type bridge
  ip addr add 10.77.0.1/24 dev br0
  ip link set br0 up
  for i in $(seq 0 $(( n - 1 ))); do
    ip netns add "node$i"
    ip link add "veth$i" type veth peer name eth0 netns "node$i"
    ip link set "veth$i" master br0 up
    ip -n "node$i" addr add "10.77.0.$(( i + 2 ))/24" dev eth0
    ip -n "node$i" link set eth0 up
    ip -n "node$i" link set lo up
    ip -n "node$i" route add default via 10.77.0.1
  done
  [ $# -eq 0 ] && exit 0
  exec "$@"
fi

check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
n=${1:?usage: netns_cluster.sh [--check] N COMMAND...}; shift
command -v ip > /dev/null && command -v unshare > /dev/null || exit 1
if [ "$(id -u)" = 0 ]; then
  runner=(unshare --net --mount --propagation private)
else
  runner=(unshare --user --map-root-user --net --mount)
fi
if [ $check = 1 ]; then
  "${runner[@]}" "$0" --setup "$n" > /dev/null 2>&1
  exit $?
fi
exec "${runner[@]}" "$0" --setup "$n" "$@"
