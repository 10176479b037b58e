# Writes the load-pattern probes of docs/PERFORMANCE.md, optimisation log 13 (s_/l_ = straight-line or looped,
# uni/var = one address for all lanes or per-lane addresses, none = no load). Run:
#   python3 attn-bench/examples/probes/loads.py && cargo run --release -p attn-bench --example probe -- s_uni.wgsl main 1024 1 7
N=256
def kern(name, straight, uniform, load=True):
    s = ["@group(0) @binding(1) var<storage, read> inp: array<vec4<f32>>;",
         "@group(0) @binding(2) var<storage, read_write> outp: array<vec4<f32>>;",
         "@compute @workgroup_size(64)",
         f"fn {name}(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{",
         "  var a0 = vec4<f32>(f32(lid)); var a1 = vec4<f32>(1.0);",
         "  let q = vec4<f32>(f32(lid) * 0.001);"]
    base = "(wg.x * 256u)" if uniform else "(wg.x * 16384u + lid * 256u)"
    if straight:
        for i in range(N):
            addr = f"(({base} + {i}u) & 0xFFFFFu)"
            v = f"inp[{addr}]" if load else f"vec4<f32>(f32({i}) * 0.01)"
            s.append(f"  {{ let k = {v}; a0 = fma(q, k, a0); a1 = fma(a0, k, a1); }}")
    else:
        s.append(f"  for (var i = 0u; i < {N}u; i++) {{")
        addr = f"(({base} + i) & 0xFFFFFu)"
        v = f"inp[{addr}]" if load else "vec4<f32>(f32(i) * 0.01)"
        s.append(f"    let k = {v}; a0 = fma(q, k, a0); a1 = fma(a0, k, a1);")
        s.append("  }")
    s.append("  outp[wg.x * 64u + lid] = a0 + a1;")
    s.append("}")
    return "\n".join(s)
for name, st, un, ld in [("s_uni",1,1,1),("s_var",1,0,1),("l_uni",0,1,1),("l_var",0,0,1),("s_none",1,1,0),("l_none",0,1,0)]:
    open(f"{name}.wgsl","w").write(kern("main", st, un, ld))
