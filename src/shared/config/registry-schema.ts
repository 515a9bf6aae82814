/**
 * `registry:` of config.yaml: the etcd v3 cluster N instances share operator intent through
 * (names fixed in the design's contract; docs/fleet.md). Lives in shared/ so `sluice validate`
 * checks it with the rest of the file; the control plane's registry client reads it.
 */
import { z } from 'zod';
import { strictObject } from './schema-kit.ts';

export const DEFAULT_PREFIX = '/sluice/v1/';

/** The `registry.etcd` block. */
export const etcdRegistryConfigSchema = strictObject({
  endpoints: z.array(z.url({ protocol: /^https?$/, error: 'expected an endpoint like http://127.0.0.1:2379' })).min(1).default(['http://127.0.0.1:2379']),
  prefix: z
    .string()
    .regex(/^\/(?:[^/\s]+\/)*$/, { error: 'expected a key prefix that starts and ends with /, like /sluice/v1/' })
    .default(DEFAULT_PREFIX),
  instance: z
    .string()
    .regex(/^[^/\s]{1,253}$/, { error: 'expected an instance name without / or spaces' })
    .optional(),
  username_env: z.string().min(1).optional(),
  password_env: z.string().min(1).optional(),
  tls: strictObject({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: z.string().min(1).optional() }).optional(),
  required: z.boolean().default(false),
});

export const registrySchema = strictObject({ etcd: etcdRegistryConfigSchema });

export type EtcdRegistryConfig = z.output<typeof etcdRegistryConfigSchema>;
export type RegistryConfig = z.output<typeof registrySchema>;
