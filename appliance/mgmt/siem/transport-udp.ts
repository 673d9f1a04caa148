// Syslog over UDP (RFC 5426): one line per datagram on a connected socket, so the host name is
// resolved once and an ICMP "port unreachable" comes back as an error we can show. UDP cannot say
// whether anything arrived: "connected" only means the last datagram left without an error.

import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';

/** Datagrams handed to the kernel but not yet confirmed sent; beyond this, new lines are dropped. */
const maxInFlight = 10_000;

export class UdpTransport {
  private socket?: Socket;
  /** Lines waiting for the socket's connect (a connected socket resolves the host once). */
  private waiting?: string[];
  private inFlight = 0;
  sent = 0;
  /** Lines dropped because too many datagrams were still waiting to be sent. */
  overflow = 0;
  ok = false;

  constructor(readonly host: string, readonly port: number, private readonly onError: (err: Error) => void) {}

  private open(): Socket {
    const socket = createSocket(isIPv6(this.host) ? 'udp6' : 'udp4');
    this.waiting = [];
    socket.on('error', (err) => {
      this.ok = false;
      this.onError(err);
      // A failed connect leaves the socket unusable: the next send opens a new one.
      if (this.socket === socket) {
        this.socket = undefined;
        // Lines that waited for a connect that failed are lost (it is UDP), not in flight.
        this.inFlight -= this.waiting?.length ?? 0;
        this.waiting = undefined;
      }
      socket.close();
    });
    socket.connect(this.port, this.host, () => {
      const waiting = this.waiting ?? [];
      this.waiting = undefined;
      for (const line of waiting) this.transmit(socket, line);
    });
    socket.unref();
    return socket;
  }

  send(line: string): void {
    if (this.inFlight >= maxInFlight) {
      this.overflow++;
      return;
    }
    this.socket ??= this.open();
    this.inFlight++;
    if (this.waiting) this.waiting.push(line);
    else this.transmit(this.socket, line);
  }

  private transmit(socket: Socket, line: string): void {
    socket.send(line, (err) => {
      this.inFlight--;
      if (err) {
        this.ok = false;
        this.onError(err);
      } else {
        this.ok = true;
        this.sent++;
      }
    });
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}

/**
 * Sends one datagram and waits `waitMs` for an ICMP error (ECONNREFUSED on a connected socket):
 * the only way UDP can tell that nothing listens. Silence is success, as far as UDP can know.
 */
export function udpProbe(host: string, port: number, line: string, waitMs = 500): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      if (timer) clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      try { socket.close(); } catch { /* already closed */ }
      if (err) reject(err); else resolve();
    };
    socket.on('error', (err) => finish(err));
    socket.connect(port, host, () => {
      socket.send(line, (err) => {
        if (err) return finish(err);
        timer = setTimeout(() => finish(), waitMs);
      });
    });
  });
}
