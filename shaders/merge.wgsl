// Decode path, step 2: merges the key splits written by flash.wgsl (DECODE = 1).
//
// For each row it finds the largest running max over the splits that saw a key, then
// O = Σ acc_s · exp(m_s − M) / Σ l_s · exp(m_s − M) and lse = M + ln(Σ …). Splits with l = 0 (no
// key) are skipped, so the sentinel max never enters arithmetic. Loops run over p.nseg splits (the
// host keeps that at most 4,096; an invocation runs at most six such loops, none nested: 24,576
// trips, far below lavapipe's 65,535).
//
// O is written in its own dtype (ODT), so a 16-bit O needs no f32 scratch copy and no pack pass:
// - one invocation per (query row, 4 value columns), sharing one pass over the splits: an f32 O,
//   and a 16-bit O whose value dim is a multiple of 4 (its 4 columns are two words of their own);
// - a 16-bit O of any other value dim: one invocation per 32-bit word, as in pack.wgsl, so no two
//   invocations write one word (a word may hold the end of one row and the start of the next:
//   each half gets its own row's statistics). With an odd element count the last word's upper
//   half is not O's: it is read and written back unchanged.
// Each 16-bit value is the one the f32 form computes, in the same order of operations, rounded to
// nearest even (round16.wgsl): the same bits as packing the f32 O afterwards. The per-word form
// takes its column from the same 4-column pass (merged4), so every value comes from one code path.
// o is bound as words in both forms (f32 values stored as their bits).
//
// Specialization constants (header): WG, ODT.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part_o: array<f32>;
@group(0) @binding(2) var<storage, read> part_ml: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> o: array<u32>;
@group(0) @binding(4) var<storage, read_write> lse: array<u32>;

// A row's merged statistics: the largest max over the splits that saw a key, the sum of their l
// rescaled to it, whether any split saw a key, and whether a split reported a broken device.
struct RowStats {
    big: f32,
    l: f32,
    any_key: bool,
    broken: bool,
}

fn row_stats(row: u32) -> RowStats {
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
    if (any_key) {
        for (var sp = 0u; sp < p.nseg; sp++) {
            let st = part_ml[row * p.nseg + sp];
            if (st.y > 0.0) {
                l += st.y * exp(st.x - big);
            }
        }
    }
    return RowStats(big, l, any_key, broken);
}

// The row's lse as bits: -inf for a row with no key, NaN where a split reported a broken device.
fn lse_bits(r: RowStats) -> u32 {
    let bits = select(NEG_INF_BITS, bitcast<u32>(r.big + log(max(r.l, 1e-30))), r.any_key);
    return select(bits, NAN_BITS, r.broken);
}

// Elements 4t .. 4t+3 of the row's O (those past the value dim are 0), sharing one pass over
// the splits.
fn merged4(row: u32, r: RowStats, t: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    if (r.any_key) {
        for (var sp = 0u; sp < p.nseg; sp++) {
            let st = part_ml[row * p.nseg + sp];
            if (st.y > 0.0) {
                let w = exp(st.x - r.big);
                let base = (row * p.nseg + sp) * p.value_dim + 4u * t;
                // Columns past the value dim read the next row's values (or, at the buffer's
                // end, whatever WGSL's bounded access reads) and are dropped: no inner loop, so
                // the trip count stays one per split.
                let x = vec4<f32>(
                    part_o[base],
                    part_o[base + 1u],
                    part_o[base + 2u],
                    part_o[base + 3u]
                );
                let kept = 4u * t + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.value_dim);
                acc += select(vec4<f32>(0.0), x, kept) * w;
            }
        }
    }
    let inv = select(0.0, 1.0 / r.l, r.any_key);
    return select(acc * inv, vec4<f32>(nan_f32()), r.broken);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let rows = p.batch * p.q_heads * p.q_len;
    if (ODT != 0u && p.value_dim % 4u != 0u) {
        // Word idx of a 16-bit O whose rows do not end on a pair of words: elements 2·idx and
        // 2·idx + 1 of the flat (row, column) order.
        let count = rows * p.value_dim;
        let e = 2u * idx;
        if (e >= count) {
            return;
        }
        let r0 = e / p.value_dim;
        let c0 = e % p.value_dim;
        let s0 = row_stats(r0);
        if (c0 == 0u) {
            lse[r0] = lse_bits(s0);
        }
        let lo = to_bits16(merged4(r0, s0, c0 / 4u)[c0 % 4u], ODT);
        var hi: u32;
        if (e + 1u < count) {
            let r1 = (e + 1u) / p.value_dim;
            var s1 = s0;
            if (r1 != r0) {
                // The word's upper half starts the next row.
                s1 = row_stats(r1);
                lse[r1] = lse_bits(s1);
            }
            let c1 = (e + 1u) % p.value_dim;
            hi = to_bits16(merged4(r1, s1, c1 / 4u)[c1 % 4u], ODT);
        } else {
            hi = o[idx] >> 16u;
        }
        o[idx] = lo | (hi << 16u);
        return;
    }
    // One invocation per (row, 4 value columns).
    let dv4 = (p.value_dim + 3u) / 4u;
    if (idx >= rows * dv4) {
        return;
    }
    let row = idx / dv4;
    let t = idx % dv4;
    let r = row_stats(row);
    // A 16-bit O here has rows of whole pairs of words (store_o.wgsl).
    store_o4(row, t, merged4(row, r, t));
    if (t == 0u) {
        lse[row] = lse_bits(r);
    }
}
