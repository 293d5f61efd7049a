#!/usr/bin/python3
"""Client-side failover probe for bench/failover.sh (run in the lab client).

    failover-probe.py VIP SECONDS OUT

Every 10 ms it sends one ICMP echo request to VIP and opens one TCP
connection to VIP:80 that sends `GET /`; each probe is independent
(non-blocking, never waits for an earlier one) and counts as answered if
its reply arrives within 200 ms. OUT gets one line per probe:
`KIND SENT_NS OK` (KIND icmp or http, SENT_NS the CLOCK_REALTIME send
time, OK 1 or 0). The gap of a run is the longest time between the send
times of two consecutive answered probes of a kind.
"""

import errno
import os
import select
import socket
import struct
import sys
import time

PERIOD = 0.010
TIMEOUT = 0.200


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main():
    vip, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    ident = os.getpid() & 0xFFFF
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    icmp.setblocking(False)
    poll = select.poll()
    poll.register(icmp, select.POLLIN)
    results = []  # (kind, sent_ns, ok)
    pings = {}  # seq -> (sent_ns, deadline)
    conns = {}  # fd -> [sock, sent_ns, deadline, sent_request, buf]
    seq = 0
    start = time.monotonic()
    end = start + seconds
    next_probe = start
    while True:
        now = time.monotonic()
        if now >= next_probe and now < end:
            sent = time.time_ns()
            seq = (seq + 1) & 0xFFFF
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            payload = struct.pack("!Q", sent)
            pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + payload), ident, seq) + payload
            try:
                icmp.sendto(pkt, (vip, 0))
            except OSError:
                pass
            pings[seq] = (sent, now + TIMEOUT)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((vip, 80))
            if err in (0, errno.EINPROGRESS):
                conns[s.fileno()] = [s, sent, now + TIMEOUT, False, b""]
                poll.register(s, select.POLLOUT | select.POLLIN)
            else:
                s.close()
                results.append(("http", sent, 0))
            next_probe += PERIOD
        now = time.monotonic()
        for q, (sent, dl) in list(pings.items()):
            if now > dl:
                results.append(("icmp", sent, 0))
                del pings[q]
        for fd, c in list(conns.items()):
            if now > c[2]:
                results.append(("http", c[1], 0))
                poll.unregister(fd)
                c[0].close()
                del conns[fd]
        if now >= end and not pings and not conns:
            break
        wait = max(0.0, min(next_probe - now, 0.005)) if now < end else 0.005
        for fd, ev in poll.poll(wait * 1000):
            if fd == icmp.fileno():
                while True:
                    try:
                        data = icmp.recv(2048)
                    except BlockingIOError:
                        break
                    ihl = (data[0] & 0x0F) * 4
                    typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                    if typ == 0 and rid == ident and rseq in pings:
                        results.append(("icmp", pings.pop(rseq)[0], 1))
                continue
            c = conns.get(fd)
            if c is None:
                continue
            s = c[0]
            done = None
            if ev & (select.POLLERR | select.POLLHUP) and not ev & select.POLLIN:
                done = 0
            elif not c[3] and ev & select.POLLOUT:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    done = 0
                else:
                    try:
                        s.send(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
                        c[3] = True
                        poll.modify(fd, select.POLLIN)
                    except OSError:
                        done = 0
            elif ev & select.POLLIN:
                try:
                    chunk = s.recv(4096)
                except OSError:
                    chunk = None
                if chunk:
                    c[4] += chunk
                    if c[4].startswith(b"HTTP/") and b"\r\n\r\n" in c[4]:
                        done = 1
                else:
                    done = 1 if c[4].startswith(b"HTTP/") else 0
            if done is not None:
                results.append(("http", c[1], done))
                poll.unregister(fd)
                s.close()
                del conns[fd]
    with open(out, "w") as f:
        for kind, sent, ok in sorted(results, key=lambda r: r[1]):
            f.write(f"{kind} {sent} {ok}\n")


if __name__ == "__main__":
    main()
