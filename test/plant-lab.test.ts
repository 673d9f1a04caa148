// The plant lab on its own (test/lib/plant-lab.ts), through a real gatekeeper connected to a real
// management process with a real rsyslog as SIEM: under an allow-all policy every service of the
// plant works across the appliance (Modbus reads and a write against the PLC's pymodbus server,
// the PLC's pushes to the historian, pings, tcp/22 as the control), the PLC's lldpd frames and the
// engineering station's DHCP exchange with its host name are on the wire (tcpdump on the switch's
// uplink, the gatekeeper's outside), and the newcomer can join the switch. Then a restrictive policy
// applied through management: the same everyday traffic passes, conversations it does not name are
// denied (and reach the SIEM as deny.summary), and the HMI's write is refused by the Modbus block.
// This is what the learn tests (learn-lab, ui-learn-walkthrough) stand on.

import t from 'tap';
import { PlantMgmt, sdParam, siemEvents, startSiem } from './lib/plant-mgmt';
import { engWrite, plant, plantHosts as H, plantLabUnavailable, sleep, startPlant } from './lib/plant-lab';

const allowAll = `version: 1
default: deny
rules:
  - name: allow-all
    from: any
    to: any
    service: any
    action: allow
l2:
  allow: [lldp]
`;

/** What an engineer would write by hand for this plant: what the learn tests must end up with. */
const restrictive = `version: 1
default: deny
groups:
  hmi: ${H.hmi.ip}
  eng: ${H.eng.ip}
  historian: ${H.historian.ip}
  plc: ${H.plc.ip}
  outside: [hmi, eng, historian]
rules:
  - name: hmi-reads-plc
    from: hmi
    to: plc
    service: modbus
    action: allow
    modbus:
      functions: [read]
  - name: eng-programs-plc
    from: eng
    to: plc
    service: modbus
    action: allow
    modbus:
      functions: [read-holding-registers, write-single-register]
  - name: plc-pushes-historian
    from: plc
    to: historian
    service: tcp/${plant.historianPort}
    action: allow
  - name: outside-pings-plc
    from: outside
    to: plc
    service: ping
    action: allow
`;

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

t.test('the plant lab through a real gatekeeper', { skip: plantLabUnavailable() }, async (t) => {
  const started = Date.now();
  const lab = await startPlant(t);
  const mgmt = await PlantMgmt.create(t, allowAll);
  const admin = await mgmt.login();
  const siem = await startSiem(t, mgmt, admin);
  await lab.startDataplane(allowAll, mgmt.socketPath);
  await mgmt.waitForPair(admin, lab.pair);
  t.comment(`# plant lab up (7 namespaces, services, management, rsyslog, dataplane connected) in ${Date.now() - started} ms`);
  const modbus = lab.modbus!;
  const historian = lab.historian!;
  const ssh = lab.plcSsh!;

  await t.test('the DHCP exchange and the PLC\'s LLDP frames are on the wire at the gatekeeper', async (t) => {
    const dhcpCapture = await lab.capture(lab.sw, 'up0', 'udp port 67 or udp port 68');
    const lldpCapture = await lab.capture(lab.sw, 'up0', 'ether proto 0x88cc');
    const dhcp = await lab.dhcp();
    t.match(dhcp.stdout + dhcp.stderr, new RegExp(`lease of ${H.eng.ip.replace(/\./g, '\\.')} obtained from ${H.historian.ip.replace(/\./g, '\\.')}`),
      'the engineering station got its fixed lease from dnsmasq on the historian');
    // lldpd announces every 2 s: wait for one frame after the capture began.
    await sleep(2500);
    const dhcpText = await dhcpCapture.stop();
    const lldpText = await lldpCapture.stop();
    t.match(dhcpText, new RegExp(`${H.eng.mac} > ff:ff:ff:ff:ff:ff.*\\n(.*\\n)*?.*DHCP-Message \\(53\\), length 1: Discover`),
      'the discover, broadcast from the engineering station, reaches the gatekeeper\'s outside port');
    t.match(dhcpText, new RegExp(`Hostname \\(12\\), length ${plant.dhcpName.length}: "${plant.dhcpName}"`), 'with its host name (option 12)');
    t.match(dhcpText, /DHCP-Message \(53\), length 1: Request/, 'and so does the request');
    t.match(lldpText, new RegExp(`${H.plc.mac} > 01:80:c2:00:00:0e, ethertype LLDP`), 'the PLC\'s LLDP frames cross the gatekeeper (l2: allow lldp)');
    t.match(lldpText, new RegExp(`System Name TLV \\(5\\), length ${plant.lldpName.length}: ${plant.lldpName}`), 'naming the PLC');
    t.match(lldpText, new RegExp(`System Description TLV \\(6\\), length \\d+\\s*\\n?\\s*${plant.lldpDescription.replace(/[()]/g, '\\$&')}`),
      'and describing it');
  });

  await t.test('allow-all: every service of the plant works across the appliance', async (t) => {
    const mark = modbus.mark();
    for (const host of ['hmi', 'eng'] as const) {
      const r = await lab.readRegisters(host);
      t.equal(r.status, 0, `${host} reads: ${r.stderr}`);
      t.same(r.values, range(1000, 10), `${host} gets holding registers 0-9 from the PLC`);
    }
    const write = await lab.writeRegister('eng');
    t.equal(write.status, 0, `the engineering station writes: ${write.stderr}`);
    t.same(modbus.executed(mark).map((e) => e.function), [3, 3, 6], 'the PLC executed two reads and the write');
    t.equal(modbus.memory().holding[engWrite.register - 1], engWrite.value, 'the register holds the written value');

    const hist = historian.mark();
    const push = await lab.sendLine('plc', 'historian', plant.historianPort, 'plc-line1 hr0=1000');
    t.equal(push.status, 0, `the PLC pushes to the historian: ${push.stderr}`);
    await sleep(200);
    t.same(historian.received(hist), [{ peer: H.plc.ip, bytes: 'plc-line1 hr0=1000\n'.length }], 'the historian received the line from the PLC');

    for (const host of ['hmi', 'eng', 'historian'] as const) {
      const r = await lab.ping(host, 'plc');
      t.equal(r.status, 0, `${host} pings the PLC (${/\d+ received/.exec(r.stdout)?.[0] ?? r.stdout})`);
    }
    const sshMark = ssh.mark();
    t.equal((await lab.connect('hmi', 'plc', plant.sshPort)).status, 0, 'control: tcp/22 from the HMI connects under allow-all');
    await sleep(200);
    t.same(ssh.accepted(sshMark), [H.hmi.ip], '... and the PLC\'s listener saw it');

    lab.addNewcomer();
    const newcomer = await lab.ping('newcomer', 'plc', 3);
    t.equal(newcomer.status, 0, `the newcomer, plugged into the switch, pings the PLC (${/\d+ received/.exec(newcomer.stdout)?.[0] ?? newcomer.stdout})`);
  });

  await t.test('a restrictive policy applied through management: the named traffic passes, the rest is denied', async (t) => {
    const applied = await mgmt.must(admin, 'POST', '/api/v1/policy/apply', { text: restrictive, comment: 'the plant, by hand' });
    t.match(applied, { version: 2, pairs: [{ pair: lab.pair }] }, 'applied on the pair');

    const mark = modbus.mark();
    const read = await lab.readRegisters('hmi');
    t.same(read.values, range(1000, 10), `the HMI still reads: ${read.stderr}`);
    const hmiWrite = await lab.writeRegister('hmi', 12, 99);
    t.not(hmiWrite.status, 0, 'the HMI\'s write (function 6) fails');
    t.match(hmiWrite.stderr, /reset by peer/i, `refused by the Modbus block with a reset (${hmiWrite.stderr.trim()})`);
    const engWriteRun = await lab.writeRegister('eng', engWrite.register, 8);
    t.equal(engWriteRun.status, 0, `the engineering station still writes: ${engWriteRun.stderr}`);
    await sleep(200);
    t.same(modbus.executed(mark).map((e) => e.function), [3, 6], 'the PLC executed the HMI\'s read and the engineering station\'s write');
    t.same(modbus.writesReceived(mark), [6, 6], 'the HMI\'s write never reached it (one write, delivered and executed)');
    t.equal(modbus.memory().holding[11], 1011, 'the register the HMI tried to write is unchanged');

    const hist = historian.mark();
    t.equal((await lab.sendLine('plc', 'historian', plant.historianPort)).status, 0, 'the PLC still pushes to the historian');
    for (const host of ['hmi', 'eng', 'historian'] as const) t.equal((await lab.ping(host, 'plc')).status, 0, `${host} still pings the PLC`);
    await sleep(200);
    t.same(historian.accepted(hist), [H.plc.ip], 'the historian saw the PLC');

    const sshMark = ssh.mark();
    const denied = await lab.connect('hmi', 'plc', plant.sshPort);
    t.not(denied.status, 0, 'HMI → PLC tcp/22 is denied');
    t.ok(denied.ms >= 1500, `... dropped, not refused: the attempt timed out (${denied.ms} ms)`);
    const histModbus = await lab.readRegisters('historian');
    t.not(histModbus.status, 0, 'historian → PLC Modbus (it only pings) is denied');
    t.not((await lab.ping('plc', 'hmi', 1)).status, 0, 'PLC → HMI ping (the other way) is denied');
    t.not((await lab.ping('newcomer', 'plc', 1)).status, 0, 'the newcomer, in no group, is denied');
    await sleep(200);
    t.same(ssh.accepted(sshMark), [], 'nothing reached the PLC\'s tcp/22');

    // deny.summary events are drained every 10 s; rsyslog writes in batches.
    const deadline = Date.now() + 20_000;
    const summaryFor22 = () => siemEvents(siem, 'deny.summary')
      .find((m) => sdParam(m, 'src') === H.hmi.ip && sdParam(m, 'dst') === H.plc.ip && sdParam(m, 'dstPort') === String(plant.sshPort));
    while (!summaryFor22() && Date.now() < deadline) await sleep(250);
    t.ok(summaryFor22(), `the denied tcp/22 reached the SIEM as deny.summary: ${summaryFor22()?.msg ?? siem.lines('siem').slice(-5).join('\n')}`);
  });

  t.comment(`# plant lab sanity took ${Date.now() - started} ms`);
});
