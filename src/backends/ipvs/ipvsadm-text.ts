/**
 * ipvsadm command lines for virtual and real servers, in the syntax `ipvsadm -Sn` prints and
 * `ipvsadm -R` reads. The render's `### ipvs` section and the applier's batches both come
 * from here, so what is printed is what is applied. Values are canonical (state.ts), so
 * nothing from the input reaches these lines unvalidated.
 */
import { type RealServer, realServerKey, type VirtualServer, virtualServerKey } from './state.js';

type ServiceId = Pick<VirtualServer, 'protocol' | 'address' | 'port'>;

const PROTOCOL_OPTION = { TCP: '-t', UDP: '-u', SCTP: '--sctp-service' } as const;

/** `-t 10.96.0.10:80`, `-u [fd00::10]:53`, `--sctp-service 10.96.0.11:80` */
export function serviceAddress(vs: ServiceId): string {
  // virtualServerKey is `<PROTO> <host:port>`: reuse its host:port formatting.
  const key = virtualServerKey(vs);
  return `${PROTOCOL_OPTION[vs.protocol]} ${key.slice(key.indexOf(' ') + 1)}`;
}

function serviceOptions(vs: VirtualServer): string {
  let line = ` -s ${vs.scheduler}`;
  if (vs.persistenceSeconds > 0) line += ` -p ${vs.persistenceSeconds}`;
  if (vs.flags.length > 0) line += ` -b ${vs.flags.join(',')}`;
  return line;
}

/** `-A …` (add) or `-E …` (edit in place) of a virtual server, without its real servers. */
export function virtualServerLine(vs: VirtualServer, op: '-A' | '-E' = '-A'): string {
  return `${op} ${serviceAddress(vs)}${serviceOptions(vs)}`;
}

/** `-D …`: deletes a virtual server with all its real servers. */
export function deleteVirtualServerLine(vs: ServiceId): string {
  return `-D ${serviceAddress(vs)}`;
}

const FORWARDING_OPTION = { masq: '-m', gate: '-g', ipip: '-i' } as const;

/** `-a …` (add) or `-e …` (edit) of a real server of `vs`. */
export function realServerLine(vs: ServiceId, rs: RealServer, op: '-a' | '-e' = '-a'): string {
  return `${op} ${serviceAddress(vs)} -r ${realServerKey(rs)} ${FORWARDING_OPTION[rs.forwarding]} -w ${rs.weight}`;
}

/** `-d …`: deletes one real server of `vs`. */
export function deleteRealServerLine(vs: ServiceId, rs: Pick<RealServer, 'address' | 'port'>): string {
  return `-d ${serviceAddress(vs)} -r ${realServerKey(rs)}`;
}
