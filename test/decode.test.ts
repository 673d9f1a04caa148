// Unit tests for the frame decoder: hand-built frames for every protocol and every DecodeError,
// plus truncation and random-input sweeps proving the decoder never throws.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { decodeFrame } from '../appliance/dataplane/decode/decoder';
import { DecodeError, decodeErrorNames } from '../appliance/dataplane/decode/errors';
import { Packet } from '../appliance/dataplane/decode/packet';
import { EtherType, Family, Proto, TcpFlag } from '../appliance/wire/protocols';
import { formatTuple, pcapTuples } from '../appliance/dataplane/offline/tuples';
import { formatIpv6 } from '../appliance/wire/address-text';

// ---------------------------------------------------------------- frame builders

type Bytes = number[];

const u16 = (v: number): Bytes => [(v >>> 8) & 0xff, v & 0xff];
const u32 = (v: number): Bytes => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const ip4 = (s: string): Bytes => s.split('.').map(Number);
const ip4Number = (s: string): number => ip4(s).reduce((a, b) => a * 256 + b, 0);

/** Expands an IPv6 text address (with at most one ::) to 16 bytes. */
function ip6(s: string): Bytes {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.flatMap((g) => u16(parseInt(g, 16)));
}

const MAC = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];

function eth(type: number, payload: Bytes, tags: Array<[number, number]> = []): Uint8Array {
  const tagBytes = tags.flatMap(([tpid, vid]) => [...u16(tpid), ...u16(vid)]);
  return Uint8Array.from([...MAC, ...tagBytes, ...u16(type), ...payload]);
}

interface V4 {
  proto: number;
  payload?: Bytes;
  src?: string;
  dst?: string;
  ttl?: number;
  options?: Bytes;
  flagsOffset?: number;
  id?: number;
  version?: number;
  ihl?: number;
  totalLength?: number;
}

function ipv4Packet(o: V4): Bytes {
  const options = o.options ?? [];
  const payload = o.payload ?? [];
  const ihl = o.ihl ?? 5 + options.length / 4;
  const total = o.totalLength ?? 20 + options.length + payload.length;
  return [
    ((o.version ?? 4) << 4) | ihl, 0, ...u16(total), ...u16(o.id ?? 0x1234), ...u16(o.flagsOffset ?? 0),
    o.ttl ?? 64, o.proto, 0, 0, ...ip4(o.src ?? '10.0.0.1'), ...ip4(o.dst ?? '10.0.0.2'),
    ...options, ...payload,
  ];
}

const ipv4 = (o: V4): Uint8Array => eth(EtherType.IPV4, ipv4Packet(o));

interface V6 {
  next: number;
  payload?: Bytes;
  src?: string;
  dst?: string;
  hopLimit?: number;
  payloadLength?: number;
  version?: number;
}

function ipv6Packet(o: V6): Bytes {
  const payload = o.payload ?? [];
  return [
    (o.version ?? 6) << 4, 0, 0, 0, ...u16(o.payloadLength ?? payload.length), o.next, o.hopLimit ?? 64,
    ...ip6(o.src ?? '2001:db8::1'), ...ip6(o.dst ?? '2001:db8::2'), ...payload,
  ];
}

const ipv6 = (o: V6): Uint8Array => eth(EtherType.IPV6, ipv6Packet(o));

/** An 8-byte-unit extension header (hop-by-hop, routing, destination options) of `units` extra units. */
const ext = (next: number, units = 0): Bytes => [next, units, ...Array(6 + units * 8).fill(0)];
const fragmentHeader = (next: number, offsetBytes: number, more: boolean, id: number): Bytes => [
  next, 0, ...u16(offsetBytes | (more ? 1 : 0)), ...u32(id),
];
/** AH: length field counts 4-byte units minus 2; 12 fixed bytes + 12 bytes of ICV. */
const ah = (next: number): Bytes => [next, 4, 0, 0, ...u32(0x100), ...u32(1), ...Array(12).fill(0)];

function tcp(sport: number, dport: number, flags: number, payload: Bytes = [], o: { seq?: number; ack?: number; dataOffset?: number } = {}): Bytes {
  const dataOffset = o.dataOffset ?? 5;
  const options = Array(Math.max(0, dataOffset - 5) * 4).fill(1);
  return [
    ...u16(sport), ...u16(dport), ...u32(o.seq ?? 1000), ...u32(o.ack ?? 0), dataOffset << 4, flags,
    ...u16(65535), 0, 0, 0, 0, ...options, ...payload,
  ];
}

const udp = (sport: number, dport: number, payload: Bytes = [], length?: number): Bytes => [
  ...u16(sport), ...u16(dport), ...u16(length ?? 8 + payload.length), 0, 0, ...payload,
];
const sctp = (sport: number, dport: number, payload: Bytes = []): Bytes => [
  ...u16(sport), ...u16(dport), ...u32(0xdeadbeef), 0, 0, 0, 0, ...payload,
];
const icmp = (type: number, code: number, rest: Bytes = [0, 0, 0, 0], body: Bytes = []): Bytes => [type, code, 0, 0, ...rest, ...body];

function arp(op: number, sender: string, target: string): Bytes {
  return [0, 1, 8, 0, 6, 4, ...u16(op), ...MAC.slice(0, 6), ...ip4(sender), 0, 0, 0, 0, 0, 0, ...ip4(target)];
}

// ---------------------------------------------------------------- helpers

const pkt = new Packet();
const reached = new Set<number>();

function decode(frame: Uint8Array, length = frame.length): number {
  const error = decodeFrame(frame, length, pkt);
  reached.add(error);
  return error;
}

function expectError(tt: tap.Test, frame: Uint8Array, code: number, what: string): void {
  const error = decode(frame);
  tt.equal(decodeErrorNames[error], decodeErrorNames[code], what);
  tt.equal(pkt.error, error, 'pkt.error mirrors the return value');
}

const words = (s: string): number[] => {
  const b = ip6(s);
  return [0, 4, 8, 12].map((i) => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0);
};

// ---------------------------------------------------------------- error table

t.test('decodeErrorNames matches DecodeError, kebab-case, one per code', async (t) => {
  const entries = Object.entries(DecodeError);
  t.equal(decodeErrorNames.length, entries.length);
  for (const [key, code] of entries) {
    const kebab = key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
    t.equal(decodeErrorNames[code], kebab, `${key} = ${code}`);
  }
  t.equal(DecodeError.None, 0);
});

// ---------------------------------------------------------------- link layer

t.test('ethernet and VLAN tags', async (t) => {
  t.equal(decode(eth(EtherType.LLDP, Array(40).fill(0))), 0, 'non-IP frame decodes cleanly');
  t.equal(pkt.family, Family.None);
  t.equal(pkt.etherType, EtherType.LLDP);
  t.equal(pkt.l3Offset, 14);
  t.equal(pkt.vlanCount, 0);

  t.equal(decode(ipv4({ proto: Proto.UDP, payload: udp(1, 2) }).slice(0)), 0);
  const one = eth(EtherType.IPV4, ipv4Packet({ proto: Proto.UDP, payload: udp(1000, 53) }), [[EtherType.VLAN, 0x2064]]);
  t.equal(decode(one), 0, 'single 802.1Q tag');
  t.same([pkt.vlanCount, pkt.vlanOuter, pkt.vlanInner, pkt.l3Offset], [1, 100, 0, 18], 'VID masks off PCP/DEI');
  t.same([pkt.family, pkt.srcPort, pkt.dstPort], [4, 1000, 53]);

  const two = eth(EtherType.IPV6, ipv6Packet({ next: Proto.UDP, payload: udp(5, 6) }), [[EtherType.QINQ, 10], [EtherType.VLAN, 20]]);
  t.equal(decode(two), 0, '802.1ad + 802.1Q');
  t.same([pkt.vlanCount, pkt.vlanOuter, pkt.vlanInner, pkt.etherType, pkt.l3Offset], [2, 10, 20, EtherType.IPV6, 22]);

  const legacy = eth(EtherType.ARP, arp(1, '1.1.1.1', '2.2.2.2'), [[EtherType.QINQ_LEGACY, 7]]);
  t.equal(decode(legacy), 0, '0x9100 outer tag');
  t.equal(pkt.vlanOuter, 7);

  expectError(t, eth(EtherType.IPV4, [], [[0x8100, 1], [0x8100, 2], [0x8100, 3]]), DecodeError.TooManyVlanTags, 'three tags');
  expectError(t, Uint8Array.from([...MAC, 0x81, 0x00, 0, 1]), DecodeError.VlanTruncated, 'tag cut short');
  expectError(t, Uint8Array.from(MAC), DecodeError.EthernetTruncated, 'no EtherType');
  expectError(t, new Uint8Array(0), DecodeError.EthernetTruncated, 'empty frame');
});

t.test('ARP', async (t) => {
  t.equal(decode(eth(EtherType.ARP, arp(2, '192.168.1.1', '192.168.1.20'))), 0);
  t.equal(pkt.arpOp, 2);
  t.equal(pkt.arpSenderIp, ip4Number('192.168.1.1'));
  t.equal(pkt.arpTargetIp, ip4Number('192.168.1.20'));
  t.equal(pkt.family, Family.None);
  t.equal(pkt.arpSenderMac, MAC.slice(0, 6).reduce((n, b) => n * 256 + b, 0), 'the sender MAC as a 48-bit number');
  t.ok(pkt.arpSenderMac > 0, 'read from the frame');

  const other = arp(1, '1.1.1.1', '2.2.2.2');
  other[1] = 6; // IEEE 802 hardware type: not IPv4 over Ethernet
  t.equal(decode(eth(EtherType.ARP, other)), 0, 'other hardware types decode cleanly');
  t.equal(pkt.arpOp, 0, 'but fill no addresses');

  expectError(t, eth(EtherType.ARP, arp(1, '1.1.1.1', '2.2.2.2').slice(0, 20)), DecodeError.ArpTruncated, 'addresses cut short');
  expectError(t, eth(EtherType.ARP, [0, 1, 8]), DecodeError.ArpTruncated, 'fixed part cut short');
});

// ---------------------------------------------------------------- IPv4

t.test('IPv4 + TCP fields', async (t) => {
  const frame = ipv4({
    proto: Proto.TCP, src: '192.0.2.10', dst: '198.51.100.5', ttl: 17, id: 0xbeef,
    payload: tcp(43210, 443, TcpFlag.SYN | TcpFlag.ACK, [1, 2, 3], { seq: 0xfffffff0, ack: 0x80000001, dataOffset: 6 }),
  });
  const padded = Uint8Array.from([...frame, 0, 0, 0, 0]);
  t.equal(decode(padded), 0, 'Ethernet padding after the IP packet is fine');
  t.equal(pkt.family, Family.V4);
  t.equal(pkt.src4, ip4Number('192.0.2.10'));
  t.equal(pkt.dst4, ip4Number('198.51.100.5'));
  t.same([pkt.proto, pkt.ttl, pkt.l3HeaderLength, pkt.l3TotalLength, pkt.l4Offset], [6, 17, 20, 20 + 24 + 3, 34]);
  t.same([pkt.isFragment, pkt.fragId], [false, 0xbeef]);
  t.same([pkt.hasPorts, pkt.srcPort, pkt.dstPort], [true, 43210, 443]);
  t.equal(pkt.tcpFlags, TcpFlag.SYN | TcpFlag.ACK);
  t.equal(pkt.tcpSeq, 0xfffffff0, 'sequence number is unsigned');
  t.equal(pkt.tcpAck, 0x80000001);
  t.equal(pkt.l4PayloadLength, 3, 'padding is not payload');
  t.equal(pkt.icmpType, -1);
  t.equal(formatTuple(7, pkt), '7\t4\t192.0.2.10\t198.51.100.5\t6\t43210\t443\t-');
});

t.test('IPv4 header errors', async (t) => {
  const good = { proto: Proto.UDP, payload: udp(1, 2) };
  expectError(t, ipv4(good).slice(0, 14 + 19), DecodeError.Ipv4Truncated, 'fixed header cut short');
  expectError(t, ipv4({ ...good, version: 6 }), DecodeError.Ipv4BadVersion, 'version 6 under EtherType IPv4');
  expectError(t, ipv4({ ...good, ihl: 4 }), DecodeError.Ipv4BadHeaderLength, 'IHL 4');
  expectError(t, ipv4({ ...good, ihl: 15 }), DecodeError.Ipv4Truncated, 'IHL past the captured bytes');
  expectError(t, ipv4({ ...good, totalLength: 19 }), DecodeError.Ipv4BadTotalLength, 'total length below the header');
  expectError(t, ipv4({ ...good, totalLength: 200 }), DecodeError.Ipv4Truncated, 'total length past the captured bytes');
});

t.test('IPv4 options', async (t) => {
  const withOptions = (options: Bytes) => ipv4({ proto: Proto.UDP, options, payload: udp(1, 2) });
  t.equal(decode(withOptions([1, 1, 1, 0])), 0, 'NOPs and EOL');
  t.equal(decode(withOptions([7, 7, 4, 1, 2, 3, 4, 0])), 0, 'record route');
  t.equal(pkt.l3HeaderLength, 28);
  t.equal(decode(withOptions([148, 4, 0, 0])), 0, 'router alert');
  t.equal(decode(withOptions([0, 0xff, 0xff, 0xff])), 0, 'bytes after EOL are padding');
  expectError(t, withOptions([1, 1, 1, 0x83]), DecodeError.Ipv4BadOptions, 'option type without room for a length');
  expectError(t, withOptions([0x44, 12, 5, 0]), DecodeError.Ipv4BadOptions, 'length runs past the header');
  expectError(t, withOptions([0x99, 1, 0, 0]), DecodeError.Ipv4BadOptions, 'length below 2');
  expectError(t, withOptions([0x82, 2, 0, 0]), DecodeError.Ipv4BadOptions, 'security option shorter than its layout');
});

t.test('IPv4 fragments', async (t) => {
  const MF = 0x2000;
  const first = ipv4({ proto: Proto.TCP, flagsOffset: MF, id: 77, payload: tcp(1234, 80, TcpFlag.SYN) });
  t.equal(decode(first), 0, 'first fragment carrying the whole TCP header');
  t.same([pkt.isFragment, pkt.fragOffset, pkt.moreFragments, pkt.fragId], [true, 0, true, 77]);
  t.same([pkt.hasPorts, pkt.srcPort, pkt.dstPort], [true, 1234, 80], 'ports kept for the policy');
  t.equal(formatTuple(1, pkt), '1\t4\t10.0.0.1\t10.0.0.2\t6\t-\t-\tfrag', 'but not printed');

  const later = ipv4({ proto: Proto.TCP, flagsOffset: 3, payload: Array(16).fill(0xaa) });
  t.equal(decode(later), 0, 'later fragment');
  t.same([pkt.isFragment, pkt.fragOffset, pkt.moreFragments, pkt.hasPorts, pkt.proto], [true, 24, false, false, 6]);

  const udpFirst = ipv4({ proto: Proto.UDP, flagsOffset: MF, payload: udp(53, 5353, [1, 2, 3, 4], 1000) });
  t.equal(decode(udpFirst), 0, 'UDP length may cover later fragments');
  t.same([pkt.srcPort, pkt.l4PayloadLength], [53, 4]);

  expectError(t, ipv4({ proto: Proto.TCP, flagsOffset: MF, payload: tcp(1, 2, 2).slice(0, 8) }), DecodeError.FragmentTooSmall, 'tiny TCP first fragment');
  expectError(t, ipv4({ proto: Proto.TCP, flagsOffset: MF, payload: tcp(1, 2, 2, [], { dataOffset: 8 }).slice(0, 24) }), DecodeError.FragmentTooSmall, 'TCP options split off');
  expectError(t, ipv4({ proto: Proto.UDP, flagsOffset: MF, payload: [0, 1, 0, 2] }), DecodeError.FragmentTooSmall, 'tiny UDP first fragment');
});

// ---------------------------------------------------------------- transports

t.test('TCP errors', async (t) => {
  expectError(t, ipv4({ proto: Proto.TCP, payload: tcp(1, 2, 2).slice(0, 19) }), DecodeError.TcpTruncated, '19 bytes of TCP');
  expectError(t, ipv4({ proto: Proto.TCP, payload: tcp(1, 2, 2, [], { dataOffset: 4 }) }), DecodeError.TcpBadHeaderLength, 'data offset 4');
  expectError(t, ipv4({ proto: Proto.TCP, payload: tcp(1, 2, 2, [], { dataOffset: 6 }).slice(0, 20) }), DecodeError.TcpBadHeaderLength, 'data offset past the segment');
});

t.test('UDP', async (t) => {
  t.equal(decode(ipv4({ proto: Proto.UDP, payload: udp(33112, 53, [9, 9]) })), 0);
  t.same([pkt.hasPorts, pkt.srcPort, pkt.dstPort, pkt.l4PayloadLength], [true, 33112, 53, 2]);
  t.equal(decode(ipv4({ proto: Proto.UDP, payload: udp(1, 2, [9, 9], 8) })), 0, 'trailing bytes past the UDP length');
  expectError(t, ipv4({ proto: Proto.UDP, payload: udp(1, 2).slice(0, 4) }), DecodeError.UdpTruncated, '4 bytes of UDP');
  expectError(t, ipv4({ proto: Proto.UDP, payload: udp(1, 2, [], 7) }), DecodeError.UdpBadLength, 'UDP length 7');
  expectError(t, ipv4({ proto: Proto.UDP, payload: udp(1, 2, [1], 20) }), DecodeError.UdpBadLength, 'UDP length past the packet');
});

t.test('SCTP', async (t) => {
  t.equal(decode(ipv4({ proto: Proto.SCTP, payload: sctp(7, 9, [0, 0, 0, 4]) })), 0);
  t.same([pkt.proto, pkt.hasPorts, pkt.srcPort, pkt.dstPort, pkt.l4PayloadLength], [132, true, 7, 9, 4]);
  expectError(t, ipv4({ proto: Proto.SCTP, payload: sctp(7, 9).slice(0, 11) }), DecodeError.SctpTruncated, '11 bytes of SCTP');
});

t.test('ICMP', async (t) => {
  t.equal(decode(ipv4({ proto: Proto.ICMP, payload: icmp(8, 0, [...u16(0xface), 0, 1], [1, 2, 3]) })), 0);
  t.same([pkt.icmpType, pkt.icmpCode, pkt.icmpId, pkt.hasPorts, pkt.quoted.valid], [8, 0, 0xface, false, false]);
  t.equal(formatTuple(3, pkt), '3\t4\t10.0.0.1\t10.0.0.2\t1\t-\t-\t-');

  const quotedTcp = ipv4Packet({ proto: Proto.TCP, src: '10.0.0.2', dst: '8.8.8.8', payload: tcp(40000, 443, 2).slice(0, 8) });
  t.equal(decode(ipv4({ proto: Proto.ICMP, payload: icmp(3, 3, [0, 0, 0, 0], quotedTcp) })), 0, 'port unreachable');
  const q = pkt.quoted;
  t.same([pkt.icmpType, pkt.icmpCode, q.valid, q.family, q.proto], [3, 3, true, 4, 6]);
  t.same([q.src4, q.dst4], [ip4Number('10.0.0.2'), ip4Number('8.8.8.8')]);
  t.same([q.hasPorts, q.srcPort, q.dstPort, q.isFragment], [true, 40000, 443, false]);

  const quotedEcho = ipv4Packet({ proto: Proto.ICMP, payload: icmp(8, 0, [...u16(77), 0, 1]) });
  t.equal(decode(ipv4({ proto: Proto.ICMP, payload: icmp(11, 0, [0, 0, 0, 0], quotedEcho) })), 0, 'time exceeded quoting an echo');
  t.same([pkt.quoted.valid, pkt.quoted.icmpType, pkt.quoted.icmpId, pkt.quoted.hasPorts], [true, 8, 77, false]);

  t.equal(decode(ipv4({ proto: Proto.ICMP, payload: icmp(3, 1, [0, 0, 0, 0], quotedTcp.slice(0, 24)) })), 0, 'quote cut inside the ports');
  t.same([pkt.quoted.valid, pkt.quoted.hasPorts], [true, false]);
  t.equal(decode(ipv4({ proto: Proto.ICMP, payload: icmp(3, 1, [0, 0, 0, 0], quotedTcp.slice(0, 12)) })), 0, 'quote cut inside the IP header');
  t.equal(pkt.quoted.valid, false, 'is no error, only an invalid quote');

  const laterFragment = ipv4Packet({ proto: Proto.UDP, flagsOffset: 10, payload: udp(1, 2) });
  t.equal(decode(ipv4({ proto: Proto.ICMP, payload: icmp(12, 0, [0, 0, 0, 0], laterFragment) })), 0);
  t.same([pkt.quoted.valid, pkt.quoted.isFragment, pkt.quoted.hasPorts], [true, true, false], 'a quoted later fragment has no ports');

  expectError(t, ipv4({ proto: Proto.ICMP, payload: [8, 0, 0, 0] }), DecodeError.IcmpTruncated, '4 bytes of ICMP');
});

// ---------------------------------------------------------------- IPv6

t.test('IPv6 + UDP fields', async (t) => {
  t.equal(decode(ipv6({ next: Proto.UDP, hopLimit: 3, src: 'fd01::101:101', dst: 'fd02::202:202', payload: udp(33112, 53, [1]) })), 0);
  t.same([pkt.family, pkt.proto, pkt.ttl, pkt.l3HeaderLength, pkt.l3TotalLength, pkt.l4Offset], [6, 17, 3, 40, 49, 54]);
  t.same(Array.from(pkt.src6), words('fd01::101:101'));
  t.same(Array.from(pkt.dst6), words('fd02::202:202'));
  t.equal(formatTuple(5, pkt), '5\t6\tfd01::101:101\tfd02::202:202\t17\t33112\t53\t-');
});

t.test('IPv6 extension headers', async (t) => {
  const chain = [...ext(60), ...ext(43, 1), ...ext(Proto.TCP)];
  t.equal(decode(ipv6({ next: 0, payload: [...chain, ...tcp(80, 8080, TcpFlag.ACK)] })), 0, 'hop-by-hop, routing, destination options');
  t.same([pkt.proto, pkt.l3HeaderLength, pkt.srcPort, pkt.dstPort], [6, 40 + 32, 80, 8080]);

  t.equal(decode(ipv6({ next: Proto.AH, payload: [...ah(Proto.UDP), ...udp(500, 500)] })), 0, 'AH is walked');
  t.same([pkt.proto, pkt.l3HeaderLength, pkt.srcPort], [17, 64, 500]);

  t.equal(decode(ipv6({ next: Proto.ESP, payload: Array(16).fill(1) })), 0, 'ESP ends the walk');
  t.equal(pkt.proto, Proto.ESP);
  t.equal(decode(ipv6({ next: 135, payload: ext(59) })), 0, 'mobility header is not walked');
  t.equal(pkt.proto, Proto.UNKNOWN);
  t.equal(formatTuple(1, pkt).split('\t')[4], '?');
  t.equal(decode(ipv6({ next: Proto.IPIP, payload: ipv4Packet({ proto: Proto.UDP, payload: udp(1, 2) }) })), 0, '4in6 tunnel');
  t.same([pkt.proto, pkt.hasPorts], [4, false], 'judged by the outer header only');

  const nine = [...Array(8)].flatMap(() => ext(60));
  expectError(t, ipv6({ next: 60, payload: [...nine, ...ext(Proto.UDP), ...udp(1, 2)] }), DecodeError.Ipv6ExtensionChainTooLong, 'nine extension headers');
  t.equal(decode(ipv6({ next: 60, payload: [...nine.slice(8), ...ext(Proto.UDP), ...udp(1, 2)] })), 0, 'eight are accepted');
  expectError(t, ipv6({ next: 0, payload: ext(Proto.UDP, 2).slice(0, 16) }), DecodeError.Ipv6ExtensionTruncated, 'header longer than the payload');
  expectError(t, ipv6({ next: 0, payload: [Proto.UDP, 0, 0, 0] }), DecodeError.Ipv6ExtensionTruncated, 'under 8 bytes');
});

t.test('IPv6 fragments', async (t) => {
  const first = ipv6({ next: 44, payload: [...fragmentHeader(Proto.TCP, 0, true, 0xfacef0c2), ...tcp(52308, 443, TcpFlag.SYN)] });
  t.equal(decode(first), 0, 'first fragment');
  t.same([pkt.isFragment, pkt.fragOffset, pkt.moreFragments, pkt.fragId], [true, 0, true, 0xfacef0c2]);
  t.same([pkt.proto, pkt.hasPorts, pkt.srcPort, pkt.l3HeaderLength], [6, true, 52308, 48]);
  t.equal(formatTuple(2, pkt).split('\t').slice(4).join(' '), '6 - - frag');

  t.equal(decode(ipv6({ next: 44, payload: [...fragmentHeader(Proto.UDP, 1232, false, 5), ...Array(24).fill(0x41)] })), 0, 'later fragment');
  t.same([pkt.isFragment, pkt.fragOffset, pkt.moreFragments, pkt.proto, pkt.hasPorts], [true, 1232, false, 17, false], 'protocol from the fragment header');
  t.equal(decode(ipv6({ next: 44, payload: [...fragmentHeader(60, 8, false, 5), ...Array(8).fill(0)] })), 0);
  t.equal(pkt.proto, Proto.UNKNOWN, 'an extension header named by a later fragment hides the protocol');

  t.equal(decode(ipv6({ next: 44, payload: [...fragmentHeader(Proto.ICMPV6, 0, false, 9), ...icmp(128, 0, [0, 5, 0, 1])] })), 0, 'atomic fragment');
  t.same([pkt.isFragment, pkt.moreFragments, pkt.icmpType, pkt.icmpId], [true, false, 128, 5]);

  expectError(t, ipv6({ next: 44, payload: [...fragmentHeader(Proto.TCP, 0, true, 1), ...tcp(1, 2, 2).slice(0, 12)] }), DecodeError.FragmentTooSmall, 'tiny first fragment');
});

t.test('IPv6 header errors', async (t) => {
  expectError(t, ipv6({ next: Proto.UDP, payload: udp(1, 2) }).slice(0, 14 + 39), DecodeError.Ipv6Truncated, 'fixed header cut short');
  expectError(t, ipv6({ next: Proto.UDP, payload: udp(1, 2), payloadLength: 9 }), DecodeError.Ipv6Truncated, 'payload length past the captured bytes');
  expectError(t, ipv6({ next: Proto.UDP, payload: udp(1, 2), version: 4 }), DecodeError.Ipv6BadVersion, 'version 4 under EtherType IPv6');
  expectError(t, ipv6({ next: Proto.UDP, payload: udp(1, 2), src: '::ffff:a00:1' }), DecodeError.Ipv6MappedAddress, 'mapped source');
  expectError(t, ipv6({ next: Proto.UDP, payload: udp(1, 2), dst: '::ffff:0a00:0001', src: '2001:db8::1' }), DecodeError.Ipv6MappedAddress, 'mapped destination');
  t.equal(decode(ipv6({ next: Proto.UDP, payload: udp(1, 2), src: '::a00:1' })), 0, 'IPv4-compatible is not mapped');
  expectError(t, ipv6({ next: Proto.TCP, payloadLength: 0, payload: tcp(1, 2, 2) }), DecodeError.TcpTruncated, 'payload length 0 leaves no TCP header');
});

t.test('ICMPv6', async (t) => {
  t.equal(decode(ipv6({ next: Proto.ICMPV6, payload: icmp(129, 0, [...u16(0xface), 0, 9]) })), 0, 'echo reply');
  t.same([pkt.proto, pkt.icmpType, pkt.icmpCode, pkt.icmpId], [58, 129, 0, 0xface]);

  const quoted = ipv6Packet({ next: 44, src: '2001:db8::2', dst: '2001:db8::9', payload: [...fragmentHeader(Proto.UDP, 0, true, 3), ...udp(5000, 53, [1, 2])] });
  t.equal(decode(ipv6({ next: Proto.ICMPV6, payload: icmp(1, 4, [0, 0, 0, 0], quoted) })), 0, 'destination unreachable');
  const q = pkt.quoted;
  t.same([q.valid, q.family, q.proto, q.isFragment, q.hasPorts, q.srcPort, q.dstPort], [true, 6, 17, true, true, 5000, 53]);
  t.same(Array.from(q.dst6), words('2001:db8::9'));
  t.equal(formatTuple(12, pkt).split('\t')[7], 'frag', 'tshark reports a quoted fragment header as frag');

  const quotedEcho = ipv6Packet({ next: Proto.ICMPV6, payload: icmp(128, 0, [0, 42, 0, 1]) });
  t.equal(decode(ipv6({ next: Proto.ICMPV6, payload: icmp(2, 0, u32(1280), quotedEcho) })), 0, 'packet too big quoting an echo');
  t.same([pkt.quoted.valid, pkt.quoted.icmpType, pkt.quoted.icmpId], [true, 128, 42]);
  t.equal(decode(ipv6({ next: Proto.ICMPV6, payload: icmp(3, 0, [0, 0, 0, 0], quotedEcho.slice(0, 30)) })), 0, 'quote cut short');
  t.equal(pkt.quoted.valid, false);

  expectError(t, ipv6({ next: Proto.ICMPV6, payload: [128, 0, 0, 0] }), DecodeError.Icmpv6Truncated, '4 bytes of ICMPv6');
});

// ---------------------------------------------------------------- output format

t.test('formatTuple', async (t) => {
  decode(eth(EtherType.ARP, arp(1, '1.1.1.1', '2.2.2.2')));
  t.equal(formatTuple(1, pkt), '1\t-\t-\t-\t-\t-\t-\t-', 'non-IP');
  decode(eth(EtherType.PPPOE_SESSION, [0x11, 0, 0, 1, 0, 2, 0xc0, 0x21]));
  t.equal(formatTuple(2, pkt), '2\tskip', 'PPPoE session');
  decode(eth(EtherType.MPLS, [0, 0, 0x11, 0x40]));
  t.equal(formatTuple(3, pkt), '3\tskip', 'MPLS');
  decode(ipv4({ proto: Proto.UDP, payload: udp(1, 2, [], 3) }));
  t.equal(formatTuple(4, pkt), '4\tinvalid\tudp-bad-length');
  decode(ipv4({ proto: Proto.GRE, payload: [0, 0, 0x08, 0] }));
  t.equal(formatTuple(5, pkt), '5\t4\t10.0.0.1\t10.0.0.2\t47\t-\t-\t-', 'GRE: outer header only');
});

t.test('formatIpv6 is RFC 5952 as tshark prints it', async (t) => {
  const cases: Array<[string, string]> = [
    ['::', '::'],
    ['::1', '::1'],
    ['::2', '::2'],
    ['2001:0db8:85a3:0:0:8a2e:0370:7334', '2001:db8:85a3::8a2e:370:7334'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['fe80::6600:6aff:fe5b:8f4a', 'fe80::6600:6aff:fe5b:8f4a'],
    ['0:0:0:0:0:0:102:304', '::1.2.3.4'],
    ['0:0:0:0:0:0:0:100', '::100'],
    ['0:0:0:0:0:ffff:102:304', '::ffff:1.2.3.4'],
    ['0:0:0:0:ffff:0:102:304', '::ffff:0:102:304'],
    ['64:ff9b::102:304', '64:ff9b::102:304'],
    ['0:0:0:0:0:1:0:0', '::1:0:0'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['ff02:0:0:0:0:1:fff3:1d22', 'ff02::1:fff3:1d22'],
  ];
  for (const [input, want] of cases) t.equal(formatIpv6(Uint32Array.from(words(input))), want, input);
});

t.test('pcapTuples reads a pcap file', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatekeeper-decode-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const frames = [
    ipv4({ proto: Proto.UDP, payload: udp(1000, 53) }),
    eth(EtherType.ARP, arp(1, '1.1.1.1', '2.2.2.2')),
    ipv4({ proto: Proto.TCP, payload: tcp(1, 2, 2).slice(0, 10) }),
  ];
  const writePcap = (file: string, linkType: number) => {
    const header = Buffer.alloc(24);
    header.writeUInt32LE(0xa1b2c3d4, 0);
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeUInt32LE(65535, 16);
    header.writeUInt32LE(linkType, 20);
    const records = frames.map((f) => {
      const rec = Buffer.alloc(16);
      rec.writeUInt32LE(f.length, 8);
      rec.writeUInt32LE(f.length, 12);
      return Buffer.concat([rec, f]);
    });
    fs.writeFileSync(file, Buffer.concat([header, ...records]));
  };
  const collect = async (file: string) => {
    const lines: string[] = [];
    for await (const line of pcapTuples(file)) lines.push(line);
    return lines;
  };

  const ethernet = path.join(dir, 'ethernet.pcap');
  writePcap(ethernet, 1);
  t.same(await collect(ethernet), [
    '1\t4\t10.0.0.1\t10.0.0.2\t17\t1000\t53\t-',
    '2\t-\t-\t-\t-\t-\t-\t-',
    '3\tinvalid\ttcp-truncated',
  ]);
  const raw = path.join(dir, 'raw.pcap');
  writePcap(raw, 101);
  t.same(await collect(raw), ['1\tskip', '2\tskip', '3\tskip'], 'non-Ethernet link layer');
  await t.rejects(collect(path.join(dir, 'missing.pcap')), 'a missing file is an error');
});

// ---------------------------------------------------------------- robustness

/** Decodes and checks the result is a named reason or a consistent clean decode; never throws. */
function checkRobust(frame: Uint8Array, length: number): string | undefined {
  let error: number;
  try {
    error = decode(frame, length);
  } catch (err) {
    return `threw ${String(err)}`;
  }
  if (!Number.isInteger(error) || error < 0 || error >= decodeErrorNames.length) return `unnamed error ${error}`;
  if (error === 0 && pkt.family !== 0 && pkt.family !== 4 && pkt.family !== 6) return `bad family ${pkt.family}`;
  if (error === 0 && pkt.hasPorts && (pkt.l4Offset <= 0 || pkt.l4Offset > length)) return `l4Offset ${pkt.l4Offset} outside the frame`;
  if (pkt.srcPort > 0xffff || pkt.dstPort > 0xffff || Number.isNaN(pkt.srcPort)) return 'port out of range';
  return undefined;
}

const samples: Array<[string, Uint8Array]> = [
  ['ipv4 tcp', ipv4({ proto: Proto.TCP, options: [1, 1, 1, 0], payload: tcp(1, 2, 0x12, [1, 2, 3], { dataOffset: 7 }) })],
  ['ipv4 udp vlan', eth(EtherType.IPV4, ipv4Packet({ proto: Proto.UDP, payload: udp(1, 2, [1]) }), [[0x88a8, 1], [0x8100, 2]])],
  ['ipv4 sctp', ipv4({ proto: Proto.SCTP, payload: sctp(1, 2, [1, 2]) })],
  ['ipv4 icmp error', ipv4({ proto: Proto.ICMP, payload: icmp(3, 3, [0, 0, 0, 0], ipv4Packet({ proto: Proto.UDP, payload: udp(1, 2) })) })],
  ['ipv4 first fragment', ipv4({ proto: Proto.TCP, flagsOffset: 0x2000, payload: tcp(1, 2, 2) })],
  ['arp', eth(EtherType.ARP, arp(1, '1.1.1.1', '2.2.2.2'))],
  ['ipv6 chain tcp', ipv6({ next: 0, payload: [...ext(Proto.AH), ...ah(44), ...fragmentHeader(Proto.TCP, 0, true, 1), ...tcp(1, 2, 2)] })],
  ['ipv6 icmpv6 error', ipv6({ next: Proto.ICMPV6, payload: icmp(1, 0, [0, 0, 0, 0], ipv6Packet({ next: 60, payload: [...ext(Proto.TCP), ...tcp(1, 2, 2)] })) })],
  ['ipv6 udp', ipv6({ next: Proto.UDP, payload: udp(1, 2, [1, 2, 3]) })],
];

t.test('every truncation of valid frames ends cleanly or in a named reason', async (t) => {
  for (const [name, frame] of samples) {
    t.equal(decode(frame), 0, `${name} decodes cleanly in full`);
    const problems: string[] = [];
    for (let length = 0; length <= frame.length; length++) {
      const problem = checkRobust(frame, length);
      if (problem) problems.push(`length ${length}: ${problem}`);
      const copy = frame.slice(0, length);
      const copyProblem = checkRobust(copy, copy.length);
      if (copyProblem) problems.push(`copy of ${length}: ${copyProblem}`);
    }
    t.same(problems, [], `${name}: every truncation`);
  }
});

t.test('random bytes and mutated frames never throw', async (t) => {
  // Deterministic xorshift so a failure reproduces.
  let seed = 0x9e3779b9;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const problems: string[] = [];
  const types = [EtherType.IPV4, EtherType.IPV6, EtherType.ARP, EtherType.VLAN, EtherType.QINQ];
  for (let i = 0; i < 20000 && problems.length < 5; i++) {
    const frame = new Uint8Array(Math.floor(random() * 160));
    for (let j = 0; j < frame.length; j++) frame[j] = random() * 256;
    if (frame.length >= 14) {
      const type = types[i % types.length];
      frame[12] = type >> 8;
      frame[13] = type & 0xff;
    }
    const problem = checkRobust(frame, Math.floor(random() * 200) - 20);
    if (problem) problems.push(`random ${i}: ${problem}`);
  }
  for (const [name, frame] of samples) {
    for (let i = 0; i < 3000 && problems.length < 5; i++) {
      const mutated = frame.slice();
      for (let k = 0; k < 3; k++) mutated[14 + Math.floor(random() * (mutated.length - 14))] = random() * 256;
      const problem = checkRobust(mutated, mutated.length);
      if (problem) problems.push(`${name} mutation ${i}: ${problem}`);
    }
  }
  t.same(problems, []);
});

t.test('a reused Packet carries nothing over from the previous frame', async (t) => {
  decode(ipv6({ next: Proto.ICMPV6, payload: icmp(1, 4, [0, 0, 0, 0], ipv6Packet({ next: Proto.UDP, payload: udp(1, 2) })) }));
  t.equal(pkt.quoted.valid, true);
  decode(eth(EtherType.ARP, arp(1, '1.1.1.1', '2.2.2.2'), [[0x8100, 5]]));
  decode(ipv4({ proto: Proto.GRE, payload: [0, 0, 8, 0] }));
  t.same(
    [pkt.vlanCount, pkt.vlanOuter, pkt.hasPorts, pkt.srcPort, pkt.icmpType, pkt.icmpCode, pkt.quoted.valid, pkt.arpOp, pkt.isFragment, pkt.error],
    [0, 0, false, 0, -1, -1, false, 0, false, 0],
  );
});

t.test('every DecodeError is reached by a test', async (t) => {
  for (const [key, code] of Object.entries(DecodeError)) t.ok(reached.has(code), key);
});
