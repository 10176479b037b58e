//! Host side of `shaders/merge.wgsl`: combines the key splits of the decode path.

use super::KernelSource;
use crate::dtype::DType;
use crate::pipeline::{Binding, PipelineKey};

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    prelude: super::MERGE_WGSL,
    name: "merge",
    source: include_str!("../../shaders/merge.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // partial accumulators, (row, split, value_dim)
        Binding::Read,      // partial (m, l), (row, split)
        Binding::ReadWrite, // o, in its dtype (as words)
        Binding::ReadWrite, // lse
    ],
    expand: None,
};

pub(crate) const WG: u32 = 64;

/// Most key splits one merge handles (its loops run over the splits).
pub(crate) const MAX_SPLITS: usize = 4096;

/// The merge writing an O of dtype `out`: f32 or, directly, f16 or bf16.
pub(crate) fn key(out: DType) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("WG", WG), ("ODT", out.code())],
    }
}

/// Invocations of one merge: one per (row, 4 value columns), or for a 16-bit O whose value dim is
/// not a multiple of 4, one per 32-bit word (`shaders/merge.wgsl`).
pub(crate) fn items(rows: usize, value_dim: usize, out: DType) -> usize {
    if out == DType::F32 || value_dim % 4 == 0 {
        rows * value_dim.div_ceil(4)
    } else {
        (rows * value_dim).div_ceil(2)
    }
}
