#!/usr/bin/env node
// The release build's first-load weight (issue 6, goal b): every wasm, js, css and html file of
// dist/ raw, gzip (zlib level 9) and brotli (quality 11). No browser needed.
//
//   node tests/e2e/size.mjs                 table per file and per kind, and the total
//   node tests/e2e/size.mjs --total         one line: "wasm+js+css+html 312.4 KB gzip"
//   node tests/e2e/size.mjs --check         exit 1 if the gzip total grew more than 10 % over
//                                           tests/e2e/size-budget.json ({"gzip_total_bytes": N})
//   node tests/e2e/size.mjs --write-budget  (re)write the budget from the current build
//   --json                                  the measurements as JSON
//
// DIST_DIR (default dist) selects the build. KB = 1024 bytes.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = path.resolve(ROOT, process.env.DIST_DIR || 'dist');
const BUDGET = path.join(ROOT, 'tests', 'e2e', 'size-budget.json');
const KINDS = ['wasm', 'js', 'css', 'html'];
const TOLERANCE = 0.10;

const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

function walk(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

export function measure(dist = DIST) {
  if (!fs.existsSync(path.join(dist, 'index.html'))) {
    throw new Error(`no build at ${dist} (run: trunk build --release --offline)`);
  }
  const files = [];
  for (const p of walk(dist).sort()) {
    const ext = path.extname(p).slice(1).toLowerCase();
    const kind = ext === 'mjs' ? 'js' : ext === 'htm' ? 'html' : ext;
    if (!KINDS.includes(kind)) continue;
    const data = fs.readFileSync(p);
    files.push({
      file: path.relative(dist, p),
      kind,
      raw: data.length,
      gzip: zlib.gzipSync(data, { level: 9 }).length,
      brotli: zlib.brotliCompressSync(data, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
          [zlib.constants.BROTLI_PARAM_MODE]: kind === 'wasm' ? zlib.constants.BROTLI_MODE_GENERIC : zlib.constants.BROTLI_MODE_TEXT,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
        },
      }).length,
    });
  }
  const sum = (list, k) => list.reduce((a, f) => a + f[k], 0);
  const byKind = Object.fromEntries(
    KINDS.map((k) => {
      const l = files.filter((f) => f.kind === k);
      return [k, { files: l.length, raw: sum(l, 'raw'), gzip: sum(l, 'gzip'), brotli: sum(l, 'brotli') }];
    }),
  );
  const total = { raw: sum(files, 'raw'), gzip: sum(files, 'gzip'), brotli: sum(files, 'brotli') };
  return { dist, files, byKind, total };
}

function table(m) {
  const rows = [['file', 'kind', 'raw', 'gzip', 'brotli']];
  for (const f of m.files) rows.push([f.file, f.kind, kb(f.raw), kb(f.gzip), kb(f.brotli)]);
  rows.push(['', '', '', '', '']);
  for (const k of KINDS) {
    const b = m.byKind[k];
    rows.push([`all ${k} (${b.files})`, k, kb(b.raw), kb(b.gzip), kb(b.brotli)]);
  }
  rows.push(['wasm+js+css+html', 'total', kb(m.total.raw), kb(m.total.gzip), kb(m.total.brotli)]);
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n');
}

function main(argv) {
  let m;
  try {
    m = measure();
  } catch (e) {
    console.error(`size: ${e.message}`);
    return 2;
  }
  if (argv.includes('--json')) {
    console.log(JSON.stringify(m, null, 2));
    return 0;
  }
  if (argv.includes('--total')) {
    console.log(`wasm+js+css+html ${kb(m.total.gzip)} gzip`);
    return 0;
  }
  if (argv.includes('--write-budget')) {
    fs.writeFileSync(BUDGET, JSON.stringify({ gzip_total_bytes: m.total.gzip }, null, 2) + '\n');
    console.log(`size: budget written: ${m.total.gzip} bytes gzip (${kb(m.total.gzip)}) to ${path.relative(ROOT, BUDGET)}`);
    return 0;
  }
  if (argv.includes('--check')) {
    let budget;
    try {
      budget = JSON.parse(fs.readFileSync(BUDGET, 'utf8')).gzip_total_bytes;
    } catch (e) {
      console.error(`size: cannot read ${path.relative(ROOT, BUDGET)} (${e.message}); create it with --write-budget`);
      return 2;
    }
    if (!Number.isInteger(budget) || budget <= 0) {
      console.error(`size: ${path.relative(ROOT, BUDGET)} needs {"gzip_total_bytes": N}`);
      return 2;
    }
    const limit = Math.floor(budget * (1 + TOLERANCE));
    const delta = ((m.total.gzip / budget - 1) * 100).toFixed(1);
    const line = `wasm+js+css+html ${m.total.gzip} bytes gzip (${kb(m.total.gzip)}); budget ${budget} bytes (${kb(budget)}), ${delta >= 0 ? '+' : ''}${delta} %, limit +${TOLERANCE * 100} % = ${limit} bytes`;
    if (m.total.gzip > limit) {
      console.error(table(m));
      console.error(`size: OVER BUDGET: ${line}`);
      return 1;
    }
    console.log(`size: ok: ${line}`);
    return 0;
  }
  console.log(`dist: ${path.relative(ROOT, m.dist) || '.'}\n` + table(m));
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
