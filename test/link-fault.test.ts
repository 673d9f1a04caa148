// Link-fault pass-through with fake ports: a carrier lost on one side takes the other side down, its
// return brings it back, and a port an operator took down is never brought up by us.

import t from 'tap';
import { LinkFaultMirror, type LinkPort } from '../appliance/dataplane/failsafe/link-fault';

function pair(): { ports: [LinkPort & { state: string }, LinkPort & { state: string }]; calls: string[]; mirror: LinkFaultMirror; events: string[] } {
  const ports: [LinkPort & { state: string }, LinkPort & { state: string }] = [
    { name: 'inside0', state: 'up', operState() { return this.state; } },
    { name: 'outside0', state: 'up', operState() { return this.state; } },
  ];
  const calls: string[] = [];
  const events: string[] = [];
  const mirror = new LinkFaultMirror(ports, { mirrored: (lost, m, down) => events.push(`${lost}->${m}:${down ? 'down' : 'up'}`) },
    (name, up) => {
      calls.push(`${name} ${up ? 'up' : 'down'}`);
      const port = ports.find((p) => p.name === name)!;
      port.state = up ? 'up' : 'down';
    });
  return { ports, calls, mirror, events };
}

t.test('a lost carrier is mirrored and released', async (t) => {
  const { ports, calls, mirror, events } = pair();
  mirror.check();
  t.same(calls, [], 'both up: nothing to do');
  ports[0].state = 'lowerlayerdown';
  mirror.check();
  t.same(calls, ['outside0 down'], 'inside lost carrier: outside goes down');
  mirror.check();
  t.same(calls, ['outside0 down'], 'once');
  ports[0].state = 'up';
  mirror.check();
  t.same(calls, ['outside0 down', 'outside0 up'], 'inside back: outside up again');
  t.same(events, ['inside0->outside0:down', 'inside0->outside0:up']);
});

t.test('both ports down, or an operator\'s down, is left alone', async (t) => {
  const { ports, calls, mirror } = pair();
  ports[0].state = 'down';
  ports[1].state = 'down';
  mirror.check();
  t.same(calls, [], 'both down: nothing mirrored');
  ports[0].state = 'up';
  mirror.check();
  t.same(calls, [], 'outside0 down by someone else stays down (we never took it down)');
});

t.test('stop() brings back a port it took down', async (t) => {
  const { ports, calls, mirror } = pair();
  ports[1].state = 'down';
  mirror.check();
  t.same(calls, ['inside0 down']);
  mirror.stop();
  t.same(calls, ['inside0 down', 'inside0 up']);
});
