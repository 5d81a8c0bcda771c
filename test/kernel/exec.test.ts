/**
 * ExecaRunner against real (harmless) processes; no root needed.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CommandError, chunksOf, ExecaRunner } from '../../src/kernel/exec.js';

const runner = new ExecaRunner();
const node = process.execPath;

describe('ExecaRunner', () => {
  it('passes arguments verbatim (no shell) and input on stdin', async () => {
    const script =
      'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{process.stdout.write(JSON.stringify([process.argv.slice(1),s]))})';
    const r = await runner.run(node, ['-e', script, '$(rm -rf /)', 'a b;c'], { input: 'line 1\n' });
    expect(JSON.parse(r.stdout)).toEqual([['$(rm -rf /)', 'a b;c'], 'line 1\n']);
    expect(r.exitCode).toBe(0);
  });

  it('writes an input given as pieces one after the other, nothing between them', async () => {
    const script =
      'let s="";process.stdin.setEncoding("utf8").on("data",d=>s+=d).on("end",()=>process.stdout.write(s))';
    const pieces = ['*nat', '\n', '-A X -j Y\n-A X -j Z', '\n', 'é-'.repeat(70_000), '\n', 'COMMIT', '\n'];
    const r = await runner.run(node, ['-e', script], { input: pieces });
    expect(r.stdout === pieces.join('')).toBe(true);
  });

  it('chunksOf joins pieces in order into chunks of at most the size (a larger piece alone)', () => {
    const pieces = ['ab', 'cd', 'e', 'fghijk', 'l', '', 'mn'];
    const chunks = [...chunksOf(pieces, 4)];
    expect(chunks).toEqual(['abcd', 'e', 'fghijk', 'lmn']);
    expect([...chunksOf([], 4)]).toEqual([]);
  });

  it('a non-zero exit throws CommandError, or is returned with reject: false', async () => {
    const args = ['-e', 'process.stderr.write("bad input\\n"); process.exit(3)'];
    const error = await runner.run(node, args).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect(error).toMatchObject({ reason: 'exit', result: { exitCode: 3, stderr: 'bad input\n' } });
    expect(await runner.run(node, args, { reject: false })).toEqual({
      stdout: '',
      stderr: 'bad input\n',
      exitCode: 3,
    });
  });

  it('a timeout throws even with reject: false', async () => {
    const error = await runner
      .run(node, ['-e', 'setTimeout(() => {}, 10000)'], { timeoutMs: 200, reject: false })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'CommandError', reason: 'timeout' });
  });

  it('a missing binary is a spawn error', async () => {
    const error = await runner
      .run('switchboard-no-such-binary', [], { reject: false })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'CommandError', reason: 'spawn' });
  });

  it("keeps output past execa's default 100 million characters (iptables-save of ~25,000 services)", async () => {
    const chars = 120_000_000;
    // 1 MB written 120 times: the child never holds the whole output either.
    const script = `const b = Buffer.alloc(1e6, 97); for (let i = 0; i < ${chars / 1e6}; i++) process.stdout.write(b)`;
    const r = await runner.run(node, ['-e', script]);
    expect(r.stdout.length).toBe(chars);
    expect(r.exitCode).toBe(0);
  });

  it('output past the limit is an error, not a cut-off result', async () => {
    const small = new ExecaRunner(1000);
    const error = await small
      .run(node, ['-e', 'process.stdout.write("a".repeat(5000))'], { reject: false })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'CommandError', reason: 'output' });
    expect(String(error)).toContain('printed more than 1000 characters');
  });

  describe('onStdout: output handed over in chunks, not collected', () => {
    it('hands over every byte, in order, in many chunks; the result holds none of it', async () => {
      // seq 1 1000000 prints 6,888,896 bytes.
      const chunks: number[] = [];
      const hash = createHash('sha256');
      const r = await runner.run('seq', ['1', '1000000'], {
        onStdout: (chunk) => {
          chunks.push(chunk.length);
          hash.update(chunk);
        },
      });
      expect(r).toEqual({ stdout: '', stderr: '', exitCode: 0 });
      expect(chunks.reduce((a, b) => a + b, 0)).toBe(6_888_896);
      expect(chunks.length).toBeGreaterThan(10);
      const expected = createHash('sha256');
      for (let i = 1; i <= 1_000_000; i++) expected.update(`${i}\n`);
      expect(hash.digest('hex')).toBe(expected.digest('hex'));
    });

    it('is not bound by the output limit (nothing is buffered)', async () => {
      const small = new ExecaRunner(1000);
      let bytes = 0;
      await small.run('seq', ['1', '100000'], { onStdout: (c) => (bytes += c.length) });
      expect(bytes).toBe(588_895);
    });

    it('exit code, stderr and timeout behave as without it', async () => {
      const args = [
        '-e',
        'process.stdout.write("partial\\n"); process.stderr.write("bad input\\n"); process.exit(3)',
      ];
      const seen: string[] = [];
      const onStdout = (c: Uint8Array) => seen.push(Buffer.from(c).toString());
      const error = await runner.run(node, args, { onStdout }).catch((e: unknown) => e);
      expect(error).toMatchObject({
        reason: 'exit',
        result: { stdout: '', exitCode: 3, stderr: 'bad input\n' },
      });
      expect(await runner.run(node, args, { onStdout, reject: false })).toEqual({
        stdout: '',
        stderr: 'bad input\n',
        exitCode: 3,
      });
      expect(seen).toEqual(['partial\n', 'partial\n']);
      const timeout = await runner
        .run(node, ['-e', 'setTimeout(() => {}, 10000)'], { timeoutMs: 200, onStdout })
        .catch((e: unknown) => e);
      expect(timeout).toMatchObject({ name: 'CommandError', reason: 'timeout' });
    });

    it('a throw from the consumer ends the command and is what run throws', async () => {
      const error = await runner
        .run('seq', ['1', '1000000000'], {
          timeoutMs: 600_000,
          onStdout: () => {
            throw new Error('parser refused the input');
          },
        })
        .catch((e: unknown) => e);
      // Killed at once: run to the end it would print ~10 GB, far past the test's timeout.
      expect(error).toMatchObject({ message: 'parser refused the input' });
    });
  });
});
