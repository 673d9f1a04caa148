// The HTTPS certificate: <stateDir>/tls/cert.pem and key.pem, generated self-signed on first start
// (CN = hostname, SAN hostname, 127.0.0.1, ::1) and reused afterwards. Replace both files with a
// real certificate and restart to use it.

import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { makePrivateDir } from '../state/atomic';
import { writeFileAtomic } from '../../wire/atomic-file';
import type { StateLog } from '../state/store';

export interface TlsFiles {
  key: string;
  cert: string;
}

export async function ensureCertificate(stateDir: string, log: StateLog & { info(obj: object, msg: string): void }): Promise<TlsFiles> {
  const dir = join(stateDir, 'tls');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  if (existsSync(keyPath) && existsSync(certPath)) {
    return { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
  }
  makePrivateDir(dir);
  const name = hostname();
  const notAfter = new Date();
  notAfter.setFullYear(notAfter.getFullYear() + 5);
  const pems = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: name }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
    ],
  });
  writeFileAtomic(keyPath, pems.private, { mode: 0o600 });
  writeFileAtomic(certPath, pems.cert, { mode: 0o644 });
  log.info({ cert: certPath }, 'generated a self-signed HTTPS certificate; replace cert.pem and key.pem to use your own');
  return { key: pems.private, cert: pems.cert };
}
