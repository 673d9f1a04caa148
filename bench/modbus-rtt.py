#!/usr/bin/python3
# Modbus/TCP transaction round trips for bench/modbus-wire.ts, standard library only.
#   modbus-rtt.py serve ADDRESS PORT        answer every read-holding-registers request (zeros), forever
#   modbus-rtt.py poll ADDRESS PORT COUNT   one connection, COUNT sequential reads of 10 registers;
#                                           prints the round trips in microseconds as one JSON list
# Not a Modbus server: it answers function 3 only, as fast as Python can, so the round trip is the
# network path's and not a server's. Must not be pointed at anything but the bench lab.
import json
import socket
import struct
import sys
import time


def read_exact(conn, n):
    data = b''
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve(address, port):
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(8)
    print('listening', flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                tid, _, length, unit = struct.unpack('>HHHB', read_exact(conn, 7))
                pdu = read_exact(conn, length - 1)
                quantity = struct.unpack('>H', pdu[3:5])[0] if pdu[0] == 3 else 1
                body = bytes([3, 2 * quantity]) + bytes(2 * quantity)
                conn.sendall(struct.pack('>HHHB', tid, 0, len(body) + 1, unit) + body)
        except (EOFError, ConnectionError):
            conn.close()


def poll(address, port, count):
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    conn = socket.socket(family, socket.SOCK_STREAM)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.connect((address, port))
    rtts = []
    for i in range(count):
        request = struct.pack('>HHHBBHH', i & 0xffff, 0, 6, 1, 3, 0, 10)
        started = time.perf_counter_ns()
        conn.sendall(request)
        read_exact(conn, 9 + 20)
        rtts.append((time.perf_counter_ns() - started) / 1000)
    conn.close()
    print(json.dumps(rtts))


if __name__ == '__main__':
    if sys.argv[1] == 'serve':
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        poll(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
