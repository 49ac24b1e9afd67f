// Validate Cypher statements offline with Neo4j's own parser and semantic analysis
// (npm package @neo4j-cypher/language-support, the engine behind Neo4j's editors).
//
// Usage:  node lint.mjs [--schema JSON] < statements.jsonl > diagnostics.jsonl
//
// stdin: one JSON value per line, either a Cypher string or an object
//   {"cypher": "...", "params": ["name", ...]}
// With "params", exactly those parameters are declared (a $name the statement uses but the
// caller does not send is an error); without it, undeclared-parameter errors are dropped.
//
// --schema: a JSON object {labels, relationshipTypes, propertyKeys, graphSchema}. When given,
// unknown labels / types / properties and relationships drawn in a direction the schema does
// not have are reported as warnings; without it they are not checked.
//
// stdout: one JSON object per input line, in order:
//   {"index": i, "errors": [diag...], "warnings": [diag...]}
// with diag = {"message", "offset", "end", "line", "column"} (offsets in UTF-16 code units,
// line/column 0-based). Exit status 0 when every line could be linted, 2 on bad input.

import { readFileSync } from 'node:fs';
import {
  lintCypherQuery,
  parseStatementsStrs,
  testData,
} from '@neo4j-cypher/language-support';

const CYPHER_VERSION = 'CYPHER 5'; // neo4j:5.26 speaks Cypher 5 only

// Neo4j 5's built-in functions and procedures, as shipped with the package (a dump of a real
// server). Plugins (APOC, GDS) and Enterprise-only procedures are left out: the compose
// service is plain neo4j:5.26-community, so calling them must be reported.
function builtins() {
  const fns = testData.mockSchema.functions[CYPHER_VERSION];
  const procs = testData.mockSchema.procedures[CYPHER_VERSION];
  const keep = (registry, ok) =>
    Object.fromEntries(Object.entries(registry).filter(([name, v]) => ok(name, v)));
  return {
    functions: { [CYPHER_VERSION]: keep(fns, (_, f) => f.isBuiltIn === true) },
    procedures: {
      [CYPHER_VERSION]: keep(procs, (name) => /^(db|dbms|tx)\./.test(name)),
    },
  };
}

function parseArgs(argv) {
  const out = { schema: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--schema') out.schema = JSON.parse(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return out;
}

function diag(d) {
  return {
    message: d.message,
    offset: d.offsets?.start ?? null,
    end: d.offsets?.end ?? null,
    line: d.range?.start?.line ?? null,
    column: d.range?.start?.character ?? null,
  };
}

function lintOne(item, base) {
  const { cypher, params } = typeof item === 'string' ? { cypher: item, params: null } : item;
  if (typeof cypher !== 'string') throw new Error('each line needs a "cypher" string');
  const dbSchema = { ...base, defaultLanguage: CYPHER_VERSION };
  if (Array.isArray(params)) {
    // Only the names matter to the checker; null marks a parameter as declared.
    dbSchema.parameters = Object.fromEntries(params.map((p) => [p, null]));
  }
  const errors = [];
  const warnings = [];
  if (cypher.trim().length === 0) {
    errors.push({ message: 'empty statement', offset: 0, end: 0, line: 0, column: 0 });
    return { errors, warnings };
  }
  // The driver runs exactly one statement per call; a second one would be a server error.
  const parts = parseStatementsStrs(cypher);
  if (parts.length > 1) {
    errors.push({
      message: `${parts.length} statements in one text; the driver runs one per call`,
      offset: 0, end: cypher.length, line: 0, column: 0,
    });
  }
  if (/^\s*CYPHER\s+25\b/i.test(cypher)) {
    errors.push({
      message: 'CYPHER 25 is not available on Neo4j 5.26 (Cypher 5)',
      offset: 0, end: 9, line: 0, column: 0,
    });
  }
  const { diagnostics } = lintCypherQuery(cypher, dbSchema, { consoleCommandsEnabled: false });
  for (const d of diagnostics) {
    const isParam = d.message.startsWith('Parameter ') && d.message.endsWith(' is not defined.');
    if (isParam && !Array.isArray(params)) continue;
    // severity 1 = Error, 2 = Warning (LSP); hints/information are not problems.
    if (d.severity === 1) errors.push(diag(d));
    else if (d.severity === 2) warnings.push(diag(d));
  }
  return { errors, warnings };
}

function main() {
  const { schema } = parseArgs(process.argv.slice(2));
  const base = { ...builtins() };
  if (schema) {
    base.labels = schema.labels ?? [];
    base.relationshipTypes = schema.relationshipTypes ?? [];
    base.propertyKeys = schema.propertyKeys ?? [];
    if (schema.graphSchema) base.graphSchema = schema.graphSchema;
  }
  const lines = readFileSync(0, 'utf8').split('\n').filter((l) => l.trim().length > 0);
  const out = [];
  lines.forEach((line, index) => {
    let item;
    try {
      item = JSON.parse(line);
    } catch (e) {
      process.stderr.write(`line ${index + 1}: not JSON: ${e.message}\n`);
      process.exit(2);
    }
    let res;
    try {
      res = lintOne(item, base);
    } catch (e) {
      // A crash of the checker on some input is a finding too, not a pass.
      res = {
        errors: [{ message: `linter failed: ${e.message}`, offset: 0, end: 0, line: 0, column: 0 }],
        warnings: [],
      };
    }
    out.push(JSON.stringify({ index, ...res }));
  });
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
}

main();
