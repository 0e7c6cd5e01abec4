import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import $RefParser from '@apidevtools/json-schema-ref-parser';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';

/**
 * Validates response bodies against the Matrix spec's OpenAPI definitions in ../shared/spec.
 * Every JSON body a test receives goes through `validateResponse`.
 */

const here = dirname(fileURLToPath(import.meta.url));
const API_SUBDIR = 'data/api/client-server';

/**
 * The spec's data lives in the shared/ folder beside the repository (as CI lays it out); a clone
 * elsewhere on a workstation can point MYELIN_SPEC_DIR at a matrix-spec checkout, or fall back to the
 * workplace's shared copy.
 */
function findSpecDir(): string {
  const candidates = [
    process.env.MYELIN_SPEC_DIR,
    join(here, '../../../shared/spec/matrix-spec'),
    '/work/shared/spec/matrix-spec',
  ].filter((c): c is string => Boolean(c));
  const found = candidates.find((c) => existsSync(join(c, API_SUBDIR)));
  if (!found) throw new Error(`Matrix spec data not found; looked in ${candidates.join(', ')} (set MYELIN_SPEC_DIR)`);
  return join(found, API_SUBDIR);
}

export const SPEC_DIR = findSpecDir();

interface Operation {
  method: string;
  regex: RegExp;
  template: string;
  responses: Map<string, ValidateFunction>;
}

const MATRIX_FORMATS: Record<string, RegExp> = {
  'mx-user-id': /^@[^:]+:.+$/,
  'mx-room-id': /^!.+$/,
  'mx-event-id': /^\$.+$/,
  'mx-room-alias': /^#[^:]+:.+$/,
  'mx-server-name': /^[A-Za-z0-9.:[\]-]+$/,
  'mx-mxc-uri': /^mxc:\/\/[^/]+\/.+$/,
  'mx-unpadded-base64': /^[A-Za-z0-9+/]*$/,
  'mx-urlsafe-unpadded-base64': /^[A-Za-z0-9_-]*$/,
};

let loaded: Promise<Operation[]> | undefined;

async function load(): Promise<Operation[]> {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormatsModule as unknown as (a: Ajv2020) => void)(ajv);
  for (const [name, regex] of Object.entries(MATRIX_FORMATS)) ajv.addFormat(name, regex);
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  const operations: Operation[] = [];
  for (const file of readdirSync(SPEC_DIR).filter((f) => f.endsWith('.yaml'))) {
    const doc = (await $RefParser.dereference(join(SPEC_DIR, file), {
      dereference: { circular: 'ignore' },
      // The shared copy has no event-schemas/; what points there is left unconstrained.
      resolve: {
        file: {
          order: 1,
          canRead: true,
          read: (file: { url: string }) => {
            const path = decodeURIComponent(file.url.replace(/^file:\/\//, ''));
            return existsSync(path) ? readFileSync(path) : Buffer.from('{}');
          },
        },
      },
      // The spec's YAML has flow mappings that strict parsers reject; the yaml package reads them.
      parse: { yaml: { order: 1, canParse: /\.ya?ml$/i, parse: (file: { data: Buffer | string }) => parseYaml(file.data.toString(), { strict: false }) } },
    })) as {
      servers?: { variables?: { basePath?: { default?: string } } }[];
      paths?: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: object }> }> }>>;
    };
    const basePath = doc.servers?.[0]?.variables?.basePath?.default ?? '';
    for (const [path, methods] of Object.entries(doc.paths ?? {})) {
      const template = basePath + path;
      const regex = new RegExp('^' + template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+') + '$');
      for (const [method, op] of Object.entries(methods)) {
        const responses = new Map<string, ValidateFunction>();
        for (const [status, response] of Object.entries(op.responses ?? {})) {
          const schema = response.content?.['application/json']?.schema;
          if (schema) responses.set(status, ajv.compile(schema));
        }
        operations.push({ method: method.toUpperCase(), regex, template, responses });
      }
    }
  }
  return operations;
}

/** The spec's path for a request path: r0 is served as v3. */
function specPath(path: string): string {
  return path.split('?')[0]!.replace(/^\/_matrix\/client\/r0\//, '/_matrix/client/v3/');
}

export class SchemaError extends Error {}

/**
 * Checks a response body against the spec. Returns the template it matched, or undefined when the
 * spec has no such endpoint or no schema for that status (e.g. a 404 for an unknown path).
 */
export async function validateResponse(method: string, path: string, status: number, body: unknown): Promise<string | undefined> {
  loaded ??= load();
  const operations = await loaded;
  const p = specPath(path);
  const matches = operations.filter((o) => o.method === method && o.regex.test(p));
  // Prefer the most specific template: fewest parameters.
  matches.sort((a, b) => (a.template.match(/\{/g)?.length ?? 0) - (b.template.match(/\{/g)?.length ?? 0));
  const op = matches[0];
  if (!op) return undefined;
  const validate = op.responses.get(String(status)) ?? op.responses.get(`${String(status)[0]}XX`);
  if (!validate) {
    if (status >= 400 && body && typeof body === 'object' && 'errcode' in body) return op.template;
    throw new SchemaError(`${method} ${op.template}: the spec defines no ${status} response (body ${JSON.stringify(body).slice(0, 300)})`);
  }
  if (!validate(body)) {
    throw new SchemaError(
      `${method} ${op.template} ${status}: body does not match the spec: ${JSON.stringify(validate.errors?.slice(0, 5))}\nbody: ${JSON.stringify(body).slice(0, 500)}`,
    );
  }
  return op.template;
}
