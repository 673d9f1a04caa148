// The ot.violation summary on real flow records: one entry per client, server, rule, function, unit,
// reason and action however many client ports and messages, with the address range they touched;
// IPv6 kept apart; bounded, the rest counted as overflow; a drain starts over.

import t from 'tap';
import { Engine } from '../appliance/dataplane/engine';
import { ViolationSummary, type Violation } from '../appliance/dataplane/events/violation-summary';
import type { Flow } from '../appliance/dataplane/flow/flow';
import { Side } from '../appliance/dataplane/verdict';
import { loadPolicyText } from '../appliance/policy/load';
import { frame, type FrameSpec } from './lib/frames';

const loaded = loadPolicyText(`version: 1
default: deny
rules:
  - name: hmi-reads-plc
    from: [198.18.1.10, "2001:2:0:1::10"]
    to: [198.18.1.100, "2001:2:0:1::100"]
    service: modbus
    action: allow
`, 'summary.yaml');
if (!loaded.ok) throw new Error('test policy refused');
const engine = new Engine(loaded.policy, 1);

/** The flow record a SYN from `src`:`sport` to `dst`:502 starts. */
function flowOf(src: string, dst: string, sport: number): Flow {
  const f = frame({ src, dst, proto: 'tcp', sport, dport: 502, flags: 'S' } as FrameSpec);
  engine.process(f, f.length, Side.Outside, 1000);
  return [...engine.flows.flows()].find((x) => (x.initiatorIsA ? x.portA : x.portB) === sport) as Flow;
}

const write = (start: number): Violation => ({
  protocol: 'modbus', reason: 'function_not_allowed', function: 6, functionName: 'write-single-register', unit: 1, start, quantity: 1, action: 'reset',
});

t.test('one entry per key, client ports summed, the address range widened', async (t) => {
  const s = new ViolationSummary();
  s.record(flowOf('198.18.1.10', '198.18.1.100', 40001), write(40), 1000);
  s.record(flowOf('198.18.1.10', '198.18.1.100', 40002), write(38), 2000);
  s.record(flowOf('198.18.1.10', '198.18.1.100', 40003), { ...write(0), reason: 'address_not_allowed' }, 3000);
  s.record(flowOf('2001:2:0:1::10', '2001:2:0:1::100', 40004), write(7), 4000);
  const [first, other, v6] = s.drain();
  t.match(first, { rule: 0, reason: 'function_not_allowed', function: 6, functionName: 'write-single-register', unit: 1,
    addressFirst: 38, addressLast: 40, action: 'reset', count: 2, firstSeen: 1000, lastSeen: 2000 });
  t.match(first.ends, { family: 4, srcPort: 0, dstPort: 502, src6: null });
  t.equal(first.ends.src4, 0xc612010a, 'the client');
  t.equal(first.ends.dst4, 0xc6120164, 'the server');
  t.match(other, { reason: 'address_not_allowed', count: 1 }, 'another reason is another entry');
  t.same(Array.from(v6.ends.dst6 ?? []), [0x20010002, 0x00000001, 0, 0x100], 'IPv6 kept apart');
  t.same(s.drain(), [], 'a drain starts over');
});

t.test('bounded: beyond the capacity violations are only counted', async (t) => {
  const s = new ViolationSummary(2);
  const flow = flowOf('198.18.1.10', '198.18.1.100', 40010);
  for (const unit of [1, 2, 3, 4]) s.record(flow, { ...write(1), unit }, 1000);
  t.equal(s.size, 2);
  t.equal(s.overflow, 2);
  t.same(s.drain().map((e) => e.unit), [1, 2]);
});
