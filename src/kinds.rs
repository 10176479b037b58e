//! The plain kinds of the contract: causal rule, mask kind, kernel variant, and the default
//! dispatch bound. The lowest layer: it uses nothing else of the crate.

use std::str::FromStr;

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
    /// The name used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Causal::None => "none",
            Causal::TopLeft => "top_left",
            Causal::BottomRight => "bottom_right",
        }
    }
    /// Every causal rule.
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
    /// The name used on the command line and in files.
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
