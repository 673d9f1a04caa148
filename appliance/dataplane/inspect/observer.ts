// Observation without judgement: an application protocol's flows whose rule has no block for it
// (e.g. a learning policy that allows everything, in monitor mode) are parsed to learn what they carry
// (requests per function, a server's device identity), so learn mode can propose a block from the
// traffic. An observer never returns a verdict, never holds or drops a segment and never answers: a
// gap or a lost framing only costs it its counts until a segment starts a message again. Claimed at
// flow start by the server's port; only while the dataplane collects observations. Nothing allocates
// per segment: states are pooled by the observer.

import type { Flow } from '../flow/flow';
import type { IdentityAnswer, Segment } from './inspector';

export interface AppObserver<State = unknown> {
  /** The protocol name ("modbus"), as inspectors and events spell it. */
  readonly protocol: string;
  /** Set by the engine while observations are collected. */
  identityAnswer: IdentityAnswer;
  /** Does this observer take a flow whose server listens on `serverPort`? */
  claims(flow: Flow, serverPort: number): boolean;
  open(flow: Flow): State;
  /** Parse what the segment adds; never a verdict. */
  observe(state: State, segment: Segment): void;
  functionName(code: number): string;
  /** Requests per function code seen on the flow so far. */
  functionCounts(state: State): Uint32Array;
  /** 1 at each unit identifier a request on the flow named. */
  unitsSeen(state: State): Uint8Array;
  close(state: State): void;
}
