/**
 * HTTP plumbing shared by the health, metrics and health-check node port servers: kube-proxy's
 * `host:port` bind addresses, listening the way Go does, fixed-body responses, and closing without
 * leaving sockets behind.
 */

import type { IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InputError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseIP } from '../model/ip.js';

export interface BindAddress {
  /** an IP, or '' for every address */
  host: string;
  port: number;
}

/**
 * Parses `ip:port`, `[ipv6]:port` or `:port` (what healthzBindAddress and metricsBindAddress hold
 * after kube-proxy's defaulting). `field` names the setting in the error.
 */
export function parseBindAddress(text: string, field: string): BindAddress {
  const fail = (why: string): never => {
    throw new InputError(`${field}: ${JSON.stringify(text)}: ${why}`);
  };
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return fail('expected [IPv6]:port');
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return fail('expected host:port');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return fail('an IPv6 address must be written in brackets, as [IPv6]:port');
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return fail('the port must be 0-65535');
  if (host !== '') {
    const ip = parseIP(host);
    if (!ip) return fail(`${JSON.stringify(host)} is not an IP address`);
    host = ip.text;
  }
  return { host, port: Number(portText) };
}

/** The unspecified address, which Go (and so kube-proxy) listens on with one dual-stack socket. */
export function isWildcardHost(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::';
}

/**
 * Starts `server` on `address`. A wildcard host listens without a host, which Node (like Go) turns
 * into a dual-stack `::` socket, or `0.0.0.0` where IPv6 is unavailable. Rejects with the listen
 * error (EADDRINUSE, EACCES, EADDRNOTAVAIL, ...).
 */
export function listen(server: Server, address: BindAddress): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(
      isWildcardHost(address.host) ? { port: address.port } : { host: address.host, port: address.port },
    );
  });
}

/**
 * Listens and logs `<what> server listening` with the bound address; rejects with an error
 * that names the server and the address it could not bind.
 */
export async function startListening(
  server: Server,
  address: BindAddress,
  what: string,
  log: Logger,
): Promise<AddressInfo> {
  try {
    const bound = await listen(server, address);
    log.info({ address: formatAddress(bound) }, `${what} server listening`);
    return bound;
  } catch (err) {
    throw new Error(
      `failed to start the ${what} server on ${formatAddress(address)}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** Stops accepting, drops every connection (idle keep-alives included) and resolves once closed. */
export function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** `host:port` for logs and errors. */
export function formatAddress(address: BindAddress | AddressInfo): string {
  const host = 'address' in address ? address.address : address.host;
  return host.includes(':') ? `[${host}]:${address.port}` : `${host}:${address.port}`;
}

/** The request's path, without the query. */
export function requestPath(req: IncomingMessage): string {
  return new URL(req.url ?? '/', 'http://localhost').pathname;
}

/** Whether the request's query has `name` (with or without a value), as Go's `Query()[name]` tests it. */
export function hasQueryParameter(req: IncomingMessage, name: string): boolean {
  return new URL(req.url ?? '/', 'http://localhost').searchParams.has(name);
}

/** Writes a whole response. */
export function respond(
  res: ServerResponse,
  status: number,
  headers: OutgoingHttpHeaders,
  body: string,
): void {
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Go's http.NotFound, which unknown paths of a ServeMux get. */
export function notFound(res: ServerResponse): void {
  respond(
    res,
    404,
    { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' },
    '404 page not found\n',
  );
}
