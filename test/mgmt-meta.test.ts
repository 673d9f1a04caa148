// GET /api/v1/meta: the lists the web UI offers (roles, event types, severities, the password
// minimum) come from the server's own definitions, for anyone (the first-admin form needs them).

import t from 'tap';
import { eventTypes, severityNames } from '../appliance/ipc/events';
import { PASSWORD_MIN_LENGTH } from '../appliance/mgmt/auth/passwords';
import { roleDescriptions, roles } from '../appliance/mgmt/auth/roles';
import { startTestServer, USERS } from './lib/mgmt-fixture';

t.test('GET /api/v1/meta gives the server lists, without a login', async (t) => {
  const s = await startTestServer(t);
  const anonymous = await s.call(undefined, 'GET', '/api/v1/meta');
  t.equal(anonymous.status, 200);
  t.same(anonymous.json, {
    roles: roles.map((name) => ({ name, description: roleDescriptions[name] })),
    eventTypes: [...eventTypes],
    severities: [...severityNames],
    passwordMinLength: PASSWORD_MIN_LENGTH,
  });
  t.same(anonymous.json.roles.map((r: { name: string }) => r.name), ['viewer', 'operator', 'admin'], 'least privileged first');
  t.equal(anonymous.json.passwordMinLength, 12);
  t.ok(anonymous.json.eventTypes.includes('policy.applied'));
  t.equal(anonymous.json.severities[0], 'emergency', 'most severe first');

  const viewer = await s.login(USERS[2].name, USERS[2].password);
  t.same((await s.call(viewer, 'GET', '/api/v1/meta')).json, anonymous.json, 'the same when logged in');
  const openapi = (await s.call(viewer, 'GET', '/api/v1/openapi.json')).json;
  t.ok(openapi.paths['/api/v1/meta'], 'documented in the OpenAPI description');
});
