// The Unix socket dataplanes connect to. Each connection starts with the dataplane's hello: a version
// we do not speak gets an `error` and is closed; otherwise management answers welcome and the pair is
// registered. After that every line is framed, checked and dispatched; anything malformed (not JSON,
// too long, unknown type, wrong fields) is logged, counted and closes that connection only.

import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { LineReader } from '../../ipc/framing';
import { IPC_VERSION, type DataplaneMessage, type HelloMessage } from '../../ipc/messages';
import { messageProblem, prepareValidators } from '../../ipc/validate';
import { DataplaneConnection } from './connection';

/** The logger management hands the hub (pino's Logger fits). */
export interface HubLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export const protocolErrorKinds = [
  'too_long', 'invalid_json', 'invalid_message', 'unknown_type', 'version_mismatch', 'no_hello', 'handler_error',
  /** A malformed event inside an `events` batch: skipped, the connection stays. */
  'bad_event',
] as const;
export type ProtocolErrorKind = (typeof protocolErrorKinds)[number];

/** Messages after the hello, minus the replies that are matched to a waiting request. */
export type DataplaneReport = Exclude<DataplaneMessage, HelloMessage>;

export interface IpcHandlers {
  /** Hello accepted and welcome sent. */
  registered(connection: DataplaneConnection): void;
  message(connection: DataplaneConnection, message: DataplaneReport): void;
  /** A registered connection is gone. */
  closed(connection: DataplaneConnection): void;
  protocolError(kind: ProtocolErrorKind): void;
}

/** A dataplane that connects must say hello within this time. */
const HELLO_TIMEOUT_MS = 10_000;

export class IpcServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly socketPath: string,
    private readonly handlers: IpcHandlers,
    private readonly log: HubLog,
  ) {}

  async listen(): Promise<void> {
    prepareValidators('dataplane');
    await mkdir(dirname(this.socketPath), { recursive: true, mode: 0o750 });
    await removeStaleSocket(this.socketPath);
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'IPC server error'));
    this.server = server;
    await chmod(this.socketPath, 0o660);
    this.log.info({ socket: this.socketPath }, 'waiting for dataplanes');
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    const connection = new DataplaneConnection(socket);
    const helloTimer = setTimeout(() => {
      if (connection.hello === null) this.refuse(connection, 'no_hello', `no hello within ${HELLO_TIMEOUT_MS} ms`);
    }, HELLO_TIMEOUT_MS).unref();
    const reader = new LineReader<Record<string, unknown>>(
      (message) => this.receive(connection, message),
      (reason) => this.refuse(connection, reason.includes('JSON') ? 'invalid_json' : reason.includes('no type') ? 'invalid_message' : 'too_long', reason),
    );
    socket.on('data', (chunk) => {
      if (!connection.closed) reader.push(chunk);
    });
    socket.on('error', (err) => this.log.warn({ pair: connection.pair, err: err.message }, 'dataplane socket error'));
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.sockets.delete(socket);
      connection.onSocketClosed();
      if (connection.hello !== null) this.handlers.closed(connection);
    });
  }

  private receive(connection: DataplaneConnection, message: Record<string, unknown>): void {
    if (connection.closed) return;
    try {
      if (connection.hello === null) this.greet(connection, message);
      else this.dispatch(connection, message);
    } catch (err) {
      this.log.error({ pair: connection.pair, err: (err as Error).stack }, 'failed to handle a dataplane message');
      this.refuse(connection, 'handler_error', `failed to handle ${String(message.type)}: ${(err as Error).message}`);
    }
  }

  private greet(connection: DataplaneConnection, message: Record<string, unknown>): void {
    if (message.type !== 'hello') {
      this.refuse(connection, 'no_hello', `expected hello, got ${JSON.stringify(message.type)}`);
      return;
    }
    if (message.version !== IPC_VERSION) {
      const text = `IPC version ${JSON.stringify(message.version)} is not supported: management speaks version ${IPC_VERSION}`;
      connection.send({ type: 'error', message: text });
      this.refuse(connection, 'version_mismatch', text);
      return;
    }
    const problem = messageProblem(message, 'dataplane');
    if (problem !== null) {
      this.refuse(connection, 'invalid_message', problem);
      return;
    }
    connection.hello = message as unknown as HelloMessage;
    connection.send({ type: 'welcome', version: IPC_VERSION });
    this.handlers.registered(connection);
  }

  private dispatch(connection: DataplaneConnection, raw: Record<string, unknown>): void {
    const problem = messageProblem(raw, 'dataplane');
    if (problem !== null) {
      this.refuse(connection, problem.startsWith('unknown') ? 'unknown_type' : 'invalid_message', problem);
      return;
    }
    const message = raw as unknown as DataplaneMessage;
    switch (message.type) {
      case 'hello':
        this.refuse(connection, 'invalid_message', 'second hello on one connection');
        return;
      case 'policy.prepared':
      case 'policy.committed':
      case 'flows':
        if (!connection.settle(message)) {
          this.log.warn({ pair: connection.pair, type: message.type, requestId: message.requestId }, 'reply nobody waits for (late?) ignored');
        }
        return;
      case 'error':
        if (!connection.settle(message)) this.log.warn({ pair: connection.pair, message: message.message }, 'dataplane reported an error');
        return;
      default:
        this.handlers.message(connection, message);
    }
  }

  private refuse(connection: DataplaneConnection, kind: ProtocolErrorKind, reason: string): void {
    if (connection.closed) return;
    this.log.warn({ pair: connection.pair, kind, reason }, 'dataplane connection dropped: protocol error');
    this.handlers.protocolError(kind);
    connection.close(reason);
  }
}

/**
 * A socket file left by a management process that died is removed; one that still answers means
 * another management service runs, and anything that is not a socket is not ours to delete.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket: refusing to replace it`);
  const answers = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answers) throw new Error(`${path}: another management service is listening on this socket`);
  await unlink(path);
}
