/**
 * Run by stop.test.ts in a child process: brings a ClusterSource into the state named by
 * argv[2], stops it and the API double, and then simply returns. The process must exit on
 * its own: a leftover timer, socket or request would keep it alive.
 */
import { ObjectStore } from '../../src/model/store.js';
import { ClusterSource } from '../../src/sources/cluster.js';
import { FakeApiServer } from './fake-apiserver.js';
import { captureLogger, FAST_TIMING, NODE_NAME, node, service, sleep, waitFor } from './harness.js';

const scenario = process.argv[2];
const fake = await FakeApiServer.start({ bookmarkIntervalMs: 50 });
fake.apply('services', service('web', '10.96.0.10'));
fake.apply('nodes', node(NODE_NAME));
const store = new ObjectStore(NODE_NAME);
let synced = false;
const source = new ClusterSource({
  nodeName: NODE_NAME,
  log: captureLogger().log,
  kubeConfig: fake.kubeConfig(),
  // Long backoff and inactivity timers: if stop() left one behind, the process would hang on it.
  timing: {
    ...FAST_TIMING,
    inactivityTimeoutMs: 60_000,
    backoff: { initialMs: 60_000, maxMs: 60_000, resetAfterMs: 120_000 },
  },
});

if (scenario === 'backoff') await fake.refuse();
await source.start(
  (e) => store.apply(e),
  () => {
    synced = true;
  },
);
switch (scenario) {
  case 'synced':
    await waitFor(() => synced && fake.openWatches === 3, 'synced with open watches');
    break;
  case 'backoff':
    await sleep(200); // every collection's first list failed; each waits 30-60 s before the next
    break;
  case 'silent':
    fake.silence(true);
    await waitFor(() => synced && fake.openWatches === 3, 'synced with open watches');
    fake.dropWatches();
    await sleep(200); // the new watches got headers and nothing else
    break;
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
await source.stop();
if (scenario !== 'backoff')
  await waitFor(() => fake.openWatches === 0, 'the server to see the watches closed');
await fake.close();
process.stdout.write(`stopped ${scenario}\n`);
