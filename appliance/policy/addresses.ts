// Address literals of the policy language: IPv4/IPv6 hosts, CIDRs, ranges, MACs and address@MAC
// bindings, parsed into closed intervals. IPv4 intervals are unsigned 32-bit numbers; IPv6 intervals are 128-bit bigints
// (compile time only; the dataplane tables use 4 big-endian words).

import { formatIPv6, formatIpv4, parseIPv4, parseIPv6 } from '../wire/address-text';

export const V4_MAX = 0xffffffff;
export const V6_MAX = (1n << 128n) - 1n;

/** Union of addresses: flat sorted, merged [lo, hi, lo, hi, ...] closed intervals per family. */
export interface AddressSet {
  v4: number[];
  v6: bigint[];
  /** MAC entries: kept for inventory and names, never matched by L3 rules. */
  macs: string[];
}

export type AddressEntry =
  | { kind: 'v4'; lo: number; hi: number }
  | { kind: 'v6'; lo: bigint; hi: bigint }
  | { kind: 'mac'; mac: string }
  /** `198.18.20.5@02:00:00:00:00:05`: one host, matched by rules like the address alone, and bound to its MAC. */
  | { kind: 'bound'; family: 4; lo: number; hi: number; mac: string }
  | { kind: 'bound'; family: 6; lo: bigint; hi: bigint; mac: string }
  | { kind: 'error'; message: string };

export const emptyAddressSet = (): AddressSet => ({ v4: [], v6: [], macs: [] });
export const anyAddressSet = (): AddressSet => ({ v4: [0, V4_MAX], v6: [0n, V6_MAX], macs: [] });

/** Literal (as opposed to a group name): starts with a digit or contains ':' or '/'. */
export function isAddressLiteral(text: string): boolean {
  return /^[0-9]/.test(text) || text.includes(':') || text.includes('/');
}

const V4_MAPPED_PREFIX = 0xffffn << 32n;
const isV4Mapped = (v: bigint): boolean => v >> 32n === 0xffffn;

type Host = { kind: 'v4'; value: number } | { kind: 'v6'; value: bigint } | { kind: 'error'; message: string };

function parseHost(text: string): Host {
  const v4 = parseIPv4(text);
  if (v4 !== null) return { kind: 'v4', value: v4 };
  const v6 = parseIPv6(text);
  if (v6 === null) return { kind: 'error', message: `'${text}' is not a valid IPv4 or IPv6 address` };
  if (isV4Mapped(v6)) {
    return {
      kind: 'error',
      message: `'${text}' is an IPv4-mapped IPv6 address; write the IPv4 address ${formatIpv4(Number(v6 - V4_MAPPED_PREFIX))} instead`,
    };
  }
  return { kind: 'v6', value: v6 };
}

const MAC = /^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i;

const macText = (text: string): string => text.toLowerCase().replace(/-/g, ':');

/** A MAC as the 48-bit number the dataplane compares (first byte most significant). */
export function macNumber(mac: string): number {
  return parseInt(mac.replace(/[:-]/g, ''), 16);
}

/** One group entry: address, CIDR (host bits must be zero), range "a-b" of one family, MAC, or address@MAC. */
export function parseAddressEntry(raw: string): AddressEntry {
  const text = raw.trim();
  if (MAC.test(text)) return { kind: 'mac', mac: macText(text) };
  const at = text.indexOf('@');
  if (at >= 0) return parseBinding(text, at);
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const host = parseHost(text.slice(0, slash));
    if (host.kind === 'error') return host;
    const lenText = text.slice(slash + 1);
    const bits = host.kind === 'v4' ? 32 : 128;
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) {
      return { kind: 'error', message: `'${text}': prefix length must be 0..${bits}` };
    }
    const len = Number(lenText);
    if (host.kind === 'v4') {
      const size = 2 ** (32 - len);
      const lo = host.value - (host.value % size);
      if (lo !== host.value) {
        return { kind: 'error', message: `'${text}' has host bits set; did you mean ${formatIpv4(lo)}/${len}?` };
      }
      return { kind: 'v4', lo, hi: lo + size - 1 };
    }
    const hostMask = (1n << BigInt(128 - len)) - 1n;
    const lo = host.value & ~hostMask;
    if (lo !== host.value) {
      return { kind: 'error', message: `'${text}' has host bits set; did you mean ${formatIPv6(lo)}/${len}?` };
    }
    return { kind: 'v6', lo, hi: lo | hostMask };
  }
  const dash = text.indexOf('-');
  if (dash >= 0) {
    const a = parseHost(text.slice(0, dash).trim());
    if (a.kind === 'error') return a;
    const b = parseHost(text.slice(dash + 1).trim());
    if (b.kind === 'error') return b;
    if (a.kind !== b.kind) return { kind: 'error', message: `range '${text}' mixes IPv4 and IPv6` };
    if (a.value > b.value) return { kind: 'error', message: `range '${text}' starts after it ends` };
    return a.kind === 'v4'
      ? { kind: 'v4', lo: a.value, hi: b.value as number }
      : { kind: 'v6', lo: a.value, hi: b.value as bigint };
  }
  const host = parseHost(text);
  if (host.kind === 'error') return host;
  return host.kind === 'v4'
    ? { kind: 'v4', lo: host.value, hi: host.value }
    : { kind: 'v6', lo: host.value, hi: host.value };
}

/** `address@MAC`: a single IPv4 or IPv6 address (no CIDR, no range) bound to one MAC. */
function parseBinding(text: string, at: number): AddressEntry {
  const address = text.slice(0, at).trim();
  const mac = text.slice(at + 1).trim();
  if (!MAC.test(mac)) return { kind: 'error', message: `'${mac}' in '${text}' is not a MAC address (write address@02:00:00:00:00:05)` };
  if (address.includes('/') || address.includes('-')) {
    return { kind: 'error', message: `'${text}': a MAC binds a single address, not a CIDR or range (bind each host on its own)` };
  }
  const host = parseHost(address);
  if (host.kind === 'error') return host;
  return host.kind === 'v4'
    ? { kind: 'bound', family: 4, lo: host.value, hi: host.value, mac: macText(mac) }
    : { kind: 'bound', family: 6, lo: host.value, hi: host.value, mac: macText(mac) };
}

/** Sorts and merges flat [lo, hi, ...] closed intervals; adjacent intervals are joined. */
export function mergeIntervals<T extends number | bigint>(flat: T[]): T[] {
  const n = flat.length / 2;
  if (n <= 1) return flat.slice();
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) =>
    flat[2 * a] < flat[2 * b] ? -1 : flat[2 * a] > flat[2 * b] ? 1 : 0,
  );
  const out: T[] = [];
  for (const i of order) {
    const lo = flat[2 * i];
    const hi = flat[2 * i + 1];
    const last = out.length - 1;
    const adjacent =
      last > 0 &&
      (typeof lo === 'bigint' ? lo <= (out[last] as bigint) + 1n : (lo as number) <= (out[last] as number) + 1);
    if (adjacent) {
      if (hi > out[last]) out[last] = hi;
    } else {
      out.push(lo, hi);
    }
  }
  return out;
}

export function unionAddressSets(sets: AddressSet[]): AddressSet {
  return {
    v4: mergeIntervals(sets.flatMap((s) => s.v4)),
    v6: mergeIntervals(sets.flatMap((s) => s.v6)),
    macs: [...new Set(sets.flatMap((s) => s.macs))],
  };
}

/** True when every interval of `inner` lies inside the union `outer` (both merged). */
export function intervalsCover<T extends number | bigint>(outer: T[], inner: T[]): boolean {
  let j = 0;
  for (let i = 0; i < inner.length; i += 2) {
    while (j < outer.length && outer[j + 1] < inner[i]) j += 2;
    if (j >= outer.length || outer[j] > inner[i] || outer[j + 1] < inner[i + 1]) return false;
  }
  return true;
}

/** Binary search in merged intervals. */
export function intervalsContain<T extends number | bigint>(flat: T[], v: T): boolean {
  let lo = 0;
  let hi = flat.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (v < flat[2 * mid]) hi = mid - 1;
    else if (v > flat[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}
