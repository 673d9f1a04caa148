// The contract of learn mode (management): a learning session per pair, the proposal built from the
// inventory's conversations, and the review that turns accepted parts into a policy text. The routes
// (routes/learn.ts) and the UI's Learn view speak these shapes. No logic here.
//
// API (prefix /api/v1/learn; viewers read, operators change):
//   GET  /learn                 → { pairs: LearnStatus[] } (one per known pair)
//   POST /learn/start  {pair, durationMs, mode}   → LearnStatus   (mode "monitor" puts the pair's policy
//                                                                   in monitor mode for the period and back after)
//   POST /learn/stop   {pair}                     → LearnStatus
//   POST /learn/propose {pair, hours?}             → Proposal      (hours: coverage window, default 24)
//   POST /learn/review  {pair, proposalId, decisions: Decision[]} → ReviewResult
//        The review's text then goes through the existing POST /api/v1/policy/dry-run and apply.

export interface LearnStatus {
  pair: string;
  state: 'idle' | 'learning' | 'done';
  /** How the pair learns: "monitor" (policy in monitor mode meanwhile) or "enforce" (keeps enforcing, observes all). */
  mode: 'monitor' | 'enforce' | null;
  /** Epoch ms; endsAt is when learning stops by itself. */
  startedAt: number | null;
  endsAt: number | null;
  author: string | null;
  /** What has been learned so far (since startedAt). */
  assets: number;
  conversations: number;
}

export interface ProposedGroup {
  /** Stable within a proposal: "g1", "g2", ... */
  id: string;
  /** Group name for the policy (identity-derived: LLDP/DHCP name, vendor, else address based). */
  name: string;
  /** Why this name: "lldp", "dhcp", "modbus", "vendor", "address". */
  namedFrom: string;
  /** Members as policy entries (address, or address@MAC when the MAC is known and stable). */
  members: string[];
  assets: number[];
}

export interface ProposedRule {
  id: string;
  name: string;
  from: string;
  to: string;
  /** Service names as the policy writes them ("modbus", "tcp/8086", "ping"). */
  services: string[];
  /** Modbus: the functions observed (["read"] when only reads, else the exact function names/codes). */
  modbus?: { functions: (string | number)[]; units: number[] };
  flows: number;
  firstSeen: number;
  lastSeen: number;
  description: string;
}

export interface Proposal {
  id: string;
  pair: string;
  createdAt: number;
  groups: ProposedGroup[];
  rules: ProposedRule[];
  /** The policy text of the whole proposal (everything accepted). */
  text: string;
  /** Compile errors of `text` as file:line:col: message; empty when it compiles (added with propose.ts). */
  errors: string[];
  coverage: {
    hours: number;
    /** Conversations seen in the window, and how many the proposal allows. */
    conversations: number;
    allowed: number;
    /** allowed / conversations, 0..1 (1 when there were none). */
    share: number;
    /** What it leaves out, and why (e.g. "denied by the active policy", "no MAC/identity", "broadcast"). */
    leftOut: { client: string; server: string; service: string; reason: string; flows: number;
      /** The reason's name (LEFT_OUT_REASONS in propose.ts), for filters; added with propose.ts. */
      code: string }[];
    /** Entries of leftOut not listed (it lists the LEFT_OUT_MAX with the most flows); added with propose.ts. */
    leftOutOmitted: number;
  };
}

export type Decision =
  | { kind: 'group'; id: string; accept: boolean; rename?: string }
  | { kind: 'rule'; id: string; accept: boolean; rename?: string };

export interface ReviewResult {
  /** The policy text with the accepted groups and rules (merged into the active policy). */
  text: string;
  /** Unified diff of text against the active policy. */
  diff: string;
  /** Problems with the decisions (a rule accepted whose group was rejected: left out and said here). */
  notes: string[];
}
