// Fused path, subgroup form: the same online-softmax attention as flash.wgsl, for adapters whose
// subgroup size is fixed and known (SG, read from the adapter at run time and baked into the
// pipeline key). One workgroup is one subgroup of SG invocations; each invocation owns R query
// rows (i_base + r·SG + li). A block of SG keys is read with each invocation loading *its own*
// key's row, and subgroupBroadcast hands every key's row to all invocations in registers. No
// workgroup memory, no barriers.
//
// The statements marked `//@gen` are generated on the host (kernels::flash::expand_subgroup) for
// the exact head dims DK and DV and for R: every per-row and per-element value is a named scalar
// or vec4, every index a literal. Why: llvmpipe runs one SIMD lane per invocation, so a private
// array indexed in a loop that its compiler leaves rolled becomes a per-lane gather and scatter,
// and each storage load inside a loop becomes a per-lane scalar loop with a bounds check (see
// docs/PERFORMANCE.md, optimisation log 11). Spelled out, the hot loop is loads of whole vec4s,
// broadcasts and FMAs, and each loaded element serves R rows.
//
// Decode (DECODE = 1, Flash-Decoding) as in flash.wgsl: the rows are those of every query head
// sharing one key/value head, the keys are split over workgroups along z, and each writes its
// unnormalised accumulator and (m, l) to its (row, split) slot for merge.wgsl.
//
// What it relies on, and how it checks it. The workgroup of SG invocations must run as one full
// subgroup with lanes 0..SG-1. Neither Vulkan (without REQUIRE_FULL_SUBGROUPS, which wgpu does not
// set) nor WebGPU promises that, and lavapipe breaks it: asked for width 1024 or 2048 it reports
// subgroups of 32 or 64 but runs every workgroup as subgroups of 16 (docs/CONFORMANCE.md). So:
// - the host runs this promise through a probe (kernels::subgroup_probe) before it picks the form,
//   and runs the form only at a size the probe confirmed;
// - each workgroup checks it again (subgroupAdd(1) == SG and the largest lane is SG-1) and, if it
//   does not hold, writes NaN to all its rows instead of wrong numbers;
// - rows belong to invocations by local_invocation_index, so that every row is written by exactly
//   one invocation however the driver forms subgroups; only the keys a lane loads follow its lane.
//
// Emulated form (EMU = 1): the same generated code with the broadcasts done through workgroup
// memory (each invocation stores its key's rows, a barrier, everyone reads them) and no subgroup
// operation at all. It runs on any adapter, at any SG, so the generated code for subgroup sizes an
// adapter lacks (lavapipe cannot run 32, 64 or 128) is checked against the reference too. Tests
// and the conformance suite use it; the automatic choice never does.
//
// Specialization constants (header): SG (subgroup size = workgroup size), R (rows per
// invocation), DECODE, DK, DV (exact head and value dims; K and V are read as rows of vec4 when their dim
// is a multiple of 4), MASK (the mask kind: 0 none, 1 bool, 2 additive), W64 (wide loads), EMU
// (emulated broadcasts); DT and MDT (the inputs' and the mask's dtype) for 16-bit data; ODT
// where the fused form writes a 16-bit O itself (one key chunk, DV a multiple of 4).

@group(0) @binding(0) var<uniform> p: Params;
// q, k, v and o: arrays of vec4 rows where their dim is a multiple of 4, else of scalars; 16-bit
// q, k and v (DT) as pairs of words per vec4 (quads of words per 8 elements when wide), unpacked
// on load, or through the scalar accessors of `//@input`. o is f32, or with ODT a 16-bit O as
// pairs of words per vec4, rounded to nearest even (round16.wgsl).
//@gen bindings
@group(0) @binding(5) var<storage, read_write> ml: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> lse: array<u32>;
//@input mask 7 MDT
@group(0) @binding(8) var<storage, read> key_lengths: array<u32>;
// kv_row and causal_off: shaders/paged.wgsl and shaders/keys.wgsl, put in front of this kernel.

// Score of query i against key j after clamping, causal masking, key lengths and the mask:
// MASKED when the key is not kept.
fn masked_score(s: f32, b: u32, h: u32, i: u32, j: u32, j_stop: u32) -> f32 {
    var sc = clamp(s, -SCORE_LIMIT, SCORE_LIMIT);
    var kept = j < j_stop;
    if (p.causal != 0u) {
        kept = kept && (i32(j) - i32(i) <= causal_off(b));
    }
    // MASK (a constant: the mask's load is compiled only into pipelines for masked calls).
    if (MASK != 0u) {
        let mi = b * p.mask_sb + h * p.mask_sh + min(i, p.q_len - 1u) * p.mask_sq
            + min(j, p.kv_len - 1u) * p.mask_sk;
        let mv = mask_1(mi);
        if (MASK == 1u) {
            kept = kept && (mv != 0.0);
        } else {
            sc = clamp(sc + mv, -SCORE_LIMIT, SCORE_LIMIT);
        }
    }
    return select(MASKED, sc, kept);
}

// Online-softmax step of one row given the block's largest score: updates m and l (rescaled)
// and returns (alpha, m_ref): the factor for the old accumulator and the reference the block's
// probabilities are taken against. Branch-free, as in flash.wgsl.
fn online_step(m: ptr<function, f32>, l: ptr<function, f32>, tmax: f32) -> vec2<f32> {
    let has = tmax > MASKED_BELOW;
    let m_new = select(*m, select(tmax, max(*m, tmax), *l > 0.0), has);
    let alpha = exp(select(m_new, *m, *l > 0.0) - m_new);
    *l *= alpha;
    *m = m_new;
    return vec2<f32>(alpha, select(m_new, 0.0, m_new < MASKED_BELOW));
}

// exp(s - m_ref) for a kept score, 0 for a masked one.
fn prob(s: f32, m_ref: f32) -> f32 {
    return select(0.0, exp(max(s, MASKED_BELOW) - m_ref), s > MASKED_BELOW);
}

@compute @workgroup_size(SG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    //@gen lane_builtins
) {
    // `lane`: which key of a block this invocation loads (its subgroup lane, or li when emulated);
    // `full`: whether the workgroup runs as one full subgroup, as the broadcasts need.
    //@gen lane_setup
    // Fused: the rows i_base + r·SG + li of head wid.y. Decode (split-KV): row n of the group·q_len
    // rows of every query head sharing key/value head wid.y, so one key load serves all of
    // them; wid.z picks the key split.
    var b: u32;
    var h: u32;
    var kvh: u32;
    if (DECODE != 0u) {
        b = wid.y / p.kv_heads;
        kvh = wid.y % p.kv_heads;
    } else {
        let bh = p.bh0 + wid.y;
        b = bh / p.q_heads;
        h = bh % p.q_heads;
        kvh = h / p.group;
    }
    // p.i0: first query row of this dispatch (the host splits rows to bound each dispatch's work).
    let i_base = p.i0 + wid.x * SG * R;
    let accumulate = (p.flags & FLAG_ACCUMULATE) != 0u;

    // Per row r: its head h_r and index i_r, its storage row (and slot, where a decode split's
    // partial result goes), q in registers, m, l and the accumulator.
    //@gen prologue

    let j_begin = p.j0 + select(0u, wid.z * p.jn, DECODE != 0u);
    var j_stop = min(j_begin + p.jn, p.kv_len);
    if (p.has_key_lengths != 0u) {
        j_stop = min(j_stop, key_lengths[b]);
    }
    if (p.causal != 0u) {
        // The last row of the block sees the most keys.
        let i_last = select(min(i_base + SG * R, p.q_len) - 1u, p.q_len - 1u, DECODE != 0u);
        let lim = i32(i_last) + causal_off(b) + 1;
        j_stop = u32(clamp(lim, i32(j_begin), i32(max(j_stop, j_begin))));
    }

    for (var jb = j_begin; jb < j_stop; jb += SG) {
        // This invocation's key, clamped into range (its scores are masked past j_stop).
        let kr = kv_row(b, kvh, min(jb + lane, p.kv_len - 1u));
        // Scores s_r_c of row r against key jb + c, masks, the online update, then P·V.
        //@gen block
    }

    let finalize = (p.flags & FLAG_FINALIZE) != 0u;
    //@gen epilogue
}

// The per-row part of the epilogue: lse on the last key chunk, else (m, l) to the row's slot for
// the next chunk or the merge. A workgroup that was not one full subgroup writes NaN (or, to a
// slot, BROKEN_STATS, which the merge turns into NaN) instead: bit patterns, since WGSL lets
// compilers assume that no arithmetic makes a NaN.
fn finish_row(row: u32, slot: u32, m: f32, l: f32, finalize: bool, full: bool) {
    if (finalize) {
        let bits = select(NEG_INF_BITS, bitcast<u32>(m + log(max(l, 1e-30))), l > 0.0);
        lse[row] = select(NAN_BITS, bits, full);
    } else {
        ml[slot] = select(BROKEN_STATS, vec2<f32>(m, l), full);
    }
}

// The factor the accumulator is written with: 1/l on the last chunk (0 for a row with no key).
fn out_factor(l: f32, finalize: bool) -> f32 {
    return select(1.0, select(0.0, 1.0 / l, l > 0.0), finalize);
}

// An output value, or NaN where the workgroup was not one full subgroup.
fn guard4(x: vec4<f32>, full: bool) -> vec4<f32> {
    return select(vec4<f32>(nan_f32()), x, full);
}
fn guard1(x: f32, full: bool) -> f32 {
    return select(nan_f32(), x, full);
}
