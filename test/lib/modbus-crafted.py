#!/usr/bin/python3
# Crafted Modbus/TCP streams for the stream tests, sent from the lab's client namespace (standard
# library only), over IPv4 or IPv6. Socket cases use the kernel's TCP with TCP_NODELAY and timed send()
# calls to choose the segment boundaries; raw cases build every TCP segment themselves (handshake, sequence
# numbers, checksums) on a raw socket, so a segment can repeat or precede bytes as no kernel would
# send. It reports what came back as one JSON line; it does not judge (the test does, from the
# server's log). The kernel's RSTs for the raw connection's port are dropped with nft while it runs.
#
#   /usr/bin/python3 modbus-crafted.py CASE SERVER_IP CLIENT_IP
#
# Cases (REQ is read or write: read = read holding registers 0-1, write = write single register 4):
#   split-mbap-REQ   the MBAP header, then the PDU, in two segments
#   split-pdu-REQ    MBAP + function code + one byte, then the rest
#   pipelined        a read and a write in one segment
#   overlap          (raw) a read at seq X, at once a write at seq X: same length, other bytes
#   overlap-badsum   (raw) as overlap, but the read has a wrong TCP checksum: the server's TCP
#                    discards it, so the write would be new data to it
#   ahead-REQ        (raw) REQ's second half first, then its first half, then the second half again
#                    (as the sender's TCP would retransmit it)
# Output: {"responses": [hex of each whole ADU from the server], "reset": bool, "steps": {...}}

import json
import random
import socket
import struct
import subprocess
import sys
import time

case, server_ip, client_ip = sys.argv[1], sys.argv[2], sys.argv[3]
PORT = 502
FAMILY = socket.AF_INET6 if ':' in server_ip else socket.AF_INET
READ = bytes.fromhex('0001' '0000' '0006' '01' '03' '0000' '0002')
WRITE = bytes.fromhex('0002' '0000' '0006' '01' '06' '0004' '1111')
REQUESTS = {'read': READ, 'write': WRITE}


def write_multiple(tid, address, quantity):
    """Write multiple registers (16): holding registers address.. := 7000, 7001, ... (7 + 2q bytes after the length)."""
    values = b''.join(struct.pack('!H', 7000 + i) for i in range(quantity))
    return struct.pack('!HHHBBHHB', tid, 0, 7 + 2 * quantity, 1, 16, address, quantity, 2 * quantity) + values


# Eight writes of 100 registers: 1704 bytes in one send, more than one MSS, so TSO hands the gatekeeper
# one super-frame. The bad one's last request writes address 500, outside the rule's 0-99.
SUPERFRAME_WRITES = b''.join(write_multiple(100 + i, 0, 100) for i in range(8))
SUPERFRAME_BAD = b''.join(write_multiple(100 + i, 0, 100) for i in range(7)) + write_multiple(107, 500, 100)
# Raw connections use source ports outside the kernel's ephemeral range, and mark their own packets
# so the nft rule drops only the kernel's RSTs.
RAW_PORTS = (20000, 20999)
MARK = 0x2a
SYN, RST, PSH, ACK = 0x02, 0x04, 0x08, 0x10


def adus(data):
    """Whole ADUs in data, framed by MBAP length."""
    out, off = [], 0
    while off + 6 <= len(data):
        end = off + 6 + struct.unpack('!H', data[off + 4:off + 6])[0]
        if end > len(data):
            break
        out.append(data[off:end].hex())
        off = end
    return out


def socket_case(segments, wait_responses):
    """Send segments with the kernel's TCP, a pause between them; read until wait_responses ADUs, EOF, a reset or 1.5 s."""
    s = socket.create_connection((server_ip, PORT), timeout=3)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reset = False
    for i, seg in enumerate(segments):
        if i > 0:
            time.sleep(0.2)
        try:
            s.send(seg)
        except ConnectionResetError:
            # Refused on an earlier part (the gatekeeper decides on a function as soon as its code arrives).
            reset = True
            break
    data, deadline = b'', time.time() + 1.5
    while not reset and len(adus(data)) < wait_responses and time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            chunk = s.recv(1024)
        except socket.timeout:
            break
        except ConnectionResetError:
            reset = True
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return {'responses': adus(data), 'reset': reset}


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


class RawConnection:
    """One TCP connection built segment by segment; it ACKs the server's data and collects it in order."""

    def __init__(self):
        self.sock = socket.socket(FAMILY, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
        # The checksum covers the source address: the kernel must use the one given.
        self.sock.bind((client_ip, 0))
        self.sport = random.randint(*RAW_PORTS)
        self.isn = random.getrandbits(32)
        self.rcv_nxt = 0
        self.server_data = b''
        self.reset = False

    def send(self, flags, seq, payload=b'', bad_checksum=False):
        hdr = struct.pack('!HHIIBBHHH', self.sport, PORT, seq & 0xffffffff, self.rcv_nxt, 5 << 4, flags, 65535, 0, 0)
        addresses = socket.inet_pton(FAMILY, client_ip) + socket.inet_pton(FAMILY, server_ip)
        if FAMILY == socket.AF_INET:
            pseudo = addresses + struct.pack('!BBH', 0, 6, len(hdr) + len(payload))
        else:
            pseudo = addresses + struct.pack('!I3xB', len(hdr) + len(payload), 6)
        csum = checksum(pseudo + hdr + payload)
        if bad_checksum:
            csum ^= 0x5a5a
        self.sock.sendto(hdr[:16] + struct.pack('!H', csum) + hdr[18:] + payload, (server_ip, 0))

    def data(self, offset, payload, bad_checksum=False):
        """Payload at the stream offset (0 = the first byte after the SYN)."""
        self.send(PSH | ACK, self.isn + 1 + offset, payload, bad_checksum)

    def receive(self, seconds, until=None):
        """Take the server's segments for `seconds` (or until `until()` holds); ACK new in-order data."""
        deadline = time.time() + seconds
        while time.time() < deadline and not self.reset and not (until and until()):
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                pkt, source = self.sock.recvfrom(65535)
            except socket.timeout:
                break
            # An IPv4 raw socket gets the IP header too, an IPv6 one only the TCP segment.
            ihl = (pkt[0] & 0x0f) * 4 if FAMILY == socket.AF_INET else 0
            if socket.inet_pton(FAMILY, source[0]) != socket.inet_pton(FAMILY, server_ip):
                continue
            sport, dport, seq, _ack, off, flags = struct.unpack('!HHIIBB', pkt[ihl:ihl + 14])
            if sport != PORT or dport != self.sport:
                continue
            if flags & RST:
                self.reset = True
                break
            payload = pkt[ihl + (off >> 4) * 4:]
            if flags & SYN:
                self.rcv_nxt = (seq + 1) & 0xffffffff
                return True
            if payload and seq == self.rcv_nxt:
                self.server_data += payload
                self.rcv_nxt = (seq + len(payload)) & 0xffffffff
            if payload:
                self.send(ACK, self.isn + 1 + self.sent)
        return False

    def handshake(self):
        self.sent = 0
        self.send(SYN, self.isn)
        if not self.receive(2):
            raise SystemExit(json.dumps({'error': 'no SYN-ACK', 'reset': self.reset}))
        self.send(ACK, self.isn + 1)

    def close(self):
        if not self.reset:
            self.send(RST | ACK, self.isn + 1 + self.sent)
        self.sock.close()

    def result(self, **steps):
        return {'responses': adus(self.server_data), 'reset': self.reset, 'steps': steps}


def answered(conn, n):
    return lambda: len(adus(conn.server_data)) >= n


def raw_case():
    conn = RawConnection()
    try:
        conn.handshake()
        if case in ('overlap', 'overlap-badsum'):
            conn.sent = len(READ)
            conn.data(0, READ, bad_checksum=case == 'overlap-badsum')
            conn.data(0, WRITE)
            conn.receive(1.0, answered(conn, 1))
            return conn.result()
        req = REQUESTS[case.split('-', 1)[1]]
        half = len(req) // 2
        conn.data(half, req[half:])
        conn.receive(0.2, answered(conn, 1))
        steps = {'after_second_half': len(adus(conn.server_data))}
        conn.data(0, req[:half])
        conn.sent = half
        conn.receive(0.2, answered(conn, 1))
        steps['after_first_half'] = len(adus(conn.server_data))
        if not conn.reset:
            conn.data(half, req[half:])
            conn.sent = len(req)
            conn.receive(1.0, answered(conn, 1))
        steps['after_retransmission'] = len(adus(conn.server_data))
        return conn.result(**steps)
    finally:
        conn.close()


NFT = """table inet gk_crafted {
  chain out {
    type filter hook output priority 0;
    tcp sport %d-%d tcp flags & rst == rst meta mark != %d drop
  }
}
"""


def main():
    if case.startswith('split-mbap-'):
        req = REQUESTS[case[len('split-mbap-'):]]
        return socket_case([req[:7], req[7:]], 1)
    if case.startswith('split-pdu-'):
        req = REQUESTS[case[len('split-pdu-'):]]
        return socket_case([req[:9], req[9:]], 1)
    if case == 'pipelined':
        return socket_case([READ + WRITE], 2)
    if case == 'superframe-writes':
        return socket_case([SUPERFRAME_WRITES], 8)
    if case == 'superframe-bad':
        return socket_case([SUPERFRAME_BAD], 8)
    subprocess.run(['nft', '-f', '-'], input=NFT % (*RAW_PORTS, MARK), text=True, check=True)
    try:
        return raw_case()
    finally:
        subprocess.run(['nft', 'delete', 'table', 'inet', 'gk_crafted'], check=False)


print(json.dumps(main()), flush=True)
