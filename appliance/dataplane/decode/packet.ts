// The decoded view of one frame. One instance is allocated per port and reused for every frame:
// the decoder overwrites every field it is responsible for, so nothing on the packet path allocates.
// Offsets index into the frame buffer the decoder was given.

export class Packet {
  /** Bytes of the frame as captured. */
  length = 0;
  /** DecodeError code; DecodeError.None when the frame decoded cleanly. */
  error = 0;

  // --- link layer
  /** Number of 802.1Q / 802.1ad tags (0..2 accepted; more is a decode error). */
  vlanCount = 0;
  /** VLAN ID of the outermost tag (802.1Q, 802.1ad or 0x9100), 0 when untagged. */
  vlanOuter = 0;
  /** VLAN ID of the second tag (QinQ), 0 when absent. */
  vlanInner = 0;
  /** EtherType after all tags. */
  etherType = 0;
  /** Offset of the network header (after Ethernet and tags). */
  l3Offset = 0;

  // --- network layer (outermost IP header)
  family = 0;
  /** IPv4 addresses as unsigned 32-bit numbers (valid when family === 4). */
  src4 = 0;
  dst4 = 0;
  /** IPv6 addresses as four big-endian 32-bit words (valid when family === 6). */
  readonly src6 = new Uint32Array(4);
  readonly dst6 = new Uint32Array(4);
  /** Upper protocol: IPv4 protocol field, or the header after the IPv6 extension chain; Proto.UNKNOWN if not known. */
  proto = 0;
  /** TTL / hop limit. */
  ttl = 0;
  /** Length of the IP header including IPv4 options or IPv6 extension headers walked. */
  l3HeaderLength = 0;
  /** IP total length as the header claims it (IPv4 total length, IPv6 40 + payload length). */
  l3TotalLength = 0;

  // --- fragments
  isFragment = false;
  /** Fragment offset in bytes. */
  fragOffset = 0;
  moreFragments = false;
  /** IPv4 identification or IPv6 fragment header identification. */
  fragId = 0;

  // --- transport layer (valid only for a non-fragment or first fragment that carries it)
  l4Offset = 0;
  /** True when srcPort/dstPort were read (TCP, UDP, SCTP; also in a first fragment, never a later one). */
  hasPorts = false;
  srcPort = 0;
  dstPort = 0;
  tcpFlags = 0;
  tcpSeq = 0;
  tcpAck = 0;
  /** Bytes after the transport header (TCP payload length for RST ack numbers). */
  l4PayloadLength = 0;
  /** ICMP / ICMPv6 type and code; -1 when the packet is not ICMP. */
  icmpType = -1;
  icmpCode = -1;
  /** ICMP echo identifier (echo request/reply only). */
  icmpId = 0;

  // --- the packet an ICMP / ICMPv6 error quotes (valid when quoted.valid)
  readonly quoted = new QuotedPacket();

  // --- ARP (IPv4 over Ethernet only; arpOp stays 0 for other hardware/protocol types)
  arpOp = 0;
  /** Sender hardware address as a 48-bit number (what an ARP cache learns for arpSenderIp). */
  arpSenderMac = 0;
  arpSenderIp = 0;
  arpTargetIp = 0;
}

/** The header quoted inside an ICMP error: enough to find the flow it refers to. */
export class QuotedPacket {
  valid = false;
  family = 0;
  src4 = 0;
  dst4 = 0;
  readonly src6 = new Uint32Array(4);
  readonly dst6 = new Uint32Array(4);
  proto = 0;
  /** The quoted packet is an IP fragment (a later fragment quotes no ports). */
  isFragment = false;
  hasPorts = false;
  srcPort = 0;
  dstPort = 0;
  /** Echo identifier when the quoted packet is an ICMP echo. */
  icmpType = -1;
  icmpId = 0;
}
