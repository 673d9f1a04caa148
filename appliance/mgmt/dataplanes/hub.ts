// The dataplane side of management: every connected dataplane (one per port pair) behind the
// DataplaneHub interface the HTTP side uses. One policy transaction runs at a time; the others (and
// the pushes of the active policy to dataplanes that connect running another one) wait their turn.
// Observations messages and deny summaries are handed to the asset inventory when one is given.

import { createHash } from 'node:crypto';
import type { GatekeeperEvent } from '../../ipc/events';
import type { FlowFilter } from '../../ipc/messages';
import { DEFAULT_SOCKET_PATH } from '../../ipc/messages';
import type { DataplaneConnection } from './connection';
import { DeniedTracker } from './denied';
import { dryRun } from './dry-run';
import { IpcServer, type DataplaneReport, type HubLog } from './ipc-server';
import { PairTracker } from './live-status';
import { HubMetrics } from './metrics';
import { ObservedFlows } from './observed-flows';
import { runTransaction, type TransactionOutcome } from './transaction';
import type { ApplyResult, DataplaneHub, DryRunResult, FlowsResult, PairFlowRecord } from './types';
import { ViolationTracker } from './violations';
import type { Inventory } from '../inventory/types';
import { isDataplaneEvent } from '../../ipc/validate';

export interface DataplaneHubOptions {
  /** Defaults to DEFAULT_SOCKET_PATH. */
  socketPath?: string;
  log: HubLog;
  /** How long every dataplane has to compile a policy aside (default 10 s). */
  prepareTimeoutMs?: number;
  /** How long every dataplane has to confirm the swap (default 10 s). */
  commitTimeoutMs?: number;
  /** How long a dataplane has to answer flows.get before it is left out (default 2 s). */
  flowsTimeoutMs?: number;
  /** How often the flow tables are read to learn what the dry-run replays (default 10 s). */
  flowPollMs?: number;
  /** Epoch ms; tests move time forward. */
  clock?: () => number;
  /** Takes the dataplanes' observations and deny summaries (management's asset inventory). */
  inventory?: Pick<Inventory, 'observe' | 'denied'>;
}

/** Flows read from each dataplane per poll. */
const POLL_FLOW_LIMIT = 1000;

export function createDataplaneHub(options: DataplaneHubOptions): DataplaneHub {
  return new Hub(options);
}

class Hub implements DataplaneHub {
  private readonly log: HubLog;
  private readonly clock: () => number;
  private readonly timeouts: { prepareMs: number; commitMs: number };
  private readonly flowsTimeoutMs: number;
  private readonly flowPollMs: number;
  private readonly inventory: Pick<Inventory, 'observe' | 'denied'> | null;
  private readonly ipc: IpcServer;
  private readonly trackers = new Map<string, PairTracker>();
  /** The current connection of each connected pair. */
  private readonly connections = new Map<string, DataplaneConnection>();
  private readonly listeners: ((event: GatekeeperEvent) => void)[] = [];
  private readonly denied = new DeniedTracker();
  private readonly violations = new ViolationTracker();
  private readonly observed = new ObservedFlows();
  private readonly metricsRegistry: HubMetrics;
  private active: { text: string; hash: string } | null = null;
  /** Pairs waiting for the active policy to be pushed to them. */
  private readonly resyncPending = new Set<string>();
  /** Tail of the queue of policy transactions. */
  private queue: Promise<unknown> = Promise.resolve();
  private nextRequestId = 1;
  private pollTimer: NodeJS.Timeout | null = null;
  private closing = false;

  constructor(options: DataplaneHubOptions) {
    this.log = options.log;
    this.clock = options.clock ?? Date.now;
    this.timeouts = { prepareMs: options.prepareTimeoutMs ?? 10_000, commitMs: options.commitTimeoutMs ?? 10_000 };
    this.flowsTimeoutMs = options.flowsTimeoutMs ?? 2000;
    this.flowPollMs = options.flowPollMs ?? 10_000;
    this.inventory = options.inventory ?? null;
    this.metricsRegistry = new HubMetrics(() => this.trackers.values());
    this.ipc = new IpcServer(
      options.socketPath ?? DEFAULT_SOCKET_PATH,
      {
        registered: (c) => this.registered(c),
        message: (c, m) => this.report(c, m),
        closed: (c) => this.closed(c),
        protocolError: (kind) => this.metricsRegistry.protocolError(kind),
      },
      this.log,
    );
  }

  async listen(): Promise<void> {
    await this.ipc.listen();
    this.pollTimer = setInterval(() => void this.pollFlows(), this.flowPollMs).unref();
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    await this.ipc.close();
  }

  pairs() {
    const now = this.clock();
    return [...this.trackers.values()].sort((a, b) => (a.pair < b.pair ? -1 : 1)).map((t) => t.status(now));
  }

  history(pair: string, seconds: number) {
    return this.trackers.get(pair)?.history(seconds, this.clock()) ?? [];
  }

  topDenied(limit: number) {
    return this.denied.top(limit, this.clock());
  }

  topViolations(limit: number) {
    return this.violations.top(limit, this.clock());
  }

  dryRun(activeText: string, candidateText: string): Promise<DryRunResult> {
    return dryRun(this.observed.list(this.clock()), activeText, candidateText);
  }

  onEvent(listener: (event: GatekeeperEvent) => void): void {
    this.listeners.push(listener);
  }

  metrics(): Promise<string> {
    return this.metricsRegistry.text();
  }

  apply(text: string, source: string): Promise<ApplyResult> {
    return this.serialized(async () => {
      const outcome = await this.transact([...this.connections.values()], text, source);
      if (outcome.result.ok || outcome.committed.length === 0) return outcome.result;
      return { ...outcome.result, error: `${outcome.result.error}; ${await this.restoreActive(outcome)}` };
    });
  }

  /** Dataplanes identify their policy by the SHA-256 of its text, so that is what is compared. */
  setActivePolicy(text: string, hash: string): void {
    const sourceHash = createHash('sha256').update(text).digest('hex');
    if (hash !== sourceHash) this.log.warn({ given: hash, sourceHash }, 'active policy hash is not the SHA-256 of its text: using the SHA-256');
    this.active = { text, hash: sourceHash };
    for (const [pair, connection] of this.connections) {
      if (this.trackers.get(pair)?.policyHash !== sourceHash) this.scheduleResync(connection);
    }
  }

  async flows(filter: FlowFilter & { pair?: string }, limit: number): Promise<FlowsResult> {
    const { pair, ...dataplaneFilter } = filter;
    const targets = pair === undefined ? [...this.connections.values()] : [this.connections.get(pair)].filter((c) => c !== undefined);
    const answers = await Promise.all(targets.map((c) => this.askFlows(c, dataplaneFilter, limit)));
    const result: FlowsResult = { flows: [], matched: 0, total: 0 };
    for (const answer of answers) {
      if (answer === null) continue;
      result.flows.push(...answer.flows);
      result.matched += answer.matched;
      result.total += answer.total;
    }
    result.flows.sort((a, b) => b.lastSeen - a.lastSeen);
    result.flows = result.flows.slice(0, limit);
    return result;
  }

  // --- connections

  private registered(connection: DataplaneConnection): void {
    const hello = connection.hello!;
    const now = this.clock();
    const previous = this.connections.get(hello.pair);
    if (previous !== undefined && previous !== connection) {
      this.log.warn({ pair: hello.pair, oldPid: previous.hello?.pid, pid: hello.pid }, 'dataplane reconnected: old connection replaced');
      previous.close('replaced by a new connection of the same pair');
    }
    this.connections.set(hello.pair, connection);
    const tracker = this.trackers.get(hello.pair);
    if (tracker === undefined) this.trackers.set(hello.pair, new PairTracker(hello, now));
    else tracker.reconnected(hello, now);
    this.log.info({ pair: hello.pair, pid: hello.pid, generation: hello.generation, policyHash: hello.policyHash }, 'dataplane connected');
    this.emit({
      type: 'dataplane.connected',
      time: new Date(now).toISOString(),
      severity: 'info',
      pair: hello.pair,
      pid: hello.pid,
      detail: `inside ${hello.inside}, outside ${hello.outside}, policy generation ${hello.generation}`,
    });
    if (this.active !== null && hello.policyHash !== this.active.hash) this.scheduleResync(connection);
  }

  private closed(connection: DataplaneConnection): void {
    const pair = connection.pair;
    if (this.connections.get(pair) !== connection) return; // replaced by a newer connection
    this.connections.delete(pair);
    this.trackers.get(pair)?.disconnected();
    if (this.closing) return;
    this.log.warn({ pair, pid: connection.hello?.pid }, 'dataplane disconnected');
    this.emit({
      type: 'dataplane.disconnected',
      time: new Date(this.clock()).toISOString(),
      severity: 'warning',
      pair,
      pid: connection.hello?.pid,
    });
    // A fail-open pair whose dataplane is gone is bridged by the kernel now: say so at once.
    if (connection.hello?.failMode === 'open') {
      this.emit({
        type: 'bypass.on',
        time: new Date(this.clock()).toISOString(),
        severity: 'critical',
        pair,
        reason: 'the dataplane ended (its connection to management closed)',
      });
    }
  }

  private report(connection: DataplaneConnection, message: DataplaneReport): void {
    const tracker = this.trackers.get(connection.pair);
    if (tracker === undefined || this.connections.get(connection.pair) !== connection) return;
    const now = this.clock();
    tracker.lastSeen = now;
    if (message.type === 'stats') {
      tracker.update(message.stats, now);
    } else if (message.type === 'events') {
      this.receiveEvents(connection.pair, tracker, message.events, message.dropped, now);
    } else if (message.type === 'observations') {
      this.toInventory('observations', () => this.inventory?.observe(connection.pair, message, now));
    }
  }

  /** An inventory that fails is logged; it must not cost the dataplane its connection (nor the events that follow). */
  private toInventory(what: string, call: () => void): void {
    try {
      call();
    } catch (err) {
      this.log.error({ what, err: (err as Error).stack }, 'asset inventory failed to take a dataplane report');
    }
  }

  private receiveEvents(pair: string, tracker: PairTracker, events: unknown[], dropped: number, now: number): void {
    let malformed = 0;
    for (const raw of events) {
      // Reported below from the batch's `dropped` count, once.
      if ((raw as { type?: unknown } | null)?.type === 'events.dropped') continue;
      if (!isDataplaneEvent(raw)) {
        malformed++;
        continue;
      }
      // The connection says which pair this is, whatever the event claims.
      const event: GatekeeperEvent = { ...raw, pair };
      if (event.type === 'deny.summary') {
        this.denied.record(event, now);
        this.observed.fromEvent(pair, event, now);
        this.toInventory('deny.summary', () => this.inventory?.denied(pair, event, now));
      } else if (event.type === 'flow.start') {
        this.observed.fromEvent(pair, event, now);
      } else if (event.type === 'ot.violation') {
        this.violations.record(event, now);
      }
      this.emit(event);
    }
    if (malformed > 0) {
      this.log.warn({ pair, malformed }, 'malformed events from a dataplane skipped');
      for (let i = 0; i < malformed; i++) this.metricsRegistry.protocolError('bad_event');
    }
    if (dropped > 0) {
      tracker.eventsDropped += dropped;
      this.emit({ type: 'events.dropped', time: new Date(now).toISOString(), severity: 'warning', pair, count: dropped });
    }
  }

  private emit(event: GatekeeperEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ type: event.type, err: (err as Error).message }, 'event listener failed');
      }
    }
  }

  // --- transactions

  private serialized<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async transact(targets: DataplaneConnection[], text: string, source: string): Promise<TransactionOutcome> {
    const outcome = await runTransaction(targets, text, source, this.nextRequestId++, this.timeouts);
    for (const c of outcome.committed) this.trackers.get(c.connection.pair)?.committed(c.generation, c.policyHash);
    return outcome;
  }

  /**
   * Some dataplanes committed and others did not confirm: put the active policy back on those that
   * did, so the pairs do not run different policies. Returns what happened, for the user.
   */
  private async restoreActive(outcome: TransactionOutcome): Promise<string> {
    const moved = outcome.committed.map((c) => c.connection).filter((c) => !c.closed);
    const names = outcome.committed.map((c) => c.connection.pair).join(', ');
    if (this.active === null) {
      this.log.error({ pairs: names }, 'partial commit and no active policy to restore');
      return `${names} now run the new policy (no active policy known to restore)`;
    }
    const restore = await this.transact(moved, this.active.text, 'active policy (restored)');
    this.log.error({ pairs: names, restored: restore.result.ok }, 'partial commit: active policy pushed back');
    return restore.result.ok ? `the active policy was restored on ${names}` : `restoring the active policy on ${names} failed: ${restore.result.error}`;
  }

  private scheduleResync(connection: DataplaneConnection): void {
    const pair = connection.pair;
    if (this.resyncPending.has(pair)) return;
    this.resyncPending.add(pair);
    void this.serialized(async () => {
      this.resyncPending.delete(pair);
      const active = this.active;
      const current = this.connections.get(pair);
      if (active === null || current === undefined || this.trackers.get(pair)?.policyHash === active.hash) return;
      const outcome = await this.transact([current], active.text, 'active policy');
      const time = new Date(this.clock()).toISOString();
      if (outcome.result.ok) {
        this.log.info({ pair, policyHash: active.hash }, 'active policy pushed to a dataplane that ran another one');
        this.emit({
          type: 'policy.applied', time, severity: 'notice', pair, author: 'management', policyHash: active.hash,
          comment: 'active policy pushed to a dataplane that connected running another one',
        });
      } else {
        const errors = outcome.result.details.map((d) => d.error);
        this.log.error({ pair, policyHash: active.hash, errors }, 'dataplane did not take the active policy');
        this.emit({ type: 'policy.refused', time, severity: 'error', pair, author: 'management', policyHash: active.hash, errors });
      }
    });
  }

  // --- flows

  /** One pair's answer to flows.get, or null (logged) when it does not answer in time. */
  private async askFlows(connection: DataplaneConnection, filter: FlowFilter, limit: number): Promise<{ flows: PairFlowRecord[]; matched: number; total: number } | null> {
    const requestId = this.nextRequestId++;
    const reply = connection.expect(requestId, 'flows', this.flowsTimeoutMs);
    connection.send({ type: 'flows.get', requestId, filter, limit });
    try {
      const m = await reply;
      const pair = connection.pair;
      const now = this.clock();
      for (const f of m.flows) this.observed.fromFlow(pair, f, now);
      return { flows: m.flows.map((f) => ({ ...f, pair })), matched: m.matched, total: m.total };
    } catch (err) {
      this.log.warn({ pair: connection.pair, err: (err as Error).message }, 'dataplane left out of the flows answer');
      return null;
    }
  }

  private async pollFlows(): Promise<void> {
    await Promise.all([...this.connections.values()].map((c) => this.askFlows(c, {}, POLL_FLOW_LIMIT)));
  }
}
