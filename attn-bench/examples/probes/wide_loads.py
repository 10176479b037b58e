# Writes the wide-load probes of docs/PERFORMANCE.md, optimisation log 13: 8 floats per trip as two
# vec4<f32> loads (w_f32) or one vec4<u64> load unpacked (w_u64). Run:
#   python3 attn-bench/examples/probes/wide_loads.py && cargo run --release -p attn-bench --example probe -- w_u64.wgsl main 1024 1 7
N=256
def kern(kind):
    # kind: f32 (vec4<f32> per step, 2 steps to get 8 floats) or u64 (one vec4<u64> load = 8 floats)
    s = []
    if kind == "u64":
        s.append("@group(0) @binding(1) var<storage, read> inp: array<vec4<u64>>;")
    else:
        s.append("@group(0) @binding(1) var<storage, read> inp: array<vec4<f32>>;")
    s += ["@group(0) @binding(2) var<storage, read_write> outp: array<vec4<f32>>;",
         "@compute @workgroup_size(64)",
         "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
         "  var a0 = vec4<f32>(f32(lid)); var a1 = vec4<f32>(1.0);",
         "  let q = vec4<f32>(f32(lid) * 0.001);",
         f"  for (var i = 0u; i < {N}u; i++) {{"]
    if kind == "u64":
        s.append("    let w = inp[(wg.x * 8192u + lid * 128u + i) & 0x7FFFFu];")
        s.append("    let lo = vec4<u32>(w & vec4<u64>(0xFFFFFFFFlu)); let hi = vec4<u32>(w >> vec4<u32>(32u));")
        s.append("    let k0 = bitcast<vec4<f32>>(vec4<u32>(lo.x, hi.x, lo.y, hi.y)); let k1 = bitcast<vec4<f32>>(vec4<u32>(lo.z, hi.z, lo.w, hi.w));")
    else:
        s.append("    let k0 = inp[(wg.x * 16384u + lid * 256u + 2u * i) & 0xFFFFFu];")
        s.append("    let k1 = inp[(wg.x * 16384u + lid * 256u + 2u * i + 1u) & 0xFFFFFu];")
    s.append("    a0 = fma(q, k0, a0); a1 = fma(a0, k1, a1);")
    s.append("  }")
    s.append("  outp[wg.x * 64u + lid] = a0 + a1;")
    s.append("}")
    return "\n".join(s)
for k in ["f32","u64"]:
    open(f"w_{k}.wgsl","w").write(kern(k))
