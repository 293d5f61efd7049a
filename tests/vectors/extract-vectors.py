#!/usr/bin/env python3
"""Print the frames of a capture-keepalived.sh pcap as hex, one per line.

Companion of capture-keepalived.sh (run by hand, never by CI). For each
Ethernet frame prints: kind, then the hex that tests/vrrp_vectors.rs stores:
  ipv4-vrrp  <whole IPv4 packet: header + VRRP>       (raw IPv4 sockets see this)
  ipv6-vrrp  <src> <dst> <hop limit> <VRRP payload>   (raw IPv6 sockets see the
                                                       payload only)
  arp        <whole Ethernet frame>
  ndisc-na   <whole Ethernet frame>                   (unsolicited Neighbour
                                                       Advertisement)
Also, for v3 over IPv4, the checksum the VRRP message would carry without the
pseudo-header (computed here, independently of the Rust code).
"""
import ipaddress
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frames(path):
    raw = open(path, "rb").read()
    magic, = struct.unpack("<I", raw[:4])
    assert magic == 0xA1B2C3D4, "expected a little-endian microsecond pcap"
    assert struct.unpack("<I", raw[20:24])[0] == 1, "expected Ethernet"
    off = 24
    while off < len(raw):
        _, _, incl, _ = struct.unpack("<IIII", raw[off:off + 16])
        yield raw[off + 16:off + 16 + incl]
        off += 16 + incl


for frame in frames(sys.argv[1]):
    ethertype, = struct.unpack("!H", frame[12:14])
    if ethertype == 0x0806:
        print("arp", frame.hex())
    elif ethertype == 0x0800:
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total, = struct.unpack("!H", ip[2:4])
        vrrp = ip[ihl:total]
        print("ipv4-vrrp", ip[:total].hex())
        if vrrp[0] >> 4 == 3:
            zeroed = vrrp[:6] + b"\0\0" + vrrp[8:]
            print("  v3 checksum without pseudo-header: %04x" % csum(zeroed))
    elif ethertype == 0x86DD:
        ip = frame[14:]
        plen, nxt, hlim = struct.unpack("!HBB", ip[4:8])
        if nxt == 58:
            print("ndisc-na", frame.hex())
            continue
        src = ipaddress.IPv6Address(ip[8:24])
        dst = ipaddress.IPv6Address(ip[24:40])
        print("ipv6-vrrp", src, dst, hlim, ip[40:40 + plen].hex())
