/**
 * A throwaway certificate authority for TLS tests, made with the openssl command (node's
 * crypto can check certificates but not issue them). Keys are P-256, valid for one day.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Issued {
  readonly key: Buffer;
  readonly cert: Buffer;
}

export interface TestCa {
  readonly cert: Buffer;
  /** A certificate for `subjectAltNames` like `DNS:api.example.com` or `IP:127.0.0.1`. */
  issue(commonName: string, subjectAltNames: readonly string[]): Issued;
  remove(): void;
}

function openssl(args: readonly string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error('the TLS tests need the openssl command (apt-get install openssl)', { cause: error });
    throw new Error(`openssl ${args.join(' ')} failed: ${String((error as { stderr?: Buffer }).stderr ?? error)}`, { cause: error });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function createTestCa(): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-ca-'));
  openssl(['req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=sluice test CA', '-days', '1'], dir);
  let serial = 1;
  return {
    cert: readFileSync(path.join(dir, 'ca.crt')),
    issue: (commonName, subjectAltNames) => {
      const name = `leaf${++serial}`;
      writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${subjectAltNames.join(',')}\n`);
      openssl(['req', '-new', ...EC_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${commonName}`], dir);
      openssl(
        ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(serial), '-days', '1', '-out', `${name}.crt`, '-extfile', `${name}.ext`],
        dir,
      );
      return { key: readFileSync(path.join(dir, `${name}.key`)), cert: readFileSync(path.join(dir, `${name}.crt`)) };
    },
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
