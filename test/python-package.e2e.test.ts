/**
 * The Python SDK is a real package: `pip install --no-build-isolation python/` works with no
 * package index (its build backend is standard library only), and what it installs imports.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { PY_SDK, pythonWith } from "./support/python.js";

const dir = mkdtempSync(join(tmpdir(), "portico-pypkg-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("pip install --no-build-isolation python/ (no index): the installed portico_sdk imports and has the three entry points", () => {
  const python = pythonWith(["pip"]);
  const target = join(dir, "site");
  const pip = spawnSync(
    python,
    ["-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-index", "--no-cache-dir", "--target", target, PY_SDK],
    { encoding: "utf8", timeout: 60_000, env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_ROOT_USER_ACTION: "ignore" } },
  );
  assert.equal(pip.status, 0, pip.stderr);
  const check = spawnSync(
    python,
    ["-c", "import portico_sdk as s; print(s.__file__); print(callable(s.serve_asgi) and callable(s.serve_wsgi) and callable(s.serve))"],
    { cwd: dir, encoding: "utf8", env: { ...process.env, PYTHONPATH: target } },
  );
  assert.equal(check.status, 0, check.stderr);
  const [file, ok] = check.stdout.trim().split("\n");
  assert.ok(file?.startsWith(target), `imported from ${file}`);
  assert.equal(ok, "True");
});
