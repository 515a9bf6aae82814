/**
 * `discovery:` of a cluster: where its backends come from when they are not listed under
 * `backends:`. A DNS name (A, AAAA or SRV records) or a Kubernetes Service. Durations come
 * out as milliseconds, resolvers as `host:port` strings with an IP host (a resolver found by
 * name would need a resolver first).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { analyzeHostPort } from '../address.ts';
import { formatDuration } from '../duration.ts';
import { MISSING, duration, expected, integer, list, strictObject, text } from './schema-kit.ts';

export const DNS_RECORD_TYPES = ['a', 'aaaa', 'srv'] as const;

// Labels may hold `_` (SRV names start with two such labels); a trailing dot is allowed.
const DNS_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const DNS_NAME_MESSAGE = 'expected a DNS name like api.service.consul';
/** RFC 2782: `_service._proto.name`. */
const SRV_NAME = /^_[A-Za-z0-9-]+\._[A-Za-z0-9-]+\.[A-Za-z0-9_]/;
const RESOLVER_MESSAGE = 'expected ip:port, like 127.0.0.1:53 or [::1]:53';
// RFC 1123 labels: what Kubernetes accepts for namespaces and Service names.
const K8S_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const K8S_NAME_MESSAGE = 'expected a Kubernetes name: lower-case letters, digits and "-", at most 63';
// IANA service names, as Kubernetes checks a named port.
const K8S_PORT_NAME = /^(?=.{1,15}$)[a-z0-9](?:-?[a-z0-9])*$/;
const K8S_PORT_MESSAGE = 'expected a port number (1-65535) or the name of a Service port';

function resolver() {
  return z.string({ error: expected(RESOLVER_MESSAGE) }).refine(
    (value) => {
      const analysis = analyzeHostPort(value);
      return analysis.ok && isIP(analysis.host) !== 0;
    },
    { error: RESOLVER_MESSAGE },
  );
}

/** How long an answer is trusted: its TTL clamped into [min, max]; a TTL of 0 uses `default`. */
const refreshSchema = strictObject({
  min: duration({ positive: true }).prefault('1s'),
  max: duration({ positive: true }).prefault('30s'),
  default: duration({ positive: true }).prefault('5s'),
}).superRefine((refresh, ctx) => {
  if (refresh.max < refresh.min) {
    ctx.addIssue({ code: 'custom', path: ['max'], message: `max (${formatDuration(refresh.max)}) must not be shorter than min (${formatDuration(refresh.min)})` });
  } else if (refresh.default < refresh.min || refresh.default > refresh.max) {
    ctx.addIssue({ code: 'custom', path: ['default'], message: `default (${formatDuration(refresh.default)}) must lie between min and max` });
  }
});

const dnsDiscoverySchema = strictObject({
  type: z.literal('dns'),
  name: z.string({ error: expected(DNS_NAME_MESSAGE) }).regex(DNS_NAME, { error: DNS_NAME_MESSAGE }),
  record: z.enum(DNS_RECORD_TYPES, { error: expected('expected a, aaaa or srv') }),
  port: integer(1, 65_535).optional(),
  resolvers: list(resolver(), 'expected a list like [127.0.0.1:53]').min(1, { error: 'expected at least one resolver; leave resolvers out for the system ones' }).optional(),
  refresh: refreshSchema.prefault({}),
  hold_obsolete: duration().prefault('30s'),
  hold_failure: duration().prefault('0s'),
}).superRefine((dns, ctx) => {
  if (dns.record === 'srv') {
    if (!SRV_NAME.test(dns.name)) ctx.addIssue({ code: 'custom', path: ['name'], message: 'record srv needs a name like _service._proto.domain (e.g. _api._tcp.service.consul)' });
    if (dns.port !== undefined) ctx.addIssue({ code: 'custom', path: ['port'], message: 'port applies only to record a or aaaa: SRV records carry their own ports' });
  } else if (dns.port === undefined) {
    ctx.addIssue({ code: 'custom', path: ['port'], message: `record ${dns.record} needs a port: A and AAAA records carry none` });
  }
});

const kubernetesDiscoverySchema = strictObject({
  type: z.literal('kubernetes'),
  namespace: z.string({ error: expected(K8S_NAME_MESSAGE) }).regex(K8S_NAME, { error: K8S_NAME_MESSAGE }),
  service: z.string({ error: expected(K8S_NAME_MESSAGE) }).regex(K8S_NAME, { error: K8S_NAME_MESSAGE }),
  // The members need the message too: a value of the right type reports its member's own issue.
  port: z.union(
    [z.int().min(1, { error: K8S_PORT_MESSAGE }).max(65_535, { error: K8S_PORT_MESSAGE }), z.string().regex(K8S_PORT_NAME, { error: K8S_PORT_MESSAGE })],
    { error: expected(K8S_PORT_MESSAGE) },
  ),
  kubeconfig: text().min(1, { error: 'expected a file path' }).optional(),
});

export const discoverySchema = z.discriminatedUnion('type', [dnsDiscoverySchema, kubernetesDiscoverySchema], {
  error: (issue) => {
    // A value that is not a mapping at all (`discovery: dns`) arrives here as invalid_type.
    const code: string = issue.code;
    if (code !== 'invalid_union') return expected('expected a mapping like {type: dns, name: ..., record: srv}')(issue);
    const type = (issue.input as { type?: unknown } | undefined)?.type;
    return type === undefined ? MISSING : 'expected dns or kubernetes';
  },
});

export type DiscoveryConfig = z.output<typeof discoverySchema>;
export type DnsDiscoveryConfig = z.output<typeof dnsDiscoverySchema>;
export type KubernetesDiscoveryConfig = z.output<typeof kubernetesDiscoverySchema>;
export type DnsRecordType = (typeof DNS_RECORD_TYPES)[number];
