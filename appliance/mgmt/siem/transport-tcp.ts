// Syslog over TCP with octet-counting framing (RFC 6587 §3.4.1: "LEN SP MSG", so a line may hold
// anything) and over TLS (RFC 5425: the same framing inside TLS, the receiver's certificate checked
// against the configured CA, optionally a client certificate).

import { connect as tcpConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { SyslogTlsOptions } from '../state/settings';

export interface StreamEndpoint {
  host: string;
  port: number;
  /** Present for TLS. */
  tls?: SyslogTlsOptions;
}

const connectTimeoutMs = 10_000;

/** RFC 6587 octet counting: the byte length, a space, the message. */
export function frame(line: string): string {
  return `${Buffer.byteLength(line)} ${line}`;
}

/** Connects (and for TLS completes a verified handshake); rejects with a message a user can act on. */
export function openStream(endpoint: StreamEndpoint): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const { host, port, tls } = endpoint;
    const where = `${host}:${port}`;
    const socket: Socket = tls
      ? tlsConnect({
        host,
        port,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        // The certificate is checked against servername, else host (SNI carries names only).
        servername: tls.serverName ?? (isIP(host) ? undefined : host),
        rejectUnauthorized: true,
      })
      : tcpConnect({ host, port });
    const timer = setTimeout(() => socket.destroy(new Error(`timed out after ${connectTimeoutMs / 1000} s`)), connectTimeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`${tls ? 'TLS' : 'TCP'} connection to ${where} failed: ${err.message}`));
    };
    socket.once('error', fail);
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', fail);
      socket.setKeepAlive(true, 10_000);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
