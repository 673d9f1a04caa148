// Idle timeouts of tracked flows and fragments, as lru-cache option objects made once per policy
// (lru-cache's methods would otherwise default to a fresh `{}` per call). Made when a policy is
// installed; must not be built on the packet path.

import type { CompiledPolicy } from '../../policy/types';
import { TcpState } from './flow';

/** A reused lru-cache option object. */
export interface TtlOption {
  ttl: number;
}

export class FlowTimeouts {
  readonly tcpOpening: TtlOption;
  readonly tcpEstablished: TtlOption;
  readonly tcpClosing: TtlOption;
  readonly udp: TtlOption;
  readonly icmp: TtlOption;
  readonly other: TtlOption;
  readonly fragment: TtlOption;

  constructor(policy: CompiledPolicy) {
    const f = policy.flow;
    this.tcpOpening = { ttl: f.tcpOpeningIdleMs };
    this.tcpEstablished = { ttl: f.tcpEstablishedIdleMs };
    this.tcpClosing = { ttl: f.tcpClosingIdleMs };
    this.udp = { ttl: f.udpIdleMs };
    this.icmp = { ttl: f.icmpIdleMs };
    this.other = { ttl: f.otherIdleMs };
    this.fragment = { ttl: f.fragmentTimeoutMs };
  }

  /** The idle timeout of a TCP flow in `state`. */
  tcp(state: number): TtlOption {
    if (state === TcpState.Established) return this.tcpEstablished;
    if (state === TcpState.Closing) return this.tcpClosing;
    return this.tcpOpening;
  }
}
