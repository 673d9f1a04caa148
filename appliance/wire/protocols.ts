// The wire vocabulary: protocol numbers and the one name table for each (IP protocols, EtherTypes,
// TCP flags). Every layer names protocols through this file, so a protocol is spelled one way in the
// policy language, in events, in logs and in the UI. A leaf: imports nothing from appliance/.

/** Address family of the outermost IP header (0 when the frame carries no IP). */
export const Family = { None: 0, V4: 4, V6: 6 } as const;

/** IP protocol numbers the pipeline treats specially. */
export const Proto = {
  ICMP: 1,
  IPIP: 4,
  TCP: 6,
  UDP: 17,
  IPV6: 41,
  GRE: 47,
  ESP: 50,
  AH: 51,
  ICMPV6: 58,
  SCTP: 132,
  /** IPv6 chain ended in a header we do not walk (or a later fragment): protocol unknown. */
  UNKNOWN: 256,
} as const;

export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QINQ: 0x88a8,
  /** Pre-standard QinQ outer tag, still seen on some switches. */
  QINQ_LEGACY: 0x9100,
  IPV6: 0x86dd,
  LLDP: 0x88cc,
  PPPOE_DISCOVERY: 0x8863,
  PPPOE_SESSION: 0x8864,
  MPLS: 0x8847,
  MPLS_MULTICAST: 0x8848,
} as const;

export const TcpFlag = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 } as const;

/** IP protocols by name, as the policy language and events spell them. */
export const PROTOCOL_NAMES: Readonly<Record<string, number>> = {
  icmp: 1,
  igmp: 2,
  ipip: 4,
  tcp: 6,
  udp: 17,
  ipv6: 41,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  eigrp: 88,
  ospf: 89,
  pim: 103,
  vrrp: 112,
  l2tp: 115,
  sctp: 132,
};

/** Spelling of a protocol number without a name: `proto/47`. */
export const PROTOCOL_NUMBER_PREFIX = 'proto/';

const protocolByNumber: readonly string[] = (() => {
  const names: string[] = [];
  for (let n = 0; n <= 255; n++) names.push(`${PROTOCOL_NUMBER_PREFIX}${n}`);
  for (const [name, n] of Object.entries(PROTOCOL_NAMES)) names[n] = name;
  return names;
})();

/** "tcp", "gre", ... or "proto/N" for a number without a name. */
export function protocolName(proto: number): string {
  return protocolByNumber[proto] ?? `${PROTOCOL_NUMBER_PREFIX}${proto}`;
}

/** The number of a protocol as protocolName() spells it ("tcp", "proto/47"), or null. */
export function protocolNumber(text: string): number | null {
  if (Object.hasOwn(PROTOCOL_NAMES, text)) return PROTOCOL_NAMES[text];
  if (!text.startsWith(PROTOCOL_NUMBER_PREFIX)) return null;
  const digits = text.slice(PROTOCOL_NUMBER_PREFIX.length);
  if (!/^\d{1,3}$/.test(digits)) return null;
  const n = Number(digits);
  return n <= 255 ? n : null;
}

/** EtherTypes by name, for `l2.allow` and for people. */
export const ETHERTYPE_NAMES: Readonly<Record<string, number>> = {
  ipv4: 0x0800,
  arp: 0x0806,
  wol: 0x0842,
  ipv6: 0x86dd,
  lacp: 0x8809,
  mpls: 0x8847,
  'pppoe-discovery': 0x8863,
  pppoe: 0x8864,
  eapol: 0x888e,
  profinet: 0x8892,
  ethercat: 0x88a4,
  powerlink: 0x88ab,
  goose: 0x88b8,
  gse: 0x88b9,
  sv: 0x88ba,
  lldp: 0x88cc,
  macsec: 0x88e5,
  mrp: 0x88e3,
  ptp: 0x88f7,
  prp: 0x88fb,
  hsr: 0x892f,
};
