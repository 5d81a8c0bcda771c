#!/usr/bin/env node
// Test client run inside a namespace: makes N connections (TCP) or N exchanges (UDP, each
// from a new socket, so a new source port and a new conntrack entry) to host:port and
// prints one JSON document: { results: [...] } in attempt order. Each result is either
// { ok: true, name, peer, peerPort, local, localPort } (the echo-server's reply) or
// { ok: false, error } where error is an errno code (ECONNREFUSED, EHOSTUNREACH, ...),
// TIMEOUT (no answer within --timeout-ms) or EMPTY (connection closed without a reply).
//
//   node client.mjs --proto tcp|udp --host IP --port P [--count N] [--timeout-ms T]
//                   [--concurrency C] [--source IP]
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    proto: { type: 'string', default: 'tcp' },
    host: { type: 'string' },
    port: { type: 'string' },
    count: { type: 'string', default: '1' },
    'timeout-ms': { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '1' },
    source: { type: 'string' },
  },
});

function fail(message) {
  process.stderr.write(`client: ${message}\n`);
  process.exit(2);
}
const host = values.host ?? fail('--host is required');
if (!net.isIP(host)) fail(`--host must be an IP address, got ${JSON.stringify(host)}`);
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad --port ${JSON.stringify(values.port)}`);
const count = Number(values.count);
const timeoutMs = Number(values['timeout-ms']);
const concurrency = Math.max(1, Number(values.concurrency));
if (values.proto !== 'tcp' && values.proto !== 'udp') fail(`--proto must be tcp or udp, got ${values.proto}`);

function parseReply(text) {
  const line = text.split('\n')[0];
  try {
    return { ok: true, ...JSON.parse(line) };
  } catch {
    return { ok: false, error: 'BAD_REPLY', text };
  }
}

function tcpOnce() {
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const options = { host, port };
    if (values.source) options.localAddress = values.source;
    const socket = net.connect(options);
    const timer = setTimeout(() => finish({ ok: false, error: 'TIMEOUT' }), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      data += chunk;
      if (data.includes('\n')) finish(parseReply(data));
    });
    socket.on('end', () => finish(data ? parseReply(data) : { ok: false, error: 'EMPTY' }));
    socket.on('error', (err) => finish({ ok: false, error: err.code ?? err.message }));
  });
}

function udpOnce() {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'TIMEOUT' }), timeoutMs);
    socket.on('message', (msg) => finish(parseReply(msg.toString('utf8'))));
    // A connected UDP socket reports ICMP port-unreachable as ECONNREFUSED.
    socket.on('error', (err) => finish({ ok: false, error: err.code ?? err.message }));
    const connect = () =>
      socket.connect(port, host, (err) => {
        if (err) return finish({ ok: false, error: err.code ?? err.message });
        socket.send('ping', (sendErr) => {
          if (sendErr) finish({ ok: false, error: sendErr.code ?? sendErr.message });
        });
      });
    if (values.source) socket.bind({ address: values.source, port: 0 }, connect);
    else connect();
  });
}

const once = values.proto === 'tcp' ? tcpOnce : udpOnce;
const results = new Array(count);
let next = 0;
async function worker() {
  while (next < count) {
    const i = next++;
    results[i] = await once();
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
process.stdout.write(`${JSON.stringify({ results })}\n`);
