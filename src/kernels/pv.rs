//! Host side of `shaders/pv.wgsl`: O = P V, tiled and register-blocked.

use super::{KernelSource, Tile};
use crate::pipeline::{Binding, PipelineKey};

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    prelude: super::COMMON_WGSL,
    name: "pv",
    source: include_str!("../../shaders/pv.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // p (the score buffer after softmax)
        Binding::Read,      // v
        Binding::ReadWrite, // o
    ],
    expand: None,
};

/// Keys one dispatch covers: at most K_CHUNK / TK = 64 trips of the key loop per invocation.
pub(crate) const K_CHUNK: u32 = 1024;

pub(crate) fn key(t: Tile) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("TM", t.tm), ("TN", t.tn), ("TK", t.tk)],
    }
}
