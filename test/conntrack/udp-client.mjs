#!/usr/bin/env node
// UDP test client run inside a namespace: sends N datagrams to host:port from ONE socket bound
// to a fixed source port, so every datagram (and every run with the same --sport) has the
// same 5-tuple and hence the same conntrack entry. Waits for each answer (the echo-server's
// JSON line) before sending the next. Prints { results: [...] }: { ok: true, name, ... } or
// { ok: false, error } with error an errno code (ECONNREFUSED: ICMP port unreachable, from a
// REJECT rule or a pod without a server) or TIMEOUT.
//
//   node udp-client.mjs --host IP --port P --sport S [--count N] [--timeout-ms T]
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    sport: { type: 'string' },
    count: { type: 'string', default: '1' },
    'timeout-ms': { type: 'string', default: '1000' },
  },
});

function fail(message) {
  process.stderr.write(`udp-client: ${message}\n`);
  process.exit(2);
}
function portArg(name) {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`bad --${name} ${JSON.stringify(values[name])}`);
  return n;
}
const host = values.host ?? fail('--host is required');
if (!net.isIP(host)) fail(`--host must be an IP address, got ${JSON.stringify(host)}`);
const port = portArg('port');
const sport = portArg('sport');
const count = Number(values.count);
const timeoutMs = Number(values['timeout-ms']);

const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
let pending = null;
socket.on('message', (msg) => {
  const line = msg.toString('utf8').split('\n')[0];
  try {
    pending?.({ ok: true, ...JSON.parse(line) });
  } catch {
    pending?.({ ok: false, error: 'BAD_REPLY', text: line });
  }
});
// A connected UDP socket reports ICMP port-unreachable as ECONNREFUSED.
socket.on('error', (err) => pending?.({ ok: false, error: err.code ?? err.message }));

function exchange() {
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish({ ok: false, error: 'TIMEOUT' }), timeoutMs);
    const finish = (result) => {
      clearTimeout(timer);
      pending = null;
      resolve(result);
    };
    pending = finish;
    socket.send('ping', (err) => {
      if (err) finish({ ok: false, error: err.code ?? err.message });
    });
  });
}

await new Promise((resolve, reject) => {
  socket.once('error', reject);
  socket.bind({ port: sport, exclusive: true }, () => {
    socket.off('error', reject);
    socket.connect(port, host, (err) => (err ? reject(err) : resolve()));
  });
}).catch((err) => fail(`cannot bind/connect from port ${sport}: ${err.message}`));

const results = [];
for (let i = 0; i < count; i++) results.push(await exchange());
socket.close();
process.stdout.write(`${JSON.stringify({ results })}\n`);
