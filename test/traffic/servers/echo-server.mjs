#!/usr/bin/env node
// Endpoint server for the traffic tests, run inside a pod namespace. Like the kernel
// harness's echo server it answers with one JSON line naming itself and the peer it saw,
// but a TCP connection stays open afterwards and every line the client sends gets another
// answer: a held connection can be probed long after it was made (endpoint churn,
// restarts). One-shot clients simply close after the first line.
//
//   node echo-server.mjs --name pod-a [--tcp 8080]... [--udp 5353]...
//
// Listens on :: (IPv4 too). Prints "READY" once every socket listens; exits on SIGTERM.
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    tcp: { type: 'string', multiple: true, default: [] },
    udp: { type: 'string', multiple: true, default: [] },
  },
});
if (!values.name) {
  process.stderr.write('echo-server: --name is required\n');
  process.exit(2);
}
const name = values.name;

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`. */
const plain = (address) =>
  address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;

const reply = (proto, peer, peerPort, localPort, seq) =>
  `${JSON.stringify({ name, proto, peer: plain(peer), peerPort, localPort, seq })}\n`;

function port(text, what) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    process.stderr.write(`echo-server: bad ${what} port ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}

const listening = [];

for (const p of values.tcp) {
  const server = net.createServer((socket) => {
    let seq = 0;
    let pending = '';
    const answer = () =>
      socket.write(reply('tcp', socket.remoteAddress, socket.remotePort, socket.localPort, seq++));
    socket.on('error', () => {});
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      pending += chunk;
      let nl = pending.indexOf('\n');
      while (nl !== -1) {
        pending = pending.slice(nl + 1);
        answer();
        nl = pending.indexOf('\n');
      }
    });
    answer();
  });
  listening.push(
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: port(p, 'tcp'), host: '::', ipv6Only: false }, resolve);
    }),
  );
}

for (const p of values.udp) {
  const socket = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  socket.on('message', (_msg, rinfo) => {
    socket.send(reply('udp', rinfo.address, rinfo.port, socket.address().port, 0), rinfo.port, rinfo.address);
  });
  listening.push(
    new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ port: port(p, 'udp'), address: '::' }, resolve);
    }),
  );
}

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));

Promise.all(listening).then(
  () => process.stdout.write('READY\n'),
  (err) => {
    process.stderr.write(`echo-server ${name}: ${err.message}\n`);
    process.exit(1);
  },
);
