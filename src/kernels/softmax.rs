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
    enable: "",
    name: "softmax_stats",
    source: include_str!("../../shaders/softmax.wgsl"),
    entry: "stats",
    bindings: BINDINGS,
};

pub(crate) const NORMALIZE: KernelSource = KernelSource {
    enable: "",
    name: "softmax_normalize",
    source: include_str!("../../shaders/softmax.wgsl"),
    entry: "normalize",
    bindings: BINDINGS,
};

/// Invocations per workgroup (one row segment each). Measured on lavapipe at 1×8×512×64 and
/// 1×8×1024×64 (both softmax kernels together): 256 invocations / 4096-key segments took about
/// 6× longer than 32 / 1024, since short rows left most of a large workgroup idle and every
/// barrier of a wide workgroup is costly there. A per-adapter table can change this later.
pub(crate) const WG: u32 = 32;
/// Keys per segment: each invocation loops SEG / WG = 32 times, whatever kv_len is.
pub(crate) const SEG: u32 = 1024;

pub(crate) fn key(src: &KernelSource) -> PipelineKey {
    PipelineKey {
        name: src.name,
        constants: vec![("WG", WG), ("SEG", SEG)],
    }
}
