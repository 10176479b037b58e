// Fused path, subgroup form: the same online-softmax attention as flash.wgsl, for adapters whose
// subgroup size is fixed and known (SG, read from the adapter at run time and baked into the
// pipeline key). One workgroup is one subgroup of SG invocations; each invocation owns R query
// rows. A block of SG keys is read with each invocation loading *its own* key's row (every
// element read is used), then subgroupBroadcast hands each key's row to all invocations in
// registers. No workgroup memory, no barriers.
//
// Why: on llvmpipe a load inside a loop runs lane by lane with a bounds check per element
// (about 8 cycles each), so a tile read from workgroup memory by all lanes costs SG times its
// useful work. Here each element is loaded once per subgroup and reused R times per lane.
//
// Specialization constants (header): SG (subgroup size = workgroup size), R (rows per
// invocation), DK, DV (padded to multiples of 4).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> ml: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> lse: array<u32>;
@group(0) @binding(7) var<storage, read> mask: array<f32>;
@group(0) @binding(8) var<storage, read> key_lengths: array<u32>;

const DK4: u32 = DK / 4u;
const DV4: u32 = DV / 4u;

fn load_row4(is_k: bool, base: u32, d0: u32, n: u32) -> vec4<f32> {
    var x = vec4<f32>(0.0);
    if (d0 + 3u < n) {
        if (is_k) {
            x = vec4<f32>(k[base + d0], k[base + d0 + 1u], k[base + d0 + 2u], k[base + d0 + 3u]);
        } else {
            x = vec4<f32>(v[base + d0], v[base + d0 + 1u], v[base + d0 + 2u], v[base + d0 + 3u]);
        }
    } else {
        for (var c = 0u; c < 4u; c++) {
            if (d0 + c < n) {
                if (is_k) {
                    x[c] = k[base + d0 + c];
                } else {
                    x[c] = v[base + d0 + c];
                }
            }
        }
    }
    return x;
}

@compute @workgroup_size(SG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let bh = p.bh0 + wid.y;
    let b = bh / p.q_heads;
    let h = bh % p.q_heads;
    let kvh = h / p.group;
    // p.i0: first query row of this dispatch (the host splits rows to bound each dispatch's work).
    let i_base = p.i0 + wid.x * SG * R;
    let k_off = (b * p.kv_heads + kvh) * p.kv_len * p.head_dim;
    let v_off = (b * p.kv_heads + kvh) * p.kv_len * p.value_dim;

    var qv: array<array<vec4<f32>, DK4>, R>;
    var acc: array<array<vec4<f32>, DV4>, R>;
    var m: array<f32, R>;
    var l: array<f32, R>;
    for (var r = 0u; r < R; r++) {
        let i = i_base + r * SG + lane;
        let row = bh * p.q_len + min(i, p.q_len - 1u);
        let ok = i < p.q_len;
        for (var t = 0u; t < DK4; t++) {
            var x = vec4<f32>(0.0);
            for (var c = 0u; c < 4u; c++) {
                let d = 4u * t + c;
                if (d < p.head_dim && ok) {
                    x[c] = q[row * p.head_dim + d];
                }
            }
            qv[r][t] = x * p.scale;
        }
        m[r] = MASKED;
        l[r] = 0.0;
        for (var t = 0u; t < DV4; t++) {
            acc[r][t] = vec4<f32>(0.0);
        }
        if ((p.flags & FLAG_ACCUMULATE) != 0u && ok) {
            let st = ml[row];
            m[r] = st.x;
            l[r] = st.y;
            for (var t = 0u; t < DV4; t++) {
                var x = vec4<f32>(0.0);
                for (var c = 0u; c < 4u; c++) {
                    let e = 4u * t + c;
                    if (e < p.value_dim) {
                        x[c] = o[row * p.value_dim + e];
                    }
                }
                acc[r][t] = x;
            }
        }
    }

    var j_stop = p.j0 + p.jn;
    if (p.has_key_lengths != 0u) {
        j_stop = min(j_stop, key_lengths[b]);
    }
    if (p.causal != 0u) {
        let i_last = min(i_base + SG * R, p.q_len) - 1u;
        let lim = i32(i_last) + p.causal_offset + 1;
        j_stop = u32(clamp(lim, i32(p.j0), i32(j_stop)));
    }

    for (var jb = p.j0; jb < j_stop; jb += SG) {
        // This invocation's key: its K row is loaded once and broadcast to the subgroup.
        let jl = min(jb + lane, p.kv_len - 1u);
        var s: array<array<f32, SG>, R>;
        for (var r = 0u; r < R; r++) {
            for (var c = 0u; c < SG; c++) {
                s[r][c] = 0.0;
            }
        }
        for (var t = 0u; t < DK4; t++) {
            let kx = load_row4(true, k_off + jl * p.head_dim, 4u * t, p.head_dim);
            let kb = broadcast_all(kx);
            for (var c = 0u; c < SG; c++) {
                let kc = kb[c];
                for (var r = 0u; r < R; r++) {
                    s[r][c] += dot(qv[r][t], kc);
                }
            }
        }
        // Masks, then the online-softmax update of each row (branch-free, as in flash.wgsl).
        var pr: array<array<f32, SG>, R>;
        for (var r = 0u; r < R; r++) {
            let i = i_base + r * SG + lane;
            var tmax = MASKED;
            for (var c = 0u; c < SG; c++) {
                let j = jb + c;
                var sc = clamp(s[r][c], -SCORE_LIMIT, SCORE_LIMIT);
                var kept = j < j_stop;
                if (p.causal != 0u) {
                    kept = kept && (i32(j) - i32(i) <= p.causal_offset);
                }
                if (p.mask_kind != 0u) {
                    let mi = b * p.mask_sb + h * p.mask_sh + min(i, p.q_len - 1u) * p.mask_sq
                        + min(j, p.kv_len - 1u) * p.mask_sk;
                    let mv = mask[mi];
                    if (p.mask_kind == 1u) {
                        kept = kept && (mv != 0.0);
                    } else {
                        sc = clamp(sc + mv, -SCORE_LIMIT, SCORE_LIMIT);
                    }
                }
                s[r][c] = select(MASKED, sc, kept);
                tmax = max(tmax, s[r][c]);
            }
            let has = tmax > MASKED_BELOW;
            let m_new = select(m[r], select(tmax, max(m[r], tmax), l[r] > 0.0), has);
            let alpha = exp(select(m_new, m[r], l[r] > 0.0) - m_new);
            let m_ref = select(m_new, 0.0, m_new < MASKED_BELOW);
            l[r] *= alpha;
            for (var t = 0u; t < DV4; t++) {
                acc[r][t] *= alpha;
            }
            for (var c = 0u; c < SG; c++) {
                let pc = select(0.0, exp(max(s[r][c], MASKED_BELOW) - m_ref), s[r][c] > MASKED_BELOW);
                pr[r][c] = pc;
                l[r] += pc;
            }
            m[r] = m_new;
        }
        for (var t = 0u; t < DV4; t++) {
            let vx = load_row4(false, v_off + jl * p.value_dim, 4u * t, p.value_dim);
            let vb = broadcast_all(vx);
            for (var c = 0u; c < SG; c++) {
                let vc = vb[c];
                for (var r = 0u; r < R; r++) {
                    acc[r][t] = fma(vec4<f32>(pr[r][c]), vc, acc[r][t]);
                }
            }
        }
    }

    for (var r = 0u; r < R; r++) {
        let i = i_base + r * SG + lane;
        if (i >= p.q_len) {
            continue;
        }
        let row = bh * p.q_len + i;
        if ((p.flags & FLAG_FINALIZE) != 0u) {
            let any_key = l[r] > 0.0;
            let inv = select(0.0, 1.0 / l[r], any_key);
            for (var t = 0u; t < DV4; t++) {
                let x = acc[r][t] * inv;
                for (var c = 0u; c < 4u; c++) {
                    let e = 4u * t + c;
                    if (e < p.value_dim) {
                        o[row * p.value_dim + e] = x[c];
                    }
                }
            }
            lse[row] = select(NEG_INF_BITS, bitcast<u32>(m[r] + log(max(l[r], 1e-30))), any_key);
        } else {
            for (var t = 0u; t < DV4; t++) {
                for (var c = 0u; c < 4u; c++) {
                    let e = 4u * t + c;
                    if (e < p.value_dim) {
                        o[row * p.value_dim + e] = acc[r][t][c];
                    }
                }
            }
            ml[row] = vec2<f32>(m[r], l[r]);
        }
    }
}
