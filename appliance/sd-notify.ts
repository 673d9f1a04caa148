// systemd's service notification protocol (sd_notify(3)): readiness, status text, stopping and the
// watchdog, for the dataplane and management processes when systemd runs them (Type=notify).
//
// The protocol is a datagram to the Unix socket named by $NOTIFY_SOCKET, and Node cannot send Unix
// datagrams. Each message therefore goes through systemd-notify(1), which ships with systemd itself:
// since systemd 246 it waits until the manager has read the message (BARRIER=1), so the message is
// attributed to our unit even though it comes from a short-lived child. The units set
// NotifyAccess=all for that reason.
//
// systemd-notify is started by a small shell helper that lives as long as we do, not by this
// process: forking costs time in proportion to memory (55-85 ms at 1 GB, measured), and the dataplane
// must not stall its packet loop for that at every watchdog ping. Messages go to the helper one at a
// time, in order, never blocking the caller; a failure is counted and never thrown. Outside systemd
// (no $NOTIFY_SOCKET) all of this is a no-op.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';

/** How long one message may take before the helper is killed (systemd-notify's barrier waits at most 5 s). */
const SEND_TIMEOUT_MS = 10_000;
/** Messages waiting behind the one in flight; beyond this new messages are dropped (and counted). */
const MAX_QUEUED = 32;

/** What happened to the messages sent so far (for logs and stats; never needed to operate). */
export interface NotifyCounters {
  /** Messages systemd-notify delivered (exit status 0). */
  sent: number;
  /** Messages that could not be delivered: no systemd-notify, bad socket, timeout. */
  failed: number;
  /** Messages dropped because too many were waiting. */
  dropped: number;
}

export const notifyCounters: NotifyCounters = { sent: 0, failed: 0, dropped: 0 };

interface Message {
  /** VARIABLE=VALUE fields, sent as one datagram. */
  fields: string[];
  /** Called once the message was sent, failed or dropped. */
  done?: () => void;
}

const queue: Message[] = [];
let sending = false;
let watchdogQueued = false;

/** Tell systemd the service is up (Type=notify units are "activating" until then). */
export function notifyReady(status: string): void {
  send(['READY=1', statusField(status)]);
}

/** Free-form one-line status shown by `systemctl status`. */
export function notifyStatus(status: string): void {
  send([statusField(status)]);
}

/** Tell systemd the service is shutting down on purpose. */
export function notifyStopping(): void {
  send(['STOPPING=1']);
}

/**
 * Ping systemd's watchdog at half of WatchdogSec, but only while `isHealthy()` says so: when the
 * event loop hangs or the process reports itself unhealthy, pings stop and systemd restarts the
 * service. A no-op unless systemd enabled the watchdog for this very process. Returns a function
 * that stops the pings (the timer never keeps the process alive on its own).
 */
export function startWatchdog(isHealthy: () => boolean): () => void {
  const intervalMs = watchdogIntervalMs(process.env);
  if (intervalMs === undefined) return () => {};
  const timer = setInterval(() => {
    if (watchdogQueued || !healthy(isHealthy)) return;
    watchdogQueued = true;
    send(['WATCHDOG=1'], () => { watchdogQueued = false; });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Half of $WATCHDOG_USEC in milliseconds, as sd_watchdog_enabled(3) decides it: only when the
 * variable is a positive number and $WATCHDOG_PID, if set, is this process.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv): number | undefined {
  if (!env.NOTIFY_SOCKET || !env.WATCHDOG_USEC || !/^\d+$/.test(env.WATCHDOG_USEC)) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== String(process.pid)) return undefined;
  const usec = Number(env.WATCHDOG_USEC);
  if (usec <= 0) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

function healthy(isHealthy: () => boolean): boolean {
  try {
    return isHealthy();
  } catch {
    return false;
  }
}

/** The protocol separates fields with newlines (and the helper with tabs), so a status is one line. */
function statusField(status: string): string {
  return `STATUS=${status.replace(/[\t\r\n]+/g, ' ')}`;
}

function send(fields: string[], done?: () => void): void {
  if (!process.env.NOTIFY_SOCKET) {
    done?.();
    return;
  }
  if (queue.length >= MAX_QUEUED) {
    notifyCounters.dropped++;
    done?.();
    return;
  }
  queue.push({ fields, done });
  if (!sending) sendNext();
}

/**
 * Reads one message a line (the socket, then the fields, separated by tabs), runs systemd-notify for
 * it and answers with its exit status. Fields never hold tabs or newlines (see statusField).
 */
const HELPER_SCRIPT = `
while IFS= read -r line; do
  set -f; IFS='\t'; set -- $line; unset IFS; set +f
  socket=$1; shift
  NOTIFY_SOCKET=$socket systemd-notify "$@" </dev/null >/dev/null 2>&1
  echo $?
done`;

interface Helper {
  child: ChildProcess;
  /** Called with the exit status of systemd-notify, or undefined when the helper died. */
  onAnswer?: (status: string | undefined) => void;
}

let helper: Helper | undefined;

function startHelper(): Helper | undefined {
  let child: ChildProcess;
  try {
    child = spawn('/bin/sh', ['-c', HELPER_SCRIPT], { stdio: ['pipe', 'pipe', 'ignore'] });
  } catch {
    return undefined; // spawn throws synchronously only for resource exhaustion (EMFILE, EAGAIN)
  }
  const started: Helper = { child };
  const died = (): void => {
    if (helper === started) helper = undefined;
    const answer = started.onAnswer;
    started.onAnswer = undefined;
    answer?.(undefined);
  };
  child.on('error', died);
  child.on('exit', died);
  child.stdin?.on('error', died);
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const answer = started.onAnswer;
      started.onAnswer = undefined;
      answer?.(line.trim());
    });
  }
  // The helper never keeps this process alive.
  child.unref();
  (child.stdin as Socket | null)?.unref();
  (child.stdout as Socket | null)?.unref();
  return started;
}

function sendNext(): void {
  const message = queue.shift();
  if (message === undefined) {
    sending = false;
    return;
  }
  sending = true;
  const current = helper ?? (helper = startHelper());
  let finished = false;
  const finish = (ok: boolean): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timeout);
    if (ok) notifyCounters.sent++;
    else notifyCounters.failed++;
    message.done?.();
    sendNext();
  };
  const timeout = setTimeout(() => {
    current?.child.kill('SIGKILL');
    finish(false);
  }, SEND_TIMEOUT_MS);
  timeout.unref();
  if (current === undefined || !current.child.stdin) {
    setImmediate(() => finish(false));
    return;
  }
  current.onAnswer = (status) => finish(status === '0');
  current.child.stdin.write(`${[process.env.NOTIFY_SOCKET, ...message.fields].join('\t')}\n`);
}
