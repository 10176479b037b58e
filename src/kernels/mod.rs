//! Kernel sources and their host sides: one module per file in `shaders/`.
//!
//! A kernel is compiled from `shaders/common.wgsl`, a header of `const` specialization values
//! generated from its `PipelineKey`, and its own file. The header
//! is the single place where tile sizes are chosen, so a later per-adapter table or autotuner only
//! changes the constants that go into the key.

pub(crate) mod additive;
pub mod flash;
pub(crate) mod flash_lanes;
pub(crate) mod kv_copy;
pub mod merge;
pub mod pack;
pub mod pv;
pub mod qk;
pub mod softmax;
pub(crate) mod subgroup_probe;

pub(crate) use crate::pipeline::KernelSource;
pub use crate::tuning::Tile;
pub(crate) use crate::tuning::DEFAULT_TILE;

pub(crate) const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");
/// common.wgsl followed by the causal offset and the score rules of the kernels that write
/// scores (qk, additive).
pub(crate) const SCORE_WGSL: &str = concat!(
    include_str!("../../shaders/common.wgsl"),
    include_str!("../../shaders/keys.wgsl"),
    include_str!("../../shaders/score_rules.wgsl")
);
/// common.wgsl followed by the causal offset and the K/V row addressing of the fused kernel's
/// forms (flash, flash_subgroup).
pub(crate) const FLASH_WGSL: &str = concat!(
    include_str!("../../shaders/common.wgsl"),
    include_str!("../../shaders/keys.wgsl"),
    include_str!("../../shaders/paged.wgsl")
);

/// FLASH_WGSL followed by the stores of an O bound as words in its own dtype, for the fused
/// kernel's workgroup-memory form (`shaders/flash.wgsl`).
pub(crate) const FLASH_WG_WGSL: &str = concat!(
    include_str!("../../shaders/common.wgsl"),
    include_str!("../../shaders/keys.wgsl"),
    include_str!("../../shaders/paged.wgsl"),
    include_str!("../../shaders/store_o.wgsl")
);
/// common.wgsl followed by the stores of an O bound as words in its own dtype, for the decode
/// path's merge (`shaders/merge.wgsl`).
pub(crate) const MERGE_WGSL: &str = concat!(
    include_str!("../../shaders/common.wgsl"),
    include_str!("../../shaders/store_o.wgsl")
);

/// Parameters of one dispatch. Must match `struct Params` in `shaders/common.wgsl` field for
/// field (128 bytes); every kernel reads this one struct.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub batch: u32,
    pub q_heads: u32,
    pub kv_heads: u32,
    pub q_len: u32,
    pub kv_len: u32,
    pub head_dim: u32,
    pub value_dim: u32,
    pub group: u32,
    pub scale: f32,
    pub causal: u32,
    pub causal_offset: i32,
    pub mask_kind: u32,
    pub mask_sb: u32,
    pub mask_sh: u32,
    pub mask_sq: u32,
    pub mask_sk: u32,
    pub has_key_lengths: u32,
    pub flags: u32,
    pub bh0: u32,
    pub nbh: u32,
    pub i0: u32,
    pub rows: u32,
    pub s_shift: u32,
    pub j0: u32,
    pub jn: u32,
    pub d0: u32,
    pub dn: u32,
    pub nseg: u32,
    pub count: u32,
    /// KV cache (PAGED kernels): positions per block, and the block table's row stride.
    pub page_size: u32,
    pub page_stride: u32,
    pub _pad: u32,
}

const _: () = assert!(std::mem::size_of::<Params>() == 128);

impl crate::problem::Problem {
    /// The dispatch parameters every kernel shares: shape, scale, causal rule, mask strides and
    /// the key-lengths flag. Callers fill in the per-dispatch fields.
    pub(crate) fn params(&self) -> Params {
        let s = self.shape;
        let mut p = Params {
            batch: s.batch as u32,
            q_heads: s.q_heads as u32,
            kv_heads: s.kv_heads as u32,
            q_len: s.q_len as u32,
            kv_len: s.kv_len as u32,
            head_dim: s.head_dim as u32,
            value_dim: s.value_dim as u32,
            group: s.group() as u32,
            scale: self.scale,
            ..Default::default()
        };
        match self.causal {
            crate::kinds::Causal::None => {}
            crate::kinds::Causal::TopLeft => p.causal = 1,
            // Over a KV cache the bottom-right corner is each sequence's own length (2: the
            // kernels take the offset from the key lengths).
            crate::kinds::Causal::BottomRight if self.sequence_causal => p.causal = 2,
            crate::kinds::Causal::BottomRight => {
                p.causal = 1;
                p.causal_offset = s.kv_len as i32 - s.q_len as i32;
            }
        }
        if let Some(pg) = &self.paged {
            p.page_size = pg.block_size;
            p.page_stride = pg.stride;
        }
        if let Some((kind, strides, _)) = &self.mask {
            p.mask_kind = match kind {
                crate::kinds::MaskKind::Bool => 1,
                crate::kinds::MaskKind::Additive => 2,
            };
            [p.mask_sb, p.mask_sh, p.mask_sq, p.mask_sk] = *strides;
        }
        p.has_key_lengths = self.key_lengths.is_some() as u32;
        p
    }
}

impl crate::problem::Problem {
    /// The data-type constants of the kernels that read the inputs: DT (q, k, v) and MDT (the
    /// mask) where they are 16-bit, with `parity` KA and VA (head and value dim even, so rows
    /// start on whole words), and F16N where f16 data is unpacked with `unpack2x16float`. None
    /// for f32 data, so f32 keys stay as they were.
    pub(crate) fn data_constants(&self, parity: bool) -> Vec<(&'static str, u32)> {
        let mut c = Vec::new();
        if self.dtype != crate::dtype::DType::F32 {
            c.push(("DT", self.dtype.code()));
            if parity {
                c.push(("KA", (self.shape.head_dim % 2 == 0) as u32));
                c.push(("VA", (self.shape.value_dim % 2 == 0) as u32));
            }
        }
        if let Some(m) = &self.mask {
            if m.2.dtype() != crate::dtype::DType::F32 {
                c.push(("MDT", m.2.dtype().code()));
            }
        }
        if self.f16_native {
            c.push(("F16N", 1));
        }
        c
    }

    /// The data-type constants of a kernel that reads q, k or v but never the mask (staged P·V):
    /// DT where the inputs are 16-bit, and F16N where they are f16 unpacked with
    /// `unpack2x16float`.
    pub(crate) fn input_constants(&self) -> Vec<(&'static str, u32)> {
        let mut c = Vec::new();
        if self.dtype != crate::dtype::DType::F32 {
            c.push(("DT", self.dtype.code()));
        }
        if self.f16_native && self.dtype == crate::dtype::DType::F16 {
            c.push(("F16N", 1));
        }
        c
    }
}

/// One uniform buffer holding every dispatch's parameters, one aligned block each (bound with a
/// dynamic offset); returns the buffer and the block stride.
pub(crate) fn params_buffer(
    ctx: &crate::context::Context,
    params: &[Params],
) -> (wgpu::Buffer, u64) {
    let stride = (std::mem::size_of::<Params>() as u64)
        .max(ctx.limits().min_uniform_buffer_offset_alignment as u64);
    let mut bytes = vec![0u8; stride as usize * params.len().max(1)];
    for (n, p) in params.iter().enumerate() {
        let o = n * stride as usize;
        bytes[o..o + std::mem::size_of::<Params>()].copy_from_slice(bytemuck::bytes_of(p));
    }
    let buf = ctx.buffer_with_data("wgpu-attention params", wgpu::BufferUsages::UNIFORM, &bytes);
    (buf, stride)
}

/// The parameter block binding: one `Params` at the dynamic offset.
pub(crate) fn params_binding(buf: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: buf,
        offset: 0,
        size: std::num::NonZeroU64::new(std::mem::size_of::<Params>() as u64),
    })
}

/// A storage binding of the first `size` bytes of `buf` (at least 4).
pub(crate) fn storage_binding(buf: &wgpu::Buffer, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: buf,
        offset: 0,
        size: std::num::NonZeroU64::new(size.max(4)),
    })
}

/// A tensor's binding: exactly its bytes (whole words: a 16-bit tensor with an odd count includes
/// half a word of padding), at its offset in its buffer, so that no kernel can touch anything else
/// in the buffer.
pub(crate) fn tensor_binding(t: &crate::tensor::Tensor) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: t.buffer(),
        offset: t.offset(),
        size: std::num::NonZeroU64::new(t.storage_bytes().max(4)),
    })
}

/// A bind group of `layout` with `resources` at bindings 0, 1, 2, ...
pub(crate) fn bind_group(
    ctx: &crate::context::Context,
    layout: &wgpu::BindGroupLayout,
    resources: Vec<wgpu::BindingResource>,
) -> wgpu::BindGroup {
    let traced: Vec<(wgpu::Buffer, u64, u64)> = if crate::trace::active() {
        resources
            .iter()
            .filter_map(|r| match r {
                wgpu::BindingResource::Buffer(b) => Some((
                    b.buffer.clone(),
                    b.offset,
                    b.size.map_or(b.buffer.size() - b.offset, |s| s.get()),
                )),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let entries: Vec<wgpu::BindGroupEntry> = resources
        .into_iter()
        .enumerate()
        .map(|(i, resource)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource,
        })
        .collect();
    let group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("wgpu-attention"),
        layout,
        entries: &entries,
    });
    if !traced.is_empty() {
        crate::trace::bind_group(ctx.device(), ctx.queue(), &group, &traced);
    }
    group
}

/// The mask binding (the context's dummy when there is none), and a buffer of the key lengths
/// when the problem has them: the optional inputs every score kernel binds.
pub(crate) fn mask_and_lengths<'a>(
    ctx: &'a crate::context::Context,
    prob: &'a crate::problem::Problem,
) -> (wgpu::BindingResource<'a>, Option<wgpu::Buffer>) {
    let kl = prob.key_lengths.as_ref().map(|kl| {
        ctx.buffer_with_data(
            "wgpu-attention key lengths",
            wgpu::BufferUsages::STORAGE,
            bytemuck::cast_slice(kl),
        )
    });
    match &prob.mask {
        Some((_, _, t)) => (tensor_binding(t), kl),
        None => (storage_binding(ctx.dummy_buffer(), 16), kl),
    }
}

pub(crate) const FLAG_ACCUMULATE: u32 = 1;
pub(crate) const FLAG_FINALIZE: u32 = 2;

/// Flags of chunk `n` of `count` that accumulate into one result: every chunk after the first
/// accumulates, the last finalizes.
pub(crate) fn chunk_flags(n: usize, count: usize) -> u32 {
    (if n > 0 { FLAG_ACCUMULATE } else { 0 }) | (if n + 1 == count { FLAG_FINALIZE } else { 0 })
}

/// Every kernel source with a representative specialization, for tests that translate them all:
/// (label, WGSL) pairs of [`all_kernels`].
pub fn all_sources() -> Vec<(String, String)> {
    all_kernels()
        .into_iter()
        .map(|k| (k.label, k.wgsl))
        .collect()
}

/// Every kernel source with representative specializations (every form and dtype), with entry
/// points and bindings: what the Dawn replay compiles under Tint besides the kernels its traces
/// use.
pub fn all_kernels() -> Vec<crate::trace::TraceKernel> {
    let mut v = Vec::new();
    let kernel =
        |src: &KernelSource, key: crate::pipeline::PipelineKey| crate::trace::TraceKernel {
            label: key.label(),
            wgsl: src.assemble(&key.constants),
            constants: key
                .constants
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            entry: src.entry.to_string(),
            bindings: src.bindings.iter().map(|b| b.trace_kind()).collect(),
        };
    let t = &crate::tuning::Tuning::default();
    for (src, key) in [
        (&qk::SOURCE, qk::key(DEFAULT_TILE)),
        (&qk::SOURCE, qk::key(SHORT_Q_TILE)),
        (&pv::SOURCE, pv::key(DEFAULT_TILE)),
        (&pv::SOURCE, pv::key(SHORT_Q_TILE)),
        (&softmax::STATS, softmax::key(&softmax::STATS)),
        (&softmax::NORMALIZE, softmax::key(&softmax::NORMALIZE)),
        (
            &softmax::STATS_SUBGROUP,
            softmax::key(&softmax::STATS_SUBGROUP),
        ),
        (
            &softmax::NORMALIZE_SUBGROUP,
            softmax::key(&softmax::NORMALIZE_SUBGROUP),
        ),
        (&flash::SOURCE, flash::key(flash::spec(t, 64, 64))),
        (&flash::SOURCE, flash::key(flash::spec(t, 3, 130))),
        (&flash::SOURCE, flash::key(flash::spec(t, 256, 256))),
        (&flash::SOURCE, flash::key(flash::decode_spec(t, 128, 128))),
        (&merge::SOURCE, merge::key(crate::dtype::DType::F32)),
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(8, 4, false, 64, 64, 0, 0, false),
        ),
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(8, 1, true, 128, 128, 1, 0, false),
        ),
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(8, 2, false, 64, 64, 0, 1, false),
        ),
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(8, 1, true, 128, 36, 1, 1, false),
        ),
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(32, 1, false, 3, 130, 2, 1, false),
        ),
        // The emulated form at the sizes lavapipe cannot run natively (no subgroup operations).
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(32, 2, false, 64, 64, 1, 0, true),
        ),
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(64, 1, true, 16, 16, 2, 1, true),
        ),
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(128, 1, false, 3, 5, 0, 0, true),
        ),
        // Decode with head dims across lanes: wide loads over exact slices; odd dims element by
        // element at a GPU's 32 lanes with 8 rows per workgroup.
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(8, 4, true, 128, 128, 1, 1, false).with(vec![("DL", 1)]),
        ),
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(32, 8, true, 3, 130, 2, 0, false).with(vec![("DL", 1)]),
        ),
        (&subgroup_probe::SOURCE, subgroup_probe::key(32)),
        (&additive::SOURCE, additive::key(false)),
        (&additive::SOURCE, additive::key(true)),
        (
            &kv_copy::SOURCE,
            kv_copy::key(crate::dtype::DType::F32, false),
        ),
        (
            &kv_copy::SOURCE,
            kv_copy::key(crate::dtype::DType::F32, true),
        ),
        (
            &flash::SOURCE,
            flash::key(flash::spec(t, 64, 64)).with(vec![("PAGED", 1)]),
        ),
        (
            &flash::SUBGROUP_SOURCE,
            flash::subgroup_key(8, 1, true, 128, 128, 0, 0, false).with(vec![("PAGED", 1)]),
        ),
    ] {
        v.push(kernel(src, key));
    }
    // Every kernel that reads the inputs, in each 16-bit dtype (a 16-bit mask too), and the pack
    // kernel for each: whole-word and mid-word rows, vec4 and wide loads, scalar accessors.
    for dt in [crate::dtype::DType::F16, crate::dtype::DType::BF16] {
        let d = dt.code();
        // f16 both ways: unpack2x16float (F16N) and the integer decode that needs no capability.
        let data = |even: bool| {
            vec![
                ("DT", d),
                ("KA", even as u32),
                ("VA", even as u32),
                ("MDT", d),
                ("F16N", even as u32),
            ]
        };
        for (src, key) in [
            (&qk::SOURCE, qk::key(DEFAULT_TILE).with(data(false))),
            (&pv::SOURCE, pv::key(SHORT_Q_TILE).with(vec![("DT", d)])),
            (
                &flash::SOURCE,
                flash::key(flash::spec(t, 64, 64)).with(data(true)),
            ),
            (
                &flash::SOURCE,
                flash::key(flash::spec(t, 3, 130)).with(data(false)),
            ),
            (
                &flash::SOURCE,
                flash::key(flash::decode_spec(t, 128, 128)).with(data(true)),
            ),
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(8, 4, false, 64, 64, 0, 1, false).with(data(false)),
            ),
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(8, 1, true, 128, 36, 1, 1, false).with(data(false)),
            ),
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(32, 1, false, 3, 130, 2, 1, false).with(data(false)),
            ),
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(32, 2, false, 64, 64, 1, 0, true).with(data(false)),
            ),
            // 16 elements a load (vec4<u64>, needs INT64): K at 128, V at 40 falls back to 8.
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(8, 1, true, 128, 40, 1, 2, false).with(data(false)),
            ),
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(16, 2, false, 64, 64, 0, 2, true).with(data(true)),
            ),
            // Decode with head dims across lanes: 16 elements a load for K, V's slice overrun
            // by the last lanes; vec4 loads over a KV cache at 16 lanes.
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(8, 4, true, 128, 40, 1, 2, false)
                    .with(data(false))
                    .with(vec![("DL", 1)]),
            ),
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(16, 2, true, 64, 64, 0, 0, false)
                    .with(data(true))
                    .with(vec![("DL", 1), ("PAGED", 1)]),
            ),
            (&pack::SOURCE, pack::key(dt)),
            (&merge::SOURCE, merge::key(dt)),
            // The fused kernel writing a 16-bit O itself (one key chunk): the workgroup-memory
            // form, the subgroup form native and emulated.
            (
                &flash::SOURCE,
                flash::key(flash::spec(t, 64, 64))
                    .with(data(true))
                    .with(vec![("ODT", d)]),
            ),
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(8, 4, false, 64, 64, 0, 1, false)
                    .with(data(false))
                    .with(vec![("ODT", d)]),
            ),
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(32, 2, false, 128, 40, 1, 0, true)
                    .with(data(true))
                    .with(vec![("ODT", d)]),
            ),
            (&additive::SOURCE, additive::key(false).with(data(false))),
            (&additive::SOURCE, additive::key(true).with(data(true))),
            (&kv_copy::SOURCE, kv_copy::key(dt, false)),
            (&kv_copy::SOURCE, kv_copy::key(dt, true)),
            // Attention over a KV cache: K and V through the block table.
            (
                &flash::SOURCE,
                flash::key(flash::decode_spec(t, 64, 64))
                    .with(data(true))
                    .with(vec![("PAGED", 1)]),
            ),
            (
                &flash::SUBGROUP_SOURCE,
                flash::subgroup_key(8, 2, false, 59, 37, 0, 0, false)
                    .with(data(false))
                    .with(vec![("PAGED", 1)]),
            ),
        ] {
            v.push(kernel(src, key));
        }
    }
    v
}

/// For at most 4 query rows per head (decoding): 4 x 64 outputs per workgroup of 16 invocations,
/// so a single query row wastes 3/4 of a tile instead of 63/64 (measured 1050 → 191 ms).
pub(crate) const SHORT_Q_TILE: Tile = Tile {
    tm: 4,
    tn: 64,
    tk: 16,
};

/// The tile of the matrix-product kernels for a problem: the single place where it is chosen.
pub(crate) fn tile_for(t: &crate::tuning::Tuning, q_len: usize) -> Tile {
    if q_len <= SHORT_Q_TILE.tm as usize {
        SHORT_Q_TILE
    } else {
        t.staged_tile
    }
}
