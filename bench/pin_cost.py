#!/usr/bin/env python3
"""What the nftables flow pins cost per packet, in a real kernel (issue #20).

    cargo build --release --example pin_cost && sudo python3 bench/pin_cost.py

Two throwaway network namespaces joined by a veth pair: a sender and a
director, whose eth0 carries the table the agent renders for one TCP service
(`examples/pin_cost.rs`). The sender writes Ethernet frames for the VIP to
the director's MAC from an AF_PACKET socket; the director's ingress rules
rewrite and `fwd` each back out (the sender's side drops them as not its
own). Each case sends the same number of frames, five rounds, and reports
the fastest round's time per frame, with the table:

* absent (the frames go up the director's stack and are dropped there);
* `unpinned`: the table with the pin rules deleted, as it was before pins;
* `pinned flow`: one established flow, pinned (rule 1 forwards it);
* `new flow each frame`: every frame another flow's first packet without
  SYN, so rule 3 adds a pin each time (after rules 1 and 2 look it up);
* `SYN`: no pin found by rules 1 and 2, no pin added (rule 4).

The sender's loop is Python, the same in every case: differences between
cases are the rules' cost.
"""

import ctypes
import os
import socket
import struct
import subprocess
import sys
import time

FRAMES = 100_000
ROUNDS = 5
TX, DIR = "pincost-tx", "pincost-dir"
CLONE_NEWNET = 0x40000000
EXAMPLE = "target/x86_64-unknown-linux-gnu/release/examples/pin_cost"


def sh(*args, stdin=None):
    return subprocess.run(args, input=stdin, check=True, capture_output=True, text=True).stdout


def checksum(header):
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(dst_mac, src_mac, client, sport, flags):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0,
                     socket.inet_aton(client), socket.inet_aton("10.77.0.200"))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    tcp = struct.pack("!HHIIBBHHH", sport, 80, 1, 1, 5 << 4, flags, 65535, 0, 0)
    return dst_mac + src_mac + b"\x08\x00" + ip + tcp


def mac_of(ns, dev):
    text = sh("ip", "-n", ns, "-o", "link", "show", dev)
    return text.split("link/ether ")[1].split()[0]


def send(frames):
    """Time per frame (ns) of the fastest of ROUNDS rounds."""
    return min(send_once(frames) for _ in range(ROUNDS))


def send_once(frames):
    """Time per frame (ns) of sending `frames` once from tx0."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("tx0", 0))
    start = time.perf_counter_ns()
    for f in frames:
        s.send(f)
    took = (time.perf_counter_ns() - start) / len(frames)
    s.close()
    return took


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    if not os.path.exists(EXAMPLE):
        sys.exit("cargo build --release --example pin_cost first")
    subprocess.run(["ip", "netns", "del", TX], capture_output=True)
    subprocess.run(["ip", "netns", "del", DIR], capture_output=True)
    sh("ip", "netns", "add", TX)
    sh("ip", "netns", "add", DIR)
    try:
        sh("ip", "link", "add", "tx0", "netns", TX, "type", "veth", "peer", "name", "eth0", "netns", DIR)
        sh("ip", "-n", TX, "link", "set", "tx0", "up")
        sh("ip", "-n", DIR, "link", "set", "eth0", "up")
        director = mac_of(DIR, "eth0")
        table = sh(EXAMPLE, "eth0", director)
        # The sender's socket must live in TX: enter it for the rest.
        fd = os.open(f"/run/netns/{TX}", os.O_RDONLY)
        # (os.setns is Python 3.12's; Debian bookworm has 3.11.)
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            sys.exit(f"setns: {os.strerror(ctypes.get_errno())}")
        dst = bytes.fromhex(director.replace(":", ""))
        src = bytes.fromhex(mac_of(TX, "tx0").replace(":", ""))
        ack, syn = 0x10, 0x02
        one_flow = [frame(dst, src, "10.77.1.1", 40000, ack)] * FRAMES
        new_flows = [
            frame(dst, src, f"10.77.2.{1 + i // 50000}", 1024 + i % 50000, ack)
            for i in range(FRAMES)
        ]
        syns = [frame(dst, src, "10.77.1.1", 40000, syn)] * FRAMES
        nft = lambda text: sh("ip", "netns", "exec", DIR, "nft", "-f", "-", stdin=text)
        flush = "table netdev lbdeploy\ndelete table netdev lbdeploy\n"
        results = []
        results.append(("no table", send(one_flow)))
        nft(table)
        chain = sh("ip", "netns", "exec", DIR, "nft", "-a", "list", "chain", "netdev", "lbdeploy", "vi0")
        handles = [l.rsplit("# handle ", 1)[1] for l in chain.splitlines() if "@tcp4" in l]
        nft("".join(f"delete rule netdev lbdeploy vi0 handle {h}\n" for h in handles))
        results.append(("unpinned (the rule before pins)", send(one_flow)))
        nft(flush + table)
        results.append(("pinned flow (rule 1)", send(one_flow)))
        # Each round must find its flows new: the pins go between rounds.
        rounds = []
        for _ in range(ROUNDS):
            sh("ip", "netns", "exec", DIR, "nft", "flush", "map", "netdev", "lbdeploy", "tcp4")
            rounds.append(send_once(new_flows))
        results.append(("new flow each frame (rule 3 adds a pin)", min(rounds)))
        results.append(("SYN (rule 4, after two pin lookups)", send(syns)))
        pins = sh("ip", "netns", "exec", DIR, "nft", "list", "map", "netdev", "lbdeploy", "tcp4").count(" expires ")
        base = results[1][1]
        print(f"{FRAMES} frames per round, fastest of {ROUNDS} rounds; pins left: {pins}")
        print("| case | ns per frame (sender loop included) | vs unpinned |")
        print("|---|---|---|")
        for name, ns in results:
            print(f"| {name} | {ns:.0f} | {ns - base:+.0f} ns |")
    finally:
        subprocess.run(["ip", "netns", "del", TX], capture_output=True)
        subprocess.run(["ip", "netns", "del", DIR], capture_output=True)


if __name__ == "__main__":
    main()
