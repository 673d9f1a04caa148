// What every route plugin finds on its fastify instance: the state, the sessions, the dataplane
// hub, the event sink, management's metrics, the asset inventory, and the services (policy, users, recorder, learn mode, setup
// token), as fastify decorators typed by declaration merging. Decorated once on the root instance
// by buildServer, so every encapsulated plugin sees them. No logic here.

import type { FastifyInstance } from 'fastify';
import type { LoginThrottle } from './auth/lockout';
import type { SessionStore } from './auth/sessions';
import type { SetupToken } from './auth/setup-token';
import type { DataplaneHub } from './dataplanes/types';
import type { EventLog } from './events-log';
import type { LearnService } from './learn/learn-service';
import type { Inventory } from './inventory/types';
import type { MgmtMetrics } from './metrics';
import type { PolicyService } from './services/policy';
import type { Recorder } from './services/recorder';
import type { UserService } from './services/users';
import type { EventSink } from './siem/types';
import type { StateStore } from './state/store';

declare module 'fastify' {
  interface FastifyInstance {
    store: StateStore;
    sessions: SessionStore;
    throttle: LoginThrottle;
    eventLog: EventLog;
    hub: DataplaneHub;
    sink: EventSink;
    metrics: MgmtMetrics;
    recorder: Recorder;
    policies: PolicyService;
    users: UserService;
    setup: SetupToken;
    inventory: Inventory;
    /** Learn mode (learn/learn-service.ts). */
    learn: LearnService;
    runtime: {
      /** Package version. */
      version: string;
      startedAt: number;
      /** Cookies carry Secure (false only in plain-HTTP lab mode). */
      secureCookies: boolean;
    };
  }
}

export type MgmtDecorators = Pick<FastifyInstance,
  'store' | 'sessions' | 'throttle' | 'eventLog' | 'hub' | 'sink' | 'metrics' | 'recorder' | 'policies' | 'users' | 'setup' | 'inventory' | 'learn' | 'runtime'>;

export function decorate(app: FastifyInstance, parts: MgmtDecorators): void {
  // One call per name keeps each decorator's type (a loop would widen them to a union).
  app.decorate('store', parts.store);
  app.decorate('sessions', parts.sessions);
  app.decorate('throttle', parts.throttle);
  app.decorate('eventLog', parts.eventLog);
  app.decorate('hub', parts.hub);
  app.decorate('sink', parts.sink);
  app.decorate('metrics', parts.metrics);
  app.decorate('recorder', parts.recorder);
  app.decorate('policies', parts.policies);
  app.decorate('users', parts.users);
  app.decorate('setup', parts.setup);
  app.decorate('inventory', parts.inventory);
  app.decorate('learn', parts.learn);
  app.decorate('runtime', parts.runtime);
}
