// Shared by the kernels that write the staged path's score buffer (qk.wgsl, additive.wgsl): the
// causal offset and every mask rule, applied to a raw score. Put after common.wgsl in front of
// those kernels; each declares `key_lengths` and the `mask` input.

// Key j is kept for query i when j - i <= causal_off(b): one offset for the call, or (causal 2,
// over a KV cache) each sequence's own bottom-right corner.
fn causal_off(b: u32) -> i32 {
    if (p.causal == 2u) {
        return i32(key_lengths[b]) - i32(p.q_len);
    }
    return p.causal_offset;
}

// Scale and every mask rule; returns MASKED for a key that takes no part.
fn finalize_score(b: u32, h: u32, i: u32, j: u32, dot: f32) -> f32 {
    var kept = true;
    if (p.causal != 0u) {
        kept = kept && (i32(j) - i32(i) <= causal_off(b));
    }
    if (p.has_key_lengths != 0u) {
        kept = kept && (j < key_lengths[b]);
    }
    var sc = clamp(p.scale * dot, -SCORE_LIMIT, SCORE_LIMIT);
    if (p.mask_kind != 0u) {
        let m = mask_1(b * p.mask_sb + h * p.mask_sh + i * p.mask_sq + j * p.mask_sk);
        if (p.mask_kind == 1u) {
            kept = kept && (m != 0.0);
        } else {
            sc = clamp(sc + m, -SCORE_LIMIT, SCORE_LIMIT);
        }
    }
    return select(MASKED, sc, kept);
}
