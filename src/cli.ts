#!/usr/bin/env node
/**
 * `otter`: the command line. The composition root: it reads flags and environment variables,
 * picks the store, and starts the server with the demo page, health and metrics.
 *
 *   otter serve [--port N] [--host H] [--data FILE | --memory | --redis URL [--redis-sentinel URLS] | --redis-cluster URLS] [--log-level L] [--retain-* N]
 *   otter export DOC [--version N] [--data FILE | --redis URL [--redis-sentinel URLS] | --redis-cluster URLS]
 *
 * Bad flags or values print a message and exit with code 2 before anything starts; a database
 * file that may not be served (damaged, emptied, foreign, newer, or served by another process)
 * prints why and exits with code 3 before anything listens.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type * as Pino from 'pino';
import { type JwtOptions, jwtAuthenticator } from './server/auth.js';
import { MemoryStore } from './server/memory-store.js';
import { MissingPackageError, requireOptional } from './server/optional-package.js';
import type { RetentionPolicy } from './server/retention.js';
import { checkPrefix } from './server/redis-keys.js';
import { type RedisTarget, clusterSeeds, redisUrl, sentinelTarget } from './server/redis-connection.js';
import { RedisStore } from './server/redis-store.js';
import { Sequencer } from './server/sequencer.js';
import { StoreOpenError } from './server/sqlite-schema.js';
import { SqliteStore } from './server/sqlite-store.js';
import type { Store } from './server/store.js';
import { createServer } from './server/ws-server.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const HELP = `Usage:
  otter serve [options]        run the collaboration server with the demo page
  otter export DOC [options]   print a document's text (at the head or --version N)

Options (each also read from the environment variable shown):
  --port N          port to listen on                  OTTER_PORT       default 8080
  --host H          address to listen on               OTTER_HOST       default 127.0.0.1
  --data FILE       SQLite database file               OTTER_DATA       default ./data/otter.db
  --memory          keep documents in memory only      OTTER_MEMORY=1   default off
  --redis URL       keep documents in Redis (shared)   OTTER_REDIS_URL  redis://host:6379/0, rediss://…
  --redis-sentinel URLS  ask these Sentinels where the   OTTER_REDIS_SENTINEL  redis://s1:26379,redis://s2:26379
                    master is (comma-separated); the host of --redis is then the master group's name
  --redis-cluster URLS  keep documents in a Redis Cluster OTTER_REDIS_CLUSTER  redis://a:7000,redis://b:7000
                    (URLs of some of its nodes, comma-separated; user, password and TLS of the first)
  --redis-prefix P  put before every Redis key         OTTER_REDIS_PREFIX  default otter:
  --log-level L     ${LOG_LEVELS.join(', ')}   OTTER_LOG_LEVEL  default info
  --jwt-secret S    require HS256 JWTs signed with S   OTTER_JWT_SECRET      (16+ characters)
  --jwt-public-key F  require RS256/ES256 JWTs (PEM file) OTTER_JWT_PUBLIC_KEY
  --jwks-url U      require JWTs from this key set     OTTER_JWKS_URL
  --jwt-audience A  required aud claim                 OTTER_JWT_AUDIENCE
  --jwt-issuer I    required iss claim                 OTTER_JWT_ISSUER
  --allow-origin O  browser origin allowed to connect  OTTER_ALLOW_ORIGIN    (repeat, or comma-separate)
  --retain-ops N    keep at least the newest N ops      OTTER_RETAIN_OPS      default: keep all history
  --retain-days D   keep every op younger than D days   OTTER_RETAIN_DAYS     (history beyond any cap
  --retain-mb M     keep at least the newest M MB of ops OTTER_RETAIN_MB      is removed)
  --version N       (export) the version to print                        default: the head
  --help            print this help

Without a JWT option every connection is anonymous and may edit every document.
--data, --memory, --redis and --redis-cluster exclude each other. With Redis, any number of
otter serve processes may serve the same documents behind a load balancer: each publishes the
ops the others commit to its own connections; /readyz answers 503 while Redis cannot be written.

Exit codes: 0 done, 1 failed, 2 bad command line, 3 the database file cannot be served
(damaged, emptied, not an Otter database, written by a newer Otter, or in use by another
otter process); the message says which.
`;

/** A bad command line: printed with the help hint, exit code 2. */
class UsageError extends Error {}

interface ServeConfig {
  port: number;
  host: string;
  data: string | undefined;
  redis: { target: RedisTarget; prefix: string | undefined } | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  jwt: JwtOptions | undefined;
  allowOrigins: string[] | undefined;
  retention: RetentionPolicy;
}

function integer(value: string, name: string, min: number, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

const MAX_DAYS = 36_500;
const MAX_MB = 1 << 30;

/** The history retention policy from the flags (none given: keep all); throws UsageError. */
function retention(flags: { ops: string | undefined; days: string | undefined; mb: string | undefined }): RetentionPolicy {
  return {
    ...(flags.ops === undefined ? {} : { ops: integer(flags.ops, '--retain-ops', 0, Number.MAX_SAFE_INTEGER) }),
    ...(flags.days === undefined ? {} : { ageMs: integer(flags.days, '--retain-days', 0, MAX_DAYS) * 86_400_000 }),
    ...(flags.mb === undefined ? {} : { bytes: integer(flags.mb, '--retain-mb', 0, MAX_MB) * 1_000_000 }),
  };
}

/** The JWT verifier's options from the flags, or undefined without any; throws UsageError. */
function jwtOptions(flags: {
  secret: string | undefined;
  publicKeyFile: string | undefined;
  jwksUrl: string | undefined;
  audience: string | undefined;
  issuer: string | undefined;
}): JwtOptions | undefined {
  const keys = [flags.secret, flags.publicKeyFile, flags.jwksUrl].filter((k) => k !== undefined && k !== '');
  if (keys.length === 0) {
    if (flags.audience !== undefined || flags.issuer !== undefined) {
      throw new UsageError('--jwt-audience and --jwt-issuer need --jwt-secret, --jwt-public-key or --jwks-url');
    }
    return undefined;
  }
  if (keys.length > 1) throw new UsageError('give only one of --jwt-secret, --jwt-public-key and --jwks-url');
  const claims = {
    ...(flags.audience === undefined ? {} : { audience: flags.audience }),
    ...(flags.issuer === undefined ? {} : { issuer: flags.issuer }),
  };
  if (flags.secret) {
    if (flags.secret.length < 16) throw new UsageError('--jwt-secret must be at least 16 characters');
    return { secret: flags.secret, ...claims };
  }
  if (flags.publicKeyFile) {
    let pem: string;
    try {
      pem = readFileSync(flags.publicKeyFile, 'utf8');
    } catch {
      throw new UsageError(`--jwt-public-key: cannot read ${flags.publicKeyFile}`);
    }
    return { publicKey: pem, ...claims };
  }
  let url: URL;
  try {
    url = new URL(flags.jwksUrl as string);
  } catch {
    throw new UsageError(`--jwks-url must be an http(s) URL, got ${JSON.stringify(flags.jwksUrl)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UsageError(`--jwks-url must be an http(s) URL, got ${JSON.stringify(flags.jwksUrl)}`);
  }
  return { jwksUrl: url.href, ...claims };
}

/** Browser origins from the flags, each exactly `scheme://host[:port]`; throws UsageError. */
function origins(list: string[] | undefined): string[] | undefined {
  if (list === undefined) return undefined;
  const out = list.map((o) => o.trim()).filter((o) => o !== '');
  for (const o of out) {
    let origin: string | undefined;
    try {
      origin = new URL(o).origin;
    } catch {
      origin = undefined;
    }
    if (origin !== o) throw new UsageError(`--allow-origin takes origins like https://app.example.com, got ${JSON.stringify(o)}`);
  }
  return out;
}

function parse(argv: string[], env: NodeJS.ProcessEnv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        data: { type: 'string' },
        memory: { type: 'boolean' },
        redis: { type: 'string' },
        'redis-cluster': { type: 'string' },
        'redis-sentinel': { type: 'string' },
        'redis-prefix': { type: 'string' },
        'log-level': { type: 'string' },
        'jwt-secret': { type: 'string' },
        'jwt-public-key': { type: 'string' },
        'jwks-url': { type: 'string' },
        'jwt-audience': { type: 'string' },
        'jwt-issuer': { type: 'string' },
        'allow-origin': { type: 'string', multiple: true },
        'retain-ops': { type: 'string' },
        'retain-days': { type: 'string' },
        'retain-mb': { type: 'string' },
        version: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  const memory = values.memory ?? ['1', 'true'].includes(env.OTTER_MEMORY ?? '');
  const dataFlag = values.data ?? env.OTTER_DATA;
  if (memory && values.data !== undefined) throw new UsageError('--data and --memory exclude each other');
  const redis = redisOptions(
    values.redis ?? env.OTTER_REDIS_URL,
    values['redis-cluster'] ?? env.OTTER_REDIS_CLUSTER,
    values['redis-sentinel'] ?? env.OTTER_REDIS_SENTINEL,
    values['redis-prefix'] ?? env.OTTER_REDIS_PREFIX,
  );
  if (redis !== undefined && (memory || dataFlag !== undefined)) {
    throw new UsageError('--redis and --redis-cluster exclude --data and --memory (and OTTER_DATA, OTTER_MEMORY): give one store');
  }
  const level = values['log-level'] ?? env.OTTER_LOG_LEVEL ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
  }
  const config: ServeConfig = {
    port: integer(values.port ?? env.OTTER_PORT ?? '8080', '--port', 0, 65535),
    host: values.host ?? env.OTTER_HOST ?? '127.0.0.1',
    data: memory || redis !== undefined ? undefined : (dataFlag ?? './data/otter.db'),
    redis,
    logLevel: level as ServeConfig['logLevel'],
    jwt: jwtOptions({
      secret: values['jwt-secret'] ?? env.OTTER_JWT_SECRET,
      publicKeyFile: values['jwt-public-key'] ?? env.OTTER_JWT_PUBLIC_KEY,
      jwksUrl: values['jwks-url'] ?? env.OTTER_JWKS_URL,
      audience: values['jwt-audience'] ?? env.OTTER_JWT_AUDIENCE,
      issuer: values['jwt-issuer'] ?? env.OTTER_JWT_ISSUER,
    }),
    allowOrigins: origins(values['allow-origin'] ?? env.OTTER_ALLOW_ORIGIN?.split(',')),
    retention: retention({
      ops: values['retain-ops'] ?? env.OTTER_RETAIN_OPS,
      days: values['retain-days'] ?? env.OTTER_RETAIN_DAYS,
      mb: values['retain-mb'] ?? env.OTTER_RETAIN_MB,
    }),
  };
  const version = values.version === undefined ? undefined : integer(values.version, '--version', 0, Number.MAX_SAFE_INTEGER);
  return { help: values.help ?? false, positionals, config, version };
}

/**
 * The Redis store's target (one URL, a master group named by its URL and the Sentinels
 * watching it, or a Cluster's seed URLs) and prefix from the flags, or undefined without any;
 * throws UsageError.
 */
function redisOptions(url: string | undefined, cluster: string | undefined, sentinels: string | undefined, prefix: string | undefined): ServeConfig['redis'] {
  const given = url !== undefined && url !== '';
  const givenCluster = cluster !== undefined && cluster !== '';
  const givenSentinels = sentinels !== undefined && sentinels !== '';
  if (givenSentinels && givenCluster) throw new UsageError('--redis-sentinel goes with --redis, not --redis-cluster (nor OTTER_REDIS_CLUSTER)');
  if (givenSentinels && !given) throw new UsageError('--redis-sentinel needs --redis, whose host names the master group');
  if (!given && !givenCluster) {
    if (prefix !== undefined) throw new UsageError('--redis-prefix needs --redis or --redis-cluster');
    return undefined;
  }
  if (given && givenCluster) throw new UsageError('--redis and --redis-cluster exclude each other (and OTTER_REDIS_URL, OTTER_REDIS_CLUSTER): give one');
  const list = (text: string): string[] => text.split(',').map((u) => u.trim());
  let target: RedisTarget;
  try {
    if (givenSentinels) {
      target = { sentinels: list(sentinels), master: url as string };
      sentinelTarget(target);
    } else if (given) {
      redisUrl(url, '--redis');
      target = url;
    } else {
      target = { cluster: list(cluster as string) };
      clusterSeeds(target);
    }
  } catch (e) {
    throw new UsageError(`${givenSentinels ? '--redis-sentinel: ' : given ? '' : '--redis-cluster: '}${(e as Error).message}`);
  }
  if (prefix !== undefined) {
    try {
      checkPrefix(prefix);
    } catch (e) {
      throw new UsageError(`--redis-prefix: ${(e as Error).message}`);
    }
  }
  return { target, prefix };
}

/** The store the config names: Redis, a SQLite file, or memory. */
function openStore(config: ServeConfig, readOnly = false): Store {
  if (config.redis !== undefined) {
    return new RedisStore(config.redis.target, config.redis.prefix === undefined ? {} : { prefix: config.redis.prefix });
  }
  if (config.data === undefined) return new MemoryStore();
  return readOnly ? new SqliteStore(config.data, { readOnly: true }) : new SqliteStore(config.data);
}

/** Where the config keeps documents, for the log (Redis URLs without their passwords). */
function storeName(config: ServeConfig): string {
  if (config.redis === undefined) return config.data ?? 'memory';
  const withoutPassword = (text: string): string => {
    const url = new URL(text);
    url.password = '';
    return url.href;
  };
  const { target, prefix } = config.redis;
  const where =
    typeof target === 'string'
      ? withoutPassword(target)
      : 'cluster' in target
        ? `the Redis Cluster of ${target.cluster.map(withoutPassword).join(', ')}`
        : `the master ${withoutPassword(target.master)} of the Sentinels ${target.sentinels.map(withoutPassword).join(', ')}`;
  return `${where} (prefix ${prefix ?? 'otter:'})`;
}

async function serve(config: ServeConfig): Promise<void> {
  // The key is checked before anything starts: a bad PEM is a bad flag.
  const authenticate =
    config.jwt === undefined
      ? undefined
      : await jwtAuthenticator(config.jwt).catch((e: unknown) => {
          if (e instanceof MissingPackageError) throw e;
          throw new UsageError(`the JWT key was refused: ${e instanceof Error ? e.message : String(e)}`);
        });
  const { pino } = requireOptional<typeof Pino>('pino', 'otter serve (its logs)');
  const logger = pino({ level: config.logLevel, base: { service: 'otter' } });
  const store = openStore(config);
  const instance = store instanceof SqliteStore ? store.instance : undefined;
  const server = await createServer({
    store,
    port: config.port,
    host: config.host,
    demo: true,
    logger,
    sequencer: { retention: config.retention },
    ...(authenticate === undefined ? {} : { authenticate }),
    ...(config.allowOrigins === undefined ? {} : { allowOrigins: config.allowOrigins }),
  });
  const where = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${server.port}`;
  logger.info(
    { url: where, store: storeName(config), instance, auth: authenticate === undefined ? 'none' : 'jwt', origins: config.allowOrigins },
    'otter listening',
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: String(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Announced only now: a supervisor that stops the server as soon as it reads this line shuts it down gracefully.
  process.stdout.write(`Otter is running: open ${where}/?doc=hello in two windows\n`);
}

async function exportDoc(docId: string, config: ServeConfig, version: number | undefined): Promise<void> {
  if (config.data === undefined && config.redis === undefined) throw new UsageError('export reads a database: it cannot use --memory');
  // Opening a SqliteStore creates the file: a mistyped path would print nothing and leave an empty database.
  if (config.data !== undefined && config.data !== ':memory:' && !existsSync(config.data)) throw new Error(`no database at ${config.data}`);
  const store = openStore(config, true);
  const sequencer = new Sequencer(store, { idleTimeout: 0 });
  try {
    const snapshot = await sequencer.getSnapshot(docId, version);
    process.stdout.write(snapshot.text);
  } finally {
    await sequencer.close();
    await store.close();
  }
}

/** Runs the command line; resolves to the exit code for commands that finish. */
async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  try {
    const { help, positionals, config, version } = parse(argv, env);
    const [command, ...rest] = positionals;
    if (help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (command === undefined) {
      process.stderr.write(HELP);
      return 2;
    }
    if (command === 'serve') {
      if (rest.length > 0) throw new UsageError(`serve takes no arguments, got ${rest.join(' ')}`);
      if (version !== undefined) throw new UsageError('--version belongs to export, not serve');
      await serve(config);
      return undefined;
    }
    if (command === 'export') {
      const [doc, ...extra] = rest;
      if (doc === undefined || extra.length > 0) throw new UsageError('export takes exactly one document id');
      await exportDoc(doc, config, version);
      return 0;
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`otter: ${e.message}\nRun otter --help for usage.\n`);
      return 2;
    }
    if (e instanceof StoreOpenError) {
      process.stderr.write(`otter: ${e.message}\n`);
      return 3;
    }
    process.stderr.write(`otter: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2), process.env);
if (code !== undefined) process.exitCode = code;
