// Shared by every kernel of the library. Prepended to each kernel file before compilation, together
// with a header of `const` specialization values (tile sizes) generated from the pipeline key.

// Parameters of one dispatch. Mirrored once in Rust as `kernels::Params` (bytemuck); field order,
// types and size (128 bytes) must match it exactly.
struct Params {
    batch: u32,
    q_heads: u32,
    kv_heads: u32,
    q_len: u32,
    kv_len: u32,
    head_dim: u32,
    value_dim: u32,
    group: u32,          // q_heads / kv_heads: query head h reads key/value head h / group
    scale: f32,
    causal: u32,         // 0 none, 1 causal (top-left or bottom-right, via causal_offset),
                         // 2 bottom-right at each sequence's key length (KV cache)
    causal_offset: i32,  // key j is kept for query i when j - i <= causal_offset
    mask_kind: u32,      // 0 none, 1 bool (nonzero keeps), 2 additive
    mask_sb: u32,        // mask strides in elements; 0 along broadcast dimensions
    mask_sh: u32,
    mask_sq: u32,
    mask_sk: u32,
    has_key_lengths: u32,
    flags: u32,          // FLAG_ACCUMULATE | FLAG_FINALIZE
    bh0: u32,            // first (batch * q_heads + head) of this chunk
    nbh: u32,            // number of heads in this chunk
    i0: u32,             // first query row of this chunk within each head
    rows: u32,           // query rows per head in this chunk
    s_shift: u32,        // score-buffer row = (bh * q_len + i) - s_shift
    j0: u32,             // first key of this dispatch
    jn: u32,             // keys in this dispatch
    d0: u32,             // first head-dim element of this dispatch (QK)
    dn: u32,             // head-dim elements in this dispatch (QK)
    nseg: u32,           // key segments per row (softmax)
    count: u32,          // elements to convert (pack), runs to copy (kv_copy)
    page_size: u32,      // KV cache (PAGED): positions per block
    page_stride: u32,    // KV cache (PAGED): block-table entries per sequence
    _pad: u32,
}

// Add to the values already in the output instead of overwriting them (later chunks of a loop that
// is split over dispatches to bound per-invocation trip counts).
const FLAG_ACCUMULATE: u32 = 1u;
// Apply scale and masks (last head-dim chunk of QK).
const FLAG_FINALIZE: u32 = 2u;

// A masked score. WGSL lets compilers assume no Inf or NaN occurs, so masked scores are a finite
// sentinel rather than -inf, and kept scores are clamped to +-SCORE_LIMIT so that differences of
// two scores never overflow either.
const MASKED: f32 = -3.0e38;
const MASKED_BELOW: f32 = -2.0e38;
const SCORE_LIMIT: f32 = 1.0e38;

// Bit pattern of -inf, written (never computed) as the lse of a row with no key.
const NEG_INF_BITS: u32 = 0xff800000u;

// Bit pattern of a quiet NaN, written (never computed) where a kernel found that the device broke a
// promise it relies on (flash_subgroup.wgsl), so that the failure shows instead of wrong numbers.
const NAN_BITS: u32 = 0x7fc00000u;
// The same NaN as a value, read from a private variable: WGSL makes a constant expression that
// evaluates to NaN a shader-creation error, which Tint (Dawn, Chrome) enforces and naga does not
// (`bitcast<f32>(NAN_BITS)` compiled on wgpu and was rejected by Tint: found by the Dawn replay
// suite). A variable's value is not a constant expression.
var<private> nan_bits_runtime: u32 = NAN_BITS;
fn nan_f32() -> f32 {
    return bitcast<f32>(nan_bits_runtime);
}
// The (m, l) a split writes in that case: l < 0 never happens otherwise (merge.wgsl).
const BROKEN_STATS: vec2<f32> = vec2<f32>(0.0, -1.0);

// Merges two partial softmax statistics (running max m, sum of exp(s - m) l). l == 0 means "no
// key yet", whatever m holds, so the sentinel never enters arithmetic.
fn merge_stats(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    if (a.y == 0.0) {
        return b;
    }
    if (b.y == 0.0) {
        return a;
    }
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

