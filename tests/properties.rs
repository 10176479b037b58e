//! Property tests over the contract: random shapes weighted toward 1, tile ± 1 and odd head dims,
//! Lq ≠ Lk both ways, random option combinations (causal modes, key lengths, bool and additive
//! masks with any broadcast, scales), random fully masked rows and a random dtype (f32, f16,
//! bf16), each compared with the f64 CPU reference on every variant configuration (and both forms
//! where the adapter has subgroups).
//!
//! 24 problems per run, each on every configuration (216 cases on lavapipe's nine; CI's time
//! budget). Failing inputs are
//! shrunk and their seeds kept in tests/regressions/properties.txt, which is committed and
//! replayed first on every run. `PROPTEST_CASES` raises the count.

mod common;

use common::{configs, ctx};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::{Causal, DType, MaskKind, Shape};

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => Just(1usize),
        4 => prop::sample::select(vec![2usize, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 113, 129]),
        2 => 1usize..300,
    ]
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(1usize),
        5 => prop::sample::select(vec![3usize, 4, 8, 15, 16, 17, 33, 59, 63, 64, 65, 111, 128]),
        2 => 1usize..=256,
    ]
}

#[derive(Debug, Clone)]
struct Problem {
    batch: usize,
    kv_heads: usize,
    group: usize,
    lq: usize,
    lk: usize,
    d: usize,
    dv: usize,
    causal: Causal,
    key_lengths: Option<Vec<u32>>,
    /// (bool kind, broadcast per dimension)
    mask: Option<(bool, [bool; 4])>,
    masked_rows: Vec<(usize, usize, usize)>,
    scale: Option<f64>,
    dtype: DType,
    seed: u64,
}

fn problem() -> impl Strategy<Value = Problem> {
    (
        (
            1usize..=2,
            1usize..=3,
            prop::sample::select(vec![1usize, 2, 4]),
        ),
        (len(), len(), dim(), prop::option::weighted(0.2, dim())),
        (
            prop::sample::select(Causal::ALL.to_vec()),
            prop::sample::select(DType::ALL.to_vec()),
        ),
        any::<u64>(),
        (
            prop::option::weighted(0.3, prop::collection::vec(0u32..=1000, 2)),
            prop::option::weighted(0.4, (any::<bool>(), any::<[bool; 4]>())),
            prop::collection::vec((0usize..2, 0usize..12, 0usize..300), 0..3),
            prop::option::weighted(0.2, -3.0f64..3.0),
        ),
    )
        .prop_map(
            |(
                (batch, kv_heads, group),
                (lq, lk, d, dv),
                (causal, dtype),
                seed,
                (kl, mask, rows, scale),
            )| {
                let hq = kv_heads * group;
                let key_lengths =
                    kl.map(|v| v.iter().take(batch).map(|&x| x % (lk as u32 + 1)).collect());
                // Fully masked rows need a bool mask (or none, one is created).
                let bool_ok = mask.is_none_or(|(b, _)| b);
                let masked_rows = if bool_ok {
                    rows.into_iter()
                        .map(|(b, h, i)| (b % batch, h % hq, i % lq))
                        .collect()
                } else {
                    Vec::new()
                };
                Problem {
                    batch,
                    kv_heads,
                    group,
                    lq,
                    lk,
                    d,
                    dv: dv.unwrap_or(d),
                    causal,
                    key_lengths,
                    mask,
                    masked_rows,
                    scale,
                    dtype,
                    seed,
                }
            },
        )
}

fn case(p: &Problem) -> Case {
    let s = Shape::new(
        p.batch,
        p.kv_heads * p.group,
        p.kv_heads,
        p.lq,
        p.lk,
        p.d,
        p.dv,
    );
    let mut c = Case::random("prop", s, p.seed)
        .with_dtype(p.dtype)
        .with_causal(p.causal);
    if let Some(kl) = &p.key_lengths {
        c = c.with_key_lengths(kl.clone());
    }
    if let Some((is_bool, bc)) = p.mask {
        // Additive masks draw from [-4, 4) without -1e9: a row whose kept keys all carry -1e9
        // is beyond f32's resolution (README, "The contract").
        let (kind, keep) = if is_bool {
            (MaskKind::Bool, 0.7)
        } else {
            (MaskKind::Additive, 1.0)
        };
        c = c.with_random_mask(kind, bc, keep, p.seed);
    }
    if !p.masked_rows.is_empty() {
        c = c
            .with_fully_masked_rows(&p.masked_rows)
            .expect("bool mask or none");
    }
    if let Some(sc) = p.scale {
        c = c.with_scale(sc);
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_variant_matches_the_reference_on_random_problems(p in problem()) {
        let c = case(&p);
        for cfg in configs() {
            let label = cfg.label();
            let r = check::verify_blocking(ctx(), &c, &cfg.options(), Some(40), Tolerance::CONTRACT)
                .map_err(|e| TestCaseError::fail(format!("{label}: {e}")))?;
            prop_assert!(r.passed, "{label}: {}", r.line());
        }
    }
}
