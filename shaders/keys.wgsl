// Shared by every kernel that applies the causal rule (qk, additive, flash, flash_subgroup); each
// declares `key_lengths`. Key j is kept for query i when j - i <= causal_off(b): one offset for
// the call, or (causal 2, over a KV cache) each sequence's own bottom-right corner.
fn causal_off(b: u32) -> i32 {
    if (p.causal == 2u) {
        return i32(key_lengths[b]) - i32(p.q_len);
    }
    return p.causal_offset;
}
