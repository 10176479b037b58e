//! Host side of `shaders/qk.wgsl`: S = scale · Q Kᵀ with masks, tiled and register-blocked.

use super::{KernelSource, Tile};
use crate::context::{Binding, PipelineKey};

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
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
};

/// 64 x 64 outputs per workgroup of 256 invocations, 16 head-dim elements per step: the 4 x 4
/// register-blocked shape that ran fastest in the throwaway probes on lavapipe (WGPU-NOTES.md).
pub(crate) const DEFAULT_TILE: Tile = Tile {
    tm: 64,
    tn: 64,
    tk: 16,
};

/// For at most 4 query rows per head (decoding): 4 x 64 outputs per workgroup of 16 invocations,
/// so a single query row wastes 3/4 of a tile instead of 63/64.
pub(crate) const SHORT_Q_TILE: Tile = Tile {
    tm: 4,
    tn: 64,
    tk: 16,
};

/// The tile for a problem: the single place where the qk tile is chosen by shape.
pub(crate) fn tile_for(q_len: usize) -> Tile {
    if q_len <= SHORT_Q_TILE.tm as usize {
        SHORT_Q_TILE
    } else {
        DEFAULT_TILE
    }
}

/// Head-dim elements one dispatch covers: the kernel's only problem-sized loop then runs at most
/// D_CHUNK / TK = 64 times per invocation.
pub(crate) const D_CHUNK: u32 = 1024;

pub(crate) fn key(t: Tile) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("TM", t.tm), ("TN", t.tn), ("TK", t.tk)],
    }
}
