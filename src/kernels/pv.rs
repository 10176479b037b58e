//! Host side of `shaders/pv.wgsl`: O = P V, tiled and register-blocked.

use super::{KernelSource, Tile};
use crate::context::{Binding, PipelineKey};

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    name: "pv",
    source: include_str!("../../shaders/pv.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // p (the score buffer after softmax)
        Binding::Read,      // v
        Binding::ReadWrite, // o
    ],
};

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

/// The tile for a problem: the single place where the pv tile is chosen by shape.
pub(crate) fn tile_for(q_len: usize) -> Tile {
    if q_len <= SHORT_Q_TILE.tm as usize {
        SHORT_Q_TILE
    } else {
        DEFAULT_TILE
    }
}

/// Keys one dispatch covers: at most K_CHUNK / TK = 64 trips of the key loop per invocation.
pub(crate) const K_CHUNK: u32 = 1024;

pub(crate) fn key(t: Tile) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![("TM", t.tm), ("TN", t.tn), ("TK", t.tk)],
    }
}
