import { readFileSync, writeFileSync } from 'node:fs';

const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req';

/**
 * Turn on the kernel's migration of accept queues between SO_REUSEPORT listeners (what the
 * README's deploy procedure requires) for the duration of a test; returns the restore step.
 * Throws when it cannot, so a handover test never silently measures the wrong setup.
 */
export function enableAcceptQueueMigration(): () => void {
  const original = readFileSync(MIGRATE_REQ, 'utf8').trim();
  if (original !== '1') {
    try {
      writeFileSync(MIGRATE_REQ, '1');
    } catch (error) {
      throw new Error(`the handover test needs net.ipv4.tcp_migrate_req=1 (run as root or set it): ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  return () => {
    if (original !== '1') writeFileSync(MIGRATE_REQ, original);
  };
}
