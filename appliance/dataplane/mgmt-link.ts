// The dataplane's connection to the management service (appliance/ipc/messages.ts): hello/welcome,
// stats every second, events in batches, observations every few seconds, and the requests management
// makes (policy transaction, flows). Forwarding never depends on it: while management is down or restarting, events wait in a
// bounded queue (the oldest dropped and counted when it is full) and the link reconnects with backoff.
// Nothing here runs on the packet path, and no write waits for the socket.

import { createConnection, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { GatekeeperEvent } from '../ipc/events';
import { encodeMessage, LineReader } from '../ipc/framing';
import { messageProblem } from '../ipc/validate';
import { IPC_VERSION, type DataplaneMessage, type FlowFilter, type FlowsMessage, type HelloMessage, type ManagementMessage, type ObservationsMessage } from '../ipc/messages';
import type { Engine } from './engine';
import { listFlows } from './events/flow-records';
import { diagnosticLines, type PolicyVersion, type RunningPolicy } from './running-policy';
import type { DataplaneStats } from '../ipc/stats';

/** What management may ask of the dataplane. Answers are plain data; the link frames them. */
export interface DataplaneRequests {
  /** Answers when the policy has compiled (on a worker thread; forwarding goes on meanwhile). */
  prepare(text: string, source: string): Promise<{ ok: boolean; errors: string[] }>;
  commit(): { ok: true; generation: number; policyHash: string } | { ok: false; error: string };
  abort(): void;
  flows(filter: FlowFilter, limit: number): Omit<FlowsMessage, 'type' | 'requestId'> | { error: string };
}

/** The requests as the dataplane answers them: policy transaction on `running`, flows from the engine. */
export function managementRequests(
  engine: Engine, running: RunningPolicy, log: Logger, committed: (version: PolicyVersion) => void,
): DataplaneRequests {
  return {
    async prepare(text, source) {
      const result = await running.prepare(text, source);
      if (!result.ok) log.warn({ source, errors: result.errors.length }, 'policy from management refused at prepare');
      return { ok: result.ok, errors: result.ok ? [] : diagnosticLines(result.errors) };
    },
    commit() {
      const result = running.commit();
      if (!result.ok) {
        log.error(result.error);
        return result;
      }
      committed(result.version);
      return { ok: true, generation: result.version.generation, policyHash: result.version.policy.sourceHash };
    },
    abort() {
      if (running.abort()) log.info('prepared policy aborted by management');
    },
    flows: (filter, limit) => listFlows(engine.flows, (generation, index) => running.ruleName(generation, index), filter, limit,
      (flow) => engine.appLayerOf(flow)),
  };
}

export interface MgmtLinkOptions {
  socketPath: string;
  /** Where the link keeps its state and counts for others to read (the stats snapshot); its own by default. */
  status?: LinkStatus;
  /** Identity for hello, read at every connection (generation and policy hash change). */
  hello: () => Omit<HelloMessage, 'type' | 'version'>;
  stats: () => DataplaneStats;
  /**
   * Events that became due, and how many were lost before reaching the link; called every batch
   * interval, and with `final` once when stopping (everything still held is due then).
   */
  collect: (final: boolean) => { events: GatekeeperEvent[]; dropped: number };
  requests: DataplaneRequests;
  /**
   * What the dataplane observed since the last call (null: nothing to say). Called only while
   * connected: while management is away the observations keep to their own bounds, nothing queues here.
   */
  observations?: () => ObservationsMessage | null;
  observationsIntervalMs?: number;
  log: Logger;
  queueCapacity?: number;
  statsIntervalMs?: number;
  batchIntervalMs?: number;
  batchSize?: number;
  maxBackoffMs?: number;
}

export interface MgmtLinkCounters {
  /** Connections that reached welcome. */
  connections: number;
  /** Connections dropped because management sent something invalid or another version. */
  protocolErrors: number;
  eventsSent: number;
  /** Events lost since start (queue full while management was away, or the event log fell behind). */
  eventsDropped: number;
  /** Events waiting in the queue now. */
  eventsQueued: number;
}

/**
 * The link's state and counts, written by the link only. Made by the dataplane before the link, so
 * the stats snapshot (which the link itself sends) reads them here rather than from the link.
 */
export class LinkStatus implements MgmtLinkCounters {
  /** Welcomed by management and not disconnected since. */
  connected = false;
  connections = 0;
  protocolErrors = 0;
  eventsSent = 0;
  eventsDropped = 0;
  eventsQueued = 0;
}

const QUEUE_CAPACITY = 10_000;
const STATS_INTERVAL_MS = 1000;
const BATCH_INTERVAL_MS = 250;
const BATCH_SIZE = 500;
/** events/observations.ts OBSERVATIONS_INTERVAL_MS says why. */
const OBSERVATIONS_INTERVAL_MS = 5000;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2000;
/** Management must answer hello within this time, or the connection is dropped and retried. */
const WELCOME_TIMEOUT_MS = 5000;
/** Above this many unsent bytes in the socket, stats are skipped and events wait in the queue. */
const SOCKET_HIGH_WATER = 1024 * 1024;

/** Bounded FIFO that drops its oldest entry when full. */
export class EventQueue {
  private items: (GatekeeperEvent | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<GatekeeperEvent | undefined>(capacity);
  }

  get length(): number {
    return this.count;
  }

  /** Returns true when the oldest event had to be dropped to make room. */
  push(event: GatekeeperEvent): boolean {
    if (this.count === this.capacity) {
      this.items[this.head] = event;
      this.head = (this.head + 1) % this.capacity;
      return true;
    }
    this.items[(this.head + this.count) % this.capacity] = event;
    this.count++;
    return false;
  }

  take(max: number): GatekeeperEvent[] {
    const n = Math.min(max, this.count);
    const out: GatekeeperEvent[] = [];
    for (let i = 0; i < n; i++) {
      out.push(this.items[this.head] as GatekeeperEvent);
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
    }
    this.count -= n;
    return out;
  }
}

type LinkState = 'down' | 'greeting' | 'up';

export class MgmtLink {
  private readonly status: LinkStatus;
  private readonly queue: EventQueue;
  private readonly batchSize: number;
  private readonly maxBackoffMs: number;
  private socket: Socket | null = null;
  private state: LinkState = 'down';
  private backoffMs = FIRST_BACKOFF_MS;
  /** Dropped events not yet reported to management. */
  private droppedUnreported = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private welcomeTimer: NodeJS.Timeout | null = null;
  private intervals: NodeJS.Timeout[] = [];
  private stopped = false;
  /** Logged once per outage, not at every retry. */
  private outageLogged = false;

  constructor(private readonly options: MgmtLinkOptions) {
    this.status = options.status ?? new LinkStatus();
    this.queue = new EventQueue(options.queueCapacity ?? QUEUE_CAPACITY);
    this.batchSize = options.batchSize ?? BATCH_SIZE;
    this.maxBackoffMs = options.maxBackoffMs ?? MAX_BACKOFF_MS;
  }

  get connected(): boolean {
    return this.state === 'up';
  }

  get counters(): MgmtLinkCounters {
    const s = this.status;
    return { connections: s.connections, protocolErrors: s.protocolErrors, eventsSent: s.eventsSent, eventsDropped: s.eventsDropped,
      eventsQueued: s.eventsQueued };
  }

  start(): void {
    this.intervals.push(
      setInterval(() => this.sendStats(), this.options.statsIntervalMs ?? STATS_INTERVAL_MS),
      setInterval(() => this.collectAndSend(), this.options.batchIntervalMs ?? BATCH_INTERVAL_MS),
    );
    if (this.options.observations !== undefined) {
      this.intervals.push(setInterval(() => this.sendObservations(), this.options.observationsIntervalMs ?? OBSERVATIONS_INTERVAL_MS));
    }
    this.connect();
  }

  /** Queue events for management; sent at the next batch, or now when a full batch is waiting. */
  enqueue(events: GatekeeperEvent[], dropped = 0): void {
    this.countDropped(dropped);
    let lost = 0;
    for (const event of events) if (this.queue.push(event)) lost++;
    this.status.eventsQueued = this.queue.length;
    this.countDropped(lost);
    if (this.queue.length >= this.batchSize) this.sendEvents();
  }

  /** Collect the last events, send what the socket takes, and close. Never waits more than `timeoutMs`. */
  async stop(timeoutMs = 1000): Promise<void> {
    this.collectAndSend(true);
    this.sendObservations();
    this.stopped = true;
    for (const timer of this.intervals) clearInterval(timer);
    this.intervals = [];
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    if (this.welcomeTimer !== null) clearTimeout(this.welcomeTimer);
    const socket = this.socket;
    if (socket === null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.destroy();
        resolve();
      }, timeoutMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end();
    });
  }

  private connect(): void {
    this.reconnectTimer = null;
    if (this.stopped) return;
    const socket = createConnection(this.options.socketPath);
    this.socket = socket;
    this.state = 'greeting';
    const reader = new LineReader<Record<string, unknown>>(
      (message) => this.receive(socket, message),
      (reason) => this.protocolError(socket, reason),
    );
    socket.on('connect', () => {
      socket.write(encodeMessage({ type: 'hello', version: IPC_VERSION, ...this.options.hello() } satisfies HelloMessage));
      this.welcomeTimer = setTimeout(() => this.protocolError(socket, `no welcome within ${WELCOME_TIMEOUT_MS} ms`), WELCOME_TIMEOUT_MS);
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) reader.push(chunk);
    });
    socket.on('error', (err) => {
      if (!this.outageLogged && !this.stopped) {
        this.options.log.warn({ socket: this.options.socketPath, err: err.message }, 'management unreachable; forwarding continues, events are queued');
        this.outageLogged = true;
      }
    });
    socket.on('close', () => this.closed(socket));
  }

  private closed(socket: Socket): void {
    if (this.socket !== socket) return;
    if (this.welcomeTimer !== null) clearTimeout(this.welcomeTimer);
    const wasUp = this.state === 'up';
    this.socket = null;
    this.state = 'down';
    this.status.connected = false;
    if (this.stopped) return;
    if (wasUp) {
      this.options.log.warn('management connection lost; forwarding continues, events are queued');
      this.outageLogged = true;
    }
    this.reconnectTimer = setTimeout(() => this.connect(), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
  }

  /** Management sent something we cannot use: log it, drop the connection, reconnect later. */
  private protocolError(socket: Socket, reason: string): void {
    if (this.socket !== socket) return;
    this.status.protocolErrors++;
    this.options.log.error({ reason }, 'management protocol error; reconnecting');
    socket.destroy();
  }

  private receive(socket: Socket, raw: Record<string, unknown>): void {
    if (this.socket !== socket) return;
    const problem = messageProblem(raw, 'management');
    if (problem !== null) {
      this.protocolError(socket, problem);
      return;
    }
    const message = raw as unknown as ManagementMessage;
    if (this.state === 'greeting') {
      if (message.type === 'error') {
        this.protocolError(socket, `management refused the connection: ${message.message}`);
      } else if (message.type !== 'welcome') {
        this.protocolError(socket, `expected welcome, got ${message.type}`);
      } else if (message.version !== IPC_VERSION) {
        this.protocolError(socket, `management speaks IPC version ${message.version}, this dataplane ${IPC_VERSION}`);
      } else {
        this.welcomed();
      }
      return;
    }
    try {
      this.handle(message);
    } catch (err) {
      // A bug in a handler must not take the dataplane down; management sees the request fail.
      this.options.log.error({ err: (err as Error).stack, type: message.type }, 'failed to handle a management request');
      const requestId = 'requestId' in message ? message.requestId : undefined;
      this.send({ type: 'error', requestId, message: `dataplane failed to handle ${message.type}: ${(err as Error).message}` });
    }
  }

  private welcomed(): void {
    if (this.welcomeTimer !== null) clearTimeout(this.welcomeTimer);
    this.state = 'up';
    this.status.connected = true;
    this.backoffMs = FIRST_BACKOFF_MS;
    this.outageLogged = false;
    this.status.connections++;
    this.options.log.info({ socket: this.options.socketPath, queued: this.queue.length, dropped: this.droppedUnreported }, 'connected to management');
    this.sendStats();
    this.sendEvents();
  }

  private handle(message: ManagementMessage): void {
    const requests = this.options.requests;
    switch (message.type) {
      case 'welcome':
        this.protocolError(this.socket as Socket, 'second welcome');
        return;
      case 'error':
        this.options.log.warn({ requestId: message.requestId, message: message.message }, 'management reported an error');
        return;
      case 'policy.prepare': {
        const asked = this.socket;
        void requests.prepare(message.text, message.source).then((result) => {
          // A reconnected management does not know this request: it has aborted the transaction.
          if (this.socket === asked) this.send({ type: 'policy.prepared', requestId: message.requestId, ok: result.ok, errors: result.errors });
        });
        return;
      }
      case 'policy.commit': {
        const result = requests.commit();
        if (result.ok) {
          this.send({ type: 'policy.committed', requestId: message.requestId, generation: result.generation, policyHash: result.policyHash });
        } else {
          this.send({ type: 'error', requestId: message.requestId, message: result.error });
        }
        return;
      }
      case 'policy.abort':
        requests.abort();
        return;
      case 'flows.get': {
        const result = requests.flows(message.filter, message.limit);
        if ('error' in result) this.send({ type: 'error', requestId: message.requestId, message: result.error });
        else this.send({ type: 'flows', requestId: message.requestId, ...result });
        return;
      }
    }
  }

  private send(message: DataplaneMessage): boolean {
    if (this.socket === null || this.state !== 'up') return false;
    this.socket.write(encodeMessage(message));
    return true;
  }

  private sendStats(): void {
    if (this.socket === null || this.state !== 'up' || this.socket.writableLength > SOCKET_HIGH_WATER) return;
    this.send({ type: 'stats', stats: this.options.stats() });
  }

  /** Observations go only to a management that keeps up; otherwise they wait in their tables. */
  private sendObservations(): void {
    const observations = this.options.observations;
    if (observations === undefined || this.socket === null || this.state !== 'up' || this.socket.writableLength > SOCKET_HIGH_WATER) return;
    const message = observations();
    if (message !== null) this.send(message);
  }

  private collectAndSend(final = false): void {
    const { events, dropped } = this.options.collect(final);
    this.enqueue(events, dropped);
    this.sendEvents();
  }

  /** Send queued events in batches while the socket keeps up; the rest wait for the next tick. */
  private sendEvents(): void {
    while (this.socket !== null && this.state === 'up' && this.socket.writableLength <= SOCKET_HIGH_WATER) {
      const dropped = this.droppedUnreported;
      if (this.queue.length === 0 && dropped === 0) return;
      const events = this.queue.take(this.batchSize);
      this.status.eventsQueued = this.queue.length;
      // Management turns the count into the events.dropped event (one place for that concept).
      this.droppedUnreported = 0;
      this.send({ type: 'events', events, dropped });
      this.status.eventsSent += events.length;
    }
  }

  private countDropped(n: number): void {
    this.droppedUnreported += n;
    this.status.eventsDropped += n;
  }
}
