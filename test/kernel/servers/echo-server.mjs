#!/usr/bin/env node
// Test server run inside a pod namespace: answers every TCP connection and every UDP
// datagram with one JSON line naming itself and the peer address it saw, so tests can
// tell which endpoint a connection landed on and whether its source was masqueraded.
//
//   node echo-server.mjs --name pod-a [--tcp 8080]... [--udp 5353]... [--host ::]
//
// Prints "READY" on stdout once every socket listens. Exits on SIGTERM/SIGINT.
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    name: { type: 'string' },
    tcp: { type: 'string', multiple: true, default: [] },
    udp: { type: 'string', multiple: true, default: [] },
    host: { type: 'string', default: '::' },
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

const reply = (proto, peer, peerPort, local, localPort) =>
  `${JSON.stringify({ name, proto, peer: plain(peer), peerPort, local: plain(local), localPort })}\n`;

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
    socket.on('error', () => {});
    socket.end(reply('tcp', socket.remoteAddress, socket.remotePort, socket.localAddress, socket.localPort));
  });
  listening.push(
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: port(p, 'tcp'), host: values.host, ipv6Only: false }, resolve);
    }),
  );
}

for (const p of values.udp) {
  const type = net.isIPv4(values.host) ? 'udp4' : 'udp6';
  const socket = dgram.createSocket({ type, ipv6Only: false });
  socket.on('message', (_msg, rinfo) => {
    // The destination address of a datagram is not visible without IP_PKTINFO: port only.
    socket.send(
      reply('udp', rinfo.address, rinfo.port, undefined, socket.address().port),
      rinfo.port,
      rinfo.address,
    );
  });
  listening.push(
    new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ port: port(p, 'udp'), address: values.host }, resolve);
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
