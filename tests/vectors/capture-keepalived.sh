#!/bin/bash
# One-off, run by hand as root: capture VRRP adverts (and the gratuitous ARP
# frames) that Debian's keepalived sends, so `tests/vrrp_vectors.rs` can check
# our codec against a real peer rather than against itself. The committed test
# only uses the stored bytes; nothing in CI runs this script.
#
# The IPv6 case also records the unsolicited Neighbour Advertisements
# (ICMPv6 type 136) keepalived sends for its IPv6 VIPs on becoming master.
#
# Two network namespaces joined by one veth pair (fixed MACs so the IPv6
# link-local source is stable):
#
#   vv-ns-a [vv-a 10.250.250.1/24] ==veth== [vv-b 10.250.250.2/24] vv-ns-b
#        keepalived (MASTER)                     tcpdump -w
#
# For each case keepalived runs ~4 s, then gets SIGTERM so the capture also
# holds its priority-0 "resign" advert (RFC 5798 §6.4.3). Output:
# $OUT/<case>.pcap plus the config used ($OUT/<case>.conf).
#
# Usage: tests/vectors/capture-keepalived.sh [OUT_DIR]   (default /tmp/vv-cap)
set -euo pipefail

OUT=${1:-/tmp/vv-cap}
NS_A=vv-ns-a
NS_B=vv-ns-b
mkdir -p "$OUT"

KA_PID=
TD_PID=
cleanup() {
	# Kill only the processes this script started, then drop the namespaces
	# (which removes the veth pair with them).
	[ -n "$KA_PID" ] && kill "$KA_PID" 2>/dev/null || true
	[ -n "$TD_PID" ] && kill "$TD_PID" 2>/dev/null || true
	sleep 0.5
	ip netns del "$NS_A" 2>/dev/null || true
	ip netns del "$NS_B" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add vv-a netns "$NS_A" address 02:00:0a:fa:fa:01 type veth \
	peer name vv-b netns "$NS_B" address 02:00:0a:fa:fa:02
for pair in "$NS_A vv-a 10.250.250.1" "$NS_B vv-b 10.250.250.2"; do
	set -- $pair
	# No DAD, so the link-local address is usable at once.
	ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.accept_dad=0"
	ip -n "$1" addr add "$3/24" dev "$2"
	ip -n "$1" link set lo up
	ip -n "$1" link set "$2" up
done
sleep 1

# run_case NAME: keepalived with $OUT/NAME.conf in vv-ns-a, tcpdump in vv-ns-b.
run_case() {
	local name=$1
	ip netns exec "$NS_B" tcpdump -i vv-b -U -s 0 -w "$OUT/$name.pcap" \
		'arp or ip proto 112 or ip6 proto 112 or (icmp6 and ip6[40] == 136)' \
		2>"$OUT/$name.tcpdump.log" &
	TD_PID=$!
	sleep 1
	ip netns exec "$NS_A" keepalived -n -l -D --vrrp \
		-f "$OUT/$name.conf" \
		-p "$OUT/$name.keepalived.pid" -r "$OUT/$name.vrrp.pid" \
		>"$OUT/$name.keepalived.log" 2>&1 &
	KA_PID=$!
	sleep 4.5
	kill -TERM "$KA_PID"
	wait "$KA_PID" || true
	KA_PID=
	sleep 1
	kill "$TD_PID"
	wait "$TD_PID" || true
	TD_PID=
}

# --- v2-pass: VRRPv2 (RFC 3768), PASS authentication, two VIPs.
cat >"$OUT/v2-pass.conf" <<'CONF'
global_defs {
    router_id vv-a
    vrrp_version 2
}
vrrp_instance VV2 {
    state MASTER
    interface vv-a
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret12
    }
    virtual_ipaddress {
        10.250.250.100/24
        10.250.250.101/24
    }
}
CONF
run_case v2-pass

# --- v3-ipv4: VRRPv3 (RFC 5798) over IPv4, pseudo-header checksum.
cat >"$OUT/v3-ipv4.conf" <<'CONF'
global_defs {
    router_id vv-a
    vrrp_version 3
}
vrrp_instance VV3 {
    state MASTER
    interface vv-a
    virtual_router_id 52
    priority 200
    advert_int 1
    virtual_ipaddress {
        10.250.250.102/24
    }
}
CONF
run_case v3-ipv4

# --- v3-ipv4-as-v2: meant for keepalived's v3_checksum_as_v2 option (no
# pseudo-header). Debian bookworm's keepalived 2.2.7 predates that option: it
# logs "Unknown keyword 'v3_checksum_as_v2'" and still checksums with the
# pseudo-header, so this case yields a pseudo-header advert with a 50 cs
# interval. The no-pseudo-header checksum in the tests is computed by
# extract-vectors.py instead (see tests/vrrp_vectors.rs).
cat >"$OUT/v3-ipv4-as-v2.conf" <<'CONF'
global_defs {
    router_id vv-a
    vrrp_version 3
    v3_checksum_as_v2
}
vrrp_instance VV3C {
    state MASTER
    interface vv-a
    virtual_router_id 53
    priority 100
    advert_int 0.5
    v3_checksum_as_v2
    virtual_ipaddress {
        10.250.250.103/24
    }
}
CONF
run_case v3-ipv4-as-v2

# --- v3-ipv4-unicast-old: unicast v3 with old_unicast_checksum (keepalived
# before 1.3.6 put 224.0.0.18 in the pseudo-header even for unicast).
cat >"$OUT/v3-ipv4-unicast-old.conf" <<'CONF'
global_defs {
    router_id vv-a
    vrrp_version 3
}
vrrp_instance VV3U {
    state MASTER
    interface vv-a
    virtual_router_id 54
    priority 120
    advert_int 1
    old_unicast_checksum
    unicast_src_ip 10.250.250.1
    unicast_peer {
        10.250.250.2
    }
    virtual_ipaddress {
        10.250.250.104/24
    }
}
CONF
run_case v3-ipv4-unicast-old

# --- v3-ipv6: VRRPv3 over IPv6, link-local source, ff02::12. The VIP is a
# ULA that exists only inside the namespace.
cat >"$OUT/v3-ipv6.conf" <<'CONF'
global_defs {
    router_id vv-a
    vrrp_version 3
}
vrrp_instance VV6 {
    state MASTER
    interface vv-a
    virtual_router_id 55
    priority 150
    advert_int 1
    virtual_ipaddress {
        fd00:250:250::100/64
        fd00:250:250::101/64
    }
}
CONF
run_case v3-ipv6

echo "captured into $OUT"
