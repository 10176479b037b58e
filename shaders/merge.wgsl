// Decode path, step 2: merges the key splits written by flash.wgsl (DECODE = 1).
//
// One invocation per (query row, 4 value columns). For its row it finds the largest running max
// over the splits that saw a key, then O = Σ acc_s · exp(m_s − M) / Σ l_s · exp(m_s − M) and
// lse = M + ln(Σ …). Splits with l = 0 (no key) are skipped, so the sentinel max never enters
// arithmetic. Loops run over p.nseg splits (the host keeps that at most 4,096).
//
// Specialization constants (header): WG.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part_o: array<f32>;
@group(0) @binding(2) var<storage, read> part_ml: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<u32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let dv4 = (p.value_dim + 3u) / 4u;
    let idx = gid.x + gid.y * nwg.x * WG;
    let rows = p.batch * p.q_heads * p.q_len;
    if (idx >= rows * dv4) {
        return;
    }
    let row = idx / dv4;
    let t = idx % dv4;
    var big = MASKED;
    var any_key = false;
    // A split that wrote BROKEN_STATS (l < 0: its workgroup found the device breaking the subgroup
    // form's promise) makes the whole row NaN, so the failure shows.
    var broken = false;
    for (var sp = 0u; sp < p.nseg; sp++) {
        let st = part_ml[row * p.nseg + sp];
        broken = broken || st.y < 0.0;
        if (st.y > 0.0) {
            big = select(st.x, max(big, st.x), any_key);
            any_key = true;
        }
    }
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    if (any_key) {
        for (var sp = 0u; sp < p.nseg; sp++) {
            let st = part_ml[row * p.nseg + sp];
            if (st.y > 0.0) {
                let w = exp(st.x - big);
                l += st.y * w;
                let base = (row * p.nseg + sp) * p.value_dim + 4u * t;
                for (var c = 0u; c < 4u; c++) {
                    if (4u * t + c < p.value_dim) {
                        acc[c] += part_o[base + c] * w;
                    }
                }
            }
        }
    }
    let inv = select(0.0, 1.0 / l, any_key);
    for (var c = 0u; c < 4u; c++) {
        let e = 4u * t + c;
        if (e < p.value_dim) {
            o[row * p.value_dim + e] = select(acc[c] * inv, nan_f32(), broken);
        }
    }
    if (t == 0u) {
        let bits = select(NEG_INF_BITS, bitcast<u32>(big + log(max(l, 1e-30))), any_key);
        lse[row] = select(bits, NAN_BITS, broken);
    }
}
