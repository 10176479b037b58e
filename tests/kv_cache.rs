//! The KV cache (`src/kv_cache.rs`) against a host model that keeps plain arrays per sequence:
//! every operation is mirrored on the model, the cache's contents are read back and compared bit
//! for bit, and every attention call over the cache is compared with the f64 reference computed
//! on the model's arrays (one reference case per sequence, so each has its own length and its own
//! bottom-right corner). Covers block sizes 1, odd and 16, odd dims, GQA, copy-on-write after
//! fork, reorder, truncate, free, every typed error (with the cache unchanged after it), a ragged
//! batch up to 5,000 keys in every dtype, a 20-step beam search, paged against contiguous, and
//! random operation sequences (proptest).

mod common;

use common::ctx;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Got, Tolerance};
use wgpu_attention::reference::Reference;
use wgpu_attention::rng::SeededRng;
use wgpu_attention::{
    AttentionOptions, Causal, DType, Error, KvCache, KvCacheConfig, SeqId, Shape, Tensor, Variant,
};

/// One sequence of the model: K `[kv_heads][len·head_dim]` and V `[kv_heads][len·value_dim]`.
type Rows = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// The host model: a sequence per live slot.
#[derive(Clone, Debug, Default)]
struct Model {
    seqs: Vec<Option<Rows>>,
}

struct Setup {
    /// A mask `[1, 1, n, max_len]` the next attention checks use (its host copy).
    mask: Option<(wgpu_attention::MaskKind, Vec<f32>)>,
    cache: KvCache,
    model: Model,
    cfg: KvCacheConfig,
    rng: SeededRng,
}

fn rand_vals(rng: &mut SeededRng, n: usize, dtype: DType) -> Vec<f32> {
    (0..n)
        .map(|_| dtype.round(rng.random_range(-1.0f32..1.0)))
        .collect()
}

impl Setup {
    fn new(cfg: KvCacheConfig, seed: u64) -> Setup {
        Setup {
            mask: None,
            cache: KvCache::new(ctx(), cfg).expect("cache"),
            model: Model {
                seqs: vec![None; cfg.max_seqs],
            },
            cfg,
            rng: SeededRng::seed_from_u64(seed),
        }
    }

    fn add(&mut self) -> SeqId {
        let id = self.cache.add_sequence().expect("slot");
        self.model.seqs[id.index()] = Some((
            vec![Vec::new(); self.cfg.kv_heads],
            vec![Vec::new(); self.cfg.kv_heads],
        ));
        id
    }

    fn fork(&mut self, parent: SeqId) -> SeqId {
        let id = self.cache.fork(parent).expect("fork");
        self.model.seqs[id.index()] = self.model.seqs[parent.index()].clone();
        id
    }

    /// Appends n random positions to each of `seqs` (cache and model).
    fn append(&mut self, seqs: &[SeqId], n: usize) -> Result<(), Error> {
        let c = self.cfg;
        let kd = rand_vals(
            &mut self.rng,
            seqs.len() * c.kv_heads * n * c.head_dim,
            c.dtype,
        );
        let vd = rand_vals(
            &mut self.rng,
            seqs.len() * c.kv_heads * n * c.value_dim,
            c.dtype,
        );
        let k = Tensor::from_f32(
            ctx(),
            &[seqs.len(), c.kv_heads, n, c.head_dim],
            &kd,
            c.dtype,
        )?;
        let v = Tensor::from_f32(
            ctx(),
            &[seqs.len(), c.kv_heads, n, c.value_dim],
            &vd,
            c.dtype,
        )?;
        self.cache.append(ctx(), seqs, &k, &v)?;
        for (si, s) in seqs.iter().enumerate() {
            let (mk, mv) = self.model.seqs[s.index()].as_mut().expect("live in model");
            for h in 0..c.kv_heads {
                let r = (si * c.kv_heads + h) * n;
                mk[h].extend_from_slice(&kd[r * c.head_dim..(r + n) * c.head_dim]);
                mv[h].extend_from_slice(&vd[r * c.value_dim..(r + n) * c.value_dim]);
            }
        }
        Ok(())
    }

    fn len(&self, s: SeqId) -> usize {
        self.model.seqs[s.index()]
            .as_ref()
            .map_or(0, |x| x.0[0].len() / self.cfg.head_dim)
    }

    fn truncate(&mut self, s: SeqId, len: usize) {
        self.cache.truncate(s, len).expect("truncate");
        let (c, (mk, mv)) = (self.cfg, self.model.seqs[s.index()].as_mut().unwrap());
        for h in 0..c.kv_heads {
            mk[h].truncate(len * c.head_dim);
            mv[h].truncate(len * c.value_dim);
        }
    }

    fn free(&mut self, s: SeqId) {
        self.cache.free(s).expect("free");
        self.model.seqs[s.index()] = None;
    }

    fn reorder(&mut self, seqs: &[SeqId], idx: &[usize]) {
        self.cache.reorder(seqs, idx).expect("reorder");
        let old: Vec<_> = seqs
            .iter()
            .map(|s| self.model.seqs[s.index()].clone())
            .collect();
        for (b, &i) in idx.iter().enumerate() {
            self.model.seqs[seqs[b].index()] = old[i].clone();
        }
    }

    /// Every live sequence read back equals the model bit for bit.
    fn check_contents(&self) {
        let c = self.cfg;
        for s in self.cache.sequences() {
            let (k, v) = self.cache.read_sequence(ctx(), s).expect("read");
            let (mk, mv) = self.model.seqs[s.index()]
                .as_ref()
                .expect("model has every live sequence");
            let len = self.len(s);
            assert_eq!(self.cache.len(s).unwrap(), len, "length of sequence {s}");
            let flat = |m: &Vec<Vec<f32>>| m.concat();
            assert_eq!(k.len(), c.kv_heads * len * c.head_dim);
            assert!(
                k.iter()
                    .zip(flat(mk))
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "K of sequence {s} differs from the model"
            );
            assert!(
                v.iter()
                    .zip(flat(mv))
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "V of sequence {s} differs from the model"
            );
        }
        let live = self.model.seqs.iter().filter(|s| s.is_some()).count();
        assert_eq!(self.cache.sequences().len(), live, "live sequences");
    }

    /// Attention of random queries over `seqs` on the cache against the f64 reference on the
    /// model's arrays; returns the GPU output.
    fn check_attention(
        &mut self,
        seqs: &[SeqId],
        q_heads: usize,
        n: usize,
        opts: &AttentionOptions,
    ) -> Vec<f32> {
        let c = self.cfg;
        let qd = rand_vals(
            &mut self.rng,
            seqs.len() * q_heads * n * c.head_dim,
            c.dtype,
        );
        let q =
            Tensor::from_f32(ctx(), &[seqs.len(), q_heads, n, c.head_dim], &qd, c.dtype).unwrap();
        let opts = AttentionOptions {
            return_lse: true,
            ..opts.clone()
        };
        // Outputs poisoned with NaN, so an unwritten element fails.
        let max_len = seqs.iter().map(|&s| self.len(s)).max().unwrap().max(1);
        let shape = Shape::new(
            seqs.len(),
            q_heads,
            c.kv_heads,
            n,
            max_len,
            c.head_dim,
            c.value_dim,
        );
        let res = wgpu_attention::AttentionOutput {
            out: Tensor::filled_as(ctx(), &shape.out(), f32::NAN, c.dtype).unwrap(),
            lse: Some(Tensor::filled(ctx(), &shape.lse(), f32::NAN).unwrap()),
            probs: opts
                .return_probs
                .then(|| Tensor::filled(ctx(), &shape.probs(), f32::NAN).unwrap()),
            variant: opts.variant,
        };
        let variant = self
            .cache
            .attention_into_blocking(ctx(), &q, seqs, &opts, &res)
            .expect("attention over the cache");
        if opts.variant != Variant::Auto {
            assert_eq!(variant, opts.variant, "the requested variant ran");
        }
        let out = res.out.read_blocking(ctx()).unwrap();
        let lse = res.lse.as_ref().unwrap().read_blocking(ctx()).unwrap();
        let probs = res.probs.as_ref().map(|p| p.read_blocking(ctx()).unwrap());
        let expected = self.reference(seqs, q_heads, n, &qd, &opts, max_len);
        let r = check::compare(
            "kv cache",
            variant,
            &shape,
            &Got {
                out: &out,
                lse: Some(&lse),
                probs: probs.as_deref(),
            },
            &expected,
            Tolerance::CONTRACT,
            c.dtype,
        );
        assert!(
            r.passed,
            "{} ({:?}, lengths {:?})",
            r.line(),
            opts.variant,
            seqs.iter().map(|&s| self.len(s)).collect::<Vec<_>>()
        );
        out
    }

    /// The f64 reference, one case per sequence (its own length and bottom-right corner).
    fn reference(
        &self,
        seqs: &[SeqId],
        q_heads: usize,
        n: usize,
        qd: &[f32],
        opts: &AttentionOptions,
        max_len: usize,
    ) -> Reference {
        let c = self.cfg;
        let mut all = Reference {
            rows: Vec::new(),
            out: Vec::new(),
            lse: Vec::new(),
            probs: opts.return_probs.then(Vec::new),
        };
        for (b, &s) in seqs.iter().enumerate() {
            let len = self.len(s);
            let (mk, mv) = self.model.seqs[s.index()].as_ref().unwrap();
            let qrows = &qd[b * q_heads * n * c.head_dim..(b + 1) * q_heads * n * c.head_dim];
            let rows0 = b * q_heads * n;
            all.rows.extend(rows0..rows0 + q_heads * n);
            if len == 0 {
                // No keys: every row is fully masked (O = 0, lse = -inf, P = 0).
                all.out
                    .extend(std::iter::repeat_n(0.0, q_heads * n * c.value_dim));
                all.lse
                    .extend(std::iter::repeat_n(f64::NEG_INFINITY, q_heads * n));
                if let Some(p) = &mut all.probs {
                    p.extend(std::iter::repeat_n(0.0, q_heads * n * max_len));
                }
                continue;
            }
            let mut case = Case::random(
                "kv",
                Shape::new(1, q_heads, c.kv_heads, n, len, c.head_dim, c.value_dim),
                0,
            )
            .with_dtype(c.dtype)
            .with_causal(opts.causal);
            case.q = qrows.to_vec();
            case.k = mk.concat();
            case.v = mv.concat();
            case.scale = opts.scale.map(f64::from);
            if let Some((kind, data)) = &self.mask {
                // The test's mask is [1, 1, n, max_len]: this sequence's columns.
                let cols: Vec<f32> = data
                    .chunks(max_len)
                    .flat_map(|r| r[..len].to_vec())
                    .collect();
                case.mask = Some(wgpu_attention::case::CaseMask {
                    kind: *kind,
                    shape: vec![1, 1, n, len],
                    data: cols,
                });
            }
            let r = wgpu_attention::reference::attention(&case, opts.return_probs);
            all.out.extend(r.out);
            all.lse.extend(r.lse);
            if let (Some(p), Some(rp)) = (&mut all.probs, r.probs) {
                // Rows of this sequence's length, padded to the call's longest.
                for row in rp.chunks(len) {
                    p.extend_from_slice(row);
                    p.extend(std::iter::repeat_n(0.0, max_len - len));
                }
            }
        }
        all
    }
}

fn cfg(
    dtype: DType,
    block_size: usize,
    num_blocks: usize,
    kv_heads: usize,
    d: usize,
    dv: usize,
) -> KvCacheConfig {
    KvCacheConfig {
        max_seqs: 8,
        kv_heads,
        head_dim: d,
        value_dim: dv,
        dtype,
        block_size,
        num_blocks,
    }
}

/// The variants attention over a cache can run here, each in its forms.
fn variant_opts() -> Vec<AttentionOptions> {
    common::configs()
        .into_iter()
        .map(|c| c.apply(&AttentionOptions::for_cache()))
        .collect()
}

#[test]
fn append_in_pieces_reads_back_exactly_and_attends_like_the_reference_on_every_variant() {
    // Block size 5 (odd), dims 59/37 (odd: rows start mid-word in 16-bit), GQA 6/2, chunks that
    // cross block boundaries; every dtype.
    for (dtype, seed) in [(DType::F32, 1), (DType::F16, 2), (DType::BF16, 3)] {
        let mut s = Setup::new(cfg(dtype, 5, 40, 2, 59, 37), seed);
        let a = s.add();
        let b = s.add();
        s.append(&[a, b], 3).unwrap();
        s.append(&[a], 9).unwrap();
        s.append(&[b, a], 1).unwrap();
        s.append(&[b], 17).unwrap();
        // Overwrite positions that held data (a 16-bit word shared by an old and a new row).
        s.truncate(a, 10);
        s.append(&[a], 2).unwrap();
        s.check_contents();
        for opts in variant_opts() {
            s.check_attention(&[a, b], 6, 1, &opts);
            // Several new queries (speculative decoding): bottom-right at each sequence's length.
            s.check_attention(&[b, a], 6, 3, &opts);
        }
        // lse and P, scale, top-left causal, no causal.
        let probs = AttentionOptions {
            return_probs: true,
            ..AttentionOptions::for_cache()
        };
        s.check_attention(&[a, b], 6, 2, &probs);
        s.check_attention(
            &[a, b],
            6,
            4,
            &AttentionOptions::default()
                .causal(Causal::TopLeft)
                .scale(0.3),
        );
        s.check_attention(&[a], 2, 2, &AttentionOptions::default());
        // Masks over [.., n, longest length], broadcast over sequences and heads.
        let max_len = s.len(a).max(s.len(b));
        for kind in [
            wgpu_attention::MaskKind::Bool,
            wgpu_attention::MaskKind::Additive,
        ] {
            let data: Vec<f32> = (0..2 * max_len)
                .map(|i| match kind {
                    wgpu_attention::MaskKind::Bool => ((i * 7) % 5 != 0) as u8 as f32,
                    _ => ((i * 13) % 9) as f32 * 0.25 - 1.0,
                })
                .collect();
            let m = Tensor::from_data(ctx(), &[1, 1, 2, max_len], &data).unwrap();
            s.mask = Some((kind, data));
            for opts in variant_opts() {
                s.check_attention(&[a, b], 6, 2, &opts.mask(kind, m.clone()));
            }
            s.mask = None;
        }
    }
}

#[test]
fn fork_shares_blocks_and_copies_a_shared_partial_block_on_first_append() {
    for bs in [1usize, 4, 16] {
        let mut s = Setup::new(cfg(DType::F16, bs, 64, 1, 8, 8), 10 + bs as u64);
        let a = s.add();
        s.append(&[a], 6).unwrap();
        let in_use = s.cache.blocks_in_use();
        let f = s.fork(a);
        assert_eq!(s.cache.blocks_in_use(), in_use, "a fork takes no block");
        assert_eq!(
            s.cache.block_table(a).unwrap(),
            s.cache.block_table(f).unwrap()
        );
        s.append(&[f], 3).unwrap();
        s.append(&[a], 2).unwrap();
        s.check_contents();
        let partial = 6 % bs != 0;
        let ta = s.cache.block_table(a).unwrap().to_vec();
        let tf = s.cache.block_table(f).unwrap().to_vec();
        let shared = ta.iter().zip(&tf).take_while(|(x, y)| x == y).count();
        assert_eq!(
            shared,
            6 / bs,
            "full blocks stay shared, a partial one is copied (block size {bs})"
        );
        if partial {
            assert_ne!(ta[6 / bs], tf[6 / bs]);
        }
        for opts in variant_opts() {
            s.check_attention(&[a, f], 2, 1, &opts);
        }
        s.free(a);
        s.free(f);
        assert_eq!(s.cache.free_blocks(), 64, "every block back in the pool");
    }
}

#[test]
fn truncate_free_and_reorder_match_the_model_and_leak_no_block() {
    let mut s = Setup::new(cfg(DType::BF16, 3, 60, 2, 16, 12), 20);
    let seqs: Vec<SeqId> = (0..4).map(|_| s.add()).collect();
    s.append(&seqs, 7).unwrap();
    s.truncate(seqs[1], 4);
    s.truncate(seqs[2], 0);
    s.reorder(&seqs, &[3, 3, 0, 1]);
    s.check_contents();
    s.append(&seqs, 2).unwrap();
    s.check_contents();
    for opts in variant_opts() {
        s.check_attention(&seqs, 4, 1, &opts);
    }
    for &q in &seqs {
        s.free(q);
    }
    assert_eq!(s.cache.free_blocks(), 60);
    assert_eq!(s.cache.blocks_in_use(), 0);
}

#[test]
fn bad_input_is_a_typed_error_and_leaves_the_cache_unchanged() {
    let mut s = Setup::new(cfg(DType::F16, 4, 6, 2, 8, 8), 30);
    let a = s.add();
    let b = s.add();
    s.append(&[a, b], 9).unwrap(); // 3 blocks each: all 6 in use
    let tables = |s: &Setup| {
        (
            s.cache.block_table(a).unwrap().to_vec(),
            s.cache.block_table(b).unwrap().to_vec(),
            s.cache.free_blocks(),
        )
    };
    let before = tables(&s);
    // Past the pool's capacity: nothing written, nothing lost.
    let e = s.append(&[a], 4).unwrap_err();
    assert!(
        matches!(
            e,
            Error::CacheFull {
                needed: 1,
                free: 0,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(tables(&s), before);
    s.check_contents();
    let (c, k8) = (s.cfg, |d: usize, dt: DType| {
        Tensor::from_f32(ctx(), &[1, 2, 1, d], &vec![0.5; 2 * d], dt).unwrap()
    });
    // Another dtype, another head_dim.
    s.truncate(a, 8); // frees a block, so only the argument can fail
    let e = s
        .cache
        .append(ctx(), &[a], &k8(8, DType::F32), &k8(8, DType::F32))
        .unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    let e = s
        .cache
        .append(ctx(), &[a], &k8(6, c.dtype), &k8(8, c.dtype))
        .unwrap_err();
    assert!(
        matches!(e, Error::CacheArgument { op: "append", .. }),
        "{e}"
    );
    // Unknown and freed sequences.
    let f = s.fork(a);
    s.free(f);
    for e in [
        s.cache
            .append(ctx(), &[f], &k8(8, c.dtype), &k8(8, c.dtype))
            .unwrap_err(),
        s.cache.fork(f).unwrap_err(),
        s.cache.truncate(f, 0).unwrap_err(),
        s.cache.free(f).unwrap_err(),
        s.cache.len(f).unwrap_err(),
    ] {
        assert!(matches!(e, Error::UnknownSequence { .. }), "{e}");
    }
    // Reorder indices out of range, repeated sequences, truncate past the length.
    let before = tables(&s);
    let e = s.cache.reorder(&[a, b], &[0, 2]).unwrap_err();
    assert!(
        matches!(e, Error::CacheArgument { op: "reorder", .. }),
        "{e}"
    );
    let e = s.cache.reorder(&[a, a], &[0, 1]).unwrap_err();
    assert!(
        matches!(e, Error::CacheArgument { op: "reorder", .. }),
        "{e}"
    );
    let e = s.cache.truncate(a, 100).unwrap_err();
    assert!(
        matches!(e, Error::CacheArgument { op: "truncate", .. }),
        "{e}"
    );
    assert_eq!(tables(&s), before);
    s.check_contents();
    // No slot left.
    let mut full = Setup::new(KvCacheConfig { max_seqs: 1, ..c }, 31);
    full.add();
    assert!(matches!(
        full.cache.add_sequence().unwrap_err(),
        Error::NoSequenceSlot { max_seqs: 1, .. }
    ));
    // Attention: key lengths are the cache's; queries in the cache's dtype and head_dim.
    let q = Tensor::from_f32(ctx(), &[1, 2, 1, 8], &[0.1; 16], c.dtype).unwrap();
    let e = s
        .cache
        .attention_blocking(
            ctx(),
            &q,
            &[a],
            &AttentionOptions::for_cache().key_lengths(vec![1]),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidOption {
                option: "key_lengths",
                ..
            }
        ),
        "{e}"
    );
    let q32 = Tensor::from_f32(ctx(), &[1, 2, 1, 8], &[0.1; 16], DType::F32).unwrap();
    assert!(matches!(
        s.cache
            .attention_blocking(ctx(), &q32, &[a], &AttentionOptions::for_cache())
            .unwrap_err(),
        Error::DTypeMismatch { .. }
    ));
    let q3 = Tensor::from_f32(ctx(), &[1, 3, 1, 8], &[0.1; 24], c.dtype).unwrap();
    assert!(matches!(
        s.cache
            .attention_blocking(ctx(), &q3, &[a], &AttentionOptions::for_cache())
            .unwrap_err(),
        Error::HeadGroups { .. }
    ));
    s.check_contents();
}

#[test]
fn paged_equals_contiguous_exactly() {
    // The same appends on a paged cache (block size 16) and a contiguous one (one block of the
    // capacity per sequence): the same kernels over the same values give the same bits.
    let lens = [37usize, 5, 90];
    let mut paged = Setup::new(cfg(DType::F32, 16, 32, 2, 64, 64), 40);
    let mut contig = Setup::new(KvCacheConfig::contiguous(8, 2, 64, 64, DType::F32, 128), 40);
    assert_eq!(contig.cache.config().block_size, 128);
    let mut ids = Vec::new();
    for (i, &l) in lens.iter().enumerate() {
        let (p, c) = (paged.add(), contig.add());
        assert_eq!((p, c), (p, p));
        paged.append(&[p], l).unwrap();
        contig.append(&[c], l).unwrap();
        ids.push(p);
        let _ = i;
    }
    paged.check_contents();
    contig.check_contents();
    for opts in variant_opts() {
        let a = paged.check_attention(&ids, 4, 1, &opts);
        let b = contig.check_attention(&ids, 4, 1, &opts);
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "paged and contiguous differ ({:?})",
            opts.variant
        );
    }
}

#[test]
fn ragged_batch_up_to_5000_keys_in_one_decode_call_in_every_dtype() {
    let lens = [1usize, 17, 300, 999, 2048, 3001, 4096, 5000];
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let total_blocks: usize = lens.iter().map(|l| l.div_ceil(16)).sum();
        let mut s = Setup::new(cfg(dtype, 16, total_blocks, 2, 64, 64), 50);
        let ids: Vec<SeqId> = lens.iter().map(|_| s.add()).collect();
        for (&id, &l) in ids.iter().zip(&lens) {
            s.append(&[id], l).unwrap();
        }
        assert_eq!(s.cache.free_blocks(), 0);
        for opts in variant_opts()
            .into_iter()
            .filter(|o| o.variant == Variant::Decode)
        {
            s.check_attention(&ids, 8, 1, &opts);
        }
        s.check_attention(&ids, 8, 1, &AttentionOptions::for_cache());
    }
}

#[test]
fn beam_search_of_20_steps_width_4_checked_at_every_step() {
    let mut s = Setup::new(cfg(DType::F16, 4, 256, 2, 32, 32), 60);
    let root = s.add();
    s.append(&[root], 6).unwrap();
    let mut beams = vec![root];
    for _ in 1..4 {
        let f = s.fork(root);
        beams.push(f);
    }
    for step in 0..20 {
        s.append(&beams, 1).unwrap();
        s.check_attention(&beams, 4, 1, &AttentionOptions::for_cache());
        // Each slot takes a random surviving beam (duplicates and drops, as beam search does).
        let idx: Vec<usize> = (0..4).map(|_| s.rng.random_range(0..4)).collect();
        s.reorder(&beams, &idx);
        if step % 5 == 4 {
            s.check_contents();
        }
    }
    s.check_contents();
    for &b in &beams {
        s.free(b);
    }
    assert_eq!(s.cache.free_blocks(), 256, "no block leaked");
}

#[derive(Debug, Clone)]
enum Op {
    Add,
    Append(usize, usize),
    Fork(usize),
    Reorder(Vec<usize>),
    Truncate(usize, usize),
    Free(usize),
    Attend(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Add),
        4 => (0usize..8, 1usize..12).prop_map(|(s, n)| Op::Append(s, n)),
        2 => (0usize..8).prop_map(Op::Fork),
        1 => prop::collection::vec(0usize..8, 1..4).prop_map(Op::Reorder),
        1 => (0usize..8, 0usize..40).prop_map(|(s, l)| Op::Truncate(s, l)),
        1 => (0usize..8).prop_map(Op::Free),
        2 => (1usize..4).prop_map(Op::Attend),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]
    #[test]
    fn random_operation_sequences_match_the_model(
        ops in prop::collection::vec(op(), 4..24),
        bs in prop::sample::select(vec![1usize, 3, 16]),
        dtype in prop::sample::select(vec![DType::F32, DType::F16, DType::BF16]),
        seed in 0u64..1000,
    ) {
        let mut s = Setup::new(KvCacheConfig { max_seqs: 6, ..cfg(dtype, bs, 48, 2, 11, 6) }, seed);
        let live = |s: &Setup| s.cache.sequences();
        for op in ops {
            let l = live(&s);
            let pick = |i: usize| l.get(i % l.len().max(1)).copied();
            match op {
                Op::Add => { if l.len() < 6 { s.add(); } }
                Op::Append(i, n) => if let Some(q) = pick(i) {
                    let before = s.cache.free_blocks();
                    match s.append(&[q], n) {
                        Ok(()) => {}
                        Err(Error::CacheFull { .. }) => prop_assert_eq!(s.cache.free_blocks(), before),
                        Err(e) => panic!("{e}"),
                    }
                },
                Op::Fork(i) => if let (Some(q), true) = (pick(i), l.len() < 6) { s.fork(q); },
                Op::Reorder(idx) => if l.len() >= idx.len() {
                    let seqs = &l[..idx.len()];
                    let idx: Vec<usize> = idx.iter().map(|&x| x % seqs.len()).collect();
                    s.reorder(seqs, &idx);
                },
                Op::Truncate(i, len) => if let Some(q) = pick(i) { let n = s.len(q).min(len); s.truncate(q, n); },
                Op::Free(i) => if let Some(q) = pick(i) { s.free(q); },
                Op::Attend(n) => if !l.is_empty() {
                    s.check_attention(&l, 4, n, &AttentionOptions::for_cache());
                    s.check_attention(&l, 2, 1, &AttentionOptions { variant: Variant::Decode, ..AttentionOptions::for_cache() });
                },
            }
        }
        s.check_contents();
        for q in live(&s) { s.free(q); }
        prop_assert_eq!(s.cache.free_blocks(), 48, "blocks leaked");
    }
}
