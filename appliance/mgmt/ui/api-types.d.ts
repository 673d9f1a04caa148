// The management API's answers as the web UI sees them: derived from the server's response schemas
// (appliance/mgmt/schemas.ts, Infer), so a schema change shows up where the UI uses it, when
// `npm run typecheck` checks the UI (tsconfig.ui.json). Types only: the browser never loads this.
// Results maps each method and path (`${string}` stands for names, versions and query strings) to
// its answer; app.js's api() is typed by it.

import type { GatekeeperEvent } from '../../ipc/events';
import type * as s from '../schemas';
import type { Infer } from '../schemas';
import type * as inv from '../inventory/types';
import type * as learn from '../learn/types';

export type Meta = Infer<typeof s.metaResponse>;
export type Role = Meta['roles'][number]['name'];
export type SessionInfo = Infer<typeof s.sessionResponse>;
export type User = SessionInfo['user'];
export type Status = Infer<typeof s.statusResponse>;
export type PairStatus = Status['pairs'][number];
export type History = Infer<typeof s.historyResponse>;
export type HistoryPoint = History['points'][number];
export type DeniedTop = Infer<typeof s.deniedTopResponse>;
export type DeniedEntry = DeniedTop['entries'][number];
export type ViolationsTop = Infer<typeof s.violationsTopResponse>;
export type ViolationEntry = ViolationsTop['entries'][number];
export type Flows = Infer<typeof s.flowsResponse>;
export type FlowRecord = Flows['flows'][number];
export type ActivePolicy = Infer<typeof s.policyResponse>;
export type Validation = Infer<typeof s.validateResponse>;
export type Problem = Validation['errors'][number];
export type PolicyDiff = Infer<typeof s.diffResponse>;
export type DryRun = Infer<typeof s.dryRunResponse>;
export type Applied = Infer<typeof s.applyResponse>;
export type PolicyHistory = Infer<typeof s.historyListResponse>;
export type PolicyVersion = Infer<typeof s.versionResponse>;
/** The schema lets any event object through; the events are GatekeeperEvents (docs/siem.md). */
export type Events = { events: GatekeeperEvent[] };
export type Event = GatekeeperEvent;
export type Audit = Infer<typeof s.auditResponse>;
export type AuditEntry = Audit['entries'][number];
export type Users = Infer<typeof s.usersResponse>;
export type UserInfo = Users['users'][number];
export type UserAnswer = Infer<typeof s.userResponse>;
export type Settings = Infer<typeof s.settingsResponse>;
export type SyslogTargetOut = Infer<typeof s.syslogTargetOut>;
export type SyslogTargetIn = Infer<typeof s.syslogTargetIn>;
export type Syslog = Infer<typeof s.syslogResponse>;
export type SyslogTest = Infer<typeof s.syslogTestResponse>;
export type SyslogStatus = Infer<typeof s.syslogStatusResponse>;
export type SessionSettings = Infer<typeof s.sessionSettingsResponse>;
export type SetupNeeded = Infer<typeof s.setupNeededResponse>;

// The asset inventory and learn mode: taken from their contracts (inventory/types.ts, learn/types.ts)
// until their routes have response schemas. The envelopes below are ASSUMED (the routes are being
// built); inventory-api.js is the one place that unwraps them.
export type Asset = inv.Asset;
export type Conversation = inv.Conversation;
export type LearnStatus = learn.LearnStatus;
export type Proposal = learn.Proposal;
export type Decision = learn.Decision;
export type ReviewResult = learn.ReviewResult;
export type AssetList = { assets: Asset[] };
export type AssetDetail = { asset: Asset; conversations: Conversation[] };
export type ConversationList = { conversations: Conversation[] };
export type LearnList = { pairs: LearnStatus[] };

type Route =
  | ['GET', '/meta', Meta]
  | ['POST', '/auth/login', SessionInfo]
  | ['POST', '/auth/logout', null]
  | ['GET', '/auth/session', SessionInfo]
  | ['GET', '/auth/setup', SetupNeeded]
  | ['POST', '/auth/setup', SessionInfo]
  | ['POST', '/auth/password', null]
  | ['GET', '/status', Status]
  | ['GET', `/status/history?${string}`, History]
  | ['GET', `/denied/top?${string}`, DeniedTop]
  | ['GET', `/violations/top?${string}`, ViolationsTop]
  | ['GET', `/flows?${string}`, Flows]
  | ['GET', '/policy', ActivePolicy]
  | ['POST', '/policy/validate', Validation]
  | ['POST', '/policy/diff', PolicyDiff]
  | ['POST', '/policy/dry-run', DryRun]
  | ['POST', '/policy/apply', Applied]
  | ['POST', '/policy/rollback', Applied]
  | ['GET', '/policy/history', PolicyHistory]
  | ['GET', `/policy/history/${string}`, PolicyVersion]
  | ['GET', `/events?${string}`, Events]
  | ['GET', `/audit?${string}`, Audit]
  | ['GET', '/users', Users]
  | ['POST', '/users', UserAnswer]
  | ['PATCH', `/users/${string}`, UserAnswer]
  | ['DELETE', `/users/${string}`, null]
  | ['GET', '/settings', Settings]
  | ['PUT', '/settings/syslog', Syslog]
  | ['POST', '/settings/syslog/test', SyslogTest]
  | ['GET', '/settings/syslog/status', SyslogStatus]
  | ['PUT', '/settings/metrics-token', null]
  | ['PUT', '/settings/session', SessionSettings]
  | ['GET', `/assets?${string}`, AssetList]
  | ['GET', `/assets/${number}`, AssetDetail]
  | ['GET', `/conversations?${string}`, ConversationList]
  | ['GET', '/learn', LearnList]
  | ['POST', '/learn/start', LearnStatus]
  | ['POST', '/learn/stop', LearnStatus]
  | ['POST', '/learn/propose', Proposal]
  | ['POST', '/learn/review', ReviewResult];

export type ApiMethod = Route[0];
/** The paths a method may be called with. */
export type ApiPath<M extends ApiMethod> = Extract<Route, [M, string, unknown]>[1];
type Answer<R, M, P> = R extends [M, infer Pattern, infer Result] ? (P extends Pattern ? Result : never) : never;
/** What `method path` answers. */
export type ApiResult<M extends ApiMethod, P extends string> = Answer<Route, M, P>;
