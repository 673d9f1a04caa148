// RFC 5424 syslog lines: <PRI>1 TIMESTAMP HOSTNAME gatekeeper - MSGID [gk@32473 key="value" ...] MSG
// MSGID is the event type; the structured data carries every field of the event; MSG is the
// sentence from describe.ts. 32473 is the private enterprise number IANA reserves for examples
// (RFC 5612): an installation that owns a PEN may want its own, but the SD-ID only has to be stable.

import { describe, eventFields, eventTime, headerToken, truncateUtf8 } from './describe';
import type { ExportRecord, FormatOptions } from './describe';
import { priority } from './severity';

export const sdId = 'gk@32473';
export const appName = 'gatekeeper';

/** Longest SD-PARAM value kept; the rest of a very long value (e.g. many policy errors) is cut. */
const maxParamValueBytes = 1024;

/** RFC 5424 §6.3.3: inside PARAM-VALUE, '"', '\' and ']' must be escaped with '\'. */
export function escapeParamValue(value: string): string {
  return value.replace(/[\\"\]]/g, (c) => `\\${c}`).replace(/[\r\n]+/g, ' ');
}

/** SD-NAME: 1-32 printable US-ASCII characters except '=', ' ', ']' and '"'. */
function paramName(key: string): string {
  const clean = key.replace(/[^\x21-\x7e]|[=\]"]/g, '_').slice(0, 32);
  return clean.length > 0 ? clean : '_';
}

export function formatRfc5424(record: ExportRecord, options: FormatOptions): string {
  const header = `<${priority(record.severity)}>1 ${eventTime(record).toISOString()} ${headerToken(options.hostname, 255)} ` +
    `${appName} - ${headerToken(String(record.type), 32)} `;
  let cut = false;
  const params = eventFields(record).map(([key, value]) => {
    const kept = truncateUtf8(value, maxParamValueBytes);
    cut ||= kept !== value;
    return `${paramName(key)}="${escapeParamValue(kept)}"`;
  });
  const message = describe(record);
  const marker = 'truncated="true"';
  let structured = `[${[sdId, ...params, ...(cut ? [marker] : [])].join(' ')}]`;
  // Too long: drop fields from the end (the sentence still says what happened) and say so.
  if (Buffer.byteLength(header + structured) > options.maxBytes) {
    while (params.length > 0 && Buffer.byteLength(`${header}[${[sdId, ...params, marker].join(' ')}]`) > options.maxBytes) params.pop();
    structured = `[${[sdId, ...params, marker].join(' ')}]`;
  }
  const line = `${header}${structured} ${message}`;
  return truncateUtf8(line, options.maxBytes);
}
