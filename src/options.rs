//! What an attention call computes: the options of the contract (and a mask, which holds a
//! tensor).

use std::time::Duration;

pub use crate::kinds::{Causal, MaskKind, Variant, DEFAULT_DISPATCH_WORK};
use crate::tensor::Tensor;

/// A mask of shape `[batch or 1, q_heads or 1, q_len or 1, kv_len or 1]`, broadcast over every
/// dimension of size 1 (so a `[batch, 1, 1, kv_len]` key-padding mask works as in PyTorch). Its
/// tensor is f32 or in the dtype of q, k and v (either kind).
#[derive(Debug, Clone)]
pub struct Mask {
    /// How the values are read.
    pub kind: MaskKind,
    /// The mask values (f32, or the inputs' dtype).
    pub tensor: Tensor,
}

/// Bahdanau's additive score: `s_ij = scale · v_aᵀ tanh(W_q q_i + W_k k_j + bias)`. The weights
/// are f32 and shared by all heads: `w_q` and `w_k` are `[attn_dim, head_dim]`, `bias` and `v_a`
/// `[attn_dim]`, with attn_dim from 1 to [`MAX_ATTN_DIM`]. Q and K are projected once (Q W_qᵀ,
/// K W_kᵀ); a kernel then sums the tanh terms per query–key pair into the staged path's score
/// buffer, where the usual masks, softmax and weighted sum follow.
///
/// Luong's "general" score `q_iᵀ W k_j` needs no option: it is the dot product of the queries
/// projected by Wᵀ (`q'_i = Wᵀ q_i`) with the keys, so project Q on the host or with your own
/// kernel and call the plain attention with `scale(1.0)`.
#[derive(Debug, Clone)]
pub struct AdditiveScore {
    /// `[attn_dim, head_dim]`.
    pub w_q: Tensor,
    /// `[attn_dim, head_dim]`.
    pub w_k: Tensor,
    /// `[attn_dim]`, or none.
    pub bias: Option<Tensor>,
    /// `[attn_dim]`.
    pub v_a: Tensor,
}

/// Options of one attention call. `Default` is plain softmax attention with scale 1/sqrt(head_dim).
#[derive(Debug, Clone, Default)]
pub struct AttentionOptions {
    /// Score scale; `None` means 1/sqrt(head_dim). Any finite value, negative included.
    pub scale: Option<f32>,
    /// The causal rule (none by default).
    pub causal: Causal,
    /// One valid key count per batch entry: keys `j >= key_lengths[b]` are masked. 0 is allowed.
    pub key_lengths: Option<Vec<u32>>,
    /// A bool or additive mask, broadcast to `[batch, q_heads, q_len, kv_len]`.
    pub mask: Option<Mask>,
    /// Bahdanau's additive score instead of the dot product (`None`: `scale · q·k`). Its scale
    /// defaults to 1; it runs on the staged variant (`Auto` picks it; fused and decode are an
    /// `Error::Unsupported`).
    pub additive: Option<AdditiveScore>,
    /// Also return the log-sum-exp of each row (`-inf` for a row with no key).
    pub return_lse: bool,
    /// Also return the attention weights P, `[batch, q_heads, q_len, kv_len]` (f32).
    pub return_probs: bool,
    /// Write O in f32 even when the inputs are f16 or bf16 (by default O is in the inputs'
    /// dtype). The lse and P are f32 either way.
    pub output_f32: bool,
    /// Which kernels run (`Auto` by default: chosen by shape and adapter).
    pub variant: Variant,
    /// Largest score buffer the staged path may allocate per dispatch group; defaults to the
    /// adapter's `max_storage_buffer_binding_size`. Smaller values split the work into more
    /// dispatches (useful to bound memory, and to test the split).
    pub max_scratch_bytes: Option<u64>,
    /// Fused variant: its subgroup form (K/V rows shared by subgroupBroadcast instead of workgroup
    /// memory), used where the adapter has SUBGROUP with a fixed size. `Some(false)` selects the
    /// workgroup-memory form; `None` follows `WGPU_ATTENTION_SUBGROUPS` (`0` turns it off). On
    /// lavapipe the subgroup form measured about 1.4× faster (docs/PERFORMANCE.md).
    pub subgroups: Option<bool>,
    /// Fused and decode variants: run the subgroup form's code generated for this subgroup size,
    /// with its broadcasts done through workgroup memory instead of subgroup operations, on any
    /// adapter. Slower than either real form; for checking the generated code at sizes the adapter
    /// at hand does not have (lavapipe cannot run 32, 64 or 128). One of
    /// [`subgroups::FORM_SIZES`](crate::subgroups::FORM_SIZES), at most the device's
    /// `max_compute_invocations_per_workgroup`. Where the dims make the generated loop too long
    /// for the size, the workgroup-memory form runs ([`Context::explain`](crate::Context::explain)
    /// says which).
    pub emulate_subgroups: Option<u32>,
    /// Scan Q, K, V and the mask on the host before running (a readback of each: costly, for
    /// debugging and untrusted inputs) and return `Error::NonFiniteInput` naming the tensor and
    /// index of the first NaN or ±inf. Done by the submitting forms (`attention`,
    /// `attention_blocking`, `attention_into`); the `record_*` forms cannot scan, since the
    /// inputs may be written by the caller's own encoder. Without the scan, see the README's
    /// non-finite input policy.
    pub check_finite: bool,
    /// Most multiply-adds one dispatch of the staged and fused variants may do (query rows ×
    /// keys × (head_dim + value_dim)); larger calls are split over query rows and heads, which
    /// leaves every row's arithmetic unchanged. Desktop drivers kill a dispatch that runs about
    /// 2 s (Windows TDR, macOS watchdog); `None` means the adapter's tuning row
    /// (`Tuning::dispatch_work`: `DEFAULT_DISPATCH_WORK`, 2^30 or about 2 GFLOP, unless the
    /// adapter was measured to need larger dispatches).
    pub max_dispatch_work: Option<u64>,
    /// Bound on the wait of [`Context::attention`](crate::Context::attention); `Error::Timeout` past it.
    pub timeout: Option<Duration>,
}

/// Largest attention dim of the additive (Bahdanau) score.
pub const MAX_ATTN_DIM: usize = 512;

impl AttentionOptions {
    /// The options of attention over a KV cache ([`crate::KvCache::record_attention`]): the
    /// defaults with causal bottom-right, which over a cache is each sequence's own corner (query
    /// i of the n new ones sees keys up to len − n + i).
    pub fn for_cache() -> Self {
        AttentionOptions {
            causal: Causal::BottomRight,
            ..Default::default()
        }
    }

    /// Uses Bahdanau's additive score.
    pub fn additive(mut self, score: AdditiveScore) -> Self {
        self.additive = Some(score);
        self
    }

    /// Sets the score scale.
    pub fn scale(mut self, s: f32) -> Self {
        self.scale = Some(s);
        self
    }
    /// Sets the causal rule.
    pub fn causal(mut self, c: Causal) -> Self {
        self.causal = c;
        self
    }
    /// Sets one valid key count per batch entry.
    pub fn key_lengths(mut self, l: Vec<u32>) -> Self {
        self.key_lengths = Some(l);
        self
    }
    /// Sets a mask of `kind`.
    pub fn mask(mut self, kind: MaskKind, tensor: Tensor) -> Self {
        self.mask = Some(Mask { kind, tensor });
        self
    }
    /// Also returns the lse.
    pub fn with_lse(mut self) -> Self {
        self.return_lse = true;
        self
    }
    /// Also returns the attention weights P.
    pub fn with_probs(mut self) -> Self {
        self.return_probs = true;
        self
    }
    /// Writes O in f32 whatever the inputs' dtype.
    pub fn with_f32_output(mut self) -> Self {
        self.output_f32 = true;
        self
    }
    /// Chooses the variant.
    pub fn variant(mut self, v: Variant) -> Self {
        self.variant = v;
        self
    }
}
