"""TCP ports: a free one to serve on, and the addresses a port is listened on (Linux)."""

import os
import socket
import sys


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port):
    """The local addresses of the TCP sockets listening on `port`, from Linux's
    `/proc/net/tcp` and `tcp6` (e.g. `{"127.0.0.1"}`)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not os.path.exists(table):
            continue
        with open(table, encoding="ascii") as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
        for row in rows:
            address, hex_port = row[1].split(":")
            if row[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # Each 32-bit word is printed in the host's byte order.
                words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
                if sys.byteorder == "little":
                    words = [word[::-1] for word in words]
                found.add(socket.inet_ntop(family, b"".join(words)))
    return found
