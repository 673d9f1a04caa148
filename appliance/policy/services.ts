// Service literals of the policy language (tcp/502, udp/5000-5010, icmp/echo-request, icmp/3/4,
// gre, proto/47, ...) and the built-in well-known services.

import { Proto, PROTOCOL_NAMES, protocolName } from '../wire/protocols';
import { KEY_MAX } from './types';

/** Protocols whose key is the destination port. */
export const PORT_PROTOCOLS: readonly number[] = [Proto.TCP, Proto.UDP, Proto.SCTP];
/** Protocols whose key is (type << 8) | code. */
export const ICMP_PROTOCOLS: readonly number[] = [Proto.ICMP, Proto.ICMPV6];
export const KEYED_PROTOCOLS: readonly number[] = [...ICMP_PROTOCOLS, ...PORT_PROTOCOLS];

export const ICMP_TYPES: Readonly<Record<string, number>> = {
  'echo-reply': 0,
  'destination-unreachable': 3,
  'source-quench': 4,
  redirect: 5,
  'echo-request': 8,
  'router-advertisement': 9,
  'router-solicitation': 10,
  'time-exceeded': 11,
  'parameter-problem': 12,
  'timestamp-request': 13,
  'timestamp-reply': 14,
};

export const ICMPV6_TYPES: Readonly<Record<string, number>> = {
  'destination-unreachable': 1,
  'packet-too-big': 2,
  'time-exceeded': 3,
  'parameter-problem': 4,
  'echo-request': 128,
  'echo-reply': 129,
  'mld-query': 130,
  'mld-report': 131,
  'mld-done': 132,
  'router-solicitation': 133,
  'router-advertisement': 134,
  'neighbor-solicitation': 135,
  'neighbor-advertisement': 136,
  redirect: 137,
  'mldv2-report': 143,
};

/** Built-in services, usable without declaring them. A user definition of the same name replaces it. */
export const BUILTIN_SERVICES: Readonly<Record<string, readonly string[]>> = {
  ping: ['icmp/echo-request', 'icmpv6/echo-request'],
  modbus: ['tcp/502'],
  dnp3: ['tcp/20000'],
  enip: ['tcp/44818', 'udp/2222'],
  s7comm: ['tcp/102'],
  opcua: ['tcp/4840'],
  bacnet: ['udp/47808'],
  iec104: ['tcp/2404'],
  mqtt: ['tcp/1883'],
  'mqtt-tls': ['tcp/8883'],
  http: ['tcp/80'],
  https: ['tcp/443'],
  ssh: ['tcp/22'],
  telnet: ['tcp/23'],
  ftp: ['tcp/21'],
  rdp: ['tcp/3389'],
  vnc: ['tcp/5900'],
  smb: ['tcp/445'],
  dns: ['udp/53', 'tcp/53'],
  ntp: ['udp/123'],
  syslog: ['udp/514'],
  snmp: ['udp/161'],
  'snmp-trap': ['udp/162'],
};

/**
 * Union of protocols and keys. `protos` maps a protocol number to flat merged [lo, hi, ...] key
 * intervals; protocols without keys always hold [0, KEY_MAX].
 */
export interface ServiceSet {
  any: boolean;
  protos: Map<number, number[]>;
}

export type ServiceEntry = { kind: 'ok'; proto: number; lo: number; hi: number } | { kind: 'error'; message: string };

/** Literal (as opposed to a service name): contains '/' or is a bare protocol name. */
export function isServiceLiteral(text: string): boolean {
  return text.includes('/') || Object.hasOwn(PROTOCOL_NAMES, text.toLowerCase());
}

function parseNumber(text: string, max: number): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n <= max ? n : null;
}

export function parseServiceEntry(raw: string): ServiceEntry {
  const text = raw.trim().toLowerCase();
  const parts = text.split('/');
  let proto: number | null;
  let rest: string[];
  if (parts[0] === 'proto') {
    proto = parts.length >= 2 ? parseNumber(parts[1], 255) : null;
    if (proto === null) return { kind: 'error', message: `'${raw}': protocol number must be 0..255 (e.g. proto/47)` };
    rest = parts.slice(2);
  } else {
    proto = Object.hasOwn(PROTOCOL_NAMES, parts[0]) ? PROTOCOL_NAMES[parts[0]] : null;
    if (proto === null) {
      return {
        kind: 'error',
        message: `'${raw}': unknown protocol '${parts[0]}' (known: ${Object.keys(PROTOCOL_NAMES).join(', ')}, proto/N)`,
      };
    }
    rest = parts.slice(1);
  }
  if (rest.length === 0) return { kind: 'ok', proto, lo: 0, hi: KEY_MAX };
  if (PORT_PROTOCOLS.includes(proto)) {
    if (rest.length !== 1) return { kind: 'error', message: `'${raw}': expected ${parts[0]}/PORT or ${parts[0]}/LOW-HIGH` };
    const m = /^(\d+)(?:-(\d+))?$/.exec(rest[0]);
    const lo = m ? parseNumber(m[1], KEY_MAX) : null;
    const hi = m ? (m[2] === undefined ? lo : parseNumber(m[2], KEY_MAX)) : null;
    if (lo === null || hi === null) return { kind: 'error', message: `'${raw}': ports must be 0..65535` };
    if (lo > hi) return { kind: 'error', message: `'${raw}': port range starts after it ends` };
    return { kind: 'ok', proto, lo, hi };
  }
  if (ICMP_PROTOCOLS.includes(proto)) {
    const names = proto === Proto.ICMP ? ICMP_TYPES : ICMPV6_TYPES;
    if (rest.length > 2) return { kind: 'error', message: `'${raw}': expected ${parts[0]}/TYPE or ${parts[0]}/TYPE/CODE` };
    const type = Object.hasOwn(names, rest[0]) ? names[rest[0]] : parseNumber(rest[0], 255);
    if (type === null) {
      return {
        kind: 'error',
        message: `'${raw}': unknown ${parts[0]} type '${rest[0]}' (use 0..255 or one of: ${Object.keys(names).join(', ')})`,
      };
    }
    if (rest.length === 1) return { kind: 'ok', proto, lo: type << 8, hi: (type << 8) | 0xff };
    const code = parseNumber(rest[1], 255);
    if (code === null) return { kind: 'error', message: `'${raw}': ICMP code must be 0..255` };
    return { kind: 'ok', proto, lo: (type << 8) | code, hi: (type << 8) | code };
  }
  return { kind: 'error', message: `'${raw}': protocol ${parts[0]} has no ports or types; write just '${parts[0]}'` };
}

export const emptyServiceSet = (): ServiceSet => ({ any: false, protos: new Map() });
export const anyServiceSet = (): ServiceSet => ({ any: true, protos: new Map() });

export function serviceSetOf(entry: { proto: number; lo: number; hi: number }): ServiceSet {
  return { any: false, protos: new Map([[entry.proto, [entry.lo, entry.hi]]]) };
}

export function unionServiceSets(sets: ServiceSet[], merge: (flat: number[]) => number[]): ServiceSet {
  const out = emptyServiceSet();
  for (const s of sets) {
    out.any ||= s.any;
    for (const [proto, keys] of s.protos) out.protos.set(proto, [...(out.protos.get(proto) ?? []), ...keys]);
  }
  for (const [proto, keys] of out.protos) out.protos.set(proto, merge(keys));
  return out;
}

/** Does the set match a packet with this protocol (256 = unknown) and key? */
export function serviceMatches(set: ServiceSet, proto: number, key: number): boolean {
  if (set.any) return true;
  const keys = set.protos.get(proto);
  if (!keys) return false;
  if (!KEYED_PROTOCOLS.includes(proto)) return true;
  for (let i = 0; i < keys.length; i += 2) if (key >= keys[i] && key <= keys[i + 1]) return true;
  return false;
}

export function formatServiceSet(set: ServiceSet): string {
  if (set.any) return 'any';
  const parts: string[] = [];
  for (const [proto, keys] of set.protos) {
    const name = protocolName(proto);
    if (!KEYED_PROTOCOLS.includes(proto) || (keys.length === 2 && keys[0] === 0 && keys[1] === KEY_MAX)) {
      parts.push(name);
      continue;
    }
    for (let i = 0; i < keys.length; i += 2) {
      const [lo, hi] = [keys[i], keys[i + 1]];
      if (PORT_PROTOCOLS.includes(proto)) {
        parts.push(lo === hi ? `${name}/${lo}` : `${name}/${lo}-${hi}`);
        continue;
      }
      const types = proto === Proto.ICMP ? ICMP_TYPES : ICMPV6_TYPES;
      const type = (t: number) => Object.keys(types).find((k) => types[k] === t) ?? String(t);
      if (lo === hi) parts.push(`${name}/${type(lo >> 8)}/${lo & 255}`);
      else if ((lo & 255) === 0 && (hi & 255) === 255 && lo >> 8 === hi >> 8) parts.push(`${name}/${type(lo >> 8)}`);
      else parts.push(`${name}/${lo >> 8}/${lo & 255}-${hi >> 8}/${hi & 255}`);
    }
  }
  return parts.join(', ');
}
