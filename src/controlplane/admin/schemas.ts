/**
 * zod schemas for every admin API body, param and query, with messages that name the field
 * (`address: port must be 1-65535`). The OpenAPI description is generated from the same
 * schemas (openapi.ts), so the two cannot drift apart.
 */
import { z } from 'zod';
import { backendAddressProblem } from '../../shared/address.ts';
import { MAX_ACL_ENTRIES } from '../../shared/config/schema.ts';

/** Request bodies are small JSON documents; anything larger is refused with 413. */
export const BODY_LIMIT_BYTES = 64 * 1024;

/**
 * One acl block as JSON at its longest common spelling: a full IPv4-mapped IPv6 address
 * (`0000:0000:0000:0000:0000:ffff:255.255.255.255/128`, 49 characters) with its quotes,
 * comma, newline and indentation, rounded up.
 */
const ACL_BLOCK_JSON_BYTES = 64;

/** PUT /listeners/:name/acl carries up to MAX_ACL_ENTRIES blocks (about 690 KiB). */
export const ACL_BODY_LIMIT_BYTES = MAX_ACL_ENTRIES * ACL_BLOCK_JSON_BYTES + BODY_LIMIT_BYTES;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export const MAX_WEIGHT = 10_000;

const WEIGHT_MESSAGE = `expected an integer from 0 to ${MAX_WEIGHT}`;

/** Tells a missing key apart from a wrong value, like the config file's messages. */
function expected(message: string) {
  return (issue: { readonly input?: unknown }): string => (issue.input === undefined ? 'missing required key' : message);
}

const clusterName = z
  .string({ error: expected('expected a cluster name') })
  .regex(NAME, { error: 'expected a cluster name of 1-63 letters, digits, "_", "." or "-"' })
  .meta({ description: 'A cluster named in config.yaml', example: 'web' });

const address = z
  .string({ error: expected('expected host:port') })
  .superRefine((value, ctx) => {
    const problem = backendAddressProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  })
  .meta({ description: 'host:port of the backend; IPv6 in brackets; a host name must resolve', example: '127.0.0.1:9001' });

const weight = z
  .int({ error: expected(WEIGHT_MESSAGE) })
  .min(0, { error: WEIGHT_MESSAGE })
  .max(MAX_WEIGHT, { error: WEIGHT_MESSAGE })
  .meta({ description: 'Share of new connections relative to the cluster (0 = none)', example: 1 });

function body<Shape extends z.ZodRawShape>(shape: Shape, example: string) {
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown key${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => `"${k}"`).join(', ')}; allowed: ${Object.keys(shape).join(', ')}`
        : `expected a JSON object like ${example}`,
  });
}

export const addBackendBody = body(
  { cluster: clusterName, address, weight: weight.optional() },
  '{"cluster": "web", "address": "127.0.0.1:9001", "weight": 1}',
);

export const patchBackendBody = body({ weight }, '{"weight": 2}');

const route = body({ cluster: clusterName, weight }, '{"cluster": "web", "weight": 90}');

export const patchRoutesBody = body(
  {
    routes: z
      .array(route, { error: expected('expected a list of routes like [{"cluster": "web", "weight": 90}]') })
      .min(1, { error: 'expected at least one route' })
      .superRefine((routes, ctx) => {
        const seen = new Map<string, number>();
        routes.forEach((r, i) => {
          const first = seen.get(r.cluster);
          if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'cluster'], message: `cluster "${r.cluster}" is already routed at routes.${first}` });
          else seen.set(r.cluster, i);
        });
        if (routes.length > 0 && routes.every((r) => r.weight === 0)) ctx.addIssue({ code: 'custom', message: 'at least one route needs a weight above 0' });
      })
      .meta({ description: "The listener's new split of new connections between clusters (open connections stay where they are)" }),
  },
  '{"routes": [{"cluster": "web", "weight": 90}, {"cluster": "canary", "weight": 10}]}',
);

export const listenerParams = z.object({
  name: z.string().min(1).meta({ description: 'A listener named in config.yaml, e.g. web' }),
});

export const backendParams = z.object({
  id: z.string().min(1).meta({ description: 'cluster:address, e.g. web:127.0.0.1:9001' }),
});

export const deleteQuery = z.strictObject(
  {
    force: z
      .enum(['true', 'false'], { error: 'expected true or false' })
      .optional()
      .meta({ description: 'true: close its connections and remove it at once' }),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown query parameter ${issue.keys.map((k) => `"${k}"`).join(', ')}; allowed: force` : 'bad query') },
);

/** Bodies of routes that take none: nothing, or an empty object. */
export const emptyBody = z.unknown().refine(
  (value) => value === undefined || value === null || (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0),
  { error: 'this route takes no body' },
);

/**
 * `field: message` for the first problems, for the API's one-line error message. One value
 * can fail two checks with the same message (1e308 is neither an integer nor at most the
 * maximum), which is said once.
 */
export function describeIssues(error: z.ZodError, root: string): string {
  const lines = error.issues.map((issue) => `${issue.path.length === 0 ? root : issue.path.map(String).join('.')}: ${issue.message}`);
  return [...new Set(lines)].slice(0, 3).join('; ');
}
