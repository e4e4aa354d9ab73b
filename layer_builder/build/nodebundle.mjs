// layer-builder: bundle each npm package of a Node layer on its own (run at build time, with
// esbuild from layer-builder's pinned tool install; nothing of this file goes into a layer).
//
//   node nodebundle.mjs ESBUILD_DIR NODE_MODULES PACKAGE...
//
// For each named package (a directory under NODE_MODULES) whose package.json has an
// `exports` map without patterns, the files its exports name become the package's only way
// in, so its internal modules can be merged without anyone noticing:
//  - CommonJS: one bundle (`_layer_bundle.cjs` beside the entries) holds every CommonJS entry
//    and the package's internal modules, each still a lazily run module of its own; each entry
//    file becomes one line that returns its module from the bundle. All entries share one
//    instance of each internal module, as before.
//  - ES modules: esbuild's code splitting over all ES entries: each entry file is replaced by
//    its bundle, code that several entries use goes to shared chunks (`_layer_chunks/`), so
//    each internal module is still evaluated once.
// Every other package stays external: resolved through node_modules as before.
// A package (or one format of it) is left as npm installed it when esbuild warns (a dynamic
// require or import it cannot follow), when a module reads files next to itself (__dirname,
// import.meta.dirname, `new URL('./...', import.meta.url)`), or when it reaches outside its
// package directory. Prints one JSON line per package: what was done or why not.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [esbuildDir, nodeModules, ...names] = process.argv.slice(2);
const toolRequire = createRequire(path.join(esbuildDir, 'package.json'));
const esbuild = toolRequire('esbuild');
// The scanner Node uses to find a CommonJS module's named exports for ES importers.
const lexer = toolRequire('cjs-module-lexer');
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

const CJS_BUNDLE = '_layer_bundle.cjs';
const CHUNKS = '_layer_chunks';
const STDIN = '_layer_entries.cjs';
const HEADER = '// layer-builder: bundled per package (optimize.bundle); see docs/cold-start.md\n';
// Reads of files beside the module: these break when the module's code moves.
const LOCAL_FILE = /__dirname|import\.meta\.dirname|new URL\(\s*['"`]\.\.?\//;

const NODE_CONDITIONS = new Set(['node', 'import', 'require', 'module-sync', 'default']);
// Our own files that read beside themselves but stay right anywhere inside their package:
// the preloads' set-up walks up from its directory to the layer's extensions/ directory.
const MOVABLE = new Set(
  (process.env.LAYER_BUNDLE_MOVABLE || '').split(path.delimiter).filter(Boolean).map((f) => path.resolve(f)),
);

function posix(p) {
  return p.split(path.sep).join('/');
}

/**
 * Every file an exports map names (for Node's conditions), each with whether only `require`
 * reaches it; null if the map has patterns.
 */
function exportTargets(exp) {
  const out = new Map();
  let patterns = false;
  (function walk(v, required) {
    if (typeof v === 'string') {
      if (v.includes('*')) patterns = true;
      else out.set(v, (out.get(v) ?? true) && required);
    } else if (Array.isArray(v)) v.forEach((x) => walk(x, required));
    else if (v && typeof v === 'object') {
      for (const [k, sub] of Object.entries(v)) {
        if (k.includes('*')) patterns = true;
        // Subpaths, and the conditions Node itself matches (not a bundler's or a browser's).
        if (k.startsWith('.') || NODE_CONDITIONS.has(k)) walk(sub, required || k === 'require');
      }
    }
  })(exp, false);
  return patterns ? null : out;
}

/** 'cjs' or 'esm' for a file in pkgDir, from its extension or the nearest package.json. */
function formatOf(file, pkgDir) {
  if (file.endsWith('.cjs')) return 'cjs';
  if (file.endsWith('.mjs')) return 'esm';
  if (!file.endsWith('.js')) return null;
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      const type = JSON.parse(fs.readFileSync(pj, 'utf8')).type;
      if (type !== undefined || dir === pkgDir) return type === 'module' ? 'esm' : 'cjs';
    }
    if (dir === pkgDir) return 'cjs';
  }
}

function commonDir(files) {
  let dir = path.dirname(files[0]);
  while (!files.every((f) => f.startsWith(dir + path.sep))) dir = path.dirname(dir);
  return dir;
}

/** Why the bundled inputs cannot move into a bundle of this format, or null. */
function unsafeInputs(inputs, pkgDir, format) {
  for (const [input, meta] of Object.entries(inputs)) {
    if (input === STDIN) continue;
    const abs = path.resolve(pkgDir, input);
    if (!abs.startsWith(pkgDir + path.sep)) return `${input} is outside the package`;
    if (meta.format && meta.format !== format) return `${input} is not ${format}`;
    if (!MOVABLE.has(abs) && LOCAL_FILE.test(fs.readFileSync(abs, 'utf8'))) {
      return `${input} reads files beside itself`;
    }
  }
  return null;
}

/**
 * The named exports Node's scan gives ES importers of a CommonJS file: its own, and those of
 * what it re-exports inside the package (followed as Node follows them); re-exports of other
 * packages are kept as specifiers. Null when the scan cannot be carried into a stub.
 */
function scannedExports(file, pkgDir, seen = new Set()) {
  const out = { names: new Set(), bare: new Set() };
  if (seen.has(file)) return out;
  seen.add(file);
  const { exports, reexports } = lexer.parse(fs.readFileSync(file, 'utf8'));
  for (const name of exports) {
    if (!IDENTIFIER.test(name)) return null;
    out.names.add(name);
  }
  for (const spec of reexports) {
    if (!spec.startsWith('.')) {
      out.bare.add(spec);
      continue;
    }
    let target;
    try {
      target = createRequire(file).resolve(spec);
    } catch {
      return null;
    }
    if (!target.startsWith(pkgDir + path.sep) || formatOf(target, pkgDir) !== 'cjs') return null;
    const sub = scannedExports(target, pkgDir, seen);
    if (!sub) return null;
    sub.names.forEach((n) => out.names.add(n));
    sub.bare.forEach((b) => out.bare.add(b));
  }
  return out;
}

/** The stub of a CommonJS entry: its module from the bundle, and for ES importers the same
 * named exports as Node's scan of the original found (an annotation that never runs). */
function cjsStub(spec, key, scanned) {
  let text = `${HEADER}'use strict';\nconst bundle = require(${JSON.stringify(spec)});\nmodule.exports = bundle[${JSON.stringify(key)}]();\n`;
  if (scanned && (scanned.names.size || scanned.bare.size)) {
    const parts = [...[...scanned.names].sort().map((n) => `${n}: null`), ...[...scanned.bare].sort().map((b) => `...require(${JSON.stringify(b)})`)];
    text += `0 && (module.exports = { ${parts.join(', ')} });\n`;
  }
  return text;
}

function sameScan(a, b) {
  const eq = (x, y) => x.size === y.size && [...x].every((v) => y.has(v));
  return eq(a.names, b.names) && eq(a.bare, b.bare);
}

const COMMON = {
  bundle: true,
  platform: 'node',
  packages: 'external',
  write: false,
  metafile: true,
  logLevel: 'silent',
  legalComments: 'inline',
  charset: 'utf8',
  banner: { js: HEADER.trimEnd() },
};

async function bundleCjs(pkgDir, entries, importable) {
  const dir = commonDir(entries);
  const keys = entries.map((e) => posix(path.relative(pkgDir, e)));
  const contents =
    'module.exports = {\n' +
    keys.map((k) => `  ${JSON.stringify(k)}: () => require(${JSON.stringify('./' + k)}),\n`).join('') +
    '};\n';
  const result = await esbuild.build({
    ...COMMON,
    absWorkingDir: pkgDir,
    stdin: { contents, resolveDir: pkgDir, sourcefile: STDIN, loader: 'js' },
    format: 'cjs',
    outfile: path.join(dir, CJS_BUNDLE),
  });
  if (result.warnings.length) return { skipped: `esbuild: ${result.warnings[0].text}` };
  const why = unsafeInputs(result.metafile.inputs, pkgDir, 'cjs');
  if (why) return { skipped: why };
  const writes = [[path.join(dir, CJS_BUNDLE), result.outputFiles[0].text]];
  for (const [i, entry] of entries.entries()) {
    const rel = posix(path.relative(path.dirname(entry), path.join(dir, CJS_BUNDLE)));
    const spec = rel.startsWith('.') ? rel : `./${rel}`;
    let scanned = null;
    if (importable.has(entry)) {
      // ES code can import this entry: Node takes its named exports from a scan of its text.
      scanned = scannedExports(entry, pkgDir);
      if (!scanned) return { skipped: `${keys[i]}: its named exports cannot be carried over` };
    }
    const text = cjsStub(spec, keys[i], scanned);
    const again = lexer.parse(text);
    const got = { names: new Set(again.exports), bare: new Set(again.reexports) };
    if (!sameScan(got, scanned || { names: new Set(), bare: new Set() })) {
      return { skipped: `${keys[i]}: the stub's named exports would differ` };
    }
    writes.push([entry, text]);
  }
  return { writes, modules: Object.keys(result.metafile.inputs).filter((k) => k !== STDIN).length };
}

async function bundleEsm(pkgDir, entries) {
  const dir = commonDir(entries);
  const result = await esbuild.build({
    ...COMMON,
    absWorkingDir: pkgDir,
    entryPoints: entries,
    format: 'esm',
    splitting: true,
    outdir: pkgDir,
    outbase: pkgDir,
    entryNames: '[dir]/[name]',
    chunkNames: `${posix(path.relative(pkgDir, dir))}/${CHUNKS}/[name]-[hash]`,
    outExtension: { '.js': '.mjs' },
  });
  if (result.warnings.length) return { skipped: `esbuild: ${result.warnings[0].text}` };
  const why = unsafeInputs(result.metafile.inputs, pkgDir, 'esm');
  if (why) return { skipped: why };
  // Entries go back to their own names below, so no output may import an entry's output.
  const entryOutputs = new Set(
    Object.entries(result.metafile.outputs).filter(([, m]) => m.entryPoint).map(([o]) => o),
  );
  for (const [out, meta] of Object.entries(result.metafile.outputs)) {
    const hit = meta.imports.find((i) => entryOutputs.has(i.path));
    if (hit) return { skipped: `${out} imports the entry ${hit.path}` };
  }
  const writes = [];
  for (const [out, meta] of Object.entries(result.metafile.outputs)) {
    if (out.endsWith('.map')) continue;
    const file = result.outputFiles.find((f) => f.path === path.resolve(pkgDir, out));
    // An entry goes back to its own name (.js or .mjs); a chunk keeps .mjs, ESM anywhere.
    const target = meta.entryPoint ? path.resolve(pkgDir, meta.entryPoint) : file.path;
    writes.push([target, file.text]);
  }
  return { writes, modules: Object.keys(result.metafile.inputs).length };
}

async function bundlePackage(name) {
  const pkgDir = path.join(nodeModules, name);
  const pj = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  if (!pj.exports || typeof pj.exports !== 'object') return { package: name, skipped: 'no exports map' };
  const targets = exportTargets(pj.exports);
  if (!targets) return { package: name, skipped: 'its exports map has patterns' };
  const byFormat = { cjs: [], esm: [] };
  // An ES module importing a CommonJS file gets its named exports from a static scan of that
  // file's text (cjs-module-lexer): the stub of an entry ES code can reach carries them.
  const importable = new Set();
  for (const [t, requiredOnly] of targets) {
    const file = path.resolve(pkgDir, t);
    const format = formatOf(file, pkgDir);
    if (format && fs.existsSync(file)) byFormat[format].push(file);
    if (format === 'cjs' && !requiredOnly) importable.add(file);
  }
  const report = { package: name, version: pj.version };
  const writes = [];
  for (const [format, build] of [['cjs', bundleCjs], ['esm', bundleEsm]]) {
    const entries = byFormat[format].sort();
    if (!entries.length) continue;
    const r = await build(pkgDir, entries, importable);
    if (!r.skipped && r.modules <= entries.length) r.skipped = 'nothing to merge';
    if (r.skipped) report[format] = { skipped: r.skipped };
    else {
      report[format] = { entries: entries.length, modules: r.modules, files: r.writes.length };
      writes.push(...r.writes);
      report.written = [...(report.written || []), ...r.writes.map(([f]) => posix(path.relative(nodeModules, f)))].sort();
    }
  }
  // Written only after both formats bundled: a later failure leaves nothing half-written. A
  // new file, not a write through: the tree may share files by hard link with another.
  for (const [file, text] of writes) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.layer-tmp`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  }
  return report;
}

for (const name of names) {
  let report;
  try {
    report = await bundlePackage(name);
  } catch (error) {
    report = { package: name, skipped: `esbuild: ${String(error.message).split('\n')[0]}` };
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
