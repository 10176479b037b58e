//! Reliability: non-finite inputs (the opt-in scan and the policy without it), the dispatch work
//! bound (a split run equals an unsplit one), allocations beyond the device's limits, and load
//! (8 threads on one context). The soak test is in tests/soak.rs, a process of its own so that
//! no other test moves its resident memory. Device loss and timeouts are in tests/api.rs.

mod common;

use std::sync::Arc;

use common::{configs, ctx, new_ctx, shape};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::{
    reference, AttentionOptions, Causal, Error, MaskKind, Tensor, TensorRole, Variant,
};

#[test]
fn opt_in_scan_names_the_tensor_and_index_of_the_first_non_finite_value() {
    let c = ctx();
    let s = shape(1, 2, 1, 3, 5, 4, 4);
    let case = Case::random("nan", s, 1);
    for (role, at, value) in [
        (TensorRole::Query, [0usize, 1, 2, 3], f32::NAN),
        (TensorRole::Key, [0, 0, 4, 1], f32::INFINITY),
        (TensorRole::Value, [0, 0, 0, 0], f32::NEG_INFINITY),
    ] {
        let mut bad = case.clone();
        let (data, dims) = match role {
            TensorRole::Query => (&mut bad.q, s.q()),
            TensorRole::Key => (&mut bad.k, s.k()),
            _ => (&mut bad.v, s.v()),
        };
        let flat = ((at[0] * dims[1] + at[1]) * dims[2] + at[2]) * dims[3] + at[3];
        data[flat] = value;
        let (q, k, v, opts) = bad.upload(c).unwrap();
        let scan = AttentionOptions {
            check_finite: true,
            ..opts.clone()
        };
        let e = c.attention_blocking(&q, &k, &v, &scan).unwrap_err();
        match &e {
            Error::NonFiniteInput {
                tensor,
                index,
                value: got,
            } => {
                assert_eq!(*tensor, role);
                assert_eq!(index, &at.to_vec());
                assert!(got.is_nan() == value.is_nan());
            }
            other => panic!("expected NonFiniteInput, got {other}"),
        }
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{role}: non-finite value"))
                && msg.contains(&format!("{at:?}")),
            "{msg}"
        );
        // Without the scan the call runs (the policy below says what the results are).
        c.attention_blocking(&q, &k, &v, &opts).unwrap();
    }
    // The mask is scanned too.
    let mut data = vec![0.5f32; 5];
    data[3] = f32::NAN;
    let (q, k, v, _) = case.upload(c).unwrap();
    let mask = Tensor::from_data(c, &[1, 1, 1, 5], &data).unwrap();
    let opts = AttentionOptions {
        check_finite: true,
        ..Default::default()
    }
    .mask(MaskKind::Additive, mask);
    let e = c.attention_blocking(&q, &k, &v, &opts).unwrap_err();
    assert!(
        matches!(&e, Error::NonFiniteInput { tensor: TensorRole::Mask, index, .. } if index == &vec![0, 0, 0, 3]),
        "{e}"
    );
}

/// The policy without the scan: a NaN or inf in row i of Q can make only that output row
/// non-finite; one in K or V of (batch b, key/value head g) only the rows of the query heads of
/// group g in batch b. Every other row is finite and correct, on every variant.
#[test]
fn non_finite_inputs_reach_only_the_rows_they_feed() {
    let c = ctx();
    // batch 2, 4 query heads over 2 key/value heads (groups {0,1} and {2,3}).
    let s = shape(2, 4, 2, 5, 7, 8, 8);
    let mut case = Case::random("poisoned", s, 4).with_causal(Causal::BottomRight);
    let q_at = |b: usize, h: usize, i: usize, d: usize| ((b * 4 + h) * 5 + i) * 8 + d;
    let kv_at = |b: usize, g: usize, j: usize, d: usize| ((b * 2 + g) * 7 + j) * 8 + d;
    case.q[q_at(0, 0, 2, 3)] = f32::NAN; // row (0, 0, 2)
    case.k[kv_at(1, 1, 3, 0)] = f32::NAN; // batch 1, heads 2 and 3
    case.v[kv_at(0, 1, 6, 2)] = f32::INFINITY; // batch 0, heads 2 and 3
    let reached = |b: usize, h: usize, i: usize| {
        (b, h, i) == (0, 0, 2) || (b == 1 && h >= 2) || (b == 0 && h >= 2)
    };
    let clean_rows: Vec<usize> = (0..2 * 4 * 5)
        .filter(|&r| !reached(r / 20, (r / 5) % 4, r % 5))
        .collect();
    let expected = reference::attention_rows(&case, &clean_rows, false);
    let (q, k, v, opts) = case.upload(c).unwrap();
    for cfg in configs() {
        let label = cfg.label();
        let o = cfg.apply(&opts);
        let out = c.attention_blocking(&q, &k, &v, &o).unwrap();
        let got = out.out.read_blocking(c).unwrap();
        for (n, &r) in clean_rows.iter().enumerate() {
            for e in 0..8 {
                let g = got[r * 8 + e];
                let want = expected.out[n * 8 + e];
                assert!(
                    g.is_finite() && (g as f64 - want).abs() < 1e-5,
                    "{label}: row {r} element {e}: {g} vs {want}"
                );
            }
        }
    }
}

/// Dispatches bounded by `max_dispatch_work` (down to one workgroup of rows per dispatch) give
/// bit-identical results to the default, since splitting over rows and heads leaves every row's
/// arithmetic unchanged.
#[test]
fn work_bound_splits_dispatches_and_split_equals_unsplit_bit_for_bit() {
    let c = ctx();
    let case = Case::random("split", shape(2, 4, 2, 150, 300, 32, 32), 8)
        .with_causal(Causal::TopLeft)
        .with_key_lengths(vec![300, 211]);
    let (q, k, v, opts) = case.upload(c).unwrap();
    for cfg in configs() {
        if cfg.variant == Variant::Decode {
            continue; // decode is one dispatch per key split; the bound applies to prefill
        }
        let label = cfg.label();
        let base = cfg.apply(&AttentionOptions {
            return_lse: true,
            ..opts.clone()
        });
        let whole = c.attention_blocking(&q, &k, &v, &base).unwrap();
        for bound in [1u64, 300 * 64 * 40, 300 * 64 * 150 * 3] {
            let split = c
                .attention_blocking(
                    &q,
                    &k,
                    &v,
                    &AttentionOptions {
                        max_dispatch_work: Some(bound),
                        ..base.clone()
                    },
                )
                .unwrap();
            let (a, b) = (
                whole.out.read_blocking(c).unwrap(),
                split.out.read_blocking(c).unwrap(),
            );
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{label} bound {bound}: split differs"
            );
            let (la, lb) = (
                whole.lse.as_ref().unwrap().read_blocking(c).unwrap(),
                split.lse.as_ref().unwrap().read_blocking(c).unwrap(),
            );
            assert!(la.iter().zip(&lb).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        let r = check::verify_blocking(
            c,
            &case,
            &AttentionOptions {
                max_dispatch_work: Some(1),
                ..base.clone()
            },
            None,
            Tolerance::CONTRACT,
        )
        .unwrap();
        assert!(r.passed, "{}", r.line());
    }
}

/// A tensor or an output beyond what the device allows is a typed error, and the context stays
/// usable for smaller work.
#[test]
fn allocations_beyond_the_device_limits_are_typed_errors_and_the_context_survives() {
    let c = new_ctx();
    let max = c.limits().max_buffer_size;
    let n = (max / 4 + 1) as usize;
    let e = Tensor::filled(&c, &[1, 1, n, 1], 0.0).unwrap_err();
    assert!(matches!(e, Error::AllocationTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("max_buffer_size"), "{e}");
    // P of a call would exceed the largest buffer: refused before any allocation.
    let lq = 1 << 16;
    let lk = (max / 4 / lq as u64 + 1) as usize;
    let q = Tensor::filled(&c, &[1, 1, lq, 1], 0.0).unwrap();
    let kv = Tensor::filled(&c, &[1, 1, lk, 1], 0.0).unwrap();
    let e = c
        .attention_blocking(&q, &kv, &kv, &AttentionOptions::default().with_probs())
        .unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    let small = Case::random("after", shape(1, 2, 2, 9, 9, 8, 8), 2);
    let r = check::verify_blocking(
        &c,
        &small,
        &AttentionOptions::default(),
        None,
        Tolerance::CONTRACT,
    )
    .unwrap();
    assert!(r.passed, "{}", r.line());
}

/// One context shared by 8 threads issuing mixed calls (variants, shapes, masks, causal modes)
/// at once: every result correct.
#[test]
fn eight_threads_share_one_context_and_every_result_is_correct() {
    let c = Arc::new(new_ctx());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut checked = 0;
                for n in 0..6u64 {
                    let seed = t * 100 + n;
                    let variant = Variant::CONCRETE[((t + n) % 3) as usize];
                    let (lq, lk) =
                        [(1, 40), (17, 33), (40, 9), (64, 65)][((t * 3 + n) % 4) as usize];
                    let mut case = Case::random(
                        format!("t{t}n{n}"),
                        shape(1 + (n as usize % 2), 4, 2, lq, lk, 16, 16),
                        seed,
                    )
                    .with_causal(Causal::ALL[(seed % 3) as usize]);
                    if seed % 2 == 0 {
                        case = case.with_random_mask(
                            MaskKind::Bool,
                            [false, true, false, false],
                            0.7,
                            seed,
                        );
                    }
                    let opts = AttentionOptions::default().variant(variant);
                    let r = check::verify_blocking(&c, &case, &opts, None, Tolerance::CONTRACT)
                        .unwrap_or_else(|e| panic!("thread {t} call {n}: {e}"));
                    assert!(r.passed, "thread {t}: {}", r.line());
                    checked += 1;
                }
                checked
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 48);
}

/// The device destroyed while another thread is issuing calls: that thread's calls end with
/// `DeviceLost` (those already finished succeeded), promptly, with no hang and no panic; every
/// later call on any thread returns `DeviceLost` too.
#[test]
fn device_destroyed_while_in_use_gives_device_lost_promptly() {
    let c = Arc::new(new_ctx());
    let case = Case::random("busy", shape(1, 4, 2, 64, 256, 32, 32), 5);
    let (q, k, v, opts) = case.upload(&c).unwrap();
    c.attention_blocking(&q, &k, &v, &opts).unwrap(); // compiled and working
    let worker = {
        let (c, q, k, v, opts) = (c.clone(), q.clone(), k.clone(), v.clone(), opts.clone());
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            let mut ok = 0;
            loop {
                let o = AttentionOptions {
                    variant: Variant::CONCRETE[ok % 3],
                    ..opts.clone()
                };
                match c.attention_blocking(&q, &k, &v, &o) {
                    Ok(_) => ok += 1,
                    Err(Error::DeviceLost(_)) => return (ok, t0.elapsed()),
                    Err(e) => panic!("expected DeviceLost, got {e}"),
                }
                assert!(t0.elapsed().as_secs() < 60, "no DeviceLost within 60 s");
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let destroyed_at = std::time::Instant::now();
    c.device().destroy();
    let (ok, _) = worker.join().expect("the worker panicked");
    let noticed = destroyed_at.elapsed();
    println!("device loss: {ok} calls succeeded before, noticed {noticed:?} after destroy()");
    assert!(noticed.as_secs() < 10, "took {noticed:?} to notice");
    for variant in Variant::CONCRETE {
        let e = c
            .attention_blocking(&q, &k, &v, &AttentionOptions::default().variant(variant))
            .unwrap_err();
        assert!(matches!(e, Error::DeviceLost(_)), "{e}");
    }
}
