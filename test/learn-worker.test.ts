// propose and review on the worker thread (appliance/mgmt/learn/learn-worker.ts): the same answer as
// on the caller's thread, with the conversations sent in slices, a review's ReviewError carried back
// as one, and a kept worker starting each job afresh.

import t from 'tap';
import { proposeInBackground, reviewInBackground } from '../appliance/mgmt/learn/learn-worker';
import { propose } from '../appliance/mgmt/learn/propose';
import { ReviewError } from '../appliance/mgmt/learn/review';
import { syntheticInventory } from './lib/fake-inventory';

t.test('the worker answers what propose() answers; jobs do not leak into each other', async (t) => {
  // 12k conversations: three slices of 5000.
  const inv = syntheticInventory(300, 12_000, 7);
  const input = { id: 'w1', pair: 'p1', conversations: inv.conversationList, assets: inv.assetList, activeText: null,
    now: Date.UTC(2026, 11, 2, 12), hours: 24 };
  const here = propose(input);
  const there = await proposeInBackground(input);
  t.same(there, here);
  t.ok(here.rules.length > 0 && here.coverage.conversations > 10_000);
  // The kept worker runs the next job with only that job's conversations.
  const small = { ...input, id: 'w2', conversations: inv.conversationList.slice(0, 10) };
  t.same(await proposeInBackground(small), propose(small));
  const r = await reviewInBackground(here, [], null, 0);
  t.match(r.notes[0], /had no decision and are left out/);
  await t.rejects(reviewInBackground(here, [{ kind: 'rule', id: 'nope', accept: true }], null, 0),
    new ReviewError("decision for rule 'nope': proposal w1 has no such rule"));
  const err = await reviewInBackground(here, [{ kind: 'rule', id: 'nope', accept: true }], null, 0).catch((e: unknown) => e);
  t.ok(err instanceof ReviewError, 'a ReviewError (the service answers 400 for it)');
});
