/**
 * The public surface of every entry point of the package, as explicit lists. Whatever an entry
 * exports, semver freezes; so adding, removing or renaming an export fails here until the list
 * below changes with it, and the change to the public API is a visible decision in review.
 *
 * Every subpath of package.json "exports" has a list here. Runtime exports are read from the
 * loaded source module (`Object.keys`); type-only exports, which leave no trace at runtime,
 * from its text, where `export *` is refused so that the text names every export.
 */
import { existsSync, readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as client from '../../src/client/index.js';
import * as codemirror from '../../src/codemirror/index.js';
import * as ot from '../../src/ot/index.js';
import * as server from '../../src/server/index.js';
import * as storeContract from '../../src/server/store-contract.js';

interface Surface {
  /** Names the module exports at runtime: classes, functions, constants. */
  readonly values: readonly string[];
  /** Names exported as types only (`export { type X }`). */
  readonly types: readonly string[];
}

const SURFACES = {
  './ot': {
    values: [
      'InvalidOperationError',
      'OP_TREE_THRESHOLD',
      'OpTree',
      'OperationBuilder',
      'OperationErrorCode',
      'apply',
      'baseLength',
      'checkOperation',
      'checkPosition',
      'compose',
      'composeAll',
      'fromDiff',
      'fromPatch',
      'fromTextDiff',
      'holdsInserts',
      'invert',
      'isCanonical',
      'isNoop',
      'mergeText',
      'normalize',
      'targetLength',
      'transform',
      'transformPosition',
      'transformSelection',
      'type',
    ],
    types: ['Component', 'DiffCleanup', 'Operation', 'OperationLengths', 'SelectionRange', 'Side'],
  },
  './client': {
    values: [
      'CloseCode',
      'CollaborativeDocument',
      'Connection',
      'ErrorCode',
      'IndexedDbStorage',
      'MemoryClientStorage',
      'OtterError',
      'ProtocolError',
      'UndoManager',
    ],
    types: [
      'ChangeEvent',
      'ClientIdLease',
      'ClientStorage',
      'ConnectionEvents',
      'ConnectionOptions',
      'ConnectionState',
      'DivergedEvent',
      'DocumentEvents',
      'DocumentOptions',
      'ErrorMessage',
      'ErrorRef',
      'FetchLike',
      'IndexedDbStorageOptions',
      'MergedEvent',
      'Presence',
      'PresenceEvent',
      'PresenceProfile',
      'ResetEvent',
      'RevokedEvent',
      'SelectionInput',
      'ServerLimits',
      'SocketHandler',
      'StoredDocument',
      'UndoManagerOptions',
      'UnsavedEvent',
      'WebSocketConstructor',
      'WebSocketLike',
    ],
  },
  './server': {
    values: [
      'ErrorCode',
      'MemoryStore',
      'Metrics',
      'OtterError',
      'RedisStore',
      'SESSION_DEFAULTS',
      'Sequencer',
      'SqliteStore',
      'StorageCorruptError',
      'StoreOpenError',
      'StoreReadiness',
      'VersionConflictError',
      'createServer',
      'describeStoreError',
      'jwtAuthenticator',
      'readinessAnswer',
    ],
    types: [
      'Access',
      'AppliedListener',
      'Authenticate',
      'Authorize',
      'ClientMark',
      'DocumentWatcher',
      'Identity',
      'JwtOptions',
      'LoadedDocument',
      'LogFn',
      'Logger',
      'OpRecord',
      'OpenResult',
      'OtterServer',
      'ReadinessOptions',
      'ReadinessStatus',
      'RedisClient',
      'RedisClusterSeeds',
      'RedisStoreOptions',
      'RefreshNews',
      'SequencerOptions',
      'ServerOptions',
      'SessionOptions',
      'Snapshot',
      'SqliteStoreOptions',
      'Store',
      'SubmitAnswer',
      'SubmitRequest',
      'SubmitResult',
      'Telemetry',
    ],
  },
  './codemirror': {
    values: [
      'LINE_SEPARATOR',
      'changesFromOp',
      'cursorsFromPresences',
      'fromOtter',
      'opFromChanges',
      'otterCollab',
      'rangesFromSelection',
      'remoteCursors',
      'selectionFromRanges',
      'setRemoteCursors',
    ],
    types: ['OtterCollabOptions', 'RemoteCursor'],
  },
  './server/store-contract': {
    values: ['storeContract'],
    types: ['ContractAsyncMatchers', 'ContractMatchers', 'ContractRunner'],
  },
} satisfies Record<string, Surface>;

const ROOT = new URL('../../', import.meta.url);
type Entry = keyof typeof SURFACES;
const ENTRIES = Object.keys(SURFACES) as Entry[];
const MODULES: Record<Entry, object> = {
  './ot': ot,
  './client': client,
  './server': server,
  './codemirror': codemirror,
  './server/store-contract': storeContract,
};
const PACKAGE = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as {
  exports: Record<string, unknown>;
};

/** The files package.json "exports" maps `entry` to (built under dist/). */
function targetOf(entry: string): { types: string; default: string } {
  const target = PACKAGE.exports[entry] as { types?: unknown; default?: unknown } | undefined;
  if (typeof target?.types !== 'string' || typeof target.default !== 'string') {
    throw new Error(`package.json "exports" maps ${entry} to ${JSON.stringify(target)}, not { types, default }`);
  }
  return { types: target.types, default: target.default };
}

/** The source file an entry is built from: `./dist/x/y.js` is compiled from `src/x/y.ts`. */
function sourceOf(entry: string): string {
  return targetOf(entry).default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts');
}

/** Whether a statement carries the modifier `kind` (`export`, `default`). */
function hasModifier(statement: ts.Statement, kind: ts.SyntaxKind): boolean {
  const modifiers = ts.canHaveModifiers(statement) ? ts.getModifiers(statement) : undefined;
  return (modifiers ?? []).some((m) => m.kind === kind);
}

/**
 * The names a module's source exports, split into runtime and type-only ones: named
 * re-exports (`export { a, type B } from './x.js'`) and exported declarations. Throws on
 * `export *` and on default exports, whose names the text does not spell out.
 */
function exportedNames(path: string, text: string): { values: string[]; types: string[] } {
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest);
  const values: string[] = [];
  const types: string[] = [];
  const refuse = (statement: ts.Statement): never => {
    const excerpt = statement.getText(source).slice(0, 80);
    throw new Error(`${path}: an export that does not name what it exports: ${excerpt}`);
  };
  for (const statement of source.statements) {
    if (ts.isExportDeclaration(statement)) {
      const clause = statement.exportClause;
      if (clause === undefined || !ts.isNamedExports(clause)) refuse(statement);
      for (const element of (clause as ts.NamedExports).elements) {
        (statement.isTypeOnly || element.isTypeOnly ? types : values).push(element.name.text);
      }
    } else if (ts.isExportAssignment(statement) || hasModifier(statement, ts.SyntaxKind.DefaultKeyword)) {
      refuse(statement);
    } else if (hasModifier(statement, ts.SyntaxKind.ExportKeyword)) {
      if (ts.isInterfaceDeclaration(statement) || ts.isTypeAliasDeclaration(statement)) {
        types.push(statement.name.text);
      } else if (ts.isVariableStatement(statement)) {
        for (const d of statement.declarationList.declarations) values.push(d.name.getText(source));
      } else if (
        (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isEnumDeclaration(statement)) &&
        statement.name !== undefined
      ) {
        values.push(statement.name.text);
      } else {
        refuse(statement);
      }
    }
  }
  return { values: [...new Set(values)].sort(), types: types.sort() };
}

describe('the public API of each entry point', () => {
  it('package.json publishes exactly the entry points listed here, each with its types', () => {
    expect(Object.keys(PACKAGE.exports).sort()).toEqual([...ENTRIES, './package.json'].sort());
    for (const entry of ENTRIES) {
      const target = targetOf(entry);
      expect(target.default, entry).toMatch(/^\.\/dist\/[a-z/-]+\.js$/);
      expect(target.types, entry).toBe(target.default.replace(/\.js$/, '.d.ts'));
      expect(existsSync(new URL(sourceOf(entry), ROOT)), sourceOf(entry)).toBe(true);
    }
  });

  it('the lists of this test are sorted and free of duplicates', () => {
    for (const name of ENTRIES) {
      const { values, types } = SURFACES[name];
      expect(values, name).toEqual([...new Set(values)].sort());
      expect(types, name).toEqual([...new Set(types)].sort());
    }
  });

  it('the source reader names every export, telling types from values, and refuses export *', () => {
    const text = [
      '/** doc */',
      "import { z } from './z.js';",
      "export { b, type C } from './b.js';",
      "export type { D } from './d.js';",
      'export interface E {}',
      'export type F = string;',
      'export const g = 1, h = 2;',
      'export function i(): void {}',
      'export class J {}',
      'const k = z;',
    ].join('\n');
    expect(exportedNames('a.ts', text)).toEqual({
      values: ['J', 'b', 'g', 'h', 'i'],
      types: ['C', 'D', 'E', 'F'],
    });
    const refused = [
      "export * from './x.js';",
      "export * as x from './x.js';",
      'export default 1;',
      'export default function f(): void {}',
    ];
    for (const bad of refused) {
      expect(() => exportedNames('a.ts', bad), bad).toThrow(/does not name what it exports/);
    }
  });

  it("otter/ot's OperationBuilder has only its checked methods (the unchecked fast paths are not on it)", () => {
    expect(Object.getOwnPropertyNames(ot.OperationBuilder.prototype).sort()).toEqual([
      'build',
      'constructor',
      'delete',
      'insert',
      'retain',
    ]);
  });

  it.each(ENTRIES)('%s exports exactly its listed values at runtime', (name) => {
    expect(Object.keys(MODULES[name]).sort()).toEqual(SURFACES[name].values);
  });

  it.each(ENTRIES)('%s: its source exports exactly the listed values and types', (name) => {
    const file = sourceOf(name);
    expect(exportedNames(file, readFileSync(new URL(file, ROOT), 'utf8'))).toEqual({
      values: SURFACES[name].values,
      types: SURFACES[name].types,
    });
  });
});
