//! Host side of `shaders/merge.wgsl`: combines the key splits of the decode path.

use super::KernelSource;
use crate::pipeline::{Binding, PipelineKey};

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    prelude: super::COMMON_WGSL,
    name: "merge",
    source: include_str!("../../shaders/merge.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // partial accumulators, (row, split, value_dim)
        Binding::Read,      // partial (m, l), (row, split)
        Binding::ReadWrite, // o
        Binding::ReadWrite, // lse
    ],
    expand: None,
};

pub(crate) const WG: u32 = 64;

/// Most key splits one merge handles (its loops run over the splits).
pub(crate) const MAX_SPLITS: usize = 4096;

pub(crate) fn key() -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("WG", WG)],
    }
}
