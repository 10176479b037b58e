# Writes the streaming probes of docs/PERFORMANCE.md (log 20 and "Issue 13's rows in interleaved
# rounds"): 16 workgroups of 8 invocations stream 64 MiB of vec4<u64> (32 bytes a load).
# - ld64: each lane loads its own element (the 8 lanes of a step cover 256 contiguous bytes);
# - ldu64: every lane loads the same element (an address uniform across the subgroup), so each
#   workgroup reads its 4 MiB in 8x fewer distinct loads; a driver that loads a uniform address
#   once for the subgroup runs it at least as fast as ld64, one that loads per lane 8x slower.
# Run:
#   python3 attn-bench/examples/probes/streaming.py
#   PROBE_MB=128 cargo run --release -p attn-bench --example probe -- ld64.wgsl main 16 1 7
#   PROBE_MB=128 cargo run --release -p attn-bench --example probe -- ldu64.wgsl main 16 1 7
PER_WG = 131072  # vec4<u64> per workgroup: 4 MiB, 64 MiB over 16 workgroups


def kernel(uniform):
    step = 8 if uniform else 64
    s = [
        "@group(0) @binding(1) var<storage, read> kv: array<vec4<u64>>;",
        "@group(0) @binding(2) var<storage, read_write> out: array<u32>;",
        "@compute @workgroup_size(8)",
        "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {",
        "    var acc = vec4<u64>();",
        f"    let base = wid.x * {PER_WG}u;",
        # Trip counts stay under lavapipe's loop limit (65,535 iterations an invocation).
        f"    for (var i = 0u; i < {PER_WG}u; i += {step}u) {{",
    ]
    for k in range(8):
        s.append(f"        acc ^= kv[base + i + {k}u];" if uniform
                 else f"        acc ^= kv[base + i + {8 * k}u + lane];")
    s += [
        "    }",
        "    let folded = vec4<u32>(vec2<u32>(acc.xy), vec2<u32>(acc.zw)) & vec4<u32>(255u);",
        "    out[wid.x * 8u + lane] = u32(dot(vec4<f32>(folded), vec4<f32>(1.0))) + lane;",
        "}",
    ]
    return "\n".join(s) + "\n"


for name, uniform in (("ld64", False), ("ldu64", True)):
    with open(f"{name}.wgsl", "w") as f:
        f.write(kernel(uniform))
