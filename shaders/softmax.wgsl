// Staged path, kernel 2 of 3: scaled softmax over each score row, in place (S becomes P), and lse.
//
// A row of kv_len keys is cut into segments of SEG keys, one workgroup per (row, segment), so that
// no invocation loops more than SEG / WG times whatever kv_len is (lavapipe's loop limiter).
//   `stats`:     each workgroup reduces its segment to (max, sum of exp(s - max)) with an online
//                update in one read of the scores, and writes it to `partials`.
//   `normalize`: each workgroup merges its row's partials (nseg / WG iterations at most), writes
//                P = exp(s - lse) for its segment (0 for masked keys) and, for segment 0, the lse.
// A row with no kept key gets P = 0 and lse = -inf (written as a bit pattern, never computed).
//
// The row reduction `reduce_stats` (and the entry points' `Lane` of builtins) comes from
// reduce_subgroup.wgsl or reduce_workgroup.wgsl, prepended by the host.
//
// Specialization constants (header): WG, SEG (a multiple of WG).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> lse: array<u32>;

@compute @workgroup_size(WG)
fn stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let li = lane.li;
    let r = wid.z * nwg.y + wid.y;
    if (r >= p.nbh * p.rows) {
        return;
    }
    let bh = p.bh0 + r / p.rows;
    let i = p.i0 + r % p.rows;
    let base = (bh * p.q_len + i - p.s_shift) * p.kv_len;
    let j_start = wid.x * SEG;
    let j_stop = min(j_start + SEG, p.kv_len);
    var st = vec2<f32>(MASKED, 0.0);
    for (var t = 0u; t < SEG / WG; t++) {
        let j = j_start + li + t * WG;
        if (j < j_stop) {
            let x = s[base + j];
            if (x > MASKED_BELOW) {
                if (st.y == 0.0) {
                    st = vec2<f32>(x, 1.0);
                } else if (x > st.x) {
                    st = vec2<f32>(x, st.y * exp(st.x - x) + 1.0);
                } else {
                    st.y += exp(x - st.x);
                }
            }
        }
    }
    let total = reduce_stats(st, lane);
    if (li == 0u) {
        partials[r * p.nseg + wid.x] = total;
    }
}

@compute @workgroup_size(WG)
fn normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let li = lane.li;
    let r = wid.z * nwg.y + wid.y;
    if (r >= p.nbh * p.rows) {
        return;
    }
    let bh = p.bh0 + r / p.rows;
    let i = p.i0 + r % p.rows;
    var st = vec2<f32>(MASKED, 0.0);
    for (var g = li; g < p.nseg; g += WG) {
        st = merge_stats(st, partials[r * p.nseg + g]);
    }
    let total = reduce_stats(st, lane);
    let any_key = total.y > 0.0;
    let row_lse = total.x + log(max(total.y, 1.0));

    let base = (bh * p.q_len + i - p.s_shift) * p.kv_len;
    let j_start = wid.x * SEG;
    let j_stop = min(j_start + SEG, p.kv_len);
    for (var t = 0u; t < SEG / WG; t++) {
        let j = j_start + li + t * WG;
        if (j < j_stop) {
            let x = s[base + j];
            var pr = 0.0;
            if (any_key && x > MASKED_BELOW) {
                pr = exp(x - row_lse);
            }
            s[base + j] = pr;
        }
    }
    if (wid.x == 0u && li == 0u) {
        lse[bh * p.q_len + i] = select(NEG_INF_BITS, bitcast<u32>(row_lse), any_key);
    }
}

