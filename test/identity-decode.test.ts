// The identity-frame decoders (decode/lldp.ts, dhcp.ts, modbus-device-id.ts) on frames captured from
// real software (test/fixtures/identity/README.md says how): the fields come out as the observation
// names them; every truncation and a set of malformed variants give a named decode failure, never a
// throw; text is sanitized and bounded; the name lists stay in step with the codes.

import path from 'node:path';
import t from 'tap';
import { decodeFrame } from '../appliance/dataplane/decode/decoder';
import { decodeDhcp, DhcpError, dhcpErrorNames, dhcpFields, DhcpMessage } from '../appliance/dataplane/decode/dhcp';
import { IDENTITY_TEXT_MAX, identityText } from '../appliance/dataplane/decode/identity-text';
import { decodeLldp, LldpError, lldpErrorNames, lldpFields, LldpFrame } from '../appliance/dataplane/decode/lldp';
import { DeviceIdAnswer, decodeDeviceId, DeviceIdError, deviceIdErrorNames, deviceIdFields } from '../appliance/dataplane/decode/modbus-device-id';
import { Packet } from '../appliance/dataplane/decode/packet';
import { readPcap } from '../appliance/dataplane/offline/pcap-file';
import { EtherType } from '../appliance/wire/protocols';

const fixtures = path.join(__dirname, 'fixtures', 'identity');

async function frames(name: string): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const f of readPcap(path.join(fixtures, name))) out.push(new Uint8Array(f.data));
  return out;
}

t.test('name lists are in step with the codes', async (t) => {
  t.equal(lldpErrorNames.length, Object.keys(LldpError).length);
  t.equal(dhcpErrorNames.length, Object.keys(DhcpError).length);
  t.equal(deviceIdErrorNames.length, Object.keys(DeviceIdError).length);
  for (const names of [lldpErrorNames, dhcpErrorNames, deviceIdErrorNames]) {
    t.equal(names[0], 'none');
    t.equal(new Set(names).size, names.length, 'names are distinct');
  }
});

t.test('LLDP from lldpd', async (t) => {
  const [frame] = await frames('lldpd.pcap');
  const pkt = new Packet();
  t.equal(decodeFrame(frame, frame.length, pkt), 0);
  t.equal(pkt.etherType, EtherType.LLDP);
  const lldp = new LldpFrame();
  t.equal(decodeLldp(frame, pkt.l3Offset, frame.length, lldp), LldpError.None);
  t.equal(lldp.ttl, 120);
  t.same(lldpFields(frame, lldp), {
    chassisId: 'ea:11:67:b0:b0:cb',
    portId: 'ea:11:67:b0:b0:cb',
    portDescription: 'lla5141',
    systemName: 'plc-7',
    systemDescription: 'Gatekeeper lab PLC',
    managementAddress: '198.18.7.10',
  });

  // Every truncation of the LLDPDU before its end TLV is a named failure, never a throw.
  const seen = new Set<string>();
  const endTlv = frame.length - 4 - 2; // the capture carries a 3-byte Ethernet trailer after the end TLV
  for (let end = pkt.l3Offset; end < endTlv; end++) {
    const error = decodeLldp(frame, pkt.l3Offset, end, lldp);
    t.not(error, LldpError.None, `cut at ${end}`);
    seen.add(lldpErrorNames[error]);
  }
  t.ok(seen.has('lldp-truncated'));

  // Malformed: the chassis id TLV renamed, a chassis id without its subtype, a management address too long for its TLV.
  const badOrder = frame.slice();
  badOrder[pkt.l3Offset] = (5 << 1) | (badOrder[pkt.l3Offset] & 1);
  t.equal(lldpErrorNames[decodeLldp(badOrder, pkt.l3Offset, frame.length, lldp)], 'lldp-missing-mandatory');
  const shortChassis = Uint8Array.from([0x02, 0x01, 0x04, 0x04, 0x07, 0x03, 1, 2, 3, 4, 5, 6, 0x06, 0x02, 0, 120, 0, 0]);
  t.equal(lldpErrorNames[decodeLldp(shortChassis, 0, shortChassis.length, lldp)], 'lldp-bad-tlv-length');
  const mgmt = Uint8Array.from([0x02, 0x02, 0x07, 0x41, 0x04, 0x02, 0x07, 0x42, 0x06, 0x02, 0, 120, 0x10, 0x03, 0x09, 0x01, 198, 0, 0]);
  t.equal(lldpErrorNames[decodeLldp(mgmt, 0, mgmt.length, lldp)], 'lldp-bad-tlv-length');
});

t.test('DHCP discover from busybox udhcpc', async (t) => {
  const discovers = await frames('udhcpc-discover.pcap');
  t.equal(discovers.length, 2);
  const pkt = new Packet();
  const dhcp = new DhcpMessage();
  for (const frame of discovers) {
    t.equal(decodeFrame(frame, frame.length, pkt), 0);
    t.equal(pkt.dstPort, 67);
    const start = pkt.l4Offset + 8;
    const end = start + pkt.l4PayloadLength;
    t.equal(decodeDhcp(frame, start, end, dhcp), DhcpError.None);
    t.equal(dhcp.messageType, 1, 'DHCPDISCOVER');
    t.equal(dhcp.clientMac, 0x8697ac80fcd0);
    t.same(dhcpFields(frame, dhcp), { hostName: 'rtu-12', vendorClass: 'GK-lab-RTU', requestedAddress: '198.18.7.33' });
  }
  const frame = discovers[0];
  decodeFrame(frame, frame.length, pkt);
  const start = pkt.l4Offset + 8;
  const end = start + pkt.l4PayloadLength;
  // Every cut inside the options (after the cookie) up to the end option: bad-option, or whole but missing the later options.
  for (let cut = start; cut < end; cut++) {
    const error = decodeDhcp(frame, start, cut, dhcp);
    if (cut < start + 240) t.equal(dhcpErrorNames[error], 'dhcp-truncated', `cut at ${cut - start}`);
    else t.ok(error === DhcpError.None || error === DhcpError.BadOption, `cut at ${cut - start}: ${dhcpErrorNames[error]}`);
  }
  const reply = frame.slice();
  reply[start] = 2;
  t.equal(decodeDhcp(reply, start, end, dhcp), DhcpError.NotRequest);
  const notEthernet = frame.slice();
  notEthernet[start + 1] = 6;
  t.equal(dhcpErrorNames[decodeDhcp(notEthernet, start, end, dhcp)], 'dhcp-not-ethernet');
  const bootp = frame.slice();
  bootp[start + 236] = 0;
  t.equal(dhcpErrorNames[decodeDhcp(bootp, start, end, dhcp)], 'dhcp-bad-cookie');
  // The host name option claims more bytes than the message has.
  const long = frame.slice(0, start + 240 + 3);
  long[start + 240] = 12;
  long[start + 241] = 200;
  t.equal(dhcpErrorNames[decodeDhcp(long, start, long.length, dhcp)], 'dhcp-bad-option');
});

/** A 43/14 answer ADU: transaction 7, unit 3, basic identification, the objects given. */
function deviceIdAnswer(objects: Array<[number, string]>, unit = 3): Uint8Array {
  const body: number[] = [43, 14, 1, 0x81, 0, 0, objects.length];
  for (const [id, text] of objects) {
    const bytes = [...Buffer.from(text, 'latin1')];
    body.push(id, bytes.length, ...bytes);
  }
  const length = body.length + 1;
  return Uint8Array.from([0, 7, 0, 0, length >> 8, length & 0xff, unit, ...body]);
}

t.test('Modbus device identification answer', async (t) => {
  const adu = deviceIdAnswer([[0, 'Acme Automation'], [1, 'PLC-5000'], [2, 'V2.11'], [3, 'http://acme.example'], [4, 'Acme PLC'], [5, 'P5K-16DI']]);
  const answer = new DeviceIdAnswer();
  t.equal(decodeDeviceId(adu, 0, adu.length, answer), DeviceIdError.None);
  t.same(deviceIdFields(adu, answer), {
    vendorName: 'Acme Automation', productCode: 'PLC-5000', revision: 'V2.11', vendorUrl: 'http://acme.example',
    productName: 'Acme PLC', modelName: 'P5K-16DI', unit: '3',
  });
  for (let cut = 0; cut < adu.length; cut++) {
    const error = decodeDeviceId(adu, 0, cut, answer);
    t.not(error, DeviceIdError.None, `cut at ${cut}`);
  }
  const exception = Uint8Array.from([0, 7, 0, 0, 0, 3, 3, 0xab, 0x01]);
  t.equal(deviceIdErrorNames[decodeDeviceId(exception, 0, exception.length, answer)], 'modbus-device-id-not-device-id');
  const badObject = adu.slice();
  badObject[15] = 250; // the first object claims 250 bytes
  t.equal(deviceIdErrorNames[decodeDeviceId(badObject, 0, badObject.length, answer)], 'modbus-device-id-bad-object');
});

t.test('text is printable and bounded', async (t) => {
  const bytes = Uint8Array.from([0x20, 0x50, 0x4c, 0x43, 0x00, 0x1b, 0x5b, 0x32, 0x4a, 0xff, 0xc3, 0xa9, 0x0a, 0x20]);
  t.equal(identityText(bytes, 0, bytes.length), 'PLC??[2J?é?', 'control bytes and a bad UTF-8 byte replaced, é kept, outer spaces trimmed');
  const long = new Uint8Array(600).fill(0x41);
  t.equal(identityText(long, 0, long.length).length, IDENTITY_TEXT_MAX);
  const adu = deviceIdAnswer([[0, 'Evil\u0007Corp'], [4, '']]);
  const answer = new DeviceIdAnswer();
  decodeDeviceId(adu, 0, adu.length, answer);
  t.same(deviceIdFields(adu, answer), { vendorName: 'Evil?Corp', unit: '3' }, 'an empty object is left out');
});
