/**
 * The package as it is installed: `otter/ot` and `otter/client` need no other package,
 * `otter/codemirror` only CodeMirror (optional peers, there with the editor), the
 * server's packages are optional peers that the server loads itself and names when one is
 * missing, and the tarball holds what the README points to. The installs without a peer run
 * a copy of dist/ (build first with `npm run build`) in a temporary node_modules.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import ts from 'typescript';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MissingPackageError, importOptional, requireOptional } from '../../src/server/optional-package.js';
import { CliProcess, ROOT, requireBuild } from './helpers.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { within } from '../support/wait.js';

interface PackageJson {
  license: string;
  repository?: { type: string; url: string };
  files: string[];
  exports: Record<string, string | { default: string }>;
  bin: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
const dependencies = Object.keys(pkg.dependencies ?? {});
/** The editor's packages: peers of `otter/codemirror` only, which imports them as any binding does. */
const EDITOR_PEERS = ['@codemirror/state', '@codemirror/view'];
/** The server's packages: every other peer. */
const peers = Object.keys(pkg.peerDependencies ?? {}).filter((name) => !EDITOR_PEERS.includes(name));

/** The package a bare specifier names ('@scope/name/sub' → '@scope/name'), or undefined for relative and built-in ones. */
function packageOf(spec: string): string | undefined {
  if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0] as string)) return undefined;
  return spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
}

/** What the modules reachable from some roots (paths under src/) use of other packages. */
interface Uses {
  /** Packages imported at run time by a static import or re-export, or by `import()`. */
  imported: Set<string>;
  /** Packages loaded through `requireOptional` / `importOptional`. */
  optional: Set<string>;
}

/** Follows the relative imports from `roots` through src/ and collects the packages used. */
function usesOf(roots: string[]): Uses {
  const uses: Uses = { imported: new Set(), optional: new Set() };
  const seen = new Set<string>();
  const queue = roots.map((e) => join(ROOT, 'src', e));
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const use = (spec: string, typeOnly: boolean): void => {
      if (spec.startsWith('.')) {
        const target = join(dirname(file), spec.replace(/\.js$/, '.ts'));
        if (!existsSync(target)) throw new Error(`${file} imports ${spec}, which is not there`);
        if (!typeOnly) queue.push(target);
        return;
      }
      const name = packageOf(spec);
      if (name !== undefined && !typeOnly) uses.imported.add(name);
    };
    const visit = (node: ts.Node): void => {
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
        const typeOnly = ts.isImportDeclaration(node) ? (node.importClause?.isTypeOnly ?? false) : node.isTypeOnly;
        use((node.moduleSpecifier as ts.StringLiteral).text, typeOnly);
      } else if (ts.isCallExpression(node) && ts.isStringLiteral(node.arguments[0] ?? node)) {
        const spec = (node.arguments[0] as ts.StringLiteral).text;
        if (node.expression.kind === ts.SyntaxKind.ImportKeyword) use(spec, false);
        if (ts.isIdentifier(node.expression) && ['requireOptional', 'importOptional'].includes(node.expression.text)) {
          uses.optional.add(spec);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return uses;
}

beforeAll(() => {
  requireBuild();
});

/** The source (under src/) of each entry point: the `exports` subpaths and the `bin` command. */
const entries = new Map<string, string>(
  [
    ...Object.entries(pkg.exports).flatMap(([subpath, target]) => (typeof target === 'string' ? [] : [[subpath, target.default] as const])),
    ...Object.entries(pkg.bin).map(([name, target]) => [`bin ${name}`, target] as const),
  ].map(([name, target]) => [name, target.replace(/^(\.\/)?dist\//, '').replace(/\.js$/, '.ts')]),
);
const BROWSER_ENTRIES = ['./ot', './client'];
const EDITOR_ENTRIES = ['./codemirror'];
const browser = usesOf(BROWSER_ENTRIES.map((e) => entries.get(e) as string));
const editor = usesOf(EDITOR_ENTRIES.map((e) => entries.get(e) as string));
const server = usesOf(
  [...entries].filter(([name]) => !BROWSER_ENTRIES.includes(name) && !EDITOR_ENTRIES.includes(name)).map(([, source]) => source),
);

describe('package.json: the browser entry points need nothing, the server brings its own', () => {
  it('otter/ot and otter/client import no package, at run time or through an optional load', () => {
    expect([...entries.keys()]).toEqual(expect.arrayContaining([...BROWSER_ENTRIES, './server', 'bin otter']));
    expect([...browser.imported, ...browser.optional]).toEqual([]);
  });

  it('otter/codemirror imports CodeMirror only, an optional peer installed with the editor', () => {
    expect([...editor.imported].sort()).toEqual(EDITOR_PEERS);
    expect([...editor.optional]).toEqual([]);
    for (const name of EDITOR_PEERS) {
      expect(pkg.peerDependenciesMeta?.[name]?.optional, `peer ${name} is optional`).toBe(true);
      expect(pkg.devDependencies[name], `devDependencies.${name} for the tests`).toBeDefined();
      expect(dependencies, `${name} is not a dependency`).not.toContain(name);
    }
  });

  it('dependencies hold only what a module imports, and nothing only the server uses', () => {
    for (const name of dependencies) {
      expect(browser.imported.has(name), `${name} is a dependency, but otter/ot and otter/client do not import it`).toBe(true);
    }
  });

  it('the server imports no package statically: each is loaded through requireOptional or importOptional', () => {
    expect([...server.imported].filter((name) => !dependencies.includes(name))).toEqual([]);
    expect(server.optional.size).toBeGreaterThan(0);
  });

  it('the packages the server loads are exactly the peers, each optional and in devDependencies for the tests', () => {
    expect([...server.optional].sort()).toEqual(peers.sort());
    for (const name of peers) {
      expect(pkg.peerDependenciesMeta?.[name]?.optional, `peer ${name} is optional`).toBe(true);
      expect(pkg.devDependencies[name], `devDependencies.${name}`).toBe(pkg.peerDependencies?.[name]);
      expect(dependencies, `${name} is not a dependency`).not.toContain(name);
    }
  });

  it('names its licence, its repository, and the files it ships', () => {
    expect(pkg.license).toBe('MIT');
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} Otter contributors\n/);
    expect(pkg.repository?.url).toMatch(/^git\+https:\/\/github\.com\/[\w.-]+\/[\w.-]+\.git$/);
    expect(pkg.files.sort()).toEqual(['LICENSE', 'README.md', 'bench/RESULTS.md', 'dist', 'docs']);
  });

  it('the tarball holds the entry points, the licence and every file the README links to', () => {
    const packed = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    expect(packed.status, packed.stderr).toBe(0);
    const files = new Set((JSON.parse(packed.stdout) as Array<{ files: Array<{ path: string }> }>)[0]?.files.map((f) => f.path));
    const linked = [...readFileSync(join(ROOT, 'README.md'), 'utf8').matchAll(/\]\((?!https?:|#)([^)#\s]+)/g)].map((m) => m[1] as string);
    expect(linked.length).toBeGreaterThan(0);
    for (const file of ['LICENSE', 'README.md', 'package.json', 'dist/ot/index.js', 'dist/client/index.js', 'dist/server/index.js', 'dist/cli.js', ...linked]) {
      expect(files.has(file), `the tarball holds ${file}`).toBe(true);
    }
    expect([...files].filter((f) => /^(src|test|bench|traces)\//.test(f))).toEqual(['bench/RESULTS.md']);
  });
});

describe('requireOptional and importOptional', () => {
  it('load an installed package', async () => {
    expect(typeof requireOptional<{ WebSocketServer: unknown }>('ws', 'a test').WebSocketServer).toBe('function');
    expect(typeof (await importOptional<{ jwtVerify: unknown }>('jose', 'a test')).jwtVerify).toBe('function');
  });

  it('name a missing package and the command that installs it', async () => {
    const expected = 'the feature needs otter-absent-package: npm install otter-absent-package';
    expect(() => requireOptional('otter-absent-package', 'the feature')).toThrow(expected);
    await expect(importOptional('otter-absent-package', 'the feature')).rejects.toThrow(expected);
    try {
      requireOptional('otter-absent-package', 'the feature');
    } catch (e) {
      expect(e).toBeInstanceOf(MissingPackageError);
      expect(e).toMatchObject({ code: 'missing-package', packageName: 'otter-absent-package', neededBy: 'the feature' });
    }
  });
});

describe('an install without some of the peers', () => {
  let dir: string | undefined;
  const children: CliProcess[] = [];

  afterEach(() => {
    for (const c of children.splice(0)) c.kill();
    removeTempDir(dir);
    dir = undefined;
  });

  /** A project with a copy of the built otter and, linked from this repository, only `withPeers`. */
  function project(withPeers: string[]): string {
    const cwd = makeTempDir('otter-install-');
    dir = cwd;
    const otter = join(cwd, 'node_modules', 'otter');
    mkdirSync(otter, { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(otter, 'package.json'));
    cpSync(join(ROOT, 'dist'), join(otter, 'dist'), { recursive: true });
    for (const name of withPeers) symlinkSync(join(ROOT, 'node_modules', name), join(cwd, 'node_modules', name), 'dir');
    return cwd;
  }

  function node(cwd: string, args: string[]) {
    const run = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 15_000 });
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  }

  const browserUse = [
    "const ot = await import('otter/ot');",
    "const client = await import('otter/client');",
    "console.log(ot.apply('hello', [5, ' world']), typeof client.Connection);",
    "await import('otter/server').catch((e) => console.log(`${e.name}: ${e.message}`));",
  ].join('\n');

  it('with none, otter/ot and otter/client work and otter/server names what it needs', () => {
    const cwd = project([]);
    const run = node(cwd, ['--input-type=module', '-e', browserUse]);
    expect(run.stderr).toBe('');
    const [used, refused] = run.stdout.trim().split('\n');
    expect(used).toBe('hello world function');
    const m = /^MissingPackageError: otter\/server \([^)]+\) needs ([\w-]+): npm install ([\w-]+)$/.exec(refused ?? '');
    expect(m, refused).not.toBeNull();
    expect(m?.[1]).toBe(m?.[2]);
    expect(peers).toContain(m?.[1]);
  });

  it('without better-sqlite3, otter serve names it, and serves from memory with --memory', async () => {
    const cwd = project(peers.filter((p) => p !== 'better-sqlite3'));
    const cli = join(cwd, 'node_modules', 'otter', 'dist', 'cli.js');
    const refused = node(cwd, [cli, 'serve', '--port', '0', '--data', join(cwd, 'otter.db')]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(
      'otter: SqliteStore (the store of otter serve without --memory) needs better-sqlite3: npm install better-sqlite3\n',
    );
    expect(existsSync(join(cwd, 'otter.db'))).toBe(false);

    const args = [cli, 'serve', '--port', '0', '--memory', '--log-level', 'silent'];
    const serving = new CliProcess(spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
    children.push(serving);
    await within(
      new Promise<void>((resolve, reject) => {
        serving.child.stdout?.on('data', () => serving.stdout.includes('Otter is running: open') && resolve());
        void serving.exited.then(() => reject(new Error(`otter serve --memory exited: ${serving.stderr}`)));
      }),
      15_000,
      'otter serve --memory listening',
    );
    const exit = await serving.stop();
    expect(exit, serving.stderr).toEqual({ code: 0, signal: null });
  });
});
