// Replays traces of wgpu-attention (src/trace.rs) on Dawn, the WebGPU implementation of Chrome,
// through its Node bindings (the npm package `webgpu`), and writes back what the GPU computed.
//
//   node replay.mjs SET.json --backend opengles|vulkan --out RESULTS
//
// SET.json is a `TraceSet` manifest (its data file beside it). Every kernel of the set is compiled
// under Tint (createShaderModule, getCompilationInfo, createComputePipeline), then every trace is
// replayed in order: buffers made with their initial contents, dispatches, copies and submissions
// as the library recorded them, and the output regions read back. RESULTS.json gets the adapter,
// per-kernel compilation results and per-trace results; RESULTS.bin gets the output bytes, at the
// offsets RESULTS.json gives. The comparison with the float64 reference is the Rust side's
// (`attn-bench conformance --dawn`). Exit status: 0 when the harness ran (whatever the kernels
// did), 2 when there is no adapter (the reason is printed and written to RESULTS.json).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const setPath = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : null;
const backend = arg('--backend', 'opengles');
const outStem = arg('--out', 'dawn-results');
const only = arg('--only', null); // 'compile' to compile without replaying

const results = { backend, adapter: null, kernels: [], traces: [], error: null };
function finish(code) {
  writeFileSync(`${outStem}.json`, JSON.stringify(results));
  process.exit(code);
}

// The GLES backend runs in WebGPU's compatibility mode; Vulkan in core.
const featureLevel = backend === 'opengles' ? 'compatibility' : 'core';
const flags = [`backend=${backend}`];
if (process.env.DAWN_FLAGS) flags.push(...process.env.DAWN_FLAGS.split(' '));
const gpu = create(flags);
const adapter = await gpu.requestAdapter({ featureLevel });
if (!adapter) {
  results.error =
    `Dawn found no adapter on backend=${backend} (featureLevel ${featureLevel}). ` +
    (backend === 'opengles'
      ? 'The GLES backend needs EGL (libegl1, Mesa) and EGL_PLATFORM=surfaceless without a display.'
      : 'Dawn\'s Vulkan backend needs shaderSampledImageArrayDynamicIndexing and ' +
        'shaderStorageImageArrayDynamicIndexing; on lavapipe, run with the shim of ' +
        'scripts/dawn-vulkan-shim.c in front of the loader (scripts/dawn.sh does).');
  console.error(results.error);
  finish(2);
}
const info = adapter.info;
const wanted = ['subgroups', 'shader-f16'].filter((f) => adapter.features.has(f));
const limits = {};
for (const k in adapter.limits) {
  if (typeof adapter.limits[k] === 'number') limits[k] = adapter.limits[k];
}
results.adapter = {
  vendor: info.vendor, architecture: info.architecture, device: info.device,
  description: info.description, subgroupMinSize: info.subgroupMinSize,
  subgroupMaxSize: info.subgroupMaxSize, featureLevel, features: wanted, limits,
};
let device;
try {
  device = await adapter.requestDevice({ requiredFeatures: wanted, requiredLimits: limits });
} catch (e) {
  results.error = `requestDevice failed on backend=${backend}: ${e.message}`;
  console.error(results.error);
  finish(2);
}
let lost = null;
device.lost.then((l) => { lost = `${l.reason}: ${l.message}`; });
device.onuncapturederror = (e) => { console.error(`uncaptured: ${e.error.message}`); };

// No manifest: report the adapter only.
if (!setPath) finish(0);
const set = JSON.parse(readFileSync(setPath, 'utf8'));
const blob = set.data ? readFileSync(join(dirname(setPath), set.data)) : Buffer.alloc(0);

async function scoped(f) {
  device.pushErrorScope('internal');
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let thrown = null;
  let value;
  try {
    value = await f();
  } catch (e) {
    thrown = e.message;
  }
  const errs = [];
  for (let i = 0; i < 3; i++) {
    const e = await device.popErrorScope();
    if (e) errs.push(e.message);
  }
  if (thrown) errs.unshift(thrown);
  return { value, error: errs.length ? errs.join('\n') : null };
}

const BINDING = {
  uniform: { type: 'uniform', hasDynamicOffset: true },
  read: { type: 'read-only-storage' },
  read_write: { type: 'storage' },
};

// Compile every kernel.
const pipelines = [];
for (const k of set.kernels) {
  const r = { label: k.label, features: k.features, ok: false, messages: [], error: null };
  const missing = k.features.filter((f) => !wanted.includes(f));
  if (missing.length) {
    r.error = `not compiled: needs ${missing.join(', ')}, which this adapter lacks`;
    r.skipped = true;
    results.kernels.push(r);
    pipelines.push(null);
    continue;
  }
  const t0 = performance.now();
  if (process.env.DAWN_REPLAY_VERBOSE) console.error(`compiling ${k.label}`);
  const { value, error } = await scoped(async () => {
    const module = device.createShaderModule({ label: k.label, code: k.wgsl });
    const ci = await module.getCompilationInfo();
    r.messages = ci.messages.map((m) => ({
      type: m.type, line: m.lineNum, column: m.linePos, message: m.message,
    }));
    const layout = device.createBindGroupLayout({
      label: k.label,
      entries: k.bindings.map((b, i) => ({
        binding: i, visibility: GPUShaderStage.COMPUTE, buffer: BINDING[b],
      })),
    });
    const pipeline = device.createComputePipeline({
      label: k.label,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: k.entry },
    });
    return { pipeline, layout };
  });
  r.ms = Math.round(performance.now() - t0);
  if (process.env.DAWN_REPLAY_VERBOSE) console.error(`compiled ${k.label} in ${r.ms} ms`);
  r.error = error;
  r.ok = !error && !r.messages.some((m) => m.type === 'error');
  results.kernels.push(r);
  pipelines.push(r.ok ? value : null);
}
if (only === 'compile') finish(0);

// Replay every trace.
const outputs = [];
let outBytes = 0;
const align = (n) => Math.max(4, Math.ceil(n / 4) * 4);
for (const [name, t] of set.traces) {
  const r = { name, ok: false, error: null, outputs: [] };
  results.traces.push(r);
  const bad = t.commands.find((c) => c.op === 'dispatch' && !pipelines[c.kernel]);
  if (bad) {
    r.error = `kernel ${set.kernels[bad.kernel].label} did not compile`;
    continue;
  }
  const made = [];
  const t1 = performance.now();
  const { error } = await scoped(async () => {
    const buffers = t.buffers.map((b) => {
      const buf = device.createBuffer({
        label: b.label,
        size: align(b.size),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST |
          (b.uniform ? GPUBufferUsage.UNIFORM : 0),
      });
      made.push(buf);
      if (b.init !== 'zero') {
        const { offset, len } = b.init.data;
        device.queue.writeBuffer(buf, 0, blob, offset, len - (len % 4));
      }
      return buf;
    });
    let encoder = null;
    let pass = null;
    const submit = () => {
      if (pass) { pass.end(); pass = null; }
      if (encoder) { device.queue.submit([encoder.finish()]); encoder = null; }
    };
    for (const c of t.commands) {
      if (c.op === 'dispatch') {
        const { pipeline, layout } = pipelines[c.kernel];
        encoder ??= device.createCommandEncoder();
        pass ??= encoder.beginComputePass();
        const group = device.createBindGroup({
          layout,
          entries: c.bindings.map((g, i) => ({
            binding: i, resource: { buffer: buffers[g.buffer], offset: g.offset, size: g.size },
          })),
        });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group, c.dynamic_offsets);
        pass.dispatchWorkgroups(...c.groups);
      } else if (c.op === 'copy') {
        encoder ??= device.createCommandEncoder();
        if (pass) { pass.end(); pass = null; }
        encoder.copyBufferToBuffer(
          buffers[c.src.buffer], c.src.offset, buffers[c.dst], c.dst_offset, c.src.size);
      } else if (c.op === 'submit') {
        submit();
      }
    }
    submit();
    // Read the outputs back.
    const reads = t.outputs.map((o) => {
      const size = align(o.region.size);
      const staging = device.createBuffer({
        size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      made.push(staging);
      const e = device.createCommandEncoder();
      e.copyBufferToBuffer(buffers[o.region.buffer], o.region.offset, staging, 0, size);
      device.queue.submit([e.finish()]);
      return { o, staging };
    });
    for (const { o, staging } of reads) {
      await staging.mapAsync(GPUMapMode.READ);
      const bytes = new Uint8Array(staging.getMappedRange().slice(0, o.region.size));
      staging.unmap();
      outputs.push(bytes);
      r.outputs.push({ name: o.name, offset: outBytes, len: bytes.length });
      outBytes += bytes.length;
    }
  });
  for (const b of made) b.destroy();
  if (process.env.DAWN_REPLAY_VERBOSE) {
    console.error(`replayed ${name} in ${Math.round(performance.now() - t1)} ms`);
  }
  r.error = lost ? `device lost: ${lost}` : error;
  r.ok = !r.error;
}
writeFileSync(`${outStem}.bin`, Buffer.concat(outputs));
finish(0);
