// Bahdanau's additive score, for the staged path: projection, then scores.
//
// `project`: Y[r, a] = Σ_d X[r, d] · W[a, d] for rows r of Q (or K), in f32, as a tiled product:
// a workgroup computes 8 rows by 8 outputs (x: outputs, y: rows from p.i0), its loop running over
// the head dim in tiles of 8 (head_dim / 8 trips).
//
// `scores`: s_ij = scale · Σ_a v_a[a] · tanh(qp[i, a] + kp[j, a] + bias[a]), then the causal rule,
// key lengths and masks (score_rules.wgsl), into the score buffer exactly where qk.wgsl writes,
// so the staged softmax and P·V follow unchanged. One invocation per score (x: 64 keys of this
// dispatch's range, y: row within the chunk from p.i0, z: head of the chunk); its loop runs
// over A = p.count <= 512, far below lavapipe's 65,535-iteration limiter.
//
// tanh's argument is clamped to ±15, where tanh is ±1 in f32: some implementations compute tanh
// through exp and would give inf/inf = NaN for large arguments.
//
// Specialization constants (header): ENTRY (0 project, 1 scores); DT and MDT for 16-bit q, k and
// mask.

@group(0) @binding(0) var<uniform> p: Params;
// project: x (q or k, in the call's dtype), w (f32 [A, head_dim]), y (f32 [rows, A]).
// scores: qp, kp (f32 projections), s (scores), mask, key_lengths, v_a, bias (f32 [A]).
//@input x 1 DT
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
//@input mask 4 MDT
@group(0) @binding(5) var<storage, read> key_lengths: array<u32>;
@group(0) @binding(6) var<storage, read> v_a: array<f32>;
@group(0) @binding(7) var<storage, read> bias: array<f32>;
@group(0) @binding(8) var<storage, read> kp: array<f32>;

// The projection's tiles: 8 rows (or weight rows) by 8 head-dim elements.
var<workgroup> xs: array<f32, 64>;
var<workgroup> ws: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let a_dim = p.count;
    if (ENTRY == 0u) {
        // project, tiled: this workgroup's 8 rows (from p.i0 + 8·wid.y) by 8 outputs (from
        // 8·wid.x); tiles of 8 head-dim elements of X and W staged in workgroup memory, each
        // loaded element serving 8 products. Loads past the edges read 0, so every invocation
        // reaches every barrier.
        let lr = li / 8u;
        let la = li % 8u;
        let r = p.i0 + wid.y * 8u + lr;
        let a = wid.x * 8u + la;
        let wa_row = wid.x * 8u + lr;
        var acc = 0.0;
        for (var d0 = 0u; d0 < p.head_dim; d0 += 8u) {
            let d = d0 + la;
            var xv = 0.0;
            if (r < p.rows && d < p.head_dim) {
                xv = x_1(r * p.head_dim + d);
            }
            var wv = 0.0;
            if (wa_row < a_dim && d < p.head_dim) {
                wv = w[wa_row * p.head_dim + d];
            }
            xs[li] = xv;
            ws[li] = wv;
            workgroupBarrier();
            for (var k = 0u; k < 8u; k++) {
                acc = fma(xs[lr * 8u + k], ws[la * 8u + k], acc);
            }
            workgroupBarrier();
        }
        if (r < p.rows && a < a_dim) {
            y[r * a_dim + a] = acc;
        }
        return;
    }
    // scores: x is unused here; w holds qp, y the score buffer.
    let bh = p.bh0 + wid.z;
    let b = bh / p.q_heads;
    let h = bh % p.q_heads;
    let kvh = h / p.group;
    let i = p.i0 + wid.y;
    let j = p.j0 + wid.x * 64u + li;
    if (j >= p.j0 + p.jn || wid.y >= p.rows) {
        return;
    }
    let qo = (bh * p.q_len + i) * a_dim;
    let ko = ((b * p.kv_heads + kvh) * p.kv_len + j) * a_dim;
    var acc = 0.0;
    for (var a = 0u; a < a_dim; a++) {
        acc = fma(v_a[a], tanh(clamp(w[qo + a] + kp[ko + a] + bias[a], -15.0, 15.0)), acc);
    }
    y[(bh * p.q_len + i - p.s_shift) * p.kv_len + j] = finalize_score(b, h, i, j, acc);
}
