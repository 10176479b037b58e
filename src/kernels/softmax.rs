//! Host side of `shaders/softmax.wgsl`: row statistics per key segment, then normalisation and lse.

use super::KernelSource;
use crate::pipeline::{Binding, PipelineKey};

const BINDINGS: &[Binding] = &[
    Binding::Params,
    Binding::ReadWrite, // s (scores in, probabilities out)
    Binding::ReadWrite, // partials: (max, sum) per row and segment
    Binding::ReadWrite, // lse (bit patterns, so -inf is written, never computed)
];

macro_rules! softmax_source {
    ($name:literal, $entry:literal, $reduce:literal) => {
        KernelSource {
            enable: "",
            prelude: super::COMMON_WGSL,
            name: $name,
            source: concat!(
                include_str!(concat!("../../shaders/", $reduce)),
                "\n",
                include_str!("../../shaders/softmax.wgsl")
            ),
            entry: $entry,
            bindings: BINDINGS,
            expand: None,
        }
    };
}

// Row reductions through workgroup memory (the fallback) or subgroup operations.
pub(crate) const STATS: KernelSource =
    softmax_source!("softmax_stats", "stats", "reduce_workgroup.wgsl");
pub(crate) const NORMALIZE: KernelSource =
    softmax_source!("softmax_normalize", "normalize", "reduce_workgroup.wgsl");
pub(crate) const STATS_SUBGROUP: KernelSource =
    softmax_source!("softmax_stats_subgroup", "stats", "reduce_subgroup.wgsl");
pub(crate) const NORMALIZE_SUBGROUP: KernelSource = softmax_source!(
    "softmax_normalize_subgroup",
    "normalize",
    "reduce_subgroup.wgsl"
);

/// The (stats, normalize) pair: the subgroup form when `subgroups` (the adapter has SUBGROUP and
/// the caller did not turn it off).
pub(crate) fn sources(subgroups: bool) -> (&'static KernelSource, &'static KernelSource) {
    if subgroups {
        (&STATS_SUBGROUP, &NORMALIZE_SUBGROUP)
    } else {
        (&STATS, &NORMALIZE)
    }
}

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
