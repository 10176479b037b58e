//! Per-adapter tuning: the one place where tile sizes and the automatic kernel choice's
//! thresholds are chosen. A context takes the first row of [`TABLE`] whose pattern matches its
//! adapter (the last row matches every adapter), or the caller's own [`Tuning`] through
//! [`ContextOptions::tuning`](crate::ContextOptions). Every value goes into the kernels'
//! specialization keys, so a row tuned for one adapter changes no other adapter's kernels.
//!
//! `attn-bench tune` times the candidates on the adapter at hand and prints the row to add.

/// What identifies an adapter in the tuning and known-issue tables. Empty fields match anything;
/// strings match as case-insensitive substrings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterPattern {
    /// Only this backend (any: `None`).
    pub backend: Option<wgpu::Backend>,
    /// PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x10005 Mesa for llvmpipe).
    pub vendor: Option<u32>,
    /// A case-insensitive substring of the adapter's name ("" matches all).
    pub name: &'static str,
    /// A case-insensitive substring of the driver and its version ("" matches all).
    pub driver: &'static str,
}

impl AdapterPattern {
    /// Matches every adapter.
    pub const ANY: AdapterPattern = AdapterPattern {
        backend: None,
        vendor: None,
        name: "",
        driver: "",
    };

    /// Whether an adapter matches every part of the pattern.
    pub fn matches(&self, info: &wgpu::AdapterInfo) -> bool {
        let contains =
            |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        self.backend.is_none_or(|b| b == info.backend)
            && self.vendor.is_none_or(|v| v == info.vendor)
            && contains(&info.name, self.name)
            && contains(
                &format!("{} {}", info.driver, info.driver_info),
                self.driver,
            )
    }
}

/// Tile shape of the two matrix-product kernels: TM x TN outputs per workgroup, TK elements of
/// the inner dimension staged per step. TM and TN are multiples of 4 (4 x 4 register blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Query rows per workgroup (a multiple of 4).
    pub tm: u32,
    /// Key (QKᵀ) or value (PV) columns per workgroup (a multiple of 4).
    pub tn: u32,
    /// Inner-dimension elements staged per step.
    pub tk: u32,
}

/// 64 x 64 outputs per workgroup of 256 invocations, 16 inner elements per step: the 4 x 4
/// register-blocked shape that measured fastest of those tried on lavapipe (docs/PERFORMANCE.md,
/// optimisation log 2). Used by both matrix-product kernels (qk and pv).
pub(crate) const DEFAULT_TILE: Tile = Tile {
    tm: 64,
    tn: 64,
    tk: 16,
};

/// Tile sizes and thresholds of one adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuning {
    /// Output tile of the staged path's matrix products (QKᵀ and PV) for more than 4 query rows.
    /// TM and TN multiples of 4; (TM/4)·(TN/4) invocations per workgroup.
    pub staged_tile: Tile,
    /// Fused kernel, workgroup-memory form: query rows per workgroup (one per invocation).
    pub fused_rows: u32,
    /// Fused kernel, workgroup-memory form: bytes of workgroup memory for one K tile and one V
    /// tile together; the keys per tile follow from the head dims (a power of two, 4 to 32).
    pub fused_tile_bytes: u32,
    /// Fused kernel, subgroup form: query rows per invocation (each loaded key element serves
    /// this many rows). Fewer are used for short query blocks and where the generated loop would
    /// grow too long (`kernels::flash::subgroup_rows`).
    pub fused_sg_rows: u32,
    /// Fused kernel, subgroup form (also the decode split kernel): read K and V rows as
    /// `vec4<u64>` (8 floats per load, unpacked in registers) where the device has SHADER_INT64
    /// and the dim is a multiple of 8. Worth it where each load instruction has a high fixed
    /// cost: llvmpipe runs one scalar loop per load over its 8 lanes (PERFORMANCE.md, log 13).
    pub fused_wide_loads: bool,
    /// Decode split kernel, subgroup form: head dims across lanes (each lane holds every row of
    /// a query-head group and a slice of the dims; scores reduced across lanes) instead of query
    /// rows in lanes (`kernels::flash_lanes`). Worth it where per-element broadcasts cost
    /// instructions and a group has fewer rows than lanes: on lavapipe (PERFORMANCE.md, log 20).
    pub decode_dims_in_lanes: bool,
    /// Automatic choice: the decode path for at most this many query rows ...
    pub decode_max_q_len: u32,
    /// ... and at least this many keys.
    pub decode_min_kv_len: u32,
    /// Decode split kernel, workgroup-memory form: rows per workgroup (one per invocation). A
    /// query-head group has few rows (4 for Hq=32, Hkv=8); the spare invocations compute on
    /// q = 0 but share the K/V tile loads, so on a GPU that hides memory latency with many
    /// loads in flight more rows load each tile in fewer steps, while a CPU driver pays for
    /// the spare rows' arithmetic.
    pub decode_rows: u32,
    /// Most multiply-adds one dispatch of the staged and fused variants may do when the call's
    /// `AttentionOptions::max_dispatch_work` is `None` (larger calls are split over query rows
    /// and heads). 2^30 (about 2 GFLOP) keeps a dispatch under a desktop watchdog's 2 s on a
    /// slow adapter; a fast GPU needs larger dispatches to fill its compute units.
    pub dispatch_work: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        GENERIC
    }
}

/// The generic row: what measured best on lavapipe, sized to fit WebGPU's minimum limits
/// (16 KiB of workgroup memory, 256 invocations per workgroup). The table's last row and
/// `Tuning::default()`.
pub const GENERIC: Tuning = Tuning {
    staged_tile: DEFAULT_TILE,
    fused_rows: 64,
    fused_tile_bytes: 16 * 1024,
    fused_sg_rows: 1,
    fused_wide_loads: false,
    decode_dims_in_lanes: false,
    decode_max_q_len: 16,
    decode_min_kv_len: 1024,
    decode_rows: 16,
    dispatch_work: crate::kinds::DEFAULT_DISPATCH_WORK,
};

/// One row of the tuning table.
#[derive(Debug, Clone, Copy)]
pub struct TuningRow {
    /// The adapters the row is for.
    pub adapter: AdapterPattern,
    /// Their tile sizes and thresholds.
    pub tuning: Tuning,
    /// Where the values come from (a measurement in docs/PERFORMANCE.md, or "default").
    pub source: &'static str,
}

/// The table, first match wins. Rows are added from `attn-bench tune` runs on real adapters.
pub const TABLE: &[TuningRow] = &[
    TuningRow {
        adapter: AdapterPattern {
            backend: Some(wgpu::Backend::Vulkan),
            vendor: None,
            name: "llvmpipe",
            driver: "",
        },
        // `attn-bench tune` on this adapter (docs/tune-lavapipe.json): the staged tile won
        // clearly; the fused tiles' differences were within this machine's run-to-run noise
        // (about 15%), and the table keeps what it measured. Decode beat fused at 1,024 keys and
        // above in all three runs, at 512 in the one run that measured it, and at 256 in one run
        // of three, so the threshold is 512. Four rows per invocation in the fused subgroup form:
        // a prototype of it measured R = 1, 2, 4, 8 at 846, 551, 266–450 and 370–420 ms at
        // 1x8x2048x64 (PERFORMANCE.md, log 11); R = 8 compiles slower for no clear gain. Wide
        // K/V loads: faster in every alternating pair measured at the decode and prefill shapes
        // (log 13); `attn-bench tune` keeps this value rather than tuning it. Decode with head
        // dims across lanes: faster than rows in lanes at the decode shape in f32, f16 and bf16
        // in every alternating pair (log 20); also kept, not tuned. The decode fields again after
        // that form (two runs of `attn-bench tune`, 2026-11-23; the second is
        // docs/tune-lavapipe-2026-11-23.json; PERFORMANCE.md): at one query decode beat fused
        // from 64 keys in both runs (2-6x from 256 keys) and at 16 in one; up to 4 query rows it
        // won at 256 and 2,048 keys in both; 8 rows won at 2,048 keys and lost by 35-75% at 64 to
        // 512. The other fields' trials moved between the two runs (fused_sg_rows 8 and
        // dispatch_work 2^33 won the first by 4% and 10%, lost the second by 9% and 8%), so they
        // stay.
        tuning: Tuning {
            staged_tile: DEFAULT_TILE,
            fused_rows: 128,
            fused_tile_bytes: 32 * 1024,
            fused_sg_rows: 4,
            fused_wide_loads: true,
            decode_dims_in_lanes: true,
            decode_max_q_len: 4,
            decode_min_kv_len: 64,
            decode_rows: 16,
            dispatch_work: crate::kinds::DEFAULT_DISPATCH_WORK,
        },
        source:
            "lavapipe: `attn-bench tune` 2026-11-21 and, for decode, 2026-11-23 (docs/tune-lavapipe*.json, docs/PERFORMANCE.md)",
    },
    TuningRow {
        adapter: AdapterPattern {
            backend: Some(wgpu::Backend::Vulkan),
            vendor: None,
            name: "NVIDIA H100",
            driver: "",
        },
        tuning: Tuning {
            staged_tile: Tile {
                tm: 64,
                tn: 64,
                tk: 8,
            },
            fused_rows: 64,
            // Tune picked 32 KiB from a tie at head dim 64 (1.96 vs 1.97 ms); at 128 it ran the
            // fused kernel and decode at half speed (PERFORMANCE.md), so the default stays.
            fused_tile_bytes: 16 * 1024,
            fused_sg_rows: 2,
            fused_wide_loads: false,
            decode_dims_in_lanes: false,
            decode_max_q_len: 16,
            decode_min_kv_len: 256,
            decode_rows: 64,
            // 2^30 split a 2048-token prefill into dispatches of a few dozen workgroups: the
            // fused subgroup form ran 4x (L=2048) to 32x (L=16384) slower (PERFORMANCE.md).
            dispatch_work: 1 << 36,
        },
        source: "NVIDIA H100 80GB HBM3, Vulkan, driver 580.159.04: `attn-bench tune` 2026-11-22 (docs/h100/tune*.txt, docs/PERFORMANCE.md)",
    },
    TuningRow {
        adapter: AdapterPattern::ANY,
        tuning: GENERIC,
        source: "default",
    },
];

/// The first row of `table` matching the adapter.
pub fn lookup<'a>(table: &'a [TuningRow], info: &wgpu::AdapterInfo) -> Option<&'a TuningRow> {
    table.iter().find(|r| r.adapter.matches(info))
}

/// The tuning of an adapter: its row of [`TABLE`], else the default.
pub fn for_adapter(info: &wgpu::AdapterInfo) -> (Tuning, &'static str) {
    lookup(TABLE, info)
        .map(|r| (r.tuning, r.source))
        .unwrap_or((Tuning::default(), "default"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, backend: wgpu::Backend, vendor: u32) -> wgpu::AdapterInfo {
        let mut i = wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, backend);
        i.name = name.into();
        i.vendor = vendor;
        i.driver = "llvmpipe".into();
        i.driver_info = "Mesa 22.3.6".into();
        i
    }

    #[test]
    fn rows_match_by_backend_vendor_and_case_insensitive_name() {
        let lvp = info(
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            wgpu::Backend::Vulkan,
            0x10005,
        );
        assert!(lookup(TABLE, &lvp).unwrap().source.starts_with("lavapipe"));
        let gl = info(
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            wgpu::Backend::Gl,
            0x10005,
        );
        assert_eq!(lookup(TABLE, &gl).unwrap().source, "default");
        let p = AdapterPattern {
            vendor: Some(0x10de),
            name: "H100",
            ..AdapterPattern::ANY
        };
        assert!(p.matches(&info(
            "NVIDIA h100 80GB HBM3",
            wgpu::Backend::Vulkan,
            0x10de
        )));
        assert!(!p.matches(&info("NVIDIA H100", wgpu::Backend::Vulkan, 0x1002)));
        assert!(AdapterPattern {
            driver: "mesa 22",
            ..AdapterPattern::ANY
        }
        .matches(&lvp));
    }

    #[test]
    fn rows_are_valid_and_the_generic_row_fits_webgpu_minimum_limits() {
        for r in TABLE {
            let t = r.tuning;
            let inv = (t.staged_tile.tm / 4) * (t.staged_tile.tn / 4);
            assert!(inv <= 256 && t.staged_tile.tm % 4 == 0 && t.staged_tile.tn % 4 == 0);
            assert!(t.fused_rows <= 256 && t.fused_rows > 0);
            // An adapter's own row may use that adapter's workgroup memory (lavapipe: 32 KiB).
            assert!(t.fused_tile_bytes <= 32 * 1024);
        }
        let generic = TABLE.last().unwrap();
        assert_eq!(generic.adapter, AdapterPattern::ANY);
        assert!(generic.tuning.fused_tile_bytes <= 16 * 1024);
        assert_eq!(generic.tuning, Tuning::default());
    }
}
