// Addresses as text, both ways: dotted IPv4, RFC 5952 IPv6 and colon-separated MACs as people and tshark read them, and
// the strict parsers the policy language and the API use. The one place for address text in the
// appliance; never used on the packet path. A leaf: imports nothing from appliance/.

import { isIPv6 } from 'node:net';

export function formatIpv4(address: number): string {
  return `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;
}

/** RFC 5952 text, with the IPv4-compatible and IPv4-mapped forms printed dotted as tshark does. */
export function formatIpv6(words: ArrayLike<number>): string {
  const groups: number[] = [];
  for (let i = 0; i < 4; i++) groups.push(words[i] >>> 16, words[i] & 0xffff);
  // Longest run of zero groups (leftmost on ties); a single zero group is not compressed.
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestLength < 2) bestStart = -1;
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff))) {
    const prefix = bestLength === 6 ? '::' : '::ffff:';
    return prefix + formatIpv4(words[3] >>> 0);
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

export function parseIPv4(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i];
    // Leading zeros are refused: some tools read them as octal.
    if (part.length > 1 && part[0] === '0') return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

export function parseIPv6(text: string): bigint | null {
  if (text.includes('%') || !isIPv6(text)) return null;
  let head = text;
  // Embedded dotted IPv4 in the last 32 bits (e.g. 64:ff9b::1.2.3.4) becomes two hex words.
  const lastColon = head.lastIndexOf(':');
  const tail = head.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIPv4(tail);
    if (v4 === null) return null;
    head = head.slice(0, lastColon + 1) + (v4 >>> 16).toString(16) + ':' + (v4 & 0xffff).toString(16);
  }
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  let words: number[];
  const dbl = head.indexOf('::');
  if (dbl >= 0) {
    const left = parse(head.slice(0, dbl));
    const right = parse(head.slice(dbl + 2));
    const fill = 8 - left.length - right.length;
    if (fill < 0) return null;
    words = [...left, ...new Array<number>(fill).fill(0), ...right];
  } else {
    words = parse(head);
  }
  if (words.length !== 8 || words.some((w) => !(w >= 0 && w <= 0xffff))) return null;
  let value = 0n;
  for (const w of words) value = (value << 16n) | BigInt(w);
  return value;
}

/** RFC 5952 text of a 128-bit address. */
export function formatIPv6(v: bigint): string {
  return formatIpv6(v6ToWords(v));
}

/** Big-endian 4-word form used by the dataplane. */
export function v6ToWords(v: bigint, out: Uint32Array = new Uint32Array(4), at = 0): Uint32Array {
  for (let i = 0; i < 4; i++) out[at + i] = Number((v >> BigInt((3 - i) * 32)) & 0xffffffffn);
  return out;
}

export function wordsToV6(words: ArrayLike<number>, at = 0): bigint {
  let v = 0n;
  for (let i = 0; i < 4; i++) v = (v << 32n) | BigInt(words[at + i] >>> 0);
  return v;
}

/** A MAC held as a 48-bit number (first byte most significant) as text: "02:00:00:00:00:05". */
export function formatMac(mac: number): string {
  return mac.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
}
