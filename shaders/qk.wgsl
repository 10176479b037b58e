// Staged path, kernel 1 of 3: tiled S = Q Kᵀ with scale and every mask rule applied.
//
// A workgroup of (TN/4) x (TM/4) invocations computes a TM x TN tile of S; each invocation owns a
// 4 x 4 block (register blocking: every value loaded from workgroup memory feeds four FMAs).
// Q and K tiles of TK head-dim elements are staged in workgroup memory, stored transposed so that
// the inner loop reads one vec4 of four rows and one vec4 of four columns.
//
// Loop bounds: the only loop whose trip count depends on the problem runs over the head-dim
// elements of this dispatch (p.dn / TK, the host keeps p.dn <= D_CHUNK), so lavapipe's 65,535
// iteration limiter is never approached; longer head dims are split over dispatches that
// accumulate (FLAG_ACCUMULATE) and the last one applies scale and masks (FLAG_FINALIZE).
//
// Specialization constants (header): TM, TN, TK; DT and MDT (the inputs' and the mask's dtype)
// for 16-bit data.

@group(0) @binding(0) var<uniform> p: Params;
// q and k in the call's dtype (DT), read through the generated accessors (pipeline.rs, `//@input`).
//@input q 1 DT
//@input k 2 DT
@group(0) @binding(3) var<storage, read_write> s: array<f32>;
//@input mask 4 MDT
@group(0) @binding(5) var<storage, read> key_lengths: array<u32>;

// causal_off and finalize_score (scale and every mask rule): shaders/score_rules.wgsl, put in
// front of this kernel and of additive.wgsl.

const WG_X: u32 = TN / 4u;
const WG_Y: u32 = TM / 4u;
const WG: u32 = WG_X * WG_Y;

// qs[d * (TM / 4) + r] holds rows 4r .. 4r+3 of the Q tile at head-dim element d.
var<workgroup> qs: array<vec4<f32>, TK * TM / 4u>;
var<workgroup> ks: array<vec4<f32>, TK * TN / 4u>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let bh = p.bh0 + wid.z;
    let b = bh / p.q_heads;
    let h = bh % p.q_heads;
    let kvh = h / p.group;
    let i_base = p.i0 + wid.y * TM;
    let i_end = p.i0 + p.rows;
    let j_base = p.j0 + wid.x * TN;
    let j_end = p.j0 + p.jn;
    let d_end = p.d0 + p.dn;
    let q_off = bh * p.q_len * p.head_dim;
    let k_off = (b * p.kv_heads + kvh) * p.kv_len * p.head_dim;

    var acc: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        acc[r] = vec4<f32>(0.0);
    }

    for (var dt = p.d0; dt < d_end; dt += TK) {
        for (var t = 0u; t < TM * TK / WG; t++) {
            let e = li + t * WG;
            let row = e / TK;
            let d = e % TK;
            let gi = i_base + row;
            let gd = dt + d;
            var x = 0.0;
            if (gi < i_end && gd < d_end) {
                x = q_1(q_off + gi * p.head_dim + gd);
            }
            qs[d * (TM / 4u) + row / 4u][row % 4u] = x;
        }
        for (var t = 0u; t < TN * TK / WG; t++) {
            let e = li + t * WG;
            let col = e / TK;
            let d = e % TK;
            let gj = j_base + col;
            let gd = dt + d;
            var x = 0.0;
            if (gj < j_end && gd < d_end) {
                x = k_1(k_off + gj * p.head_dim + gd);
            }
            ks[d * (TN / 4u) + col / 4u][col % 4u] = x;
        }
        workgroupBarrier();
        for (var d = 0u; d < TK; d++) {
            let a = qs[d * (TM / 4u) + lid.y];
            let bv = ks[d * (TN / 4u) + lid.x];
            acc[0] += a.x * bv;
            acc[1] += a.y * bv;
            acc[2] += a.z * bv;
            acc[3] += a.w * bv;
        }
        workgroupBarrier();
    }

    for (var r = 0u; r < 4u; r++) {
        let i = i_base + lid.y * 4u + r;
        if (i >= i_end) {
            break;
        }
        let srow = bh * p.q_len + i - p.s_shift;
        for (var c = 0u; c < 4u; c++) {
            let j = j_base + lid.x * 4u + c;
            if (j >= j_end) {
                break;
            }
            let idx = srow * p.kv_len + j;
            var v = acc[r][c];
            if ((p.flags & FLAG_ACCUMULATE) != 0u) {
                v += s[idx];
            }
            if ((p.flags & FLAG_FINALIZE) != 0u) {
                v = finalize_score(b, h, i, j, v);
            }
            s[idx] = v;
        }
    }
}
