/**
 * config.yaml → validated `Config`, or a `ConfigError` that lists every problem at once as
 * `file:line:col path: message`: YAML syntax errors first, then schema errors in file order.
 * Positions come from the YAML document's node ranges, so a schema error points at the value
 * that is wrong (or at the mapping that lacks a key, or at the unknown key itself).
 */
import { readFileSync } from 'node:fs';
import { getSystemErrorMessage } from 'node:util';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, YAMLError } from 'yaml';
import type { z } from 'zod';
import { SluiceError } from '../errors.ts';
import { configSchema, formatPath } from './schema.ts';
import type { Config } from './schema.ts';

export interface ConfigIssue {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
  /** Rendered like `listeners[0].listen`; `(root)` for the whole file, `(syntax)` for YAML syntax. */
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends SluiceError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super('SLUICE_CONFIG_INVALID', issues.map(formatConfigIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatConfigIssue(issue: ConfigIssue): string {
  return `${issue.file}:${issue.line}:${issue.column} ${issue.path}: ${issue.message}`;
}

/** Reads and validates a config file. Throws SLUICE_CONFIG_UNREADABLE or a `ConfigError`. */
export function loadConfig(file: string): Config {
  return parseConfig(readConfigText(file), file);
}

/** Validates config text; `file` only names it in messages. Throws a `ConfigError`. */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const issueAt = (offset: number, path: string, message: string): ConfigIssue => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, column: col, path, message };
  };

  const syntax = doc.errors.map((error) => issueAt(error.pos[0], '(syntax)', syntaxMessage(error)));
  if (doc.contents === null) {
    throw new ConfigError(
      syntax.length > 0 ? syntax : [issueAt(0, '(root)', 'the file holds no settings; expected a mapping with listeners and clusters')],
    );
  }

  let data: unknown;
  try {
    data = doc.toJS();
  } catch (error) {
    // toJS refuses documents it cannot turn into data (alias bombs, unresolved aliases).
    throw new ConfigError([...syntax, issueAt(0, '(root)', sentence(error instanceof Error ? error.message : String(error)))]);
  }

  const result = configSchema.safeParse(data);
  if (result.success && syntax.length === 0) return result.data;
  const schema = result.success ? [] : result.error.issues.map((issue) => schemaIssue(doc, issue, issueAt));
  throw new ConfigError([...syntax, ...byPosition(schema)]);
}

function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new SluiceError('SLUICE_CONFIG_UNREADABLE', `cannot read config file ${file}: ${osReason(error)}`, { cause: error });
  }
}

function osReason(error: unknown): string {
  const { errno, code } = error as NodeJS.ErrnoException;
  if (typeof errno === 'number' && typeof code === 'string') return `${getSystemErrorMessage(errno)} (${code})`;
  return error instanceof Error ? error.message : String(error);
}

function syntaxMessage(error: YAMLError): string {
  // The library's own wording points at its API, which means nothing to an operator.
  if (error.code === 'MULTIPLE_DOCS') return 'a config file holds one YAML document; remove the extra "---"';
  return sentence(error.message);
}

/** The library's messages start with a capital; ours continue after `path: `. */
function sentence(message: string): string {
  return message.charAt(0).toLowerCase() + message.slice(1);
}

function schemaIssue(
  doc: Document,
  issue: z.core.$ZodIssue,
  issueAt: (offset: number, path: string, message: string) => ConfigIssue,
): ConfigIssue {
  // An unknown key is best shown at the key itself; zod reports it on the enclosing mapping.
  const firstUnknown = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
  const offset =
    firstUnknown === undefined ? offsetOf(doc, issue.path, 'value') : offsetOf(doc, [...issue.path, firstUnknown], 'key');
  return issueAt(offset, formatPath(issue.path), issue.message);
}

/**
 * Where `path` starts in the source: its value's node (or its key's, for `target: 'key'`).
 * A key that is missing points at the deepest mapping or list that does exist.
 */
function offsetOf(doc: Document, path: readonly PropertyKey[], target: 'key' | 'value'): number {
  let node: unknown = doc.contents;
  let offset = startOf(node) ?? 0;
  for (const [index, segment] of path.entries()) {
    const child = childOf(doc, node, segment);
    if (child === undefined) break;
    const last = index === path.length - 1;
    node = (last && target === 'key') || isEmpty(child.value) ? child.key : child.value;
    offset = startOf(node) ?? offset;
  }
  return offset;
}

function childOf(doc: Document, parent: unknown, segment: PropertyKey): { key: unknown; value: unknown } | undefined {
  const node = isAlias(parent) ? parent.resolve(doc) : parent;
  if (isMap(node)) {
    // The last of duplicate keys, as that is the one toJS kept (duplicates are also a syntax error).
    const pair = node.items.findLast((item) => isScalar(item.key) && String(item.key.value) === String(segment));
    return pair === undefined ? undefined : { key: pair.key, value: pair.value };
  }
  if (isSeq(node) && typeof segment === 'number') {
    const item: unknown = node.items[segment];
    return item === undefined ? undefined : { key: item, value: item };
  }
  return undefined;
}

/** `key:` with nothing after it: an empty node at the end of the line, not worth pointing at. */
function isEmpty(node: unknown): boolean {
  if (node === null || node === undefined) return true;
  const start = startOf(node);
  return isScalar(node) && start !== undefined && node.range?.[1] === start;
}

function startOf(node: unknown): number | undefined {
  if (typeof node !== 'object' || node === null || !('range' in node)) return undefined;
  const range = node.range as readonly number[] | null | undefined;
  return range?.[0];
}

/** Stable, so issues at one position keep the schema's order. */
function byPosition(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => a.line - b.line || a.column - b.column);
}
