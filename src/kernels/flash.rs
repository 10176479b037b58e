//! Host side of `shaders/flash.wgsl`: the fused kernel's specialization and its per-dispatch key
//! budget.

use super::KernelSource;
use crate::context::{Binding, PipelineKey};
use crate::tuning::Tuning;

pub(crate) const SOURCE: KernelSource = KernelSource {
    enable: "",
    name: "flash",
    source: include_str!("../../shaders/flash.wgsl"),
    entry: "main",
    bindings: &[
        Binding::Params,
        Binding::Read,      // q
        Binding::Read,      // k
        Binding::Read,      // v
        Binding::ReadWrite, // o (accumulator between dispatches, then the output)
        Binding::ReadWrite, // ml: running (max, denominator) per row between dispatches
        Binding::ReadWrite, // lse
        Binding::Read,      // mask (dummy when absent)
        Binding::Read,      // key_lengths (dummy when absent)
    ],
};

pub(crate) const SUBGROUP_SOURCE: KernelSource = KernelSource {
    // naga 30 enables subgroup builtins through Features::SUBGROUP, not an `enable` directive.
    enable: "",
    name: "flash_subgroup",
    source: include_str!("../../shaders/flash_subgroup.wgsl"),
    entry: "main",
    bindings: SOURCE.bindings,
};

/// Largest head or value dim the fused kernel is specialised for.
pub const MAX_DIM: usize = 256;

/// One specialization of the fused kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Spec {
    /// 1 for the split-KV decode form (rows of a whole query-head group, partial outputs).
    pub decode: u32,
    pub bq: u32,
    pub bk: u32,
    pub dk: u32,
    pub dv: u32,
}

/// Head dims are rounded up to 4, 8 or 16, then to multiples of 16: every dim from 1 to 256 runs
/// on a kernel at most 15 elements wider than it needs (the tail is zero-padded), and the
/// common dims 32, 64, 80, 96, 128, 256 get an exact kernel.
pub(crate) fn padded_dim(d: usize) -> u32 {
    match d {
        0..=4 => 4,
        5..=8 => 8,
        _ => d.next_multiple_of(16) as u32,
    }
}

pub(crate) fn spec(t: &Tuning, head_dim: usize, value_dim: usize) -> Spec {
    let (dk, dv) = (padded_dim(head_dim), padded_dim(value_dim));
    // K and V tiles together take at most `fused_tile_bytes` of workgroup memory. The default
    // 16 KiB (half the WebGPU minimum, so two workgroups can share a compute unit's 32 KiB) gives
    // 32 keys at dims 64, 16 at 128, 8 at 256.
    let bk = (t.fused_tile_bytes / 4 / (dk + dv)).clamp(4, 32);
    let bk = 1 << (31 - bk.leading_zeros());
    Spec {
        decode: 0,
        bq: t.fused_rows,
        bk,
        dk,
        dv,
    }
}

/// The decode form: 16 rows per workgroup (a query-head group of a few queries), same tiles.
pub(crate) fn decode_spec(t: &Tuning, head_dim: usize, value_dim: usize) -> Spec {
    Spec {
        decode: 1,
        bq: 16,
        ..spec(t, head_dim, value_dim)
    }
}

/// Keys one dispatch covers. Counted conservatively, as if no constant loop were unrolled, a tile
/// costs an invocation BK·(DK/4 + DV/4) inner trips plus its loads; the budget keeps every
/// invocation of a dispatch below 16,384 trips, a quarter of lavapipe's limiter.
pub(crate) fn keys_per_dispatch(s: Spec) -> usize {
    let per_tile = s.bk * (s.dk / 4 + s.dv / 4)
        + (s.bk * s.dk / 4).div_ceil(s.bq)
        + (s.bk * s.dv / 4).div_ceil(s.bq)
        + 2 * s.bk
        + s.dv / 4;
    let tiles = (16_384 / per_tile).max(1);
    (tiles * s.bk) as usize
}

pub(crate) fn subgroup_key(s: Spec, sg: u32, r: u32) -> PipelineKey {
    PipelineKey {
        name: SUBGROUP_SOURCE.name,
        constants: vec![("SG", sg), ("R", r), ("DK", s.dk), ("DV", s.dv)],
    }
}

pub(crate) fn key(s: Spec) -> PipelineKey {
    PipelineKey {
        name: SOURCE.name,
        constants: vec![
            ("BQ", s.bq),
            ("BK", s.bk),
            ("DK", s.dk),
            ("DV", s.dv),
            ("DECODE", s.decode),
        ],
    }
}
