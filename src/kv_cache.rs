//! A KV cache for decoding: keys and values of past positions kept on the GPU in fixed-size
//! blocks from one pool, reached through a per-sequence block table (vLLM's PagedAttention,
//! FlashInfer, MLC's paged KV cache). A contiguous cache is the same type with one block per
//! sequence ([`KvCacheConfig::contiguous`]).
//!
//! The bookkeeping (block tables, lengths, reference counts, the free list) lives on the host and
//! is authoritative; every operation checks its arguments first and returns a typed error that
//! leaves the cache unchanged. Data moves only on the GPU: `append` copies new rows into their
//! blocks (`shaders/kv_copy.wgsl`), the first append into a shared, partly filled block copies
//! that block first (copy-on-write), and `fork`, `reorder`, `truncate` and `free` only change the
//! tables. Nothing reads the cache back except [`KvCache::read_sequence`], a check for tests.
//!
//! Pool layout: K is `[num_blocks, kv_heads, block_size, head_dim]` and V `[num_blocks, kv_heads,
//! block_size, value_dim]` in the cache's dtype, so key j of a sequence is row j % block_size of
//! its block `table[j / block_size]` for each head. Attention over the cache
//! ([`KvCache::record_attention`]) reads those rows through the block table in the decode and fused
//! kernels (`PAGED`); the staged variant gathers each sequence into a contiguous copy first.

use crate::attention::AttentionOutput;
use crate::context::Context;
use crate::dtype::DType;
use crate::error::{Error, Result, TensorRole};
use crate::kernels::kv_copy::{self, Run};
use crate::kinds::Variant;
use crate::options::AttentionOptions;
use crate::problem::{self, Paged};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The shape of a KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCacheConfig {
    /// Sequence slots (live sequences at once).
    pub max_seqs: usize,
    /// Key/value heads (queries may have a multiple of them: GQA).
    pub kv_heads: usize,
    /// Dim of each key (and query).
    pub head_dim: usize,
    /// Dim of each value.
    pub value_dim: usize,
    /// Element type of the pools (and of appended K and V, and of queries).
    pub dtype: DType,
    /// Positions per block.
    pub block_size: usize,
    /// Blocks in the pool, shared by all sequences.
    pub num_blocks: usize,
}

impl KvCacheConfig {
    /// A contiguous cache: one block of `capacity` positions per sequence slot.
    pub fn contiguous(
        max_seqs: usize,
        kv_heads: usize,
        head_dim: usize,
        value_dim: usize,
        dtype: DType,
        capacity: usize,
    ) -> Self {
        KvCacheConfig {
            max_seqs,
            kv_heads,
            head_dim,
            value_dim,
            dtype,
            block_size: capacity,
            num_blocks: max_seqs,
        }
    }
}

/// A live sequence of a [`KvCache`] (its slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqId(u32);

impl SeqId {
    /// The slot index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for SeqId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Default)]
struct Seq {
    blocks: Vec<u32>,
    len: usize,
}

/// A paged KV cache on the GPU (module docs).
pub struct KvCache {
    cfg: KvCacheConfig,
    k: Tensor,
    v: Tensor,
    seqs: Vec<Option<Seq>>,
    refs: Vec<u32>,
    /// Free blocks, taken from the end (lowest index first).
    free: Vec<u32>,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache")
            .field("cfg", &self.cfg)
            .field("live", &self.sequences().len())
            .field("free_blocks", &self.free.len())
            .finish()
    }
}

/// The pieces of positions `from..to` of a sequence holding `blocks`, one per (head, block):
/// `(head, first position, its row in the pool, positions)`, every piece contiguous in the pool.
fn pieces(
    c: &KvCacheConfig,
    blocks: &[u32],
    from: usize,
    to: usize,
) -> Vec<(usize, usize, usize, usize)> {
    let bs = c.block_size;
    let mut out = Vec::new();
    for h in 0..c.kv_heads {
        let mut p = from;
        while p < to {
            let count = (bs - p % bs).min(to - p);
            let row = (blocks[p / bs] as usize * c.kv_heads + h) * bs + p % bs;
            out.push((h, p, row, count));
            p += count;
        }
    }
    out
}

/// The K and V copies of `count` rows from row `src_row` to row `dst_row`.
fn push_runs(
    c: &KvCacheConfig,
    runs_k: &mut Vec<Run>,
    runs_v: &mut Vec<Run>,
    src_row: usize,
    dst_row: usize,
    count: usize,
) {
    for (runs, d) in [(runs_k, c.head_dim), (runs_v, c.value_dim)] {
        runs.push(Run {
            src: (src_row * d) as u32,
            dst: (dst_row * d) as u32,
            len: (count * d) as u32,
        });
    }
}

/// A tensor's whole binding range, as the copy kernel takes it.
fn words(t: &Tensor) -> kv_copy::Words<'_> {
    (t.buffer(), t.offset(), t.storage_bytes())
}

fn arg(op: &'static str, what: String) -> Error {
    Error::CacheArgument { op, what }
}

impl KvCache {
    /// An empty cache with its pool allocated (contents undefined until appended).
    pub fn new(ctx: &Context, cfg: KvCacheConfig) -> Result<KvCache> {
        let op = "new";
        for (name, v) in [
            ("max_seqs", cfg.max_seqs),
            ("kv_heads", cfg.kv_heads),
            ("head_dim", cfg.head_dim),
            ("value_dim", cfg.value_dim),
            ("block_size", cfg.block_size),
            ("num_blocks", cfg.num_blocks),
        ] {
            if v == 0 {
                return Err(arg(op, format!("{name} must be at least 1")));
            }
        }
        let elems = |d: usize| {
            cfg.num_blocks as u64 * cfg.kv_heads as u64 * cfg.block_size as u64 * d as u64
        };
        // Element indices inside kernels are u32.
        for (role, d) in [
            (TensorRole::Key, cfg.head_dim),
            (TensorRole::Value, cfg.value_dim),
        ] {
            if elems(d) >= u32::MAX as u64 {
                return Err(arg(
                    op,
                    format!(
                        "the {role} pool would hold {} elements, more than 2^32 - 1",
                        elems(d)
                    ),
                ));
            }
        }
        let k = Tensor::empty(
            ctx,
            &[cfg.num_blocks, cfg.kv_heads, cfg.block_size, cfg.head_dim],
            cfg.dtype,
        )?;
        let v = Tensor::empty(
            ctx,
            &[cfg.num_blocks, cfg.kv_heads, cfg.block_size, cfg.value_dim],
            cfg.dtype,
        )?;
        problem::fits_binding(ctx, TensorRole::Key, k.storage_bytes())?;
        problem::fits_binding(ctx, TensorRole::Value, v.storage_bytes())?;
        Ok(KvCache {
            cfg,
            k,
            v,
            seqs: vec![None; cfg.max_seqs],
            refs: vec![0; cfg.num_blocks],
            free: (0..cfg.num_blocks as u32).rev().collect(),
        })
    }

    /// The cache's shape.
    pub fn config(&self) -> &KvCacheConfig {
        &self.cfg
    }

    /// The live sequences, in slot order.
    pub fn sequences(&self) -> Vec<SeqId> {
        (0..self.seqs.len())
            .filter(|&i| self.seqs[i].is_some())
            .map(|i| SeqId(i as u32))
            .collect()
    }

    /// Positions held by a sequence.
    pub fn len(&self, seq: SeqId) -> Result<usize> {
        Ok(self.seq("len", seq)?.len)
    }

    /// Blocks referenced by at least one sequence.
    pub fn blocks_in_use(&self) -> usize {
        self.cfg.num_blocks - self.free.len()
    }

    /// Blocks on the free list.
    pub fn free_blocks(&self) -> usize {
        self.free.len()
    }

    /// The blocks of a sequence, in position order (for tests and diagnostics).
    pub fn block_table(&self, seq: SeqId) -> Result<&[u32]> {
        Ok(&self.seq("block_table", seq)?.blocks)
    }

    /// A sequence's reference count of each of its blocks (for tests and diagnostics).
    pub fn block_refs(&self, block: u32) -> u32 {
        self.refs.get(block as usize).copied().unwrap_or(0)
    }

    /// The K and V pools (`[num_blocks, kv_heads, block_size, dim]`).
    pub fn pools(&self) -> (&Tensor, &Tensor) {
        (&self.k, &self.v)
    }

    fn seq(&self, op: &'static str, id: SeqId) -> Result<&Seq> {
        self.seqs
            .get(id.index())
            .and_then(|s| s.as_ref())
            .ok_or(Error::UnknownSequence { op, id: id.index() })
    }

    fn free_slot(&self, op: &'static str) -> Result<usize> {
        self.seqs
            .iter()
            .position(|s| s.is_none())
            .ok_or(Error::NoSequenceSlot {
                op,
                max_seqs: self.cfg.max_seqs,
            })
    }

    fn release(&mut self, blocks: &[u32]) {
        for &b in blocks {
            let r = &mut self.refs[b as usize];
            *r -= 1;
            if *r == 0 {
                self.free.push(b);
            }
        }
    }

    fn take_block(&mut self) -> u32 {
        // Callers check the count first.
        let b = self.free.pop().expect("free block counted before");
        self.refs[b as usize] = 1;
        b
    }

    /// A new, empty sequence.
    pub fn add_sequence(&mut self) -> Result<SeqId> {
        let slot = self.free_slot("add_sequence")?;
        self.seqs[slot] = Some(Seq::default());
        Ok(SeqId(slot as u32))
    }

    /// A new sequence sharing all of `parent`'s blocks (reference counted; the first append into
    /// a shared, partly filled block copies it).
    pub fn fork(&mut self, parent: SeqId) -> Result<SeqId> {
        let p = self.seq("fork", parent)?.clone();
        let slot = self.free_slot("fork")?;
        for &b in &p.blocks {
            self.refs[b as usize] += 1;
        }
        self.seqs[slot] = Some(p);
        Ok(SeqId(slot as u32))
    }

    /// Frees a sequence; its blocks return to the pool when no other sequence holds them.
    pub fn free(&mut self, seq: SeqId) -> Result<()> {
        self.seq("free", seq)?;
        let s = self.seqs[seq.index()].take().unwrap_or_default();
        self.release(&s.blocks);
        Ok(())
    }

    /// Shortens a sequence to `len` positions (speculative decoding's rollback); blocks past it
    /// are released.
    pub fn truncate(&mut self, seq: SeqId, len: usize) -> Result<()> {
        let cur = self.seq("truncate", seq)?.len;
        if len > cur {
            return Err(arg(
                "truncate",
                format!("sequence {seq} holds {cur} positions; cannot truncate to {len} (at most {cur})"),
            ));
        }
        let keep = len.div_ceil(self.cfg.block_size);
        let s = self.seqs[seq.index()].as_mut().expect("checked live");
        let dropped = s.blocks.split_off(keep);
        s.len = len;
        self.release(&dropped);
        Ok(())
    }

    /// Beam search's step: slot `seqs[b]` takes the contents of `seqs[indices[b]]` (as they were
    /// before the call), sharing blocks by reference (the next append copies a shared partial
    /// block). No data moves.
    pub fn reorder(&mut self, seqs: &[SeqId], indices: &[usize]) -> Result<()> {
        let op = "reorder";
        if seqs.len() != indices.len() {
            return Err(arg(
                op,
                format!(
                    "{} indices for {} sequences (one index per sequence)",
                    indices.len(),
                    seqs.len()
                ),
            ));
        }
        self.distinct_live(op, seqs)?;
        if let Some((b, &i)) = indices.iter().enumerate().find(|(_, &i)| i >= seqs.len()) {
            return Err(arg(
                op,
                format!(
                    "indices[{b}] = {i} is out of range (expected 0..{})",
                    seqs.len()
                ),
            ));
        }
        let old: Vec<Seq> = seqs
            .iter()
            .map(|&s| self.seqs[s.index()].clone().expect("checked live"))
            .collect();
        for (b, &i) in indices.iter().enumerate() {
            for &blk in &old[i].blocks {
                self.refs[blk as usize] += 1;
            }
            self.seqs[seqs[b].index()] = Some(old[i].clone());
        }
        for s in &old {
            self.release(&s.blocks);
        }
        Ok(())
    }

    fn distinct_live(&self, op: &'static str, seqs: &[SeqId]) -> Result<()> {
        for (n, &s) in seqs.iter().enumerate() {
            self.seq(op, s)?;
            if seqs[..n].contains(&s) {
                return Err(arg(
                    op,
                    format!("sequence {s} appears twice (each at most once)"),
                ));
            }
        }
        Ok(())
    }

    /// Appends n positions to each of `seqs` from `k` `[seqs.len(), kv_heads, n, head_dim]` and
    /// `v` `[seqs.len(), kv_heads, n, value_dim]` (the cache's dtype), submitted to the queue.
    /// Blocks come from the free list; a shared, partly filled last block is copied first. When
    /// the pool has too few free blocks nothing is written or changed (`Error::CacheFull`).
    pub fn append(&mut self, ctx: &Context, seqs: &[SeqId], k: &Tensor, v: &Tensor) -> Result<()> {
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-attention kv append"),
            });
        self.record_append(ctx, &mut enc, seqs, k, v)?;
        let cmd = ctx.scoped("kv append", || enc.finish())?;
        ctx.queue().submit([cmd]);
        crate::trace::submit();
        Ok(())
    }

    /// [`KvCache::append`] recorded into the caller's encoder (the cache's tables change at once;
    /// the data lands when the encoder is submitted, before any later attention recorded after it).
    pub fn record_append(
        &mut self,
        ctx: &Context,
        encoder: &mut wgpu::CommandEncoder,
        seqs: &[SeqId],
        k: &Tensor,
        v: &Tensor,
    ) -> Result<()> {
        let op = "append";
        let c = self.cfg;
        if seqs.is_empty() {
            return Err(arg(op, "no sequences given (expected at least one)".into()));
        }
        self.distinct_live(op, seqs)?;
        let ks = problem::rank4(k, TensorRole::Key, "[seqs, kv_heads, n, head_dim]")?;
        let vs = problem::rank4(v, TensorRole::Value, "[seqs, kv_heads, n, value_dim]")?;
        let want_k = [seqs.len(), c.kv_heads, ks[2], c.head_dim];
        let want_v = [seqs.len(), c.kv_heads, ks[2], c.value_dim];
        for (role, got, want) in [
            (TensorRole::Key, ks, want_k),
            (TensorRole::Value, vs, want_v),
        ] {
            if got != want {
                return Err(Error::CacheArgument {
                    op,
                    what: format!(
                        "{role} has shape {got:?}, expected {want:?} ([sequences, kv_heads, new positions, dim] of this cache)"
                    ),
                });
            }
        }
        for (role, t) in [(TensorRole::Key, k), (TensorRole::Value, v)] {
            if t.dtype() != c.dtype {
                return Err(Error::DTypeMismatch {
                    what: format!("{role} appended to a KV cache"),
                    expected: format!("{}, the cache's dtype", c.dtype),
                    got: t.dtype(),
                });
            }
        }
        let n = ks[2];
        if n == 0 {
            return Ok(());
        }
        // Blocks needed: new ones past each sequence's last, plus a copy of a shared partial one.
        let bs = c.block_size;
        let mut needed = 0;
        for &s in seqs {
            let q = self.seq(op, s)?;
            needed += (q.len + n).div_ceil(bs) - q.blocks.len();
            if q.len % bs != 0 && self.refs[*q.blocks.last().expect("partial block") as usize] > 1 {
                needed += 1;
            }
        }
        if needed > self.free.len() {
            return Err(Error::CacheFull {
                op,
                needed,
                free: self.free.len(),
                total: c.num_blocks,
            });
        }
        // From here on nothing fails before the GPU work is recorded: the tables change with it.
        let mut cow = Vec::new();
        let block_elems = |d: usize| (c.kv_heads * bs * d) as u32;
        let mut runs_k = Vec::new();
        let mut runs_v = Vec::new();
        for (si, &s) in seqs.iter().enumerate() {
            let mut q = self.seqs[s.index()].take().expect("checked live");
            if q.len % bs != 0 {
                let last = q.blocks.len() - 1;
                let old = q.blocks[last];
                if self.refs[old as usize] > 1 {
                    let new = self.take_block();
                    self.refs[old as usize] -= 1;
                    q.blocks[last] = new;
                    cow.push((old, new));
                }
            }
            while q.blocks.len() < (q.len + n).div_ceil(bs) {
                let b = self.take_block();
                q.blocks.push(b);
            }
            // One run per (head, block piece): positions len .. len+n of this sequence.
            for (h, p, pool_row, count) in pieces(&c, &q.blocks, q.len, q.len + n) {
                let src_row = (si * c.kv_heads + h) * n + (p - q.len);
                push_runs(&c, &mut runs_k, &mut runs_v, src_row, pool_row, count);
            }
            q.len += n;
            self.seqs[s.index()] = Some(q);
        }
        if !cow.is_empty() {
            for (pool, d) in [(&self.k, c.head_dim), (&self.v, c.value_dim)] {
                let runs: Vec<Run> = cow
                    .iter()
                    .map(|&(old, new)| Run {
                        src: old * block_elems(d),
                        dst: new * block_elems(d),
                        len: block_elems(d),
                    })
                    .collect();
                kv_copy::record(ctx, encoder, c.dtype, None, words(pool), &runs)?;
            }
        }
        kv_copy::record(
            ctx,
            encoder,
            c.dtype,
            Some(words(k)),
            words(&self.k),
            &runs_k,
        )?;
        kv_copy::record(
            ctx,
            encoder,
            c.dtype,
            Some(words(v)),
            words(&self.v),
            &runs_v,
        )?;
        Ok(())
    }

    /// Gathers `seqs` into contiguous K `[seqs, kv_heads, max_len, head_dim]` and V tensors
    /// (positions past a sequence's length are zero), recorded into `encoder`.
    pub(crate) fn record_gather(
        &self,
        ctx: &Context,
        encoder: &mut wgpu::CommandEncoder,
        seqs: &[SeqId],
        max_len: usize,
    ) -> Result<(Tensor, Tensor)> {
        let c = self.cfg;
        // New buffers: WebGPU zero-initializes them, so positions past a length read 0 with no
        // upload of zeros from the host.
        let k = Tensor::empty(ctx, &[seqs.len(), c.kv_heads, max_len, c.head_dim], c.dtype)?;
        let v = Tensor::empty(
            ctx,
            &[seqs.len(), c.kv_heads, max_len, c.value_dim],
            c.dtype,
        )?;
        let mut runs_k = Vec::new();
        let mut runs_v = Vec::new();
        for (si, &s) in seqs.iter().enumerate() {
            let q = self.seq("gather", s)?;
            for (h, p, pool_row, count) in pieces(&c, &q.blocks, 0, q.len) {
                let dst_row = (si * c.kv_heads + h) * max_len + p;
                push_runs(&c, &mut runs_k, &mut runs_v, pool_row, dst_row, count);
            }
        }
        kv_copy::record(
            ctx,
            encoder,
            c.dtype,
            Some(words(&self.k)),
            words(&k),
            &runs_k,
        )?;
        kv_copy::record(
            ctx,
            encoder,
            c.dtype,
            Some(words(&self.v)),
            words(&v),
            &runs_v,
        )?;
        Ok((k, v))
    }

    /// Reads one sequence back as f32 `(K [kv_heads, len, head_dim], V [kv_heads, len,
    /// value_dim])`: a check for tests and diagnostics, not part of any decoding path.
    pub fn read_sequence(&self, ctx: &Context, seq: SeqId) -> Result<(Vec<f32>, Vec<f32>)> {
        let len = self.seq("read_sequence", seq)?.len;
        if len == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-attention kv read"),
            });
        let (k, v) = self.record_gather(ctx, &mut enc, &[seq], len)?;
        let cmd = ctx.scoped("kv read", || enc.finish())?;
        ctx.queue().submit([cmd]);
        crate::trace::submit();
        Ok((k.read_blocking(ctx)?, v.read_blocking(ctx)?))
    }

    /// Attention of queries `q` `[seqs.len(), q_heads, n, head_dim]` over the cached keys and
    /// values of `seqs` (row b of q against sequence `seqs[b]`, all its positions; key lengths from
    /// the cache). Use [`AttentionOptions::for_cache`] for the usual causal rule (bottom-right at
    /// each sequence's length: query i of n sees keys up to len − n + i); every other option works
    /// as in the plain call (masks over `[.., n, longest length]`, scale, lse, P, the variant).
    /// Key lengths must not be given. Records into `encoder`; outputs as in the plain call, with
    /// kv_len the longest sequence's length.
    pub fn record_attention(
        &self,
        ctx: &Context,
        encoder: &mut wgpu::CommandEncoder,
        q: &Tensor,
        seqs: &[SeqId],
        opts: &AttentionOptions,
    ) -> Result<AttentionOutput> {
        let (prob, max_len) = self.problem(ctx, q, seqs, opts)?;
        let out = crate::attention::new_outputs(ctx, &prob, opts)?;
        self.record_problem(ctx, encoder, &prob, max_len, q, seqs, opts, &out)?;
        Ok(out)
    }

    /// [`KvCache::record_attention`] into caller-provided outputs (reused, or poisoned to prove
    /// every element is written); `outputs.lse` and `outputs.probs` are written when present.
    /// Returns the variant recorded.
    pub fn record_attention_into(
        &self,
        ctx: &Context,
        encoder: &mut wgpu::CommandEncoder,
        q: &Tensor,
        seqs: &[SeqId],
        opts: &AttentionOptions,
        outputs: &AttentionOutput,
    ) -> Result<Variant> {
        let (prob, max_len) = self.problem(ctx, q, seqs, opts)?;
        let s = prob.shape;
        problem::check_output(&outputs.out, TensorRole::Output, &s.out(), prob.out_dtype)?;
        if let Some(l) = &outputs.lse {
            problem::check_output(l, TensorRole::Lse, &s.lse(), DType::F32)?;
        }
        if let Some(p) = &outputs.probs {
            problem::check_output(p, TensorRole::Probs, &s.probs(), DType::F32)?;
        }
        let variant = crate::attention::choose_variant(ctx, opts, &s);
        let out = AttentionOutput {
            variant,
            ..outputs.clone()
        };
        self.record_problem(ctx, encoder, &prob, max_len, q, seqs, opts, &out)?;
        Ok(variant)
    }

    /// The checked problem of an attention call over the cache, and the longest length.
    fn problem(
        &self,
        ctx: &Context,
        q: &Tensor,
        seqs: &[SeqId],
        opts: &AttentionOptions,
    ) -> Result<(problem::Problem, usize)> {
        let op = "attention";
        let c = self.cfg;
        if seqs.is_empty() {
            return Err(arg(op, "no sequences given (expected at least one)".into()));
        }
        for &s in seqs {
            self.seq(op, s)?;
        }
        if opts.key_lengths.is_some() {
            return Err(Error::InvalidOption {
                option: "key_lengths",
                got: "key lengths".into(),
                expected: "none: attention over a KV cache takes the key lengths from the cache"
                    .into(),
            });
        }
        let qs = problem::rank4(q, TensorRole::Query, "[seqs, q_heads, n, head_dim]")?;
        if qs[0] != seqs.len() || qs[3] != c.head_dim || qs[2] == 0 || qs[1] == 0 {
            return Err(Error::CacheArgument {
                op,
                what: format!(
                    "query has shape {qs:?}, expected [{}, q_heads, n >= 1, {}] (one row per sequence, the cache's head_dim)",
                    seqs.len(),
                    c.head_dim
                ),
            });
        }
        if q.dtype() != c.dtype {
            return Err(Error::DTypeMismatch {
                what: TensorRole::Query.to_string(),
                expected: format!("{}, the KV cache's dtype", c.dtype),
                got: q.dtype(),
            });
        }
        if qs[1] % c.kv_heads != 0 {
            return Err(Error::HeadGroups {
                q_heads: qs[1],
                kv_heads: c.kv_heads,
            });
        }
        let lens: Vec<usize> = seqs
            .iter()
            .map(|&s| self.seqs[s.index()].as_ref().map_or(0, |x| x.len))
            .collect();
        let max_len = lens.iter().copied().max().unwrap_or(0).max(1);
        let shape = Shape {
            batch: seqs.len(),
            q_heads: qs[1],
            kv_heads: c.kv_heads,
            q_len: qs[2],
            kv_len: max_len,
            head_dim: c.head_dim,
            value_dim: c.value_dim,
        };
        let mut prob = problem::complete(ctx, q, shape, c.dtype, opts)?;
        prob.key_lengths = Some(lens.iter().map(|&l| l as u32).collect());
        prob.sequence_causal = true;
        crate::attention::check_paths(ctx, &shape, opts)?;
        Ok((prob, max_len))
    }

    /// Records the kernels of a checked call into `out` (its variant already chosen).
    #[allow(clippy::too_many_arguments)]
    fn record_problem(
        &self,
        ctx: &Context,
        encoder: &mut wgpu::CommandEncoder,
        prob: &problem::Problem,
        max_len: usize,
        q: &Tensor,
        seqs: &[SeqId],
        opts: &AttentionOptions,
        out: &AttentionOutput,
    ) -> Result<()> {
        let shape = prob.shape;
        // Decode and fused read the pools through the block table. Staged, and P (which the
        // staged kernels write), read a contiguous copy gathered first.
        if out.variant == Variant::Staged {
            let (k, v) = self.record_gather(ctx, encoder, seqs, max_len)?;
            return ctx.record_checked(encoder, prob, q, &k, &v, opts, out);
        }
        let paged = problem::Problem {
            paged: Some(self.table(seqs)),
            ..prob.clone()
        };
        let main = AttentionOutput {
            probs: None,
            ..out.clone()
        };
        ctx.record_checked(encoder, &paged, q, &self.k, &self.v, opts, &main)?;
        if out.probs.is_some() {
            let (k, v) = self.record_gather(ctx, encoder, seqs, max_len)?;
            let scratch_lse = Tensor::empty(ctx, &shape.lse(), DType::F32)?;
            crate::staged::record(
                ctx,
                encoder,
                prob,
                q,
                &k,
                &v,
                out,
                &scratch_lse,
                opts,
                crate::staged::Mode::ProbsOnly,
            )?;
        }
        Ok(())
    }

    /// [`KvCache::record_attention_into`], submitted and waited for.
    pub fn attention_into_blocking(
        &self,
        ctx: &Context,
        q: &Tensor,
        seqs: &[SeqId],
        opts: &AttentionOptions,
        outputs: &AttentionOutput,
    ) -> Result<Variant> {
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-attention kv attention"),
            });
        let v = self.record_attention_into(ctx, &mut enc, q, seqs, opts, outputs)?;
        let cmd = ctx.scoped("kv attention", || enc.finish())?;
        ctx.queue().submit([cmd]);
        crate::trace::submit();
        ctx.wait_idle(opts.timeout)?;
        Ok(v)
    }

    /// [`KvCache::record_attention`], submitted and waited for.
    pub fn attention_blocking(
        &self,
        ctx: &Context,
        q: &Tensor,
        seqs: &[SeqId],
        opts: &AttentionOptions,
    ) -> Result<AttentionOutput> {
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgpu-attention kv attention"),
            });
        let out = self.record_attention(ctx, &mut enc, q, seqs, opts)?;
        let cmd = ctx.scoped("kv attention", || enc.finish())?;
        ctx.queue().submit([cmd]);
        crate::trace::submit();
        ctx.wait_idle(opts.timeout)?;
        Ok(out)
    }

    fn table(&self, seqs: &[SeqId]) -> Paged {
        let stride = seqs
            .iter()
            .map(|&s| self.seqs[s.index()].as_ref().map_or(0, |x| x.blocks.len()))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut table = vec![0u32; seqs.len() * stride];
        for (b, &s) in seqs.iter().enumerate() {
            if let Some(q) = &self.seqs[s.index()] {
                table[b * stride..b * stride + q.blocks.len()].copy_from_slice(&q.blocks);
            }
        }
        Paged {
            table,
            stride: stride as u32,
            block_size: self.cfg.block_size as u32,
        }
    }
}
