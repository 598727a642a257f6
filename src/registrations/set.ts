// The live set of this node's registrations: the files in the registrations directory
// (watched) plus the entries put through the API (persisted in a state file inside the
// same directory, so they survive a restart). A file is taken whole or not at all: a bad
// version is rejected and the previous good version of that file stays in the set.
import { EventEmitter } from 'node:events';
import { mkdirSync, readdirSync, renameSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { FSWatcher } from 'chokidar';
import type { Counter, Registry } from '../admin/metrics.ts';
import type { Logger } from '../log.ts';
import type { Registration, RegistrationOrigin, RegistrationSource } from './types.ts';
import { readTextFile } from '../util/structured-file.ts';
import { isMapping, LIMITS, parseRegistration, parseRegistrationDocument, parseRegistrationFile, RegistrationError, toEntry } from './validate.ts';
import { writeFileAtomicSync } from '../util/atomic-file.ts';
import { watchPaths } from '../util/watch.ts';

/** API entries; the loader skips dotfiles, so this never doubles as a registration file. */
export const API_STATE_FILE = '.api-instances.json';
/** Bounds the state file, which is rewritten whole on every API change. */
export const MAX_API_INSTANCES = 10_000;
const REGISTRATION_FILE = /^[^.].*\.(ya?ml|json)$/;

/** An API call that collides with a file's instance: the file owns that id. */
export class RegistrationConflictError extends Error {
  readonly code = 'REGISTRATION_CONFLICT';
  readonly field = 'id';
}

export interface RegistrationSetOptions {
  dir: string;
  logger: Logger;
  metrics: Registry;
  /** Quiet period after a directory event before rescanning, ms (collapses bursts of writes). */
  debounceMs?: number;
}

export interface RegistrationSetStatus {
  instances: number;
  fromFiles: number;
  fromApi: number;
  /** Files whose current content is rejected (path → reason); their previous good version stays. */
  rejectedFiles: Record<string, string>;
}

interface FileState {
  /** Text last read, to skip files that did not change when the directory is rescanned. */
  text: string | null;
  /** The last good version, in service. */
  accepted: Registration[];
  error: string | null;
  /** Rejected only because an id is taken elsewhere: retried when ids are freed. */
  conflict: boolean;
}

interface Entry {
  registration: Registration;
  origin: RegistrationOrigin;
}

const API_ORIGIN: RegistrationOrigin = { kind: 'api' };

export class RegistrationSet
  extends EventEmitter<{ change: [Registration[]]; rejected: [{ source: string; error: string }] }>
  implements RegistrationSource {
  private readonly dir: string;
  private readonly statePath: string;
  private readonly files = new Map<string, FileState>();
  private api = new Map<string, Registration>();
  /** Every registration in service by id; ids are unique across files and the API. */
  private readonly index = new Map<string, Entry>();
  private current: Registration[] = [];
  private currentKey = '[]';
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly errors: Counter;

  constructor(private readonly options: RegistrationSetOptions) {
    super();
    this.dir = resolve(options.dir);
    this.statePath = join(this.dir, API_STATE_FILE);
    const { metrics } = options;
    this.errors = metrics.counter('presence_dns_registration_errors_total', 'Registration files, API requests or API state rejected as invalid or conflicting.', { labelNames: ['source'] });
    metrics.gauge('presence_dns_registrations', 'Instances registered on this node (files and API).', { collect: () => this.index.size });
    metrics.gauge('presence_dns_registration_files_rejected', 'Registration files whose current content is rejected (their previous good version stays).', { collect: () => [...this.files.values()].filter((f) => f.error !== null).length });
  }

  /** Loads the API state and the directory, then watches it. Emits `change` once if anything is registered. */
  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    // Watch first so an edit made while loading is not missed (it only causes one more rescan).
    this.watcher = await watchPaths(this.dir, {
      chokidar: {
        depth: 0,
        ignored: (path: string) => {
          const p = resolve(path);
          // The API's state file, and the temporary file it is written through, are not registrations.
          return p !== this.dir && (dirname(p) !== this.dir || basename(p).replace(/^\./, '').startsWith(API_STATE_FILE));
        },
      },
      // Any event rescans: Kubernetes ConfigMap volumes change files by swapping a `..data` symlink.
      onChange: () => this.schedule(),
      onError: (err) => this.options.logger.error({ dir: this.dir, err: err.message }, 'watching the registrations directory failed; changes may be missed until restart'),
    });
    this.loadApiState();
    this.scan();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.watcher?.close();
    this.watcher = null;
  }

  /** The current set, ordered by id. Treat the objects as read-only: they are shared with other consumers. */
  list(): Registration[] {
    return [...this.current];
  }

  get(id: string): Registration | undefined {
    return this.index.get(id.toLowerCase())?.registration;
  }

  origin(id: string): RegistrationOrigin | undefined {
    return this.index.get(id.toLowerCase())?.origin;
  }

  status(): RegistrationSetStatus {
    const rejectedFiles: Record<string, string> = {};
    for (const [path, state] of this.files) if (state.error) rejectedFiles[path] = state.error;
    return { instances: this.index.size, fromFiles: this.index.size - this.api.size, fromApi: this.api.size, rejectedFiles };
  }

  /**
   * API: validates, stores, persists and publishes one entry. The id in the path must equal
   * the body's id (or the body has none). Throws RegistrationError (bad input) or
   * RegistrationConflictError (a file owns the id); nothing is changed then.
   */
  put(id: string, entry: unknown): Registration {
    const where = `PUT /v1/instances/${id}`;
    try {
      if (!isMapping(entry)) throw new RegistrationError(where, '(entry)', 'the body must be a JSON object with the instance fields');
      if (entry.id !== undefined && entry.id !== null && (typeof entry.id !== 'string' || entry.id.toLowerCase() !== id.toLowerCase())) {
        throw new RegistrationError(where, 'id', `${JSON.stringify(entry.id)} differs from the id in the path "${id}"`);
      }
      const registration = parseRegistration({ ...entry, id }, where);
      const existing = this.index.get(registration.id);
      if (existing?.origin.kind === 'file') {
        throw new RegistrationConflictError(`${where}: id: ${registration.id} is registered by the file ${existing.origin.path}; change it there`);
      }
      if (!existing && this.api.size >= MAX_API_INSTANCES) {
        throw new RegistrationError(where, 'id', `this node already holds ${MAX_API_INSTANCES} instances registered through the API`);
      }
      const api = new Map(this.api).set(registration.id, registration);
      this.persist(api);
      this.api = api;
      this.index.set(registration.id, { registration, origin: API_ORIGIN });
      this.options.logger.info({ id: registration.id }, 'instance registered through the API');
      this.publish();
      return registration;
    } catch (err) {
      if (err instanceof RegistrationError || err instanceof RegistrationConflictError) this.errors.inc({ source: 'api' });
      throw err;
    }
  }

  /** API: removes an API entry (false when unknown). A file's instance cannot be deleted here: RegistrationConflictError. */
  delete(id: string): boolean {
    const key = id.toLowerCase();
    const existing = this.index.get(key);
    if (!existing) return false;
    if (existing.origin.kind === 'file') {
      throw new RegistrationConflictError(`DELETE /v1/instances/${id}: id: the instance comes from the file ${existing.origin.path}; remove it from that file`);
    }
    const api = new Map(this.api);
    api.delete(key);
    this.persist(api);
    this.api = api;
    this.index.delete(key);
    this.options.logger.info({ id: key }, 'instance deregistered through the API');
    this.retryConflicts();
    this.publish();
    return true;
  }

  /** SIGHUP: reads the directory again now (the watcher normally does this by itself). */
  reload(): void {
    this.scan();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.scan();
    }, this.options.debounceMs ?? 50);
  }

  /** Re-reads the directory: removed files leave, changed files are re-validated. */
  private scan(): void {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((name) => REGISTRATION_FILE.test(name)).sort();
    } catch (err) {
      // A vanished or unreadable directory is more likely an unmounted volume than an intent
      // to deregister everything: keep what is in service.
      this.options.logger.error({ dir: this.dir, err: (err as Error).message }, 'cannot list the registrations directory; keeping the current set');
      return;
    }
    const present = new Set(names.map((name) => join(this.dir, name)));
    for (const path of this.files.keys()) if (!present.has(path)) this.removeFile(path);
    for (const path of present) this.loadFile(path);
    this.retryConflicts();
    this.publish();
  }

  /** Files rejected for an id taken elsewhere may fit now; repeat while one of them gets in. */
  private retryConflicts(): void {
    for (let progress = true; progress;) {
      progress = false;
      for (const [path, state] of this.files) if (state.conflict && this.loadFile(path)) progress = true;
    }
  }

  /** Returns true when a new version of the file went into service. */
  private loadFile(path: string): boolean {
    let text: string;
    try {
      text = readTextFile(path, LIMITS.fileBytes);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        this.removeFile(path);
        return false;
      }
      const why = code === 'EFBIG' ? `is over the limit of ${LIMITS.fileBytes} bytes` : `cannot read: ${code ?? (err as Error).message}`;
      this.reject(path, this.fileState(path), `${path}: (file): ${why}`, false);
      return false;
    }
    const state = this.fileState(path);
    if (state.text === text && !state.conflict) return false;
    const retry = state.text === text;
    state.text = text;
    let registrations: Registration[];
    try {
      registrations = parseRegistrationFile(path, text);
    } catch (err) {
      if (!(err instanceof RegistrationError)) throw err;
      this.reject(path, state, err.message, false);
      return false;
    }
    const conflict = this.findConflict(registrations, path);
    if (conflict) {
      this.reject(path, state, conflict, true, retry);
      return false;
    }
    for (const old of state.accepted) this.index.delete(old.id);
    const origin: RegistrationOrigin = { kind: 'file', path };
    for (const registration of registrations) this.index.set(registration.id, { registration, origin });
    const recovered = state.error !== null;
    state.accepted = registrations;
    state.error = null;
    state.conflict = false;
    this.options.logger.info({ file: path, instances: registrations.length }, recovered ? 'registration file accepted again' : 'registration file loaded');
    return true;
  }

  private fileState(path: string): FileState {
    let state = this.files.get(path);
    if (!state) {
      state = { text: null, accepted: [], error: null, conflict: false };
      this.files.set(path, state);
    }
    return state;
  }

  private removeFile(path: string): void {
    const state = this.files.get(path);
    if (!state) return;
    for (const old of state.accepted) this.index.delete(old.id);
    this.files.delete(path);
    this.options.logger.info({ file: path, instances: state.accepted.length }, 'registration file removed; its instances are deregistered');
  }

  private findConflict(registrations: Registration[], path: string): string | null {
    for (const [i, registration] of registrations.entries()) {
      const other = this.index.get(registration.id);
      if (!other || (other.origin.kind === 'file' && other.origin.path === path)) continue;
      const place = other.origin.kind === 'file' ? `the file ${other.origin.path}` : `the API (PUT /v1/instances/${registration.id})`;
      return `${path}: instances[${i}] (id ${registration.id}): id: already registered by ${place}`;
    }
    return null;
  }

  private reject(path: string, state: FileState, error: string, conflict: boolean, retry = false): void {
    state.conflict = conflict;
    // A conflicting file is retried on every rescan; say it once, not on every retry.
    if (retry && state.error === error) return;
    state.error = error;
    this.errors.inc({ source: 'file' });
    const kept = state.accepted.length;
    this.options.logger.error(
      { file: path, err: error, keptInstances: kept },
      kept ? 'registration file rejected; its previous good version stays registered' : 'registration file rejected; none of its instances are registered',
    );
    this.emit('rejected', { source: path, error });
  }

  private loadApiState(): void {
    let text: string;
    try {
      text = readTextFile(this.statePath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const registrations = parseRegistrationDocument(this.statePath, text, MAX_API_INSTANCES);
      this.api = new Map(registrations.map((r) => [r.id, r]));
      for (const registration of registrations) this.index.set(registration.id, { registration, origin: API_ORIGIN });
      this.options.logger.info({ file: this.statePath, instances: registrations.length }, 'API registrations restored');
    } catch (err) {
      if (!(err instanceof RegistrationError)) throw err;
      // Keep the bad file for the operator instead of overwriting it with the next PUT.
      const aside = `${this.statePath}.rejected-${Date.now()}`;
      renameSync(this.statePath, aside);
      this.errors.inc({ source: 'state' });
      this.options.logger.error({ file: this.statePath, movedTo: aside, err: err.message }, 'API registration state rejected; starting without API instances');
    }
  }

  /** Atomic replace: a crash leaves the old or the new state file, never a torn one. */
  private persist(api: Map<string, Registration>): void {
    writeFileAtomicSync(this.statePath, [`${JSON.stringify({ instances: [...api.values()].map(toEntry) }, null, 1)}\n`], 0o600);
  }

  /** Emits `change` when the set really changed (not on a rewrite with the same content). */
  private publish(): void {
    const list = [...this.index.values()].map((e) => e.registration).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const key = JSON.stringify(list);
    if (key === this.currentKey) return;
    this.current = list;
    this.currentKey = key;
    try {
      this.emit('change', [...list]);
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, 'a registration change listener failed');
    }
  }
}
