/**
 * The API double as a process of its own, so a test can run it inside a network namespace
 * (`ip netns exec <ns> node --import tsx fake-apiserver.script.ts ...`) where it plays the
 * control plane, listening only on that namespace's address.
 *
 *   --host ADDRESS      listen here (required)
 *   --port PORT         on this port (default: one the OS picks)
 *   --tls NAME          serve HTTPS with tls/NAME.crt and tls/NAME.key
 *   --token TOKEN       the bearer token clients must send
 *   --objects FILE      JSON: [{ "resource": "services", "object": {...} }, ...], applied in order
 *
 * Prints `READY <port>` once listening; stops on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FakeApiServer, type KubeObject, type Resource } from './fake-apiserver.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    tls: { type: 'string' },
    token: { type: 'string' },
    objects: { type: 'string' },
  },
});
if (!values.host) throw new Error('--host is required');

const tlsFile = (ext: string) => readFileSync(new URL(`./tls/${values.tls}.${ext}`, import.meta.url), 'utf8');
const fake = await FakeApiServer.start({
  host: values.host,
  port: Number(values.port ?? 0),
  bookmarkIntervalMs: 1000,
  ...(values.tls ? { tls: { key: tlsFile('key'), cert: tlsFile('crt') } } : {}),
  ...(values.token ? { token: values.token } : {}),
});
if (values.objects) {
  const entries = JSON.parse(readFileSync(values.objects, 'utf8')) as {
    resource: Resource;
    object: KubeObject;
  }[];
  for (const { resource, object } of entries) fake.apply(resource, object);
}
process.on('SIGTERM', () => {
  void fake.close().then(() => process.exit(0));
});
process.stdout.write(`READY ${fake.listeningPort}\n`);
