// DHCPv4 (RFC 2131/2132: a BOOTP message and its options) as a client sends it to UDP port 67:
// what the client says about itself. Decodes into a reused DhcpMessage that holds only where each
// field is, so decoding allocates nothing; dhcpFields() makes the text, on the slow path, for
// messages that are reported. Says why a message could not be decoded (dhcpErrorNames).
// Observation only: whether the packet is forwarded is the engine's business, not this file's.

import { read32, read48 } from './bytes';
import { addressBytesText, identityText } from './identity-text';

export const DhcpError = {
  None: 0,
  /** Shorter than the fixed BOOTP header and the magic cookie. */
  Truncated: 1,
  /** Not a BOOTREQUEST (op 1): replies say nothing about the client that sent them. */
  NotRequest: 2,
  /** Hardware type/length other than Ethernet (1/6): chaddr is no MAC. */
  NotEthernet: 3,
  /** The magic cookie 99.130.83.99 is missing: BOOTP without DHCP options. */
  BadCookie: 4,
  /** An option's length runs past the end of the message. */
  BadOption: 5,
} as const;

/** Kebab-case names of DhcpError, indexed by code. */
export const dhcpErrorNames: readonly string[] = ['none', 'dhcp-truncated', 'dhcp-not-request', 'dhcp-not-ethernet', 'dhcp-bad-cookie', 'dhcp-bad-option'];

/** op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr(16), sname(64), file(128). */
const FIXED = 236;
const COOKIE = 0x63825363;
const CHADDR = 28;
const Option = { Pad: 0, HostName: 12, RequestedAddress: 50, MessageType: 53, VendorClass: 60, End: 255 } as const;

export class DhcpMessage {
  error = 0;
  /** The client's hardware address (chaddr) as a 48-bit number. */
  clientMac = 0;
  /** Option 53, 0 when absent. */
  messageType = 0;
  /** Value offsets and lengths of options 12, 60 and 50; length -1 when absent. */
  hostNameOffset = 0;
  hostNameLength = -1;
  vendorClassOffset = 0;
  vendorClassLength = -1;
  requestedOffset = 0;
  requestedLength = -1;
}

/** Decode the UDP payload frame[off, end) into `out`; returns out.error (DhcpError.None when whole). */
export function decodeDhcp(b: Uint8Array, off: number, end: number, out: DhcpMessage): number {
  out.clientMac = 0;
  out.messageType = 0;
  out.hostNameLength = out.vendorClassLength = out.requestedLength = -1;
  out.error = walk(b, off, end, out);
  return out.error;
}

function walk(b: Uint8Array, off: number, end: number, out: DhcpMessage): number {
  if (off + FIXED + 4 > end) return DhcpError.Truncated;
  if (b[off] !== 1) return DhcpError.NotRequest;
  if (b[off + 1] !== 1 || b[off + 2] !== 6) return DhcpError.NotEthernet;
  out.clientMac = read48(b, off + CHADDR);
  if (read32(b, off + FIXED) !== COOKIE) return DhcpError.BadCookie;
  let at = off + FIXED + 4;
  while (at < end) {
    const code = b[at];
    if (code === Option.End) return DhcpError.None;
    if (code === Option.Pad) {
      at++;
      continue;
    }
    if (at + 2 > end) return DhcpError.BadOption;
    const length = b[at + 1];
    const value = at + 2;
    if (value + length > end) return DhcpError.BadOption;
    switch (code) {
      case Option.HostName:
        out.hostNameOffset = value;
        out.hostNameLength = length;
        break;
      case Option.VendorClass:
        out.vendorClassOffset = value;
        out.vendorClassLength = length;
        break;
      case Option.RequestedAddress:
        out.requestedOffset = value;
        out.requestedLength = length;
        break;
      case Option.MessageType:
        if (length >= 1) out.messageType = b[value];
        break;
    }
    at = value + length;
  }
  // No end option: RFC 2131 wants one, clients and tshark accept a message without.
  return DhcpError.None;
}

/**
 * The decoded message's fields as the identity observation names them (ipc/messages.ts
 * IdentityObservation), only those it carried and that are not empty. Allocates: slow path.
 */
export function dhcpFields(b: Uint8Array, m: DhcpMessage): Record<string, string> {
  const fields: Record<string, string> = {};
  if (m.hostNameLength > 0) {
    const text = identityText(b, m.hostNameOffset, m.hostNameLength);
    if (text !== '') fields.hostName = text;
  }
  if (m.vendorClassLength > 0) {
    const text = identityText(b, m.vendorClassOffset, m.vendorClassLength);
    if (text !== '') fields.vendorClass = text;
  }
  if (m.requestedLength === 4) fields.requestedAddress = addressBytesText(b, m.requestedOffset, 4);
  return fields;
}
