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

// The score row segment a workgroup owns: row r of this dispatch (head bh, query i), keys
// j_start .. j_stop of it, starting at s[base].
struct Segment {
    r: u32,
    bh: u32,
    i: u32,
    base: u32,
    j_start: u32,
    j_stop: u32,
}

fn segment(wid: vec3<u32>, nwg: vec3<u32>) -> Segment {
    var g: Segment;
    g.r = wid.z * nwg.y + wid.y;
    g.bh = p.bh0 + g.r / p.rows;
    g.i = p.i0 + g.r % p.rows;
    g.base = (g.bh * p.q_len + g.i - p.s_shift) * p.kv_len;
    g.j_start = wid.x * SEG;
    g.j_stop = min(g.j_start + SEG, p.kv_len);
    return g;
}

@compute @workgroup_size(WG)
fn stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let li = lane.li;
    let g = segment(wid, nwg);
    // Uniform per workgroup (it depends on wid only), so the barriers below stay uniform.
    if (g.r >= p.nbh * p.rows) {
        return;
    }
    var st = vec2<f32>(MASKED, 0.0);
    for (var t = 0u; t < SEG / WG; t++) {
        let j = g.j_start + li + t * WG;
        if (j < g.j_stop) {
            let x = s[g.base + j];
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
        partials[g.r * p.nseg + wid.x] = total;
    }
}

@compute @workgroup_size(WG)
fn normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let li = lane.li;
    let g = segment(wid, nwg);
    if (g.r >= p.nbh * p.rows) {
        return;
    }
    var st = vec2<f32>(MASKED, 0.0);
    for (var n = li; n < p.nseg; n += WG) {
        st = merge_stats(st, partials[g.r * p.nseg + n]);
    }
    let total = reduce_stats(st, lane);
    let any_key = total.y > 0.0;
    let row_lse = total.x + log(max(total.y, 1.0));

    for (var t = 0u; t < SEG / WG; t++) {
        let j = g.j_start + li + t * WG;
        if (j < g.j_stop) {
            let x = s[g.base + j];
            var pr = 0.0;
            if (any_key && x > MASKED_BELOW) {
                pr = exp(x - row_lse);
            }
            s[g.base + j] = pr;
        }
    }
    if (wid.x == 0u && li == 0u) {
        lse[g.bh * p.q_len + g.i] = select(NEG_INF_BITS, bitcast<u32>(row_lse), any_key);
    }
}

