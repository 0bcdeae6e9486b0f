#!/bin/bash
# The network side of the fake VPS's metadata service, as on a cloud: 169.254.169.254 is not
# an address of the VPS but a host one hop away. It lives in its own network namespace
# behind a veth pair; the VPS reaches it over an on-link route, and traffic from containers
# on the VPS is forwarded to it through the VPS's FORWARD chain (so DOCKER-USER rules apply,
# unlike traffic to a local address, which never leaves the INPUT path).
#   metadata-net.sh up     create the namespace, the veth pair, addresses and routes
#   metadata-net.sh down   remove them (deleting the namespace deletes the pair)
set -euo pipefail
NS=fake-vps-metadata
VPS_IF=md-vps          # VPS end of the pair
SRV_IF=md-srv          # metadata end, inside $NS
VPS_ADDR=169.254.169.253/30
SRV_ADDR=169.254.169.254/30

down() {
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$VPS_IF" 2>/dev/null || true
}

case "${1:-}" in
  up)
    down
    ip netns add "$NS"
    ip link add "$VPS_IF" type veth peer name "$SRV_IF" netns "$NS"
    ip addr add "$VPS_ADDR" dev "$VPS_IF"
    ip link set "$VPS_IF" up
    ip -n "$NS" link set lo up
    ip -n "$NS" addr add "$SRV_ADDR" dev "$SRV_IF"
    ip -n "$NS" link set "$SRV_IF" up
    # Replies to forwarded (not masqueraded) traffic go back through the VPS.
    ip -n "$NS" route add default via "${VPS_ADDR%/*}"
    ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
