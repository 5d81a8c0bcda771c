/**
 * Command scripts the in-memory kernel tools (src/kernel/fakes/) must answer exactly as the
 * real tools do: same exit code, stdout and stderr for every step, and the same state
 * afterwards. ipset and ip run against the real tools on the host (test/ipvs-apply/ipset.test.ts,
 * ip-link.test.ts); ipvsadm, and ip with a real `dummy` link, only in the VM guest, which
 * has ip_vs and dummy (test/vm/guest/checks/ipvs-doubles.ts). The scripts say what they
 * probe; the expected outcome is whatever the real tool does.
 */

export interface ToolStep {
  args: string[];
  /** stdin (restore input) */
  input?: string;
}

export interface ToolScript {
  name: string;
  steps: ToolStep[];
}

/** What one step gave. */
export interface StepOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

// ---------------------------------------------------------------------------------------------
// ipvsadm (1.31). IPv4 addresses stay within 10.0.0.0/8 and 100.64.0.0/10: ipvsadm sorts its
// listings with `ntohl(a) - ntohl(b)` in a 32-bit int, which is no order at all for addresses
// 2^31 or more apart (10.x against 192.168.x); their order then depends on the kernel's hash
// table, which the double does not model (see src/kernel/fakes/ipvsadm.ts).

/** One `ipvsadm` command line, split on spaces (no script here needs a quoted word). */
const ipvsadm = (line: string, input?: string): ToolStep => ({
  args: line === '' ? [] : line.split(' '),
  ...(input === undefined ? {} : { input }),
});
const restore = (...lines: string[]): ToolStep => ipvsadm('-R', `${lines.join('\n')}\n`);

export const IPVSADM_SCRIPTS: ToolScript[] = [
  {
    name: 'an empty table; listing a missing service; -Sn refuses a service',
    steps: [
      ipvsadm('-Ln'),
      ipvsadm('-Sn'),
      ipvsadm('-Ln -t 10.0.0.1:80'),
      ipvsadm('-Ln -u 10.0.0.1:53'),
      ipvsadm('-Ln --sctp-service 10.0.0.1:80'),
      ipvsadm('-Ln -f 1'),
      ipvsadm('-Ln -t 10.0.0.1'),
      ipvsadm('-Sn -t 10.0.0.1:80'),
      ipvsadm('-L -n --timeout'),
    ],
  },
  {
    name: 'virtual servers: defaults, -E resets what it does not give, persistence, scheduler flags',
    steps: [
      ipvsadm('-A -t 10.0.0.1:80'),
      ipvsadm('-A -t 10.0.0.1:80 -s rr'),
      ipvsadm('-Sn'),
      ipvsadm('-E -t 10.0.0.1:80 -s rr -p'),
      ipvsadm('-Sn'),
      ipvsadm('-E -t 10.0.0.1:80'),
      ipvsadm('-E -t 10.0.0.1:80 -s mh -b mh-port'),
      ipvsadm('-Ln'),
      ipvsadm('-E -t 10.0.0.1:80 -s mh -b mh-port,mh-fallback -p 60'),
      ipvsadm('-Sn'),
      ipvsadm('-Ln'),
      ipvsadm('-E -t 10.0.0.1:80 -s rr -b mh-port'),
      ipvsadm('-E -t 10.0.0.9:80 -s rr'),
      ipvsadm('-E -t 10.0.0.1:80 -s rr -M 255.255.255.0'),
      ipvsadm('-E -t 10.0.0.1:80 -s rr -p 0'),
      ipvsadm('-E -t 10.0.0.1:80 -s nosuch'),
      ipvsadm('-A -t 10.0.0.5:0 -s rr'),
      ipvsadm('-A -t 10.0.0.5:0 -s rr -p 10'),
      ipvsadm('-A -t 10.0.0.2:80 -s wlc -p 60 -M 255.255.255.0'),
      ipvsadm('-A -t 10.0.0.3:80 -s sh -b sh-port'),
      ipvsadm('-A -t 10.0.9.1:80 -s rr -o'),
      ipvsadm('-A -u 10.0.9.1:53 -s rr -o'),
      ipvsadm('-A -t 10.0.9.2:80 -s rr --pe sip -p 10'),
      ipvsadm('-A -t 100.64.0.1:80 -s lc'),
      ipvsadm('-D -t 10.0.0.3:80'),
      ipvsadm('-D -t 10.0.0.3:80'),
    ],
  },
  {
    name: 'real servers: forwarding, ports, weights, edit and delete',
    steps: [
      ipvsadm('-A -t 10.0.1.1:80 -s rr'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.1:8080'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.2:8080 -i'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.3:8080 -m -w 7 -x 10 -y 5'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.3:8080 -m'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.4 -m'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.5:0 -m'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.6:8080 -m -w 65535'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.7:8080 -m -w 65536'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.8:8080 -m -w 2147483647'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.9:8080 -m -w 2147483648'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.10:8080 -m -w -1'),
      ipvsadm('-Sn'),
      ipvsadm('-Ln -t 10.0.1.1:80'),
      ipvsadm('-e -t 10.0.1.1:80 -r 10.1.0.3:8080'),
      ipvsadm('-e -t 10.0.1.1:80 -r 10.1.0.3:8080 -m -w 0'),
      ipvsadm('-e -t 10.0.1.1:80 -r 10.1.0.99:8080 -m -w 0'),
      ipvsadm('-d -t 10.0.1.1:80 -r 10.1.0.99:8080'),
      ipvsadm('-d -t 10.0.1.1:80 -r 10.1.0.4'),
      ipvsadm('-a -t 10.0.1.9:80 -r 10.1.0.3:8080 -m'),
      ipvsadm('-d -t 10.0.1.9:80 -r 10.1.0.3:8080'),
      ipvsadm('-D -t 10.0.1.9:80'),
      ipvsadm('-a -t 10.0.1.1:80 -r [fd00::1]:80 -m'),
      ipvsadm('-a -t 10.0.1.1:80 -r [fd00::1]:80 -i'),
      ipvsadm('-a -t 10.0.1.1:80 -r 10.1.0.300:80 -m'),
      ipvsadm('-Ln -t 10.0.1.1:80'),
    ],
  },
  {
    name: 'ipvsadm -R: a refused line does not stop the batch; the exit code is the last line’s',
    steps: [
      restore('-A -t 10.0.2.1:80 -s rr', '-a -t 10.0.2.1:80 -r 10.1.0.1:80 -m -w 1'),
      restore(
        '-A -t 10.0.2.1:80 -s rr',
        '-e -t 10.0.2.1:80 -r 10.1.0.2:80 -m -w 1',
        '-a -t 10.0.2.1:80 -r 10.1.0.3:80 -m -w 1',
        '-A -t 10.0.2.5:80 -s nosuchsched',
        '-a -t 10.0.9.9:80 -r 10.1.0.3:80 -m',
        '-D -t 10.0.9.9:80',
        '-d -t 10.0.2.1:80 -r 10.1.1.1:80',
        '-E -t 10.0.9.9:80 -s rr',
      ),
      restore('-A -t 10.0.2.1:80 -s rr', '-A -t 10.0.2.2:80 -s rr'),
      restore('-A -t 10.0.2.3:80 -s rr --bogus', '-A -t 10.0.2.4:80 -s rr'),
      restore('-A -t 10.0.2.6:80 -s rr -w', '-A -t 10.0.2.7:80 -s rr'),
      restore('', '   ', '-A -t 10.0.2.8:80 -s rr -p', '', '-a -t 10.0.2.8:80 -r 10.1.0.1:80 -m'),
      restore('-A -t 10.0.2.9:80 -s mh -b mh-port', '-A -u 10.0.2.9:53 -s rr -p 10800'),
      ipvsadm('-Sn'),
    ],
  },
  {
    name: 'ipvsadm -R: a parse error stops the batch, keeping the lines before it',
    steps: [
      restore('-A -t 10.0.3.1:80 -s rr', '# a comment', '-A -t 10.0.3.2:80 -s rr'),
      restore('-A -t 10.0.3.3:80 -s rr', '-a -t 10.0.3.3:80 -r 10.1.0.300:80 -m', '-A -t 10.0.3.4:80 -s rr'),
      restore('-A -t 10.0.3.5:80 -s rr extra', '-A -t 10.0.3.6:80 -s rr'),
      restore('-t 10.0.3.7:80 -A -s rr', '-A -t 10.0.3.8:80 -s rr'),
      restore('-A -t 10.0.3.9:80 -s rr -p 0', '-A -t 10.0.3.10:80 -s rr'),
      restore('-A -t 10.0.3.11:80 -s rr -b mh-port', '-A -t 10.0.3.12:80 -s rr'),
      restore('-C', '-A -t 10.0.3.13:80 -s rr'),
      ipvsadm('-Sn'),
    ],
  },
  {
    name: 'UDP, SCTP and IPv6 virtual servers; listing each kind',
    steps: [
      ipvsadm('-A -u 10.0.4.1:53 -s rr -p 10800'),
      ipvsadm('-a -u 10.0.4.1:53 -r 10.1.0.1:5353 -m'),
      ipvsadm('-A --sctp-service 10.0.4.1:80 -s rr'),
      ipvsadm('-a --sctp-service 10.0.4.1:80 -r 10.1.0.1:8080 -m'),
      ipvsadm('-A -t [fd00::10]:80 -s rr'),
      ipvsadm('-a -t [fd00::10]:80 -r [fd00::20]:8080 -m'),
      ipvsadm('-a -t [fd00::10]:80 -r [fd00::3]:8080 -m'),
      ipvsadm('-a -t [fd00::10]:80 -r [fd00::3]:80 -m'),
      ipvsadm('-a -t [fd00::10]:80 -r fd00::4 -m'),
      ipvsadm('-a -t [fd00::10]:80 -r [fd00::5] -m'),
      ipvsadm('-a -t [fd00::10]:80 -r 10.1.0.1:80 -m'),
      ipvsadm('-A -t fd00::11:80 -s rr'),
      ipvsadm('-A -t [fd00::1]:80 -s rr'),
      ipvsadm('-A -t [fe80::1]:80 -s rr'),
      ipvsadm('-A -t [2001:db8::1]:80 -s rr'),
      ipvsadm('-A -u [fd00::1]:80 -s rr'),
      ipvsadm('-A -t [fd00::1]:443 -s rr -p 30'),
      ipvsadm('-Ln -t [fd00::10]:80'),
      ipvsadm('-Ln -u 10.0.4.1:53'),
      ipvsadm('-Ln --sctp-service 10.0.4.1:80'),
      ipvsadm('-D -t [fd00::1]:80'),
    ],
  },
  {
    name: 'firewall-mark services (never touched by Switchboard, read around)',
    steps: [
      ipvsadm('-A -f 1 -s rr'),
      ipvsadm('-A -f 2 -6 -s rr'),
      ipvsadm('-A -6 -f 3 -s rr'),
      ipvsadm('-a -f 1 -r 10.1.0.1 -g'),
      ipvsadm('-a -f 1 -r 10.1.0.2:77 -m'),
      ipvsadm('-a -f 2 -6 -r [fd00::2]:0 -g'),
      ipvsadm('-A -t 10.0.5.1:80 -s rr'),
      ipvsadm('-Ln -f 1'),
      ipvsadm('-Ln -f 2 -6'),
      ipvsadm('-D -f 1'),
    ],
  },
  {
    name: 'timeouts',
    steps: [
      ipvsadm('-L --timeout'),
      ipvsadm('--set 0 30 0'),
      ipvsadm('-L -n --timeout'),
      ipvsadm('--set 1000 100 200'),
      ipvsadm('-L --timeout'),
      ipvsadm('--set 1 2'),
      ipvsadm('--set a b c'),
    ],
  },
  {
    name: 'clear',
    steps: [ipvsadm('-A -t 10.0.6.1:80 -s rr'), ipvsadm('-A -f 9 -s rr'), ipvsadm('-C'), ipvsadm('-Ln')],
  },
];

/** Read after each ipvsadm script, then the table is cleared and the timeouts set back. */
export const IPVSADM_FINAL: ToolStep[] = [ipvsadm('-Sn'), ipvsadm('-Ln')];
export const IPVSADM_RESET: ToolStep[] = [ipvsadm('-C'), ipvsadm('--set 900 120 300')];

// ---------------------------------------------------------------------------------------------
// ipset (7.17)

export const IPSET_SCRIPTS: ToolScript[] = [
  {
    name: 'a userspace error drops the lines still buffered',
    steps: [
      {
        args: ['restore', '-exist'],
        input:
          'create A hash:ip,port family inet hashsize 1024 maxelem 65536\nadd A 10.0.0.1,tcp:80\nadd A 10.0.0.2,udp:53\nadd A bogus\nadd A 10.0.0.3,tcp:80\n',
      },
    ],
  },
  {
    name: 'a missing set drops the batch of another set; a create flushes what was buffered',
    steps: [
      { args: ['create', 'A', 'hash:ip,port', 'family', 'inet'] },
      { args: ['restore', '-exist'], input: 'add A 10.0.0.1,tcp:80\nadd NOPE 10.0.0.3,tcp:80\n' },
      {
        args: ['restore', '-exist'],
        input: 'add A 10.0.0.5,tcp:80\ncreate B hash:ip family inet\nadd B 10.0.0.6\nadd A bogus\n',
      },
    ],
  },
  {
    name: 'a full set keeps the elements before the one that failed',
    steps: [
      { args: ['create', 'M', 'hash:ip', 'family', 'inet', 'maxelem', '2'] },
      { args: ['restore', '-exist'], input: 'add M 1.1.1.1\nadd M 1.1.1.2\nadd M 1.1.1.3\nadd M 1.1.1.4\n' },
    ],
  },
  {
    name: '-exist ignores an existing set of the same type whatever its family; another type fails',
    steps: [
      { args: ['create', 'A', 'hash:ip,port', 'family', 'inet'] },
      {
        args: ['restore', '-exist'],
        input: 'create A hash:ip,port family inet6 hashsize 4096 maxelem 65536\n',
      },
      { args: ['restore', '-exist'], input: 'create A hash:ip family inet\n' },
    ],
  },
  {
    name: 'swap needs the same type and family; destroy of a missing set; -exist destroy',
    steps: [
      { args: ['create', 'A', 'hash:ip,port', 'family', 'inet'] },
      { args: ['create', 'B', 'hash:ip,port', 'family', 'inet6'] },
      { args: ['swap', 'A', 'B'] },
      {
        args: ['restore', '-exist'],
        input:
          'create C hash:ip,port family inet hashsize 1024 maxelem 65536\nadd C 10.0.0.7,tcp:1\nswap A C\ndestroy C\n',
      },
      { args: ['destroy', 'NOPE'] },
      { args: ['restore', '-exist'], input: 'destroy NOPE\n' },
    ],
  },
  {
    name: 'duplicates without -exist: refused alone, ignored in a batch',
    steps: [
      { args: ['create', 'A', 'hash:ip,port', 'family', 'inet'] },
      { args: ['add', 'A', '10.0.0.1,tcp:80'] },
      { args: ['restore'], input: 'add A 10.0.0.1,tcp:80\n' },
      { args: ['restore'], input: 'add A 10.0.0.7,tcp:80\nadd A 10.0.0.1,tcp:80\nadd A 10.0.0.9,tcp:80\n' },
      { args: ['restore'], input: 'del A 10.0.0.99,tcp:80\n' },
      { args: ['restore', '-exist'], input: '# a comment\nadd A fd00::1,tcp:1\n' },
    ],
  },
  {
    name: 'entries are canonicalised; /0 is refused',
    steps: [
      { args: ['create', 'N', 'hash:ip,port,net', 'family', 'inet'] },
      {
        args: ['restore', '-exist'],
        input:
          'add N 1.2.3.4,6:80,5.6.7.8/32\nadd N 1.2.3.4,udp:81,5.6.7.9/24\nadd N 1.2.3.4,sctp:82,0.0.0.0/0\n',
      },
      { args: ['create', 'P', 'bitmap:port', 'range', '0-65535'] },
      { args: ['restore', '-exist'], input: 'add P tcp:80\nadd P 81\n' },
      { args: ['test', 'P', '81'] },
      { args: ['test', 'P', '82'] },
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// ip (iproute2 6.1) on kube-ipvs0: `linkType` is `dummy` where the kernel has it (the VM
// guest), `bridge` on hosts without it.

export function ipScripts(linkType: 'dummy' | 'bridge'): ToolScript[] {
  return [
    {
      name: `kube-ipvs0 (${linkType}): create, bind, unbind, batch errors, delete`,
      steps: [
        { args: ['link', 'add', 'kube-ipvs0', 'type', linkType] },
        { args: ['link', 'add', 'kube-ipvs0', 'type', linkType] },
        // a bridge's flags are not a dummy's: the double prints a dummy's
        ...(linkType === 'dummy' ? [{ args: ['-o', 'link', 'show', 'dev', 'kube-ipvs0'] }] : []),
        { args: ['-o', 'addr', 'show', 'dev', 'kube-ipvs0'] },
        {
          args: ['-batch', '-'],
          input:
            'addr add 10.96.0.1/32 dev kube-ipvs0\naddr add 10.96.0.10/32 dev kube-ipvs0\naddr add fd00::10/128 dev kube-ipvs0\n',
        },
        { args: ['-o', 'addr', 'show', 'dev', 'kube-ipvs0'] },
        { args: ['-o', '-4', 'addr', 'show', 'dev', 'kube-ipvs0'] },
        { args: ['-o', '-6', 'addr', 'show', 'dev', 'kube-ipvs0'] },
        {
          args: ['-batch', '-'],
          input:
            'addr add 10.96.0.2/32 dev kube-ipvs0\naddr add 10.96.0.1/32 dev kube-ipvs0\naddr add 10.96.0.3/32 dev kube-ipvs0\n',
        },
        {
          args: ['-force', '-batch', '-'],
          input:
            'addr del 10.96.0.99/32 dev kube-ipvs0\naddr add 10.96.0.5/32 dev kube-ipvs0\naddr add fd00::10/128 dev kube-ipvs0\n',
        },
        { args: ['-batch', '-'], input: 'addr del fd00::99/128 dev kube-ipvs0\n' },
        { args: ['-batch', '-'], input: 'addr add 10.1.1.1/32 dev nope0\n' },
        { args: ['-o', '-4', 'addr', 'show', 'dev', 'kube-ipvs0'] },
        { args: ['link', 'del', 'kube-ipvs0'] },
        { args: ['link', 'del', 'kube-ipvs0'] },
        { args: ['-o', 'addr', 'show', 'dev', 'kube-ipvs0'] },
        { args: ['-o', 'link', 'show', 'dev', 'kube-ipvs0'] },
      ],
    },
  ];
}
