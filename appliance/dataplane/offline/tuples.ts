// The canonical per-frame tuple line (see ../shared/conformance/tshark_tuples.py) and a pcap reader
// producing it. Offline tooling (it reads files, so it is not part of decode/): allocation is fine
// here, unlike in the decoder.

import { decodeFrame } from '../decode/decoder';
import { decodeErrorNames } from '../decode/errors';
import { Packet } from '../decode/packet';
import { EtherType, Family, Proto } from '../../wire/protocols';
import { LINKTYPE_ETHERNET, readPcap } from './pcap-file';
import { formatIpv4, formatIpv6 } from '../../wire/address-text';

/** True for link layers the reference does not judge (PPPoE session, MPLS). */
function isSkipped(pkt: Packet): boolean {
  const type = pkt.etherType;
  return type === EtherType.PPPOE_SESSION || type === EtherType.MPLS || type === EtherType.MPLS_MULTICAST;
}

/** One canonical line: `frame family src dst proto sport dport frag`, `frame skip` or `frame invalid REASON`. */
export function formatTuple(frameNumber: number, pkt: Packet): string {
  if (pkt.error !== 0) return `${frameNumber}\tinvalid\t${decodeErrorNames[pkt.error]}`;
  if (pkt.family === Family.None) {
    return isSkipped(pkt) ? `${frameNumber}\tskip` : `${frameNumber}\t-\t-\t-\t-\t-\t-\t-`;
  }
  const v4 = pkt.family === Family.V4;
  const src = v4 ? formatIpv4(pkt.src4) : formatIpv6(pkt.src6);
  const dst = v4 ? formatIpv4(pkt.dst4) : formatIpv6(pkt.dst6);
  const proto = pkt.proto === Proto.UNKNOWN ? '?' : String(pkt.proto);
  // Fragments are not reassembled, so even a first fragment's ports are not printed.
  const ports = pkt.hasPorts && !pkt.isFragment;
  const sport = ports ? String(pkt.srcPort) : '-';
  const dport = ports ? String(pkt.dstPort) : '-';
  // tshark's ipv6.fraghdr field also matches a fragment header quoted by an ICMPv6 error.
  const quotedFragment = !v4 && pkt.quoted.valid && pkt.quoted.isFragment;
  const frag = pkt.isFragment || quotedFragment ? 'frag' : '-';
  return [frameNumber, pkt.family, src, dst, proto, sport, dport, frag].join('\t');
}

/** Decodes every frame of a pcap file and yields its canonical line, in order. */
export async function* pcapTuples(path: string): AsyncGenerator<string> {
  const pkt = new Packet();
  for await (const frame of readPcap(path)) {
    if (frame.linkType !== LINKTYPE_ETHERNET) {
      yield `${frame.number}\tskip`;
      continue;
    }
    decodeFrame(frame.data, frame.length, pkt);
    yield formatTuple(frame.number, pkt);
  }
}
