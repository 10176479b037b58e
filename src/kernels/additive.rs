//! Host side of `shaders/additive.wgsl`: Bahdanau's additive score for the staged path (the
//! projections of Q and K, then the score buffer).

use super::KernelSource;
use crate::pipeline::{Binding, PipelineKey};

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    prelude: super::SCORE_WGSL,
    name: "additive",
    source: include_str!("../../shaders/additive.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // x: q or k (project; a dummy for scores)
        Binding::Read,      // w: the weights (project) or q's projection (scores)
        Binding::ReadWrite, // y: the projection (project) or the score buffer (scores)
        Binding::Read,      // mask (dummy when absent or projecting)
        Binding::Read,      // key_lengths (dummy when absent or projecting)
        Binding::Read,      // v_a
        Binding::Read,      // bias (zeros when the call has none)
        Binding::Read,      // k's projection (scores)
    ],
    expand: None,
};

/// Invocations per workgroup (along x).
pub(crate) const WG: u32 = 64;

/// The projection kernel (ENTRY 0) or the score kernel (ENTRY 1); the call's data constants are
/// appended by the caller.
pub(crate) fn key(scores: bool) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("ENTRY", scores as u32)],
    }
}
