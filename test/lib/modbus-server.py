#!/usr/bin/python3
# A real Modbus/TCP server for the lab tests (Debian's pymodbus 3.0; run it with /usr/bin/python3, a
# python3 earlier on PATH may not see Debian's modules). It serves units 1 and 2 on port 502 of every
# address (IPv4 and IPv6); a request to any other unit is not answered (pymodbus's framer skips it,
# its bytes are still logged). It is the tests' oracle: every connection, every chunk of bytes its
# TCP delivered and every request it executed go to the log file as JSON lines, and before every
# answer its whole memory is written to the state file, so a test can prove what reached the server
# without asking through the gatekeeper.
# It must not answer anything pymodbus would not: it is the server under protection, not a mock (it
# only frames the stream into whole ADUs for pymodbus, whose own framer breaks on split ones).
#
#   /usr/bin/python3 modbus-server.py LOG_FILE STATE_FILE [PORT]
#
# Initial memory, per unit u (1 or 2), addresses as the PDU carries them (0-based):
#   holding register i = 1000*u + i, input register i = 5000 + i   (i in 0..199)
#   coil i = 1 if i is even,         discrete input i = 1 if i % 3 == 0
# Prints "listening" on stdout when both sockets accept connections.

import asyncio
import json
import os
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server.async_io import ModbusConnectedRequestHandler, ModbusTcpServer

SIZE = 200
UNITS = (1, 2)

log_path, state_path = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 502
log = open(log_path, 'a', buffering=1)


def record(**entry):
    log.write(json.dumps(entry) + '\n')


def unit_context(u):
    return ModbusSlaveContext(
        hr=ModbusSequentialDataBlock(0, [1000 * u + i for i in range(SIZE)]),
        ir=ModbusSequentialDataBlock(0, [5000 + i for i in range(SIZE)]),
        co=ModbusSequentialDataBlock(0, [1 if i % 2 == 0 else 0 for i in range(SIZE)]),
        di=ModbusSequentialDataBlock(0, [1 if i % 3 == 0 else 0 for i in range(SIZE)]),
        zero_mode=True,
    )


context = ModbusServerContext(slaves={u: unit_context(u) for u in UNITS}, single=False)


def dump_state():
    # Written whole and renamed, so a reader never sees half a file.
    state = {}
    for u in UNITS:
        c = context[u]
        state[str(u)] = {
            'holding': c.getValues(3, 0, SIZE),
            'coils': [int(b) for b in c.getValues(1, 0, SIZE)],
        }
    tmp = state_path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(state, f)
    os.replace(tmp, state_path)


connections = 0


class RecordingHandler(ModbusConnectedRequestHandler):
    def connection_made(self, transport):
        global connections
        connections += 1
        self.conn = connections
        self.pending = b''
        peer = transport.get_extra_info('peername')
        record(event='connect', conn=self.conn, peer=peer[0])
        super().connection_made(transport)

    def connection_lost(self, call_exc):
        record(event='disconnect', conn=self.conn, error=None if call_exc is None else str(call_exc))
        super().connection_lost(call_exc)

    def data_received(self, data):
        record(event='bytes', conn=self.conn, hex=data.hex())
        # pymodbus 3.0's framer takes every chunk for whole ADUs (a header alone becomes a broken
        # request and the connection is dropped): it gets whole ADUs only, framed by the MBAP length,
        # as a server with a working framer would execute them.
        self.pending += data
        while len(self.pending) >= 6:
            end = 6 + int.from_bytes(self.pending[4:6], 'big')
            if len(self.pending) < end:
                break
            super().data_received(self.pending[:end])
            self.pending = self.pending[end:]

    def execute(self, request, *addr):
        # Logged before executing: a request that fails in the datastore still reached the server.
        record(event='request', conn=self.conn, function=request.function_code, unit=request.unit_id,
               tid=request.transaction_id, address=getattr(request, 'address', None),
               count=getattr(request, 'count', None), value=getattr(request, 'value', None),
               values=getattr(request, 'values', None))
        super().execute(request, *addr)

    def send(self, message, *addr, **kwargs):
        # The memory is on disk before the answer leaves: a client that saw it can read the state file.
        dump_state()
        super().send(message, *addr, **kwargs)


async def main():
    dump_state()
    # Host '' binds every address: one socket for IPv4, one for IPv6.
    server = ModbusTcpServer(context, address=('', port), handler=RecordingHandler, allow_reuse_address=True)
    task = asyncio.create_task(server.serve_forever())
    await server.serving
    print('listening', flush=True)
    await task


asyncio.run(main())
