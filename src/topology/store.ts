// The live topology: loads the topology file and the alias files, watches both, and
// swaps in a freshly built index in one step. A file that cannot be read or parsed
// never replaces the last good index; the failure is logged, counted and reported.
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { parse as parseYaml } from 'yaml';
import type { Registry } from '../admin/metrics.ts';
import type { Logger } from '../log.ts';
import { parseTopology, readAliases } from './reader.ts';
import { TopologyIndex } from './topology-index.ts';
import type { AliasMap, Topology } from './types.ts';

export interface TopologyStoreOptions {
  file: string;
  aliasesDir: string;
  domains: string[];
  logger: Logger;
  metrics: Registry;
  /** Quiet period after a file event before reloading, ms (collapses bursts of writes). */
  debounceMs?: number;
}

export interface TopologyStatus {
  loaded: boolean;
  version: number | null;
  records: number;
  /** Why the last reload failed, while the last good topology stays in service. */
  lastError: string | null;
  loadedAt: Date | null;
}

const ALIAS_FILE = /\.(ya?ml|json)$/;

export class TopologyStore {
  private index: TopologyIndex | null = null;
  private topology: Topology | null = null;
  private aliases: AliasMap = new Map();
  private lastError: string | null = null;
  private loadedAt: Date | null = null;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly reloads;
  private readonly failures;

  constructor(private readonly options: TopologyStoreOptions) {
    const { metrics } = options;
    this.reloads = metrics.counter('presence_dns_topology_reloads_total', 'Topology files loaded into service.');
    this.failures = metrics.counter('presence_dns_topology_reload_failures_total', 'Topology or alias files rejected; the last good topology stayed in service.');
    metrics.gauge('presence_dns_topology_records', 'Instance records in the topology in service.', { collect: () => this.index?.recordCount ?? 0 });
    metrics.gauge('presence_dns_topology_revision', 'Version (revision) of the topology in service.', { collect: () => this.index?.version ?? 0 });
  }

  get current(): TopologyIndex | null {
    return this.index;
  }

  status(): TopologyStatus {
    return {
      loaded: this.index !== null,
      version: this.index?.version ?? null,
      records: this.index?.recordCount ?? 0,
      lastError: this.lastError,
      loadedAt: this.loadedAt,
    };
  }

  /** Loads what is there now, then watches for changes. */
  async start(): Promise<void> {
    this.reloadAliases();
    this.reloadTopology();
    const file = resolve(this.options.file);
    const aliasesDir = resolve(this.options.aliasesDir);
    // Watching directories, not files, survives rename-over and delete/re-create; watching
    // the aliases directory from its parent also sees it created after the start.
    const roots = [...new Set([dirname(file), dirname(aliasesDir)])];
    const wanted = (p: string) =>
      roots.includes(p) || p === file || p === aliasesDir || (dirname(p) === aliasesDir && ALIAS_FILE.test(p));
    this.watcher = watch(roots, { depth: 1, ignoreInitial: true, ignored: (path: string) => !wanted(resolve(path)) });
    this.watcher.on('all', (_event: string, path: string) => this.schedule(resolve(path) === file ? 'topology' : 'aliases'));
    await new Promise<void>((ready) => this.watcher!.once('ready', () => ready()));
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.watcher?.close();
  }

  private pending = new Set<'topology' | 'aliases'>();

  private schedule(what: 'topology' | 'aliases'): void {
    this.pending.add(what);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      const pending = this.pending;
      this.pending = new Set();
      if (pending.has('aliases')) this.reloadAliases();
      const rebuilt = pending.has('topology') && this.reloadTopology();
      // New aliases still go into service when the topology file beside them was rejected.
      if (!rebuilt && pending.has('aliases')) this.rebuild();
    }, this.options.debounceMs ?? 50);
  }

  /** Re-reads the alias files and the topology file now (SIGHUP), not waiting for a file event. */
  reload(): boolean {
    this.reloadAliases();
    return this.reloadTopology();
  }

  /** Re-reads the topology file; on any failure the index in service stays. */
  reloadTopology(): boolean {
    const { file, logger } = this.options;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return this.reject(`cannot read topology file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const result = parseTopology(text);
    if (!result.ok) return this.reject(`topology file ${file} rejected: ${result.error}`);
    for (const warning of result.warnings.slice(0, 20)) logger.warn({ file }, `topology row skipped: ${warning}`);
    if (result.warnings.length > 20) logger.warn({ file, skipped: result.warnings.length }, 'more topology rows skipped');
    this.topology = result.topology;
    this.lastError = null;
    this.rebuild();
    return true;
  }

  private reloadAliases(): void {
    const { aliasesDir, logger } = this.options;
    let files: string[];
    try {
      files = readdirSync(aliasesDir).filter((f) => ALIAS_FILE.test(f)).sort();
    } catch {
      files = [];
    }
    const aliases: AliasMap = new Map();
    for (const name of files) {
      const path = join(aliasesDir, name);
      try {
        const text = readFileSync(path, 'utf8');
        const doc: unknown = extname(name) === '.json' ? JSON.parse(text) : parseYaml(text);
        const warnings: string[] = [];
        readAliases(doc, warnings, aliases);
        for (const warning of warnings) logger.warn({ file: path }, warning);
      } catch (err) {
        this.failures.inc();
        logger.error({ file: path, err: (err as Error).message }, `alias file ${basename(path)} rejected; its aliases are not served`);
      }
    }
    this.aliases = aliases;
  }

  private rebuild(): void {
    if (!this.topology) return;
    const index = new TopologyIndex(this.topology, { domains: this.options.domains, aliases: this.aliases });
    this.index = index;
    this.loadedAt = new Date();
    this.reloads.inc();
    this.options.logger.info({ version: index.version, records: index.recordCount }, 'topology in service');
  }

  private reject(reason: string): false {
    this.lastError = reason;
    this.failures.inc();
    this.options.logger.error({ keptVersion: this.index?.version ?? null }, `${reason}; keeping the last good topology`);
    return false;
  }
}
