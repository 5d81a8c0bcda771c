#!/usr/bin/env node
// Holds one TCP connection open, run inside a client namespace. Prints one JSON line per
// line the server sends ({ ok: true, name, peer, seq, ... }); each line read on stdin is
// sent to the server as a probe, except `reset`, which aborts the connection with a TCP RST
// (so it leaves no TIME_WAIT behind). When the connection fails or closes it prints
// { ok: false, error } (an errno code, TIMEOUT for a connect that got no answer, or
// CLOSED) and exits.
//
//   node hold-client.mjs --host IP --port P [--timeout-ms T] [--source IP]
import net from 'node:net';
import readline from 'node:readline';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    'timeout-ms': { type: 'string', default: '3000' },
    source: { type: 'string' },
  },
});

function fail(message) {
  process.stderr.write(`hold-client: ${message}\n`);
  process.exit(2);
}
const host = values.host ?? fail('--host is required');
if (!net.isIP(host)) fail(`--host must be an IP address, got ${JSON.stringify(host)}`);
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad --port ${JSON.stringify(values.port)}`);

const print = (result) => process.stdout.write(`${JSON.stringify(result)}\n`);
let finished = false;
const finish = (error) => {
  if (finished) return;
  finished = true;
  print({ ok: false, error });
  process.exit(0);
};

const options = { host, port };
if (values.source) options.localAddress = values.source;
const socket = net.connect(options);
const connectTimer = setTimeout(() => finish('TIMEOUT'), Number(values['timeout-ms']));
socket.setEncoding('utf8');
let pending = '';
socket.on('data', (chunk) => {
  clearTimeout(connectTimer);
  pending += chunk;
  let nl = pending.indexOf('\n');
  while (nl !== -1) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    try {
      print({ ok: true, ...JSON.parse(line) });
    } catch {
      print({ ok: false, error: 'BAD_REPLY', text: line });
    }
    nl = pending.indexOf('\n');
  }
});
socket.on('error', (err) => finish(err.code ?? err.message));
socket.on('close', () => finish('CLOSED'));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  // the socket's 'close' then ends the client
  if (line.trim() === 'reset') {
    socket.resetAndDestroy();
  } else {
    socket.write('probe\n');
  }
});
process.stdin.on('end', () => socket.destroy());
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
