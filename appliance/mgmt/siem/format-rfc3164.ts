// RFC 3164 ("BSD syslog") lines for old receivers:
//   <PRI>Mmm dd hh:mm:ss HOSTNAME gatekeeper: SENTENCE | type=deny.summary severity=warning time=... key=value ...
// The 3164 timestamp has no year and no zone (it is written in UTC here), so the exact ISO time is
// repeated as time=. Values with spaces or special characters are double-quoted with \" and \\.
// RFC 3164 §4.1 limits a packet to 1024 bytes: fields are dropped from the end to fit.

import { describe, eventFields, eventTime, headerToken, truncateUtf8 } from './describe';
import type { ExportRecord, FormatOptions } from './describe';
import { priority } from './severity';

export const rfc3164MaxBytes = 1024;

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "Nov  1 09:05:03" (day space-padded, as RFC 3164 §4.1.2 requires), in UTC. */
export function bsdTimestamp(time: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${months[time.getUTCMonth()]} ${String(time.getUTCDate()).padStart(2, ' ')} ` +
    `${two(time.getUTCHours())}:${two(time.getUTCMinutes())}:${two(time.getUTCSeconds())}`;
}

/** key=value, quoted when the value has anything a key=value splitter would trip on. */
export function keyValue(key: string, value: string): string {
  const clean = value.replace(/[\r\n]+/g, ' ');
  if (clean.length > 0 && !/[\s"\\=|]/.test(clean)) return `${key}=${clean}`;
  return `${key}="${clean.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export function formatRfc3164(record: ExportRecord, options: FormatOptions): string {
  const time = eventTime(record);
  // RFC 3164 hostnames have no domain part.
  const host = headerToken(options.hostname.split('.')[0] ?? '', 255);
  const head = `<${priority(record.severity)}>${bsdTimestamp(time)} ${host} gatekeeper: `;
  const sentence = describe(record);
  const pairs = [
    keyValue('type', String(record.type)),
    keyValue('severity', String(record.severity)),
    keyValue('time', time.toISOString()),
    ...eventFields(record).map(([k, v]) => keyValue(k, v)),
  ];
  const maxBytes = Math.min(options.maxBytes, rfc3164MaxBytes);
  let line = `${head}${sentence} | ${pairs.join(' ')}`;
  if (Buffer.byteLength(line) > maxBytes) {
    // Fields go from the end (type, severity and time stay), then the sentence is shortened.
    const tail = () => ` | ${pairs.join(' ')} truncated=true`;
    while (pairs.length > 3 && Buffer.byteLength(`${head}${sentence}${tail()}`) > maxBytes) pairs.pop();
    line = `${head}${truncateUtf8(sentence, maxBytes - Buffer.byteLength(head + tail()))}${tail()}`;
  }
  return truncateUtf8(line, maxBytes);
}
