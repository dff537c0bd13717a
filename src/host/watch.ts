/**
 * `serve --watch`: notices a plugin folder added to or removed from the plugins folder, and a
 * manifest created, edited, replaced or deleted in a plugin folder, and calls `onChange` once
 * things have been quiet for `debounceMs` (an editor's save or a `cp -r` is several events).
 *
 * inotify (fs.watch) on the plugins folder and on each plugin folder, not recursive: only
 * `nexo-plugin.toml` counts inside a plugin folder, so a plugin writing its own files (logs,
 * __pycache__, build output) causes no reload.
 */
import { type FSWatcher, readdirSync, watch } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log.js";
import { MANIFEST_FILE } from "../manifest/index.js";

/** Quiet time after the last change before a reload. */
export const WATCH_DEBOUNCE_MS = 300;

export interface PluginsWatcher {
  close(): void;
}

export function watchPlugins(dir: string, onChange: () => void, log: Logger, debounceMs = WATCH_DEBOUNCE_MS): PluginsWatcher {
  const folders = new Map<string, FSWatcher>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const schedule = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      // New folders are watched before the rescan reads them, so a manifest written into one
      // after this point is still noticed.
      syncFolders();
      onChange();
    }, debounceMs);
  };

  const syncFolders = () => {
    let names: string[];
    try {
      names = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      names = [];
    }
    for (const [name, w] of folders) {
      if (names.includes(name)) continue;
      w.close();
      folders.delete(name);
    }
    for (const name of names) {
      if (folders.has(name)) continue;
      try {
        const w = watch(join(dir, name), (_event, file) => {
          if (file === null || file === MANIFEST_FILE) schedule();
        });
        w.on("error", () => {
          w.close();
          folders.delete(name);
        });
        folders.set(name, w);
      } catch {
        // Gone between readdir and watch: the plugins folder's own event covers it.
      }
    }
  };

  let root: FSWatcher;
  try {
    root = watch(dir, () => schedule());
  } catch (err) {
    // Out of inotify watches, most likely (fs.inotify.max_user_watches): serve anyway.
    log.error(
      { err: (err as Error).message, dir },
      "watch: cannot watch the plugins folder; serving without --watch (SIGHUP still reloads)",
    );
    return { close() {} };
  }
  root.on("error", (err) => log.error({ err: err.message, dir }, "watch: cannot watch the plugins folder any more; SIGHUP still reloads"));
  syncFolders();
  log.info({ dir, debounceMs }, "watching the plugins folder for changes");
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      root.close();
      for (const w of folders.values()) w.close();
      folders.clear();
    },
  };
}
