// Staged path, kernel 3 of 3: tiled O = P V.
//
// Same tiling as qk.wgsl: a workgroup of (TN/4) x (TM/4) invocations computes TM query rows by TN
// value columns, 4 x 4 per invocation, with TK keys of P and V staged (transposed) in workgroup
// memory per step. The loop over keys covers only this dispatch's keys (p.jn <= K_CHUNK on the
// host), so trip counts stay far below lavapipe's limiter; key chunks after the first accumulate
// into O (FLAG_ACCUMULATE). The first chunk overwrites, so poison in O never leaks into results.
//
// Specialization constants (header): TM, TN, TK; DT (the inputs' dtype) for 16-bit data. O is
// f32 (a 16-bit output is packed after).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> s: array<f32>;
// v in the call's dtype (DT), read through the generated accessors (pipeline.rs, `//@input`).
//@input v 2 DT
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

const WG_X: u32 = TN / 4u;
const WG_Y: u32 = TM / 4u;
const WG: u32 = WG_X * WG_Y;

var<workgroup> ps: array<vec4<f32>, TK * TM / 4u>;
var<workgroup> vs: array<vec4<f32>, TK * TN / 4u>;

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
    let e_base = wid.x * TN;
    let j_end = p.j0 + p.jn;
    let v_off = (b * p.kv_heads + kvh) * p.kv_len * p.value_dim;

    var acc: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        acc[r] = vec4<f32>(0.0);
    }

    for (var jt = p.j0; jt < j_end; jt += TK) {
        for (var t = 0u; t < TM * TK / WG; t++) {
            let e = li + t * WG;
            let row = e / TK;
            let kk = e % TK;
            let gi = i_base + row;
            let gj = jt + kk;
            var x = 0.0;
            if (gi < i_end && gj < j_end) {
                x = s[(bh * p.q_len + gi - p.s_shift) * p.kv_len + gj];
            }
            ps[kk * (TM / 4u) + row / 4u][row % 4u] = x;
        }
        for (var t = 0u; t < TN * TK / WG; t++) {
            let e = li + t * WG;
            let kk = e / TN;
            let col = e % TN;
            let gj = jt + kk;
            let ge = e_base + col;
            var x = 0.0;
            if (gj < j_end && ge < p.value_dim) {
                x = v_1(v_off + gj * p.value_dim + ge);
            }
            vs[kk * (TN / 4u) + col / 4u][col % 4u] = x;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a = ps[kk * (TM / 4u) + lid.y];
            let bv = vs[kk * (TN / 4u) + lid.x];
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
        for (var c = 0u; c < 4u; c++) {
            let e = e_base + lid.x * 4u + c;
            if (e >= p.value_dim) {
                break;
            }
            let idx = (bh * p.q_len + i) * p.value_dim + e;
            var x = acc[r][c];
            if ((p.flags & FLAG_ACCUMULATE) != 0u) {
                x += o[idx];
            }
            o[idx] = x;
        }
    }
}
