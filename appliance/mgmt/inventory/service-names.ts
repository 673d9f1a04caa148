// The name the inventory gives a conversation's service: the built-in service of the policy
// language (policy/services.ts) that covers its protocol and port ("modbus", "ping"), else the
// literal the policy would write ("tcp/8086", "icmp/timestamp-request", "gre"). One table, built
// once from BUILTIN_SERVICES; no service list of its own.

import { BUILTIN_SERVICES, ICMP_PROTOCOLS, ICMP_TYPES, ICMPV6_TYPES, parseServiceEntry, PORT_PROTOCOLS } from '../../policy/services';
import { Proto, PROTOCOL_NAMES } from '../../wire/protocols';

interface Entry {
  name: string;
  proto: number;
  lo: number;
  hi: number;
}

const entries: Entry[] = Object.entries(BUILTIN_SERVICES).flatMap(([name, literals]) =>
  literals.flatMap((literal) => {
    const e = parseServiceEntry(literal);
    return e.kind === 'ok' ? [{ name, proto: e.proto, lo: e.lo, hi: e.hi }] : [];
  }));

function protoNumber(proto: string): number | null {
  if (Object.hasOwn(PROTOCOL_NAMES, proto)) return PROTOCOL_NAMES[proto];
  const m = /^proto\/(\d{1,3})$/.exec(proto);
  return m ? Number(m[1]) : null;
}

/** `port` is the server's port (TCP/UDP/SCTP) or the ICMP request type, as conversations carry it. */
export function serviceName(proto: string, port: number): string {
  const n = protoNumber(proto);
  const icmp = n !== null && ICMP_PROTOCOLS.includes(n);
  // ICMP services are keyed by (type << 8) | code; a conversation knows only the type.
  const key = icmp ? port << 8 : port;
  for (const e of entries) if (e.proto === n && key >= e.lo && key <= e.hi) return e.name;
  if (n !== null && PORT_PROTOCOLS.includes(n)) return `${proto}/${port}`;
  if (icmp) {
    const types = n === Proto.ICMP ? ICMP_TYPES : ICMPV6_TYPES;
    return `${proto}/${Object.keys(types).find((k) => types[k] === port) ?? port}`;
  }
  return proto;
}
