// The SIEM side of the tests. A real rsyslogd on loopback: UDP, TCP (octet counting), TLS (gtls) and RELP (imrelp) inputs,
// each writing the raw messages it receives, one per line, to its own file. Run in the foreground
// from a generated config in a temp dir, and always killed (the test's teardown does it).

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type InputKind = 'udp' | 'tcp' | 'tls' | 'relp';

/** One listening input; what it receives goes to <dir>/<name>.log. */
export interface Input {
  name: string;
  kind: InputKind;
  port: number;
}

export interface TlsFiles {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 50 ms; false when it still does not hold after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** A free loopback port (picked unused for TCP; good enough for the UDP inputs too). */
export { freePort } from './mgmt-fixture';

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A throwaway CA, a server certificate for "localhost"/127.0.0.1 and a client certificate. */
export function makeTlsFiles(): TlsFiles {
  const dir = mkdtempSync(join(tmpdir(), 'gk-siem-pki-'));
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=gk test ca',
    '-keyout', 'ca.key', '-out', 'ca.pem']);
  for (const [name, cn, san] of [['server', 'localhost', 'DNS:localhost,IP:127.0.0.1'], ['client', 'gatekeeper', 'DNS:gatekeeper']]) {
    openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
      '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
  }
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
  };
}

export class Rsyslog {
  readonly dir = mkdtempSync(join(tmpdir(), 'gk-siem-rsyslog-'));
  private process?: ChildProcess;
  private stderr = '';

  /** tls: certificates for TLS inputs (x509/certvalid: a client certificate from the same CA is required). */
  constructor(readonly inputs: Input[], readonly tls?: TlsFiles) {}

  file(name: string): string {
    return join(this.dir, `${name}.log`);
  }

  port(name: string): number {
    const input = this.inputs.find((i) => i.name === name);
    if (!input) throw new Error(`no input ${name}`);
    return input.port;
  }

  private config(): string {
    const lines = [
      `global(workDirectory="${this.dir}" maxMessageSize="64k"` +
        (this.tls ? ` defaultNetstreamDriverCAFile="${this.tls.caCert}" defaultNetstreamDriverCertFile="${this.tls.serverCert}" defaultNetstreamDriverKeyFile="${this.tls.serverKey}"` : '') +
        ')',
      'template(name="raw" type="string" string="%rawmsg%\\n")',
    ];
    if (this.inputs.some((i) => i.kind === 'udp')) lines.push('module(load="imudp")');
    if (this.inputs.some((i) => i.kind === 'tcp' || i.kind === 'tls')) lines.push('module(load="imtcp" maxSessions="50")');
    if (this.inputs.some((i) => i.kind === 'relp')) lines.push('module(load="imrelp")');
    for (const { name, kind, port } of this.inputs) {
      // RELP: a direct queue, so a message is in the file (the kernel's cache) before imrelp acknowledges
      // it, and even a killed receiver has every line it acknowledged.
      const queue = kind === 'relp' ? ' queue.type="Direct"' : '';
      lines.push(`ruleset(name="${name}"${queue}) { action(type="omfile" file="${this.file(name)}" template="raw") }`);
      if (kind === 'udp') lines.push(`input(type="imudp" address="127.0.0.1" port="${port}" ruleset="${name}")`);
      if (kind === 'tcp') lines.push(`input(type="imtcp" address="127.0.0.1" port="${port}" ruleset="${name}")`);
      if (kind === 'relp') lines.push(`input(type="imrelp" address="127.0.0.1" port="${port}" ruleset="${name}")`);
      if (kind === 'tls') {
        lines.push(`input(type="imtcp" address="127.0.0.1" port="${port}" ruleset="${name}" streamDriver.name="gtls" ` +
          'streamDriver.mode="1" streamDriver.authMode="x509/certvalid")');
      }
    }
    return lines.join('\n') + '\n';
  }

  /** Starts rsyslogd in the foreground and waits until every input accepts connections. */
  async start(): Promise<void> {
    const conf = join(this.dir, 'rsyslog.conf');
    writeFileSync(conf, this.config());
    const check = spawnSync('rsyslogd', ['-N1', '-f', conf], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`rsyslog.conf refused: ${check.stderr}${check.stdout}`);
    this.stderr = '';
    const child = spawn('rsyslogd', ['-n', '-f', conf, '-i', join(this.dir, 'rsyslogd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.stdout?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.process = child;
    const deadline = Date.now() + 10_000;
    for (const { kind, port } of this.inputs) {
      if (kind === 'udp') continue;
      while (!(await listening(port))) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`rsyslogd did not listen on ${port}: ${this.stderr}`);
        await sleep(50);
      }
    }
    if (this.inputs.some((i) => i.kind === 'udp')) await sleep(300); // imudp has no connection to wait for
  }

  /** Stops rsyslogd (SIGTERM, SIGKILL after 5 s) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** Kills rsyslogd (SIGKILL: a crashed receiver) and waits for it to exit. */
  async kill(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Whole lines received on an input so far. */
  lines(name: string): string[] {
    const file = this.file(name);
    if (!existsSync(file)) return [];
    const lines = readFileSync(file, 'utf8').split('\n');
    // The last piece is a line rsyslog is still writing (or empty): only whole lines count.
    lines.pop();
    return lines.filter((l) => l.length > 0);
  }

  /** Waits until the input has at least `count` lines (rsyslog writes in batches). */
  async waitForLines(name: string, count: number, timeoutMs = 10_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.lines(name);
      if (lines.length >= count || Date.now() > deadline) return lines;
      await sleep(100);
    }
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

// What a SIEM parser does with the lines, written from RFC 5424, RFC 3164 and the CEF spec (not from
// the formatters in appliance/mgmt/siem/).

export interface Rfc5424 { pri: number; version: number; timestamp: string; hostname: string; appName: string; procId: string;
  msgId: string; sd: Map<string, Map<string, string>>; msg: string }

/** RFC 5424 §6: HEADER SP STRUCTURED-DATA [SP MSG], SD-PARAM values with \" \\ \] escapes. */
export function parse5424(line: string): Rfc5424 {
  const header = /^<(\d{1,3})>(\d{1,2}) (\S+) ([\x21-\x7e]{1,255}) ([\x21-\x7e]{1,48}) ([\x21-\x7e]{1,128}) ([\x21-\x7e]{1,32}) /.exec(line);
  if (!header) throw new Error(`not an RFC 5424 header: ${line}`);
  let i = header[0].length;
  const sd = new Map<string, Map<string, string>>();
  if (line[i] === '-') i++;
  while (line[i] === '[') {
    const id = /^\[([^ =\]"]{1,32})/.exec(line.slice(i));
    if (!id) throw new Error(`bad SD-ID at ${i}: ${line}`);
    i += id[0].length;
    const params = new Map<string, string>();
    while (line[i] === ' ') {
      const name = /^ ([^ =\]"]{1,32})="/.exec(line.slice(i));
      if (!name) throw new Error(`bad SD-PARAM at ${i}: ${line}`);
      i += name[0].length;
      let value = '';
      for (;;) {
        const c = line[i++];
        if (c === undefined) throw new Error(`unterminated PARAM-VALUE: ${line}`);
        if (c === '"') break;
        if (c === ']') throw new Error(`unescaped ] in PARAM-VALUE: ${line}`);
        if (c === '\\' && (line[i] === '"' || line[i] === '\\' || line[i] === ']')) value += line[i++];
        else value += c;
      }
      params.set(name[1], value);
    }
    if (line[i++] !== ']') throw new Error(`SD-ELEMENT not closed at ${i - 1}: ${line}`);
    sd.set(id[1], params);
  }
  if (i < line.length && line[i] !== ' ') throw new Error(`no space before MSG at ${i}: ${line}`);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$/.test(header[3])) throw new Error(`bad TIMESTAMP ${header[3]}`);
  return { pri: Number(header[1]), version: Number(header[2]), timestamp: header[3], hostname: header[4], appName: header[5],
    procId: header[6], msgId: header[7], sd, msg: line.slice(i + 1) };
}

/** RFC 3164 §4.1: <PRI>Mmm dd hh:mm:ss HOST TAG: CONTENT; our CONTENT is "sentence | key=value ...". */
export function parse3164(line: string) {
  const m = /^<(\d{1,3})>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ 1-3]\d) (\d\d:\d\d:\d\d) ([\x21-\x7e]+) ([A-Za-z0-9]{1,32}): (.*?) \| (.*)$/.exec(line);
  if (!m) throw new Error(`not an RFC 3164 line: ${line}`);
  const fields = new Map<string, string>();
  const kv = /(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s"]*))(?: |$)/gy;
  let match: RegExpExecArray | null;
  while ((match = kv.exec(m[8])) !== null) {
    fields.set(match[1], match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : match[3]);
    if (kv.lastIndex === m[8].length) break;
  }
  if (kv.lastIndex !== m[8].length) throw new Error(`key=value tail not parsed to the end: ${m[8]}`);
  return { pri: Number(m[1]), month: m[2], day: m[3], clock: m[4], host: m[5], tag: m[6], message: m[7], fields };
}

/** CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension, after a syslog header. */
export function parseCef(line: string) {
  const syslog = /^<(\d{1,3})>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d (\S+) (CEF:.*)$/.exec(line);
  if (!syslog) throw new Error(`no syslog header before CEF: ${line}`);
  const cef = syslog[3];
  const header: string[] = [];
  let i = 4;
  let field = '';
  while (header.length < 7) {
    const c = cef[i++];
    if (c === undefined) throw new Error(`CEF header has ${header.length} fields: ${line}`);
    if (c === '\\') field += cef[i++];
    else if (c === '|') { header.push(field); field = ''; } else field += c;
  }
  const extension = cef.slice(i);
  const ext = new Map<string, string>();
  // Keys start after a space (or at the start) and end at '='; values run until the next " key=".
  const keyAt = /(?:^| )([A-Za-z0-9_]+)=/g;
  const keys: { key: string; start: number; end: number }[] = [];
  let m: RegExpExecArray | null;
  while ((m = keyAt.exec(extension)) !== null) {
    keys.push({ key: m[1], start: m.index, end: m.index + m[0].length });
  }
  // A key inside a value would need an unescaped '=', which the escaping forbids.
  for (let k = 0; k < keys.length; k++) {
    const raw = extension.slice(keys[k].end, k + 1 < keys.length ? keys[k + 1].start : extension.length);
    if (/(^|[^\\])(\\\\)*=/.test(raw)) throw new Error(`unescaped = in value of ${keys[k].key}: ${raw}`);
    ext.set(keys[k].key, raw.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c)));
  }
  // header[0] is the CEF version after "CEF:".
  return { pri: Number(syslog[1]), host: syslog[2], version: `CEF:${header[0]}`, vendor: header[1], product: header[2],
    deviceVersion: header[3], signature: header[4], name: header[5], severity: Number(header[6]), header: header.slice(1), ext };
}
