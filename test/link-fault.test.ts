// Link-fault pass-through with fake ports: a carrier lost on one side takes the other side down, its
// return brings it back, and a port an operator took down is never brought up by us.

import t from 'tap';
import { LinkFaultMirror, type LinkPort } from '../appliance/dataplane/failsafe/link-fault';

/** A fake port: administratively up or not (`admin`), with or without carrier (`carrier`). */
type FakePort = LinkPort & { admin: boolean; carrier: boolean };

function fake(name: string): FakePort {
  return { name, admin: true, carrier: true, carrierLost() { return this.admin && !this.carrier; } };
}

function pair(): { ports: [FakePort, FakePort]; calls: string[]; mirror: LinkFaultMirror; events: string[] } {
  const ports: [FakePort, FakePort] = [fake('inside0'), fake('outside0')];
  const calls: string[] = [];
  const events: string[] = [];
  const mirror = new LinkFaultMirror(ports, { mirrored: (lost, m, down) => events.push(`${lost}->${m}:${down ? 'down' : 'up'}`) },
    (name, up) => {
      calls.push(`${name} ${up ? 'up' : 'down'}`);
      ports.find((p) => p.name === name)!.admin = up;
    });
  return { ports, calls, mirror, events };
}

t.test('a lost carrier is mirrored and released', async (t) => {
  const { ports, calls, mirror, events } = pair();
  mirror.check();
  t.same(calls, [], 'both up: nothing to do');
  ports[0].carrier = false;
  mirror.check();
  t.same(calls, ['outside0 down'], 'inside lost carrier: outside goes down');
  mirror.check();
  t.same(calls, ['outside0 down'], 'once');
  ports[0].carrier = true;
  mirror.check();
  t.same(calls, ['outside0 down', 'outside0 up'], 'inside back: outside up again');
  t.same(events, ['inside0->outside0:down', 'inside0->outside0:up']);
});

t.test('both ports down, or an operator\'s down, is left alone', async (t) => {
  const { ports, calls, mirror } = pair();
  ports[0].carrier = false;
  ports[1].carrier = false;
  mirror.check();
  t.same(calls, [], 'both without carrier: nothing mirrored');
  ports[0].carrier = true;
  ports[1].carrier = true;
  ports[1].admin = false;
  mirror.check();
  t.same(calls, [], 'an operator took outside0 down: not a carrier loss, nothing mirrored');
  ports[1].admin = true;
  mirror.check();
  t.same(calls, [], 'and we never bring up what we did not take down');
});

t.test('stop() brings back a port it took down', async (t) => {
  const { ports, calls, mirror } = pair();
  ports[1].carrier = false;
  mirror.check();
  t.same(calls, ['inside0 down']);
  mirror.stop();
  t.same(calls, ['inside0 down', 'inside0 up']);
});
