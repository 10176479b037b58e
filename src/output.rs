//! What a call returns: the output tensors and the variant that ran.

use crate::kinds::Variant;
use crate::tensor::Tensor;

/// Results of a call. `lse` and `probs` are present when asked for.
#[derive(Debug, Clone)]
pub struct AttentionOutput {
    /// `[batch, q_heads, q_len, value_dim]`.
    pub out: Tensor,
    /// `[batch, q_heads, q_len]`; `-inf` for a row with no key.
    pub lse: Option<Tensor>,
    /// `[batch, q_heads, q_len, kv_len]`; 0 for masked keys.
    pub probs: Option<Tensor>,
    /// The variant that ran (the automatic choice resolved).
    pub variant: Variant,
}
