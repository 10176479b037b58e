//! Host side of `shaders/peak.wgsl` and `shaders/peak_f16.wgsl`: the ceiling probes.

use super::KernelSource;
use crate::context::{Binding, PipelineKey};

const BINDINGS: &[Binding] = &[Binding::Params, Binding::Read, Binding::ReadWrite];

pub(crate) const FMA_F32: KernelSource = KernelSource {
    enable: "",
    name: "peak_fma_f32",
    source: include_str!("../../shaders/peak.wgsl"),
    entry: "fma_f32",
    bindings: BINDINGS,
    expand: None,
};

pub(crate) const COPY: KernelSource = KernelSource {
    enable: "",
    name: "peak_copy",
    source: include_str!("../../shaders/peak.wgsl"),
    entry: "copy",
    bindings: BINDINGS,
    expand: None,
};

pub(crate) const FMA_F16: KernelSource = KernelSource {
    enable: "enable f16;\n",
    name: "peak_fma_f16",
    source: include_str!("../../shaders/peak_f16.wgsl"),
    entry: "fma_f16",
    bindings: BINDINGS,
    expand: None,
};

/// FMA loop trips per invocation: 256 x 64 FLOPs, far below the loop limiter.
pub(crate) const ITERS: u32 = 256;
/// FLOPs per invocation of the FMA probes.
pub(crate) const FLOPS_PER_INVOCATION: u64 = ITERS as u64 * 8 * 4 * 2;

pub(crate) fn key(src: &KernelSource) -> PipelineKey {
    PipelineKey {
        name: src.name,
        constants: vec![("ITERS", ITERS)],
    }
}
