// Deterministic synthetic policies for benchmarks and tests: a plant with zones and cells, groups of
// hosts, subnets and ranges (some IPv6), custom and built-in services, mostly allow rules.
// A fixture, not a stage of the policy: only bench/ and test/ import it, never the appliance.

/** Small fast PRNG (mulberry32): the same seed always gives the same policy. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BUILTINS = ['modbus', 'dnp3', 'enip', 's7comm', 'opcua', 'bacnet', 'iec104', 'https', 'ssh', 'dns', 'ntp', 'ping'];

export function generatePolicyText(rules: number, seed: number): string {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)];
  const host4 = () => `10.${int(16)}.${int(64)}.${1 + int(250)}`;
  const host6 = () => `2001:db8:${int(16).toString(16)}:${int(64).toString(16)}::${(1 + int(250)).toString(16)}`;
  // Every group and inline literal has IPv4, so any two endpoints share a family.
  const addressLiteral = (v6 = true): string => {
    const x = rnd() * (v6 ? 1 : 0.85);
    if (x < 0.5) return host4();
    if (x < 0.7) return `10.${int(16)}.${int(64)}.${int(8) * 32}/27`;
    if (x < 0.85) {
      const base = `10.${int(16)}.${int(64)}`;
      const lo = 1 + int(200);
      return `${base}.${lo}-${base}.${lo + 1 + int(50)}`;
    }
    if (x < 0.95) return host6();
    return `2001:db8:${int(16).toString(16)}:${int(64).toString(16)}::/64`;
  };

  const groupCount = Math.max(4, Math.round(rules / 8));
  const serviceCount = Math.max(3, Math.min(500, Math.round(rules / 50)));
  const out: string[] = [
    '# Generated policy',
    'version: 1',
    'mode: enforce',
    'default: deny',
    'groups:',
  ];
  const groups: string[] = [];
  for (let g = 0; g < groupCount; g++) {
    const name = `g${g}`;
    const members: string[] = [];
    const size = 1 + int(3);
    members.push(addressLiteral(false));
    for (let i = 1; i < size; i++) {
      // Some groups include earlier ones: nesting without cycles.
      members.push(g > 0 && rnd() < 0.1 ? pick(groups) : addressLiteral());
    }
    groups.push(name);
    out.push(`  ${name}: [${members.map((m) => JSON.stringify(m)).join(', ')}]`);
  }
  out.push('services:');
  const services: string[] = [];
  for (let s = 0; s < serviceCount; s++) {
    const name = `svc${s}`;
    const port = 1024 + int(60000);
    const x = rnd();
    const spec =
      x < 0.5 ? `tcp/${port}` : x < 0.7 ? `udp/${port}` : x < 0.9 ? `tcp/${port}-${port + int(100)}` : `[tcp/${port}, udp/${port}]`;
    services.push(name);
    out.push(`  ${name}: ${spec}`);
  }
  out.push('rules:');
  const endpoint = (): string => {
    const x = rnd();
    if (x < 0.003) return 'any';
    if (x < 0.85) return pick(groups);
    if (x < 0.95) return JSON.stringify(addressLiteral(false));
    return `[${pick(groups)}, ${pick(groups)}]`;
  };
  const service = (): string => {
    const x = rnd();
    if (x < 0.02) return 'any';
    if (x < 0.4) return pick(BUILTINS);
    if (x < 0.9) return pick(services);
    return `tcp/${1 + int(65535)}`;
  };
  for (let r = 0; r < rules; r++) {
    const x = rnd();
    const action = x < 0.85 ? 'allow' : x < 0.95 ? 'deny' : 'reject';
    out.push(`  - name: r${r}`);
    out.push(`    from: ${endpoint()}`);
    out.push(`    to: ${endpoint()}`);
    out.push(`    service: ${service()}`);
    out.push(`    action: ${action}`);
    if (rnd() < 0.2) out.push('    log: true');
  }
  out.push('l2:', '  allow: [lldp]', '');
  return out.join('\n');
}
