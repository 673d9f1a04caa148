// MAC address → vendor, from the IEEE registry as Debian's ieee-data package ships it
// (/usr/share/ieee-data: oui.csv MA-L 24-bit, mam.csv MA-M 28-bit, oui36.csv MA-S 36-bit prefixes),
// read at run time so an updated package is an updated table. Longest prefix wins (an MA-S block
// inside an MA-L the IEEE itself holds names its real owner). Locally administered and group MACs
// have no vendor. Must not block the loop: the ~3.9 MB of CSV is read asynchronously and parsed in
// slices of SLICE_MS with a yield between them: 70–115 ms in all, the longest slice 4–20 ms, the
// longest loop gap 8–27 ms (measured on the 2-core box under load, test/inventory.test.ts prints
// it; 1000-record slices held the loop 24–48 ms).
// Must not hold a copied table of its own.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const IEEE_DATA_DIR = '/usr/share/ieee-data';

/** The registries, by the number of hex digits of their prefixes. */
const REGISTRIES: readonly { file: string; digits: number }[] = [
  { file: 'oui.csv', digits: 6 },
  { file: 'mam.csv', digits: 7 },
  { file: 'oui36.csv', digits: 9 },
];
const LONGEST_FIRST = [9, 7, 6];

/** Parsing yields to the loop after this long (checked every CHECK_EVERY records). */
const SLICE_MS = 4;
const CHECK_EVERY = 64;

export interface OuiLoadStats {
  /** Prefixes per registry file; a file that could not be read counts 0 and is in `errors`. */
  prefixes: Record<string, number>;
  errors: string[];
  /** Wall time of the whole load, and the longest the loop was held by one slice of parsing. */
  totalMs: number;
  longestSliceMs: number;
  /** Slices parsed, each followed by a yield to the loop. */
  slices: number;
}

export class OuiRegistry {
  private readonly byPrefix = new Map<string, string>();
  private loading: Promise<OuiLoadStats> | null = null;
  private loaded = false;

  constructor(private readonly dir = IEEE_DATA_DIR) {}

  /** Starts the load (once) and resolves when the table is complete. */
  load(): Promise<OuiLoadStats> {
    this.loading ??= this.readAll();
    return this.loading;
  }

  get ready(): boolean {
    return this.loaded;
  }

  /** The organization for a MAC ("00:11:22:33:44:55"); null when unknown, private, local or not loaded yet. */
  vendor(mac: string): string | null {
    const hex = mac.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
    if (hex.length !== 12) return null;
    // Bit 0 of the first octet: group address; bit 1: locally administered. Neither is registered.
    if ((parseInt(hex.slice(0, 2), 16) & 0x03) !== 0) return null;
    for (const digits of LONGEST_FIRST) {
      const name = this.byPrefix.get(hex.slice(0, digits));
      if (name !== undefined) return name === '' ? null : name;
    }
    return null;
  }

  private async readAll(): Promise<OuiLoadStats> {
    const started = performance.now();
    const stats: OuiLoadStats = { prefixes: {}, errors: [], totalMs: 0, longestSliceMs: 0, slices: 0 };
    const names = new Map<string, string>(); // one string per organization (Cisco has ~1000 prefixes)
    for (const { file, digits } of REGISTRIES) {
      let text: string;
      try {
        text = await readFile(join(this.dir, file), 'utf8');
      } catch (err) {
        stats.prefixes[file] = 0;
        stats.errors.push(`${file}: ${(err as Error).message}`);
        continue;
      }
      let count = 0;
      const records = csvRecords(text);
      for (;;) {
        const sliceStart = performance.now();
        let n = 0;
        let done = false;
        for (; n % CHECK_EVERY !== 0 || n === 0 || performance.now() - sliceStart < SLICE_MS; n++) {
          const next = records.next();
          if (next.done) {
            done = true;
            break;
          }
          const [registry, assignment, organization] = next.value;
          if (registry === 'Registry' || assignment === undefined || assignment.length !== digits) continue;
          // Some entries end in a stray comma ("Siemens AG,"): not part of the name.
          const org = (organization ?? '').trim().replace(/[\s,]+$/, '');
          // "Private": the owner asked not to be named; it still shadows the shorter prefix around it.
          const name = org.toLowerCase() === 'private' ? '' : org;
          let interned = names.get(name);
          if (interned === undefined) names.set(name, (interned = name));
          this.byPrefix.set(assignment.toUpperCase(), interned);
          count++;
        }
        stats.longestSliceMs = Math.max(stats.longestSliceMs, performance.now() - sliceStart);
        stats.slices++;
        if (done) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      stats.prefixes[file] = count;
    }
    this.loaded = true;
    stats.totalMs = performance.now() - started;
    return stats;
  }
}

/**
 * The records of an RFC 4180 CSV text: fields split on commas, a quoted field may hold commas,
 * doubled quotes and line breaks (the registry has addresses that do). No CSV package is a
 * dependency, and this is all the format needs.
 */
function* csvRecords(text: string): Generator<string[]> {
  let i = 0;
  const n = text.length;
  while (i < n) {
    const record: string[] = [];
    for (;;) {
      let field: string;
      if (text.charCodeAt(i) === 0x22) {
        let value = '';
        let j = i + 1;
        for (;;) {
          const q = text.indexOf('"', j);
          if (q === -1) {
            value += text.slice(j);
            j = n;
            break;
          }
          value += text.slice(j, q);
          if (text.charCodeAt(q + 1) === 0x22) {
            value += '"';
            j = q + 2;
          } else {
            j = q + 1;
            break;
          }
        }
        field = value;
        i = j;
      } else {
        let j = i;
        while (j < n && text.charCodeAt(j) !== 0x2c && text.charCodeAt(j) !== 0x0a && text.charCodeAt(j) !== 0x0d) j++;
        field = text.slice(i, j);
        i = j;
      }
      record.push(field);
      if (i < n && text.charCodeAt(i) === 0x2c) {
        i++;
        continue;
      }
      // End of record: CRLF or LF (or the end of the text).
      if (i < n && text.charCodeAt(i) === 0x0d) i++;
      if (i < n && text.charCodeAt(i) === 0x0a) i++;
      break;
    }
    if (record.length > 1 || record[0] !== '') yield record;
  }
}

/** The registry of this process (loaded once, on the first load(), however many inventories open). */
export const ieeeRegistry = new OuiRegistry();
