#!/usr/bin/env node
// nsfwjs-convert.mjs — builds the embedded default backbone file
// (models/mobilenet_v2.safetensors) from the ImageNet-initialised layers of the
// MobileNetV2 shipped in the npm package nsfwjs@4.4.0 (MIT licence).
//
//   node tools/nsfwjs-convert.mjs --out models/mobilenet_v2.safetensors
//        [--cache DIR] [--tarball FILE] [--model mobilenet_v2|inception_v3]
//
// --model inception_v3 builds the optional stronger backbone (not committed:
// 21 MB; see the MODELS entry and the README's "Backbones").
//
// Steps: `npm pack nsfwjs@4.4.0` into the cache directory (default
// <dir of --out>/.cache/npm-nsfwjs; a tarball already there is reused), check
// its sha512 against the pinned integrity below (and against what npm reports),
// extract the model's two UMD modules with tar, load them with require, and
// dequantize the uint8 weights (w = q·scale + min, as tfjs does).  Only the
// frozen head of the network is kept: the layers before the first layer with
// `trainable: true` (nsfwjs froze the ImageNet weights through block_10 and
// fine-tuned the rest, which we do not want).  The output is a safetensors file
// (F32, little endian) with the Keras weight names ("Conv1/kernel",
// "bn_Conv1/gamma", ...) and shapes (HWIO kernels, depthwise [kh,kw,C,1]) and
// string metadata resadd.* describing the layer graph for core/backbone_keras.c.
// The extracted package stays in the cache (<cache>/package/dist/models/...);
// tests/test_mobilenet_parity.sh reads it from there.  Same input, same bytes.
//
// Node 20, standard library only.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = 'nsfwjs@4.4.0';
const TARBALL = 'nsfwjs-4.4.0.tgz';
// sha512 of the registry tarball (`npm pack nsfwjs@4.4.0 --json` → integrity).
const INTEGRITY = 'sha512-krC1fgeTLXtZwgdpKJ0jm7hqv0gTSRQQRL+FhOaxaJ9Wj92t42BO3csO2odwgTAgZgf2RvkwPtp0R8Aa7dc+MA==';

const MODELS = {
  mobilenet_v2: {
    dir: 'package/dist/models/mobilenet_v2',
    topology: 'model.min.js',
    shards: ['group1-shard1of1.min.js'],
    // Chosen by measurement (see the comment in core/backbone_keras.c).
    levels: 'block_2_add,block_5_add,block_9_add',
    input: 'scale [-1,1]',
    size: '224',
  },
  // The optional stronger backbone: ImageNet-initialised InceptionV3, frozen
  // by nsfwjs through mixed5.  Its stem and reduction blocks use "valid"
  // padding, whose outputs (111, 109, 54, 25, 12 at 224) fall off the stride
  // grid every later stage of resadd works on; `same` rewrites each "valid"
  // window wider than 1 to "same" (recorded in resadd.padding), so levels are
  // exactly S/4, S/8, S/16.  Same weights; features differ from the Keras
  // model's near the borders and by the half-pixel alignment.
  inception_v3: {
    dir: 'package/dist/models/inception_v3',
    topology: 'model.min.js',
    shards: [1, 2, 3, 4, 5, 6].map((k) => `group1-shard${k}of6.min.js`),
    levels: 'activation_5,mixed2,mixed5',
    input: 'scale [-1,1]',
    size: '224',
    same: true,
  },
};

// Config fields that only matter for training; everything else is kept.
const DROP_CONFIG = /initializer|regularizer|constraint|^name$|^trainable$|^momentum$|^dtype$|^sparse$/;

function die(msg) {
  process.stderr.write(`nsfwjs-convert: ${msg}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = { model: 'mobilenet_v2' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--out') o.out = val();
    else if (a === '--cache') o.cache = val();
    else if (a === '--tarball') o.tarball = val();
    else if (a === '--model') o.model = val();
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: nsfwjs-convert.mjs --out FILE.safetensors [--cache DIR] [--tarball FILE] [--model mobilenet_v2|inception_v3]\n');
      process.exit(0);
    } else die(`unknown argument ${a}`);
  }
  if (!o.out) die('--out FILE is required');
  if (!MODELS[o.model]) die(`unknown model ${o.model} (known: ${Object.keys(MODELS).join(', ')})`);
  if (!o.cache) o.cache = path.join(path.dirname(path.resolve(o.out)), '.cache', 'npm-nsfwjs');
  return o;
}

function sri(file) {
  return 'sha512-' + createHash('sha512').update(fs.readFileSync(file)).digest('base64');
}

// Runs a command; `what` names the failure ("npm-unreachable" is what the
// parity test looks for to tell a missing registry from a real error).
function run(cmd, args, what, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) die(`${what}: ${cmd}: ${r.error.message}`);
  if (r.status !== 0) die(`${what}: ${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout;
}

// The verified tarball, fetched with npm unless one is given or cached.
function getTarball(o) {
  if (o.tarball) {
    const got = sri(o.tarball);
    if (got !== INTEGRITY) die(`${o.tarball}: integrity ${got}, expected ${INTEGRITY}`);
    return o.tarball;
  }
  fs.mkdirSync(o.cache, { recursive: true });
  const tgz = path.join(o.cache, TARBALL);
  if (fs.existsSync(tgz) && sri(tgz) === INTEGRITY) return tgz;
  const out = run('npm', ['pack', PACKAGE, '--json', '--pack-destination', o.cache], 'npm-unreachable', { cwd: o.cache });
  let info;
  try {
    info = JSON.parse(out)[0];
  } catch (e) {
    die(`cannot parse the output of npm pack: ${e.message}`);
  }
  if (!info || info.integrity !== INTEGRITY)
    die(`npm reports integrity ${info && info.integrity} for ${PACKAGE}, pinned ${INTEGRITY}`);
  const got = sri(tgz);
  if (got !== INTEGRITY) die(`${tgz}: integrity ${got}, expected ${INTEGRITY}`);
  return tgz;
}

// Extracts the model files (and the package.json that marks them CommonJS).
function extract(o, tgz, m) {
  const files = [m.topology, ...m.shards].map((f) => `${m.dir}/${f}`);
  files.push('package/dist/models/package.json');
  fs.mkdirSync(o.cache, { recursive: true });
  run('tar', ['-xzf', path.resolve(tgz), '-C', o.cache, ...files], 'extracting the model');
  return path.join(o.cache, m.dir);
}

function product(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

// Dequantized weights in manifest order: [{name, shape, data: Float32Array}].
function decodeWeights(manifest, shardBuffers) {
  const out = [];
  for (const group of manifest) {
    const buf = Buffer.concat(group.paths.map((p) => {
      const b = shardBuffers.get(p);
      if (!b) die(`weight shard ${p} not loaded`);
      return b;
    }));
    let off = 0;
    for (const w of group.weights) {
      const n = product(w.shape);
      const data = new Float32Array(n);
      const q = w.quantization;
      if (w.dtype !== 'float32') die(`${w.name}: dtype ${w.dtype} not handled`);
      if (q && q.dtype === 'uint8') {
        if (off + n > buf.length) die(`${w.name}: shard too short`);
        for (let i = 0; i < n; i++) data[i] = buf[off + i] * q.scale + q.min;
        off += n;
      } else if (q && q.dtype === 'uint16') {
        if (off + 2 * n > buf.length) die(`${w.name}: shard too short`);
        for (let i = 0; i < n; i++) data[i] = buf.readUInt16LE(off + 2 * i) * q.scale + q.min;
        off += 2 * n;
      } else if (!q) {
        if (off + 4 * n > buf.length) die(`${w.name}: shard too short`);
        for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(off + 4 * i);
        off += 4 * n;
      } else die(`${w.name}: quantization ${q.dtype} not handled`);
      out.push({ name: w.name, shape: w.shape, data });
    }
    if (off !== buf.length) die(`weight group ${group.paths}: ${buf.length - off} bytes left over`);
  }
  return out;
}

// "valid" → "same" for every window wider than 1 (the inception_v3 entry;
// tests/mobilenet_parity.mjs --same applies it to the model tfjs runs).
// Changes the layers' configs in place; returns how many.
export function sameWindows(layers) {
  let n = 0;
  for (const l of layers) {
    const c = l.config;
    if (!['Conv2D', 'DepthwiseConv2D', 'MaxPooling2D', 'AveragePooling2D'].includes(l.class_name)) continue;
    const k = [].concat(c.kernel_size || c.pool_size);
    if ((c.padding || 'valid') === 'valid' && k.some((x) => x > 1)) {
      c.padding = 'same';
      n++;
    }
  }
  return n;
}

// The frozen layers (up to the first trainable one), configs trimmed.
function frozenLayers(topology) {
  const cfg = topology.model_config;
  if (!cfg || cfg.class_name !== 'Model' || !Array.isArray(cfg.config.layers))
    die('modelTopology is not a Keras functional model');
  const layers = [];
  for (const l of cfg.config.layers) {
    if (l.class_name !== 'InputLayer' && l.config.trainable !== false) break;
    if (l.inbound_nodes.length > 1) die(`layer ${l.name} is shared (called more than once)`);
    const inbound = (l.inbound_nodes[0] || []).map((x) => {
      if (x[1] !== 0 || x[2] !== 0) die(`layer ${l.name}: inbound ${x[0]} is not node 0 / tensor 0`);
      return x[0];
    });
    const config = {};
    for (const [k, v] of Object.entries(l.config)) if (!DROP_CONFIG.test(k)) config[k] = v;
    layers.push({ name: l.name, class_name: l.class_name, config, inbound });
  }
  return layers;
}

function safetensors(tensors, meta) {
  const header = { __metadata__: meta };
  let off = 0;
  for (const t of tensors) {
    const n = t.data.length * 4;
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8; // data starts 8-aligned
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = Buffer.alloc(8 + json.length + off);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let p = 8 + json.length;
  for (const t of tensors) {
    for (let i = 0; i < t.data.length; i++, p += 4) out.writeFloatLE(t.data[i], p);
  }
  return out;
}

function main() {
  const t0 = process.hrtime.bigint();
  const o = parseArgs(process.argv.slice(2));
  const m = MODELS[o.model];
  const tgz = getTarball(o);
  const dir = extract(o, tgz, m);
  const req = createRequire(path.join(path.resolve(dir), 'index.js'));
  const model = req('./' + m.topology);
  if (!model || !model.modelTopology || !model.weightsManifest) die(`${m.topology}: no modelTopology/weightsManifest`);
  const shards = new Map();
  for (const s of m.shards) {
    const b64 = req('./' + s);
    if (typeof b64 !== 'string') die(`${s}: not a base64 string`);
    shards.set(s.replace(/\.min\.js$/, ''), Buffer.from(b64, 'base64'));
  }
  const weights = decodeWeights(model.weightsManifest, shards);
  const layers = frozenLayers(model.modelTopology);
  const rewritten = m.same ? sameWindows(layers) : 0;
  const keep = new Set(layers.map((l) => l.name));
  const tensors = weights.filter((w) => keep.has(w.name.split('/')[0]));
  for (const l of layers) {
    const need = { Conv2D: ['kernel'], DepthwiseConv2D: ['depthwise_kernel'], BatchNormalization: ['moving_mean', 'moving_variance'] }[l.class_name] || [];
    for (const w of need)
      if (!tensors.some((t) => t.name === `${l.name}/${w}`)) die(`layer ${l.name} has no weight ${w}`);
  }
  const meta = {
    'resadd.arch': 'keras',
    'resadd.name': o.model,
    'resadd.topology': JSON.stringify(layers),
    'resadd.levels': m.levels,
    'resadd.source': `npm:${PACKAGE} ${m.dir.replace(/^package\//, '')} (MIT)`,
    'resadd.input': m.input,
    'resadd.size': m.size,
  };
  if (m.same) meta['resadd.padding'] = `${rewritten} "valid" windows wider than 1 rewritten to "same" (stride grid)`;
  const bytes = safetensors(tensors, meta);
  fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
  const tmp = `${o.out}.tmp${process.pid}`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, o.out);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const params = tensors.reduce((a, t) => a + t.data.length, 0);
  process.stdout.write(`nsfwjs-convert: ${o.out}: ${layers.length} layers (through ${layers[layers.length - 1].name}), ` +
    `${tensors.length} tensors, ${params} parameters, ${bytes.length} bytes, ${ms.toFixed(0)} ms\n`);
}

// Run only as a program (the parity test imports sameWindows).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
