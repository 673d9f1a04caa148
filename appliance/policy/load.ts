// Loads a policy file: YAML syntax, schema, semantics and compilation, every problem reported as
// file:line:col. Never throws: a bad file yields diagnostics, and the caller keeps its old policy.
// The diagnostics themselves are diagnostics.ts's (re-exported here for the callers that load);
// a process that must not load the compiler imports them from there.

import Ajv, { ErrorObject } from 'ajv';
import { Document, isMap, isNode, isPair, isScalar, LineCounter, parseDocument } from 'yaml';
import { compileModel } from './compile';
import { bindPolicy } from './match';
import { didYouMean, Path, PolicyModel, Reporter, resolvePolicy } from './model';
import { DURATION_PATTERN, PolicyDocument, policySchema } from './schema';
import { CompiledPolicy, PolicyTables } from './types';
import { readPolicyFile, type Diagnostic, type LoadFailure } from './diagnostics';


export type LoadResult =
  | { ok: true; policy: CompiledPolicy; model: PolicyModel; document: PolicyDocument; warnings: Diagnostic[] }
  | LoadFailure;

/** The same load, stopped before the lookup functions are bound: plain data a worker can post. */
export type TablesResult =
  | { ok: true; tables: PolicyTables; model: PolicyModel; document: PolicyDocument; warnings: Diagnostic[] }
  | LoadFailure;

const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, verbose: true });
const validateSchema = ajv.compile<PolicyDocument>(policySchema);

/** Maps document paths to line:col through the YAML node tree. */
class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  position(offset: number): { line: number; col: number } {
    return this.lines.linePos(offset);
  }

  /** Position of the node at path (or of its key); falls back to the nearest existing ancestor. */
  at(path: Path, onKey = false): { line: number; col: number } {
    for (let depth = path.length; depth >= 0; depth--) {
      const sub = path.slice(0, depth);
      if (onKey && depth === path.length && depth > 0) {
        const parent = this.doc.getIn(sub.slice(0, -1), true);
        if (isMap(parent)) {
          const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(sub[sub.length - 1]));
          if (pair && isNode(pair.key) && pair.key.range) return this.position(pair.key.range[0]);
        }
      }
      const node = depth === 0 ? this.doc.contents : this.doc.getIn(sub, true);
      if (isNode(node) && node.range) return this.position(node.range[0]);
    }
    return { line: 1, col: 1 };
  }
}

export function loadPolicyFile(path: string): LoadResult {
  const read = readPolicyFile(path);
  return read.ok ? loadPolicyText(read.text, path) : read;
}

export function loadPolicyText(text: string, file: string): LoadResult {
  const loaded = loadPolicyTables(text, file);
  if (!loaded.ok) return loaded;
  return { ok: true, policy: bindPolicy(loaded.tables), model: loaded.model, document: loaded.document, warnings: loaded.warnings };
}

export function loadPolicyTables(text: string, file: string): TablesResult {
  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const add = (severity: 'error' | 'warning', pos: { line: number; col: number }, message: string) =>
    (severity === 'error' ? errors : warnings).push({ file, line: pos.line, col: pos.col, message, severity });
  const done = (): LoadFailure => ({ ok: false, errors: sortDiagnostics(errors), warnings: sortDiagnostics(warnings) });
  try {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    const locator = new Locator(doc, lines);
    for (const e of doc.errors) add('error', locator.position(e.pos[0]), e.message);
    for (const w of doc.warnings) add('warning', locator.position(w.pos[0]), w.message);
    if (errors.length > 0) return done();

    const data: unknown = doc.toJS({ maxAliasCount: 1000 });
    if (!validateSchema(data)) {
      for (const e of schemaErrors(validateSchema.errors ?? [])) add('error', locator.at(e.path, e.onKey), e.message);
      return done();
    }

    const report: Reporter = {
      error: (path, message, onKey) => add('error', locator.at(path, onKey), message),
      warning: (path, message, onKey) => add('warning', locator.at(path, onKey), message),
      line: (path, onKey) => locator.at(path, onKey).line,
    };
    const model = resolvePolicy(data, report);
    if (!model) return done();
    const { tables, shadowed } = compileModel(model, text);
    for (const { rule, by } of shadowed) {
      report.warning(
        [...rule.path, 'name'],
        `rule '${rule.name}' can never match: rule '${by.name}' (line ${by.line}) matches everything it does` +
          // The first matching rule takes the connection; its block then judges every request.
          (by.modbus === null ? '' : `, and its modbus block then judges every request: a request that block refuses is refused, never passed on to '${rule.name}'`),
      );
    }
    return { ok: true, tables, model, document: data, warnings: sortDiagnostics(warnings) };
  } catch (err) {
    // A bug, not a policy problem; still refuse the file rather than crash the caller.
    add('error', { line: 1, col: 1 }, `internal error while loading the policy: ${(err as Error).message}`);
    return done();
  }
}

function sortDiagnostics(list: Diagnostic[]): Diagnostic[] {
  return list.sort((a, b) => a.line - b.line || a.col - b.col);
}

interface SchemaError {
  path: Path;
  onKey: boolean;
  message: string;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  array: 'a list',
  object: 'a mapping',
  integer: 'a whole number',
  boolean: 'true or false',
  null: 'empty',
};

/** Ajv errors as one readable message per problem, positioned on the offending value or key. */
function schemaErrors(list: ErrorObject[]): SchemaError[] {
  const out: SchemaError[] = [];
  const seen = new Set<string>();
  for (const e of list) {
    const path: Path = e.instancePath
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    const where = describe(path);
    let onKey = false;
    let message: string;
    const params = e.params as Record<string, unknown>;
    const parent = (e.parentSchema ?? {}) as { properties?: object; pattern?: string };
    const durationHint = 'a duration such as 30s, 10m, 1h30m (units ms, s, m, h, d)';
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String(params.additionalProperty);
        const allowed = Object.keys(parent.properties ?? {});
        path.push(key);
        onKey = true;
        message = `unknown key '${key}' in ${where}${didYouMean(key, allowed)}; expected one of: ${allowed.join(', ')}`;
        break;
      }
      case 'required':
        message = `${where} is missing '${String(params.missingProperty)}'`;
        break;
      case 'propertyNames':
        path.push(String(params.propertyName));
        onKey = true;
        message = `invalid name '${String(params.propertyName)}' in ${where}: names start with a letter and contain only letters, digits, '_', '.', '-'`;
        break;
      case 'pattern':
        // A name pattern failure comes with a 'propertyNames' error that reports it.
        if (e.propertyName !== undefined) continue;
        message = `${where} must be ${durationHint}`;
        break;
      case 'type': {
        const types = ([] as string[]).concat(params.type as string | string[]);
        message =
          parent.pattern === DURATION_PATTERN
            ? `${where} must be ${durationHint}`
            : `${where} must be ${types.map((t) => TYPE_NAMES[t] ?? t).join(' or ')}`;
        break;
      }
      case 'enum':
        message = `${where} must be one of: ${(params.allowedValues as unknown[]).join(', ')}`;
        break;
      case 'const':
        message = `${where} must be ${JSON.stringify(params.allowedValue)}`;
        break;
      case 'minItems':
        message = `${where} must not be empty`;
        break;
      case 'minLength':
        message = `${where} must not be empty`;
        break;
      case 'minimum':
        message = `${where} must be at least ${String(params.limit)}`;
        break;
      default:
        message = `${where} ${e.message ?? 'is invalid'}`;
    }
    const id = `${path.join('/')}|${message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ path, onKey, message });
  }
  return out;
}

/** Human name of a document location, e.g. "rules[2].from" or "the document". */
function describe(path: Path): string {
  if (path.length === 0) return 'the document';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}
