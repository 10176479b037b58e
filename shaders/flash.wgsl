// Fused path: FlashAttention-2 style forward. No buffer grows with q_len · kv_len.
//
// A workgroup owns BQ query rows of one head, one row per invocation; the row's q (pre-scaled)
// and output accumulator live in private arrays, with its running max m and denominator l
// (online softmax). Key and value tiles of BK keys are staged in workgroup memory and every
// invocation reads the same tile entries (uniform addresses). Per tile: BK scores, one rescale
// of the accumulator, BK weighted value rows.
//
// The keys of a row are split over several dispatches of at most p.jn keys (the host bounds
// the per-invocation loop trips far below lavapipe's 65,535-iteration limiter): a dispatch after
// the first loads the state (unnormalised accumulator from `o`, (m, l) from `ml`), and the last
// one (FLAG_FINALIZE) writes O = acc / l and the lse. Causal masks and key lengths shorten the
// tile loop of a whole workgroup (fully masked tiles are skipped, not computed).
//
// Decode (DECODE = 1, Flash-Decoding): the keys are split over workgroups along z, each writing
// its unnormalised accumulator and (m, l) to one slot per (row, split) of `o` and `ml` (partial
// buffers then); merge.wgsl combines the splits.
//
// Specialization constants (header): BQ (rows per workgroup), BK (keys per tile), DK and DV
// (head and value dims rounded up to a multiple of 4; the tail is zero-padded), DECODE; for 16-bit
// data DT (the inputs' dtype), KA and VA (head and value dims even), MDT (the mask's dtype), and
// ODT where the kernel writes a 16-bit O itself. `o` is bound as words: f32 values (the
// accumulator between dispatches, the partial outputs of decode, an f32 O) are stored as their
// bits; with ODT (1 f16, 2 bf16: one key chunk, value_dim a multiple of 4, fused::direct_16bit)
// the last dispatch stores O rounded to nearest even, each 4 columns of a row as two words
// (store_o.wgsl, round16.wgsl); otherwise a 16-bit O is packed from the f32 O afterwards.

@group(0) @binding(0) var<uniform> p: Params;
// q, k and v in the call's dtype (DT; KA and VA: head and value dims even), read through the
// accessors q_1, k_4, ... that the host generates (pipeline.rs, `//@input`).
//@input q 1 DT
//@input k 2 DT KA
//@input v 3 DT VA
@group(0) @binding(4) var<storage, read_write> o: array<u32>;
@group(0) @binding(5) var<storage, read_write> ml: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> lse: array<u32>;
//@input mask 7 MDT
@group(0) @binding(8) var<storage, read> key_lengths: array<u32>;
// kv_row (the KV cache's block table, with PAGED) and causal_off: shaders/keys.wgsl and
// shaders/paged.wgsl, put in front of this kernel.

const DK4: u32 = DK / 4u;
const DV4: u32 = DV / 4u;

var<workgroup> ks: array<vec4<f32>, BK * DK4>;
var<workgroup> vs: array<vec4<f32>, BK * DV4>;

@compute @workgroup_size(BQ)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // Rows of this workgroup. Fused: BQ query rows of one head. Decode (split-KV): the rows of
    // every query head that shares key/value head wid.y (group · q_len rows), so one K/V tile
    // serves all of them; wid.z picks the key split.
    var b: u32;
    var h: u32;
    var kvh: u32;
    var i: u32;
    var row_ok: bool;
    var i_last: u32;
    if (DECODE != 0u) {
        b = wid.y / p.kv_heads;
        kvh = wid.y % p.kv_heads;
        let n = p.group * p.q_len;
        let r = wid.x * BQ + li;
        row_ok = r < n;
        let rr = min(r, n - 1u);
        h = kvh * p.group + rr / p.q_len;
        i = rr % p.q_len;
        i_last = p.q_len - 1u;
    } else {
        let bh0 = p.bh0 + wid.y;
        b = bh0 / p.q_heads;
        h = bh0 % p.q_heads;
        kvh = h / p.group;
        // p.i0: first query row of this dispatch (the host splits rows to bound each dispatch's work).
        i = p.i0 + wid.x * BQ + li;
        row_ok = i < p.q_len;
        i_last = min(p.i0 + wid.x * BQ + BQ, p.q_len) - 1u;
    }
    let bh = b * p.q_heads + h;
    let row = bh * p.q_len + min(i, p.q_len - 1u);
    // Where this row's state goes when it is not final: its own slot, or one slot per split.
    let slot = select(row, row * p.nseg + wid.z, DECODE != 0u);

    // q, scaled once so that a score is a plain dot product.
    var qv: array<vec4<f32>, DK4>;
    for (var t = 0u; t < DK4; t++) {
        var x = vec4<f32>(0.0);
        if (row_ok) {
            let base = row * p.head_dim;
            for (var c = 0u; c < 4u; c++) {
                let d = 4u * t + c;
                if (d < p.head_dim) {
                    x[c] = q_1(base + d);
                }
            }
        }
        qv[t] = x * p.scale;
    }

    var acc: array<vec4<f32>, DV4>;
    var m = MASKED;
    var l = 0.0;
    if ((p.flags & FLAG_ACCUMULATE) != 0u && row_ok) {
        let st = ml[row];
        m = st.x;
        l = st.y;
        for (var t = 0u; t < DV4; t++) {
            var x = vec4<f32>(0.0);
            for (var c = 0u; c < 4u; c++) {
                let e = 4u * t + c;
                if (e < p.value_dim) {
                    x[c] = bitcast<f32>(o[row * p.value_dim + e]);
                }
            }
            acc[t] = x;
        }
    } else {
        for (var t = 0u; t < DV4; t++) {
            acc[t] = vec4<f32>(0.0);
        }
    }

    // Keys this workgroup needs in this dispatch: key lengths and causality cut the range for
    // the whole block (the last row of the block sees the most keys).
    let j_begin = p.j0 + select(0u, wid.z * p.jn, DECODE != 0u);
    var j_stop = min(j_begin + p.jn, p.kv_len);
    if (p.has_key_lengths != 0u) {
        j_stop = min(j_stop, key_lengths[b]);
    }
    if (p.causal != 0u) {
        let lim = i32(i_last) + causal_off(b) + 1;
        j_stop = u32(clamp(lim, i32(j_begin), i32(max(j_stop, j_begin))));
    }

    for (var jt = j_begin; jt < j_stop; jt += BK) {
        for (var t = 0u; t < (BK * DK4 + BQ - 1u) / BQ; t++) {
            let e = li + t * BQ;
            if (e < BK * DK4) {
                let j = jt + e / DK4;
                let d0 = 4u * (e % DK4);
                var x = vec4<f32>(0.0);
                if (j < j_stop) {
                    let base = kv_row(b, kvh, j) * p.head_dim + d0;
                    if (d0 + 3u < p.head_dim) {
                        x = k_4(base);
                    } else {
                        for (var c = 0u; c < 4u; c++) {
                            if (d0 + c < p.head_dim) {
                                x[c] = k_1(base + c);
                            }
                        }
                    }
                }
                ks[e] = x;
            }
        }
        for (var t = 0u; t < (BK * DV4 + BQ - 1u) / BQ; t++) {
            let e = li + t * BQ;
            if (e < BK * DV4) {
                let j = jt + e / DV4;
                let d0 = 4u * (e % DV4);
                var x = vec4<f32>(0.0);
                if (j < j_stop) {
                    let base = kv_row(b, kvh, j) * p.value_dim + d0;
                    if (d0 + 3u < p.value_dim) {
                        x = v_4(base);
                    } else {
                        for (var c = 0u; c < 4u; c++) {
                            if (d0 + c < p.value_dim) {
                                x[c] = v_1(base + c);
                            }
                        }
                    }
                }
                vs[e] = x;
            }
        }
        workgroupBarrier();

        // Branch-free on purpose: every invocation runs the same instructions (rows past q_len
        // compute on q = 0 and are never stored). Inside a divergent branch llvmpipe turns each
        // tile read into a per-lane gather; at uniform control flow a read at a uniform address
        // is one load and a broadcast (measured: see docs/PERFORMANCE.md, fused v2).
        //
        // The key loops run over the tile's keys, `nk`, not the constant BK. The count is the same
        // for the whole workgroup, so control flow stays uniform. A constant bound let Mesa unroll
        // both loops fully (BK copies of the score and P·V bodies) when the WGSL came through
        // Tint, Dawn's compiler, which leaves short constant loops free of loop-bounding counters
        // where naga adds them; llvmpipe then took 9 s to compile this kernel at d32 and 280 s
        // at d128, against 0.5 s and 4 s for this form (docs/CONFORMANCE.md, Dawn). The last
        // tile of a range also stops at its last key instead of scoring masked ones.
        let nk = min(BK, j_stop - jt);
        var s: array<f32, BK>;
        var tmax = MASKED;
        for (var c = 0u; c < nk; c++) {
            let j = jt + c;
            var dv = vec4<f32>(0.0);
            for (var t = 0u; t < DK4; t++) {
                dv = fma(qv[t], ks[c * DK4 + t], dv);
            }
            var sc = clamp(dv.x + dv.y + dv.z + dv.w, -SCORE_LIMIT, SCORE_LIMIT);
            var kept = true;
            if (p.causal != 0u) {
                kept = kept && (i32(j) - i32(i) <= causal_off(b));
            }
            if (p.mask_kind != 0u) {
                let mi = b * p.mask_sb + h * p.mask_sh + min(i, p.q_len - 1u) * p.mask_sq
                    + min(j, p.kv_len - 1u) * p.mask_sk;
                let mv = mask_1(mi);
                if (p.mask_kind == 1u) {
                    kept = kept && (mv != 0.0);
                } else {
                    sc = clamp(sc + mv, -SCORE_LIMIT, SCORE_LIMIT);
                }
            }
            s[c] = select(MASKED, sc, kept);
            tmax = max(tmax, s[c]);
        }
        // New running max: unchanged when the tile keeps no key for this row. With no key yet
        // (l == 0) the rescale is exp(0) of an empty accumulator; the sentinel never enters
        // arithmetic, and neither does an infinity.
        let has = tmax > MASKED_BELOW;
        let m_new = select(m, select(tmax, max(m, tmax), l > 0.0), has);
        let alpha = exp(select(m_new, m, l > 0.0) - m_new);
        let m_ref = select(m_new, 0.0, m_new < MASKED_BELOW);
        l *= alpha;
        for (var t = 0u; t < DV4; t++) {
            acc[t] *= alpha;
        }
        for (var c = 0u; c < nk; c++) {
            // Masked scores are raised to MASKED_BELOW before the subtraction so it stays
            // finite; their weight is then dropped.
            let pc = select(0.0, exp(max(s[c], MASKED_BELOW) - m_ref), s[c] > MASKED_BELOW);
            l += pc;
            for (var t = 0u; t < DV4; t++) {
                acc[t] = fma(vec4<f32>(pc), vs[c * DV4 + t], acc[t]);
            }
        }
        m = m_new;
        workgroupBarrier();
    }

    if (!row_ok) {
        return;
    }
    if ((p.flags & FLAG_FINALIZE) != 0u) {
        let any_key = l > 0.0;
        let inv = select(0.0, 1.0 / l, any_key);
        for (var t = 0u; t < DV4; t++) {
            store_o4(row, t, acc[t] * inv);
        }
        lse[row] = select(NEG_INF_BITS, bitcast<u32>(m + log(max(l, 1e-30))), any_key);
    } else {
        for (var t = 0u; t < DV4; t++) {
            for (var c = 0u; c < 4u; c++) {
                let e = 4u * t + c;
                if (e < p.value_dim) {
                    o[slot * p.value_dim + e] = bitcast<u32>(acc[t][c]);
                }
            }
        }
        ml[slot] = vec2<f32>(m, l);
    }
}
