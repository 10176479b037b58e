// Ceiling probes for `attn-bench peak`: f32 FMA throughput and device-memory copy bandwidth.
//
// fma: each invocation runs ITERS iterations of 8 independent vec4 FMA chains (8 x 4 x 2 = 64
// FLOPs per iteration), enough independent work to hide FMA latency; ITERS stays far below
// lavapipe's 65,535-iteration loop limiter. The result is stored so nothing is optimised away.
// copy: each invocation copies one vec4 (16 bytes read, 16 written).
//
// Specialization constant (prepended by attn-bench): ITERS.

// The FMA multiplier, a uniform so that nothing folds the chains away.
struct PeakParams {
    scale: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}
@group(0) @binding(0) var<uniform> p: PeakParams;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn fma_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    let seed = f32(idx & 255u) * 1e-3;
    var a0 = vec4<f32>(seed, seed + 0.1, seed + 0.2, seed + 0.3);
    var a1 = a0 + 0.01;
    var a2 = a0 + 0.02;
    var a3 = a0 + 0.03;
    var a4 = a0 + 0.04;
    var a5 = a0 + 0.05;
    var a6 = a0 + 0.06;
    var a7 = a0 + 0.07;
    let m = vec4<f32>(p.scale);
    let c = vec4<f32>(1e-4);
    for (var i = 0u; i < ITERS; i++) {
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
    }
    let r = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    // Written only under a condition the host never meets (scale != 0.5), so the store costs
    // nothing yet the compiler cannot drop the chains.
    if (r.x == 12345.678) {
        dst[idx % arrayLength(&dst)] = r;
    }
}

@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    if (idx < arrayLength(&src)) {
        dst[idx] = src[idx];
    }
}
