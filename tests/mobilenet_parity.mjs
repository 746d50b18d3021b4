// mobilenet_parity.mjs — checks our MobileNetV2 (core/backbone_keras.c on the
// file from tools/nsfwjs-convert.mjs) against @tensorflow/tfjs running the
// original nsfwjs model files (run by tests/test_mobilenet_parity.sh).
//
//   node tests/mobilenet_parity.mjs --tfjs DIR --nsfwjs DIR --model FILE
//        --tool tests/backbone_tool --work DIR [--sizes 224,256,320]
//        [--levels a,b,c] [--tol 1e-4] [--same 1]
//
// --nsfwjs is the model's directory (mobilenet_v2 or inception_v3: every weight
// shard its manifest names is read); --same 1 first rewrites the topology's
// "valid" windows as tools/nsfwjs-convert.mjs does for inception_v3.
//
// tfjs gets the Keras topology cut after the deepest level (input shape set to
// S×S×3, the levels as outputs) and the still-quantized weights of those
// layers straight from the nsfwjs shard, so it dequantizes them itself; it runs
// on its pure-JS CPU backend.  Both sides see the same seeded uniform [-1, 1]
// input (raw float32 HWC); every level must agree to a relative L2 error and a
// max error (relative to the level's largest magnitude) of at most --tol.
// Exit 0 pass, 1 fail.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

function fail(msg) {
  process.stderr.write(`mobilenet_parity: ${msg}\n`);
  process.exit(1);
}

const o = { sizes: '224,256,320', tol: '1e-4' };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (i + 1 >= process.argv.length) fail(`${process.argv[i]} needs a value`);
  o[k] = process.argv[i + 1];
}
for (const k of ['tfjs', 'nsfwjs', 'model', 'tool', 'work']) if (!o[k]) fail(`--${k} is required`);
const tol = Number(o.tol);

// The default levels from the safetensors metadata, unless given.
function fileLevels(file) {
  const fd = fs.openSync(file, 'r');
  const len = Buffer.alloc(8);
  fs.readSync(fd, len, 0, 8, 0);
  const n = Number(len.readBigUInt64LE(0));
  const hdr = Buffer.alloc(n);
  fs.readSync(fd, hdr, 0, n, 8);
  fs.closeSync(fd);
  return JSON.parse(hdr.toString('utf8')).__metadata__['resadd.levels'];
}
const levels = (o.levels || fileLevels(o.model)).split(',');

const tfRequire = createRequire(path.join(path.resolve(o.tfjs), 'index.js'));
const tf = tfRequire('@tensorflow/tfjs');
const nsRequire = createRequire(path.join(path.resolve(o.nsfwjs), 'index.js'));
const nsModel = nsRequire('./model.min.js');
const group = nsModel.weightsManifest[0];
if (nsModel.weightsManifest.length !== 1) fail('more than one weight group');
const shard = Buffer.concat(group.paths.map((p) => Buffer.from(nsRequire(`./${p}.min.js`), 'base64')));
const { sameWindows } = await import(new URL('../tools/nsfwjs-convert.mjs', import.meta.url).href);

function bytesPer(w) {
  return w.quantization ? { uint8: 1, uint16: 2 }[w.quantization.dtype] : 4;
}

// The model up to the deepest level, for an S×S input, as a tfjs IOHandler.
function handler(s) {
  const topo = JSON.parse(JSON.stringify(nsModel.modelTopology));
  delete topo.training_config;
  const cfg = topo.model_config.config;
  const last = Math.max(...levels.map((n) => cfg.layers.findIndex((l) => l.name === n)));
  if (last < 0 || levels.some((n) => !cfg.layers.some((l) => l.name === n))) fail(`unknown level in ${levels}`);
  cfg.layers = cfg.layers.slice(0, last + 1);
  if (o.same === '1') sameWindows(cfg.layers);
  cfg.layers[0].config.batch_input_shape = [null, s, s, 3];
  cfg.output_layers = levels.map((n) => [n, 0, 0]);
  const keep = new Set(cfg.layers.map((l) => l.name));
  const specs = [];
  const parts = [];
  let off = 0;
  for (const w of group.weights) {
    const n = w.shape.reduce((a, b) => a * b, 1) * bytesPer(w);
    if (keep.has(w.name.split('/')[0])) {
      specs.push(w);
      parts.push(shard.subarray(off, off + n));
    }
    off += n;
  }
  if (off !== shard.length) fail(`shard is ${shard.length} bytes, manifest says ${off}`);
  const data = Buffer.concat(parts);
  const weightData = data.buffer.slice(data.byteOffset, data.byteOffset + data.length);
  return { load: async () => ({ modelTopology: topo, weightSpecs: specs, weightData, format: 'layers-model' }) };
}

// Seeded uniform [-1, 1) (xorshift32), so a failure can be reproduced.
function randomInput(n, seed) {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = (x / 4294967296) * 2 - 1;
  }
  return a;
}

function compare(ours, ref) {
  let d2 = 0, r2 = 0, dmax = 0, rmax = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ours[i] - ref[i]);
    if (!(d <= dmax)) dmax = Number.isNaN(d) ? Infinity : d;
    d2 += d * d;
    r2 += ref[i] * ref[i];
    rmax = Math.max(rmax, Math.abs(ref[i]));
  }
  return { l2: Math.sqrt(d2 / r2), max: dmax / rmax, rmax };
}

async function main() {
  await tf.setBackend('cpu');
  fs.mkdirSync(o.work, { recursive: true });
  let ok = true;
  for (const s of o.sizes.split(',').map(Number)) {
    const model = await tf.loadLayersModel(handler(s), { strict: true });
    const input = randomInput(s * s * 3, 1234 + s);
    const inFile = path.join(o.work, `input_${s}.raw`);
    fs.writeFileSync(inFile, Buffer.from(input.buffer));
    let t0 = performance.now();
    let outs = model.predict(tf.tensor4d(input, [1, s, s, 3]));
    if (!Array.isArray(outs)) outs = [outs];
    const refs = outs.map((t) => ({ shape: t.shape.slice(1), data: t.dataSync() }));
    const tfMs = performance.now() - t0;
    for (const team of s === 224 ? ['1', '2'] : ['1']) {
      const outDir = path.join(o.work, `out_${s}_${team}`);
      fs.mkdirSync(outDir, { recursive: true });
      t0 = performance.now();
      const r = spawnSync(o.tool, ['levels', o.model, inFile, String(s), outDir, levels.join(',')], {
        encoding: 'utf8', env: { ...process.env, BACKBONE_TOOL_TEAM: team },
      });
      const ourMs = performance.now() - t0;
      if (r.status !== 0) fail(`${o.tool} failed (exit ${r.status}): ${r.stderr}`);
      const shapes = new Map(r.stdout.trim().split('\n').map((l) => l.split(' ')).map((f) => [f[0], f.slice(1, 4).map(Number)]));
      levels.forEach((name, i) => {
        const ref = refs[i];
        const shp = shapes.get(name);
        if (!shp || shp.join() !== ref.shape.join()) {
          process.stdout.write(`S=${s} ${name}: shape ${shp} vs tfjs ${ref.shape}\n`);
          ok = false;
          return;
        }
        const buf = fs.readFileSync(path.join(outDir, `${name}.raw`));
        const ours = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
        if (ours.length !== ref.data.length) fail(`${name}: ${ours.length} values, tfjs ${ref.data.length}`);
        const e = compare(ours, ref.data);
        const pass = e.l2 <= tol && e.max <= tol;
        ok = ok && pass;
        process.stdout.write(`S=${s} team=${team} ${name.padEnd(20)} ${ref.shape.join('x').padEnd(10)} ` +
          `rel_l2=${e.l2.toExponential(2)} rel_max=${e.max.toExponential(2)} max|ref|=${e.rmax.toFixed(2)} ` +
          `${pass ? 'ok' : 'FAIL'}\n`);
      });
      process.stdout.write(`S=${s} team=${team}: tfjs ${tfMs.toFixed(0)} ms, backbone_tool ${ourMs.toFixed(0)} ms (process)\n`);
    }
    tf.dispose(outs);
    model.dispose();
  }
  process.exit(ok ? 0 : 1);
}

main().catch((e) => fail(e.stack || String(e)));
