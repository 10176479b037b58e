//! Host side of `shaders/softmax.wgsl`: row statistics per key segment, then normalisation and lse.

use super::KernelSource;
use crate::context::{Binding, PipelineKey};

const BINDINGS: &[Binding] = &[
    Binding::Params,
    Binding::ReadWrite, // s (scores in, probabilities out)
    Binding::ReadWrite, // partials: (max, sum) per row and segment
    Binding::ReadWrite, // lse (bit patterns, so -inf is written, never computed)
];

pub(crate) const STATS: KernelSource = KernelSource {
    name: "softmax_stats",
    source: include_str!("../../shaders/softmax.wgsl"),
    entry: "stats",
    bindings: BINDINGS,
};

pub(crate) const NORMALIZE: KernelSource = KernelSource {
    name: "softmax_normalize",
    source: include_str!("../../shaders/softmax.wgsl"),
    entry: "normalize",
    bindings: BINDINGS,
};

/// Invocations per workgroup (one row segment each).
pub(crate) const WG: u32 = 256;
/// Keys per segment: each invocation loops SEG / WG = 16 times, whatever kv_len is.
pub(crate) const SEG: u32 = 4096;

pub(crate) fn key(src: &KernelSource) -> PipelineKey {
    PipelineKey {
        name: src.name,
        constants: vec![("WG", WG), ("SEG", SEG)],
    }
}
