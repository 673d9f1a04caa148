// Addresses as people and tshark read them: dotted IPv4, RFC 5952 IPv6. One formatter for the
// whole appliance (conformance output, policy messages, logs); never used on the packet path.

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
