// One long-lived TCP connection through the lab, as a Modbus master holds one to its PLC: an echo
// server in the server namespace (it answers every request with the same bytes) and a client that
// sends a request every `intervalMs` on one connection and waits for its answer, recording when
// each was sent and answered and whether the answer was byte-exact. Small /usr/bin/python3 scripts;
// the client ends after `seconds`, or at the first error (timeout, reset, wrong bytes), and reports
// JSON. Must not open more than the one connection per client.

import { existsSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import type { Lab } from '../../appliance/lab/lab';

export const PYTHON = '/usr/bin/python3';

export function pythonUnavailable(): string | false {
  return existsSync(PYTHON) ? false : `needs ${PYTHON}`;
}

/** Echo on every port given, one thread per connection. */
const SERVER = `
import socket, sys, threading
def serve(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)
def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port))
    s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
threads = [threading.Thread(target=listen, args=(int(p),), daemon=True) for p in sys.argv[1:]]
for t in threads: t.start()
print('listening', flush=True)
for t in threads: t.join()
`;

/**
 * argv: host port seconds intervalMs timeoutMs size. A request of \`size\` bytes: with 12, a Modbus/TCP
 * read of 10 holding registers whose transaction id counts up; larger, random bytes (a data stream).
 */
const CLIENT = `
import json, os, socket, struct, sys, time
host, port, seconds, interval, timeout, size = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]) / 1000, float(sys.argv[5]) / 1000, int(sys.argv[6])
out = {'polls': 0, 'bytes': 0, 'samples': [], 'error': None}
def now():
    return time.time() * 1000
try:
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    end = time.time() + seconds
    tid = 0
    while time.time() < end:
        tid = (tid + 1) & 0xffff
        req = struct.pack('>HHHBBHH', tid, 0, 6, 1, 3, 0, 10) if size == 12 else os.urandom(size)
        sent = now()
        s.sendall(req)
        got = b''
        while len(got) < len(req):
            chunk = s.recv(len(req) - len(got))
            if not chunk:
                raise ConnectionError('closed by the server')
            got += chunk
        answered = now()
        if got != req:
            raise ValueError('answer differs from the request')
        out['polls'] += 1
        out['bytes'] += len(req)
        out['samples'].append([round(sent, 3), round(answered, 3)])
        time.sleep(max(0.0, interval - (time.time() * 1000 - sent) / 1000))
    s.close()
except Exception as e:
    out['error'] = type(e).__name__ + ': ' + str(e)
print(json.dumps(out), flush=True)
`;

export interface PollResult {
  polls: number;
  bytes: number;
  /** [sent, answered] per request, epoch ms. */
  samples: [number, number][];
  /** Why the client stopped early (socket.timeout, ConnectionResetError, ...), or null. */
  error: string | null;
}

/** Start the echo server on `ports` in the server namespace; resolves once it listens. */
export async function startEchoServer(lab: Lab, ports: number[]): Promise<ChildProcess> {
  const child = lab.spawn(lab.server, [PYTHON, '-u', '-c', SERVER, ...ports.map(String)]);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`echo server ended (${code})`)));
  });
  return child;
}

export interface PollOptions {
  seconds: number;
  intervalMs: number;
  /** A request not answered within this long fails the client. */
  timeoutMs: number;
  /** Request size: 12 for Modbus-like polls, larger for a data stream. */
  size?: number;
}

/** Start a polling client in the client namespace; the promise gives its report when it ends. */
export function startPoller(lab: Lab, host: string, port: number, o: PollOptions): Promise<PollResult> {
  const child = lab.spawn(lab.client, [PYTHON, '-u', '-c', CLIENT, host, String(port), String(o.seconds), String(o.intervalMs),
    String(o.timeoutMs), String(o.size ?? 12)]);
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out) as PollResult);
      } catch {
        reject(new Error(`poller ended (${code}) without a report: ${err}${out}`));
      }
    });
  });
}

/** The longest wait for an answer (ms). */
export function slowestAnswer(r: PollResult): number {
  return r.samples.reduce((m, [sent, answered]) => Math.max(m, answered - sent), 0);
}
