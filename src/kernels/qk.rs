//! Host side of `shaders/qk.wgsl`: S = scale · Q Kᵀ with masks, tiled and register-blocked.

use super::{KernelSource, Tile};
use crate::pipeline::{Binding, PipelineKey};

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    prelude: super::SCORE_WGSL,
    name: "qk",
    source: include_str!("../../shaders/qk.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // q
        Binding::Read,      // k
        Binding::ReadWrite, // s
        Binding::Read,      // mask (dummy when absent)
        Binding::Read,      // key_lengths (dummy when absent)
    ],
    expand: None,
};

/// Head-dim elements one dispatch covers: the kernel's only problem-sized loop then runs at most
/// D_CHUNK / TK = 64 times per invocation.
pub(crate) const D_CHUNK: u32 = 1024;

pub(crate) fn key(t: Tile) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("TM", t.tm), ("TN", t.tn), ("TK", t.tk)],
    }
}
