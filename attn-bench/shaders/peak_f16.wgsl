// f16 FMA throughput for `attn-bench peak` (adapters with SHADER_F16): as `fma_f32` in peak.wgsl,
// with vec4<f16> chains. Specialization constant (prepended by attn-bench): ITERS.

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
fn fma_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    let seed = f16(f32(idx & 255u) * 1e-3);
    var a0 = vec4<f16>(seed, seed + 0.1h, seed + 0.2h, seed + 0.3h);
    var a1 = a0 + 0.01h;
    var a2 = a0 + 0.02h;
    var a3 = a0 + 0.03h;
    var a4 = a0 + 0.04h;
    var a5 = a0 + 0.05h;
    var a6 = a0 + 0.06h;
    var a7 = a0 + 0.07h;
    let m = vec4<f16>(f16(p.scale));
    let c = vec4<f16>(1e-3h);
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
    if (f32(r.x) == 12345.678) {
        dst[idx % arrayLength(&dst)] = vec4<f32>(r);
    }
}
