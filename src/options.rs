//! What an attention call computes: the options of the contract.

use std::str::FromStr;
use std::time::Duration;

use crate::tensor::Tensor;

/// Causal masking and how it aligns when `q_len != kv_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Causal {
    /// No causal rule.
    #[default]
    None,
    /// Query `i` sees keys `j <= i` (PyTorch's `is_causal`).
    TopLeft,
    /// Query `i` sees keys `j <= i + kv_len - q_len` (FlashAttention 2.1+, decoding with a KV
    /// cache). With `q_len > kv_len` the first `q_len - kv_len` rows see no key at all.
    BottomRight,
}

impl Causal {
    pub fn as_str(self) -> &'static str {
        match self {
            Causal::None => "none",
            Causal::TopLeft => "top_left",
            Causal::BottomRight => "bottom_right",
        }
    }
    pub const ALL: [Causal; 3] = [Causal::None, Causal::TopLeft, Causal::BottomRight];
}

impl FromStr for Causal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Causal::None),
            "top_left" => Ok(Causal::TopLeft),
            "bottom_right" => Ok(Causal::BottomRight),
            _ => Err(format!(
                "unknown causal mode {s:?}; expected none, top_left or bottom_right"
            )),
        }
    }
}

impl std::fmt::Display for Causal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a mask tensor's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MaskKind {
    /// Nonzero keeps the key, zero masks it.
    Bool,
    /// Added to the scaled score. Finite values only; -1e9 is a strong mask, not a hard one.
    Additive,
}

/// A mask of shape `[batch or 1, q_heads or 1, q_len or 1, kv_len or 1]`, broadcast over every
/// dimension of size 1 (so a `[batch, 1, 1, kv_len]` key-padding mask works as in PyTorch).
#[derive(Debug, Clone)]
pub struct Mask {
    pub kind: MaskKind,
    pub tensor: Tensor,
}

/// Which kernels compute the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Variant {
    /// Chosen by shape and adapter; the choice is reported in [`AttentionOutput`](crate::AttentionOutput).
    #[default]
    Auto,
    /// Tiled QKᵀ, then softmax, then P·V, through an L×L score buffer. Can return P.
    Staged,
    /// One FlashAttention-2 style kernel with online softmax: nothing grows with q_len·kv_len.
    /// Head and value dims up to 256. P, when asked for, is computed after the main kernel.
    Fused,
    /// Split-KV decoding (Flash-Decoding) for few queries against long key sequences: key splits
    /// in parallel, then a merge. Head and value dims up to 256.
    Decode,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Auto => "auto",
            Variant::Staged => "staged",
            Variant::Fused => "fused",
            Variant::Decode => "decode",
        }
    }
    /// Every concrete variant the library has.
    pub const CONCRETE: [Variant; 3] = [Variant::Staged, Variant::Fused, Variant::Decode];
}

impl FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Variant::Auto),
            "staged" => Ok(Variant::Staged),
            "fused" => Ok(Variant::Fused),
            "decode" => Ok(Variant::Decode),
            _ => Err(format!(
                "unknown variant {s:?}; expected auto, staged, fused or decode"
            )),
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default bound on one dispatch's multiply-adds (2^30, about 2.1 GFLOP): some 20 ms on a GPU
/// doing 100 GFLOP/s, and about a second on lavapipe, far below the 2 s watchdogs.
pub const DEFAULT_DISPATCH_WORK: u64 = 1 << 30;

/// Options of one attention call. `Default` is plain softmax attention with scale 1/sqrt(head_dim).
#[derive(Debug, Clone, Default)]
pub struct AttentionOptions {
    /// Score scale; `None` means 1/sqrt(head_dim). Any finite value, negative included.
    pub scale: Option<f32>,
    pub causal: Causal,
    /// One valid key count per batch entry: keys `j >= key_lengths[b]` are masked. 0 is allowed.
    pub key_lengths: Option<Vec<u32>>,
    pub mask: Option<Mask>,
    /// Also return the log-sum-exp of each row (`-inf` for a row with no key).
    pub return_lse: bool,
    /// Also return the attention weights P, `[batch, q_heads, q_len, kv_len]`.
    pub return_probs: bool,
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
    /// 2 s (Windows TDR, macOS watchdog); `None` means [`DEFAULT_DISPATCH_WORK`], about 2 GFLOP.
    pub max_dispatch_work: Option<u64>,
    /// Bound on the wait of [`Context::attention`](crate::Context::attention); `Error::Timeout` past it.
    pub timeout: Option<Duration>,
}

impl AttentionOptions {
    pub fn scale(mut self, s: f32) -> Self {
        self.scale = Some(s);
        self
    }
    pub fn causal(mut self, c: Causal) -> Self {
        self.causal = c;
        self
    }
    pub fn key_lengths(mut self, l: Vec<u32>) -> Self {
        self.key_lengths = Some(l);
        self
    }
    pub fn mask(mut self, kind: MaskKind, tensor: Tensor) -> Self {
        self.mask = Some(Mask { kind, tensor });
        self
    }
    pub fn with_lse(mut self) -> Self {
        self.return_lse = true;
        self
    }
    pub fn with_probs(mut self) -> Self {
        self.return_probs = true;
        self
    }
    pub fn variant(mut self, v: Variant) -> Self {
        self.variant = v;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for v in Variant::CONCRETE.iter().chain([&Variant::Auto]) {
            assert_eq!(v.as_str().parse::<Variant>(), Ok(*v));
        }
        for c in Causal::ALL {
            assert_eq!(c.as_str().parse::<Causal>(), Ok(c));
        }
        assert!("flash".parse::<Variant>().is_err());
    }
}
