//! The API contract: one test per invalid-input class asserting its typed error (no panic), and
//! the context's behaviour: device loss, pipeline cache, recording into a caller's encoder, a
//! caller's device with small limits (the work is split, too-large tensors are refused), timeouts.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{ctx, new_ctx, shape};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Tolerance};
use wgpu_attention::{
    AttentionOptions, AttentionOutput, Causal, Context, ContextOptions, Error, MaskKind, Tensor,
    TensorRole, Variant,
};

/// The message names what was wrong and what was expected: every fragment must appear.
fn says(e: &Error, fragments: &[&str]) {
    let m = e.to_string();
    for f in fragments {
        assert!(m.contains(f), "message {m:?} lacks {f:?}");
    }
}

fn t(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_data(ctx(), shape, &vec![0.5; n]).unwrap()
}

fn run(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &AttentionOptions,
) -> Result<AttentionOutput, Error> {
    ctx().attention_blocking(q, k, v, opts)
}

#[test]
fn error_rank() {
    let e = run(
        &t(&[2, 3, 4]),
        &t(&[1, 1, 3, 4]),
        &t(&[1, 1, 3, 4]),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Rank {
                tensor: TensorRole::Query,
                expected: 4,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("[batch, q_heads, q_len, head_dim]"),
        "{e}"
    );
}

#[test]
fn error_dimension_mismatches() {
    let q = t(&[2, 2, 5, 8]);
    let e = run(
        &q,
        &t(&[1, 2, 7, 8]),
        &t(&[1, 2, 7, 8]),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimMismatch {
                tensor: TensorRole::Key,
                dim: "batch",
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e}"
    );
    says(&e, &["k: dimension `batch` must be 2", "got 1"]);
    let e = run(
        &q,
        &t(&[2, 2, 7, 9]),
        &t(&[2, 2, 7, 8]),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimMismatch {
                tensor: TensorRole::Key,
                dim: "head_dim",
                expected: 8,
                got: 9,
                ..
            }
        ),
        "{e}"
    );
    let e = run(
        &q,
        &t(&[2, 2, 7, 8]),
        &t(&[2, 2, 6, 8]),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimMismatch {
                tensor: TensorRole::Value,
                dim: "kv_len",
                expected: 7,
                got: 6,
                ..
            }
        ),
        "{e}"
    );
    let e = run(
        &q,
        &t(&[2, 2, 7, 8]),
        &t(&[2, 1, 7, 8]),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::DimMismatch {
                tensor: TensorRole::Value,
                dim: "kv_heads",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("must be 2"), "{e}");
}

#[test]
fn error_zero_size() {
    let e = run(
        &t(&[1, 1, 0, 4]),
        &t(&[1, 1, 3, 4]),
        &t(&[1, 1, 3, 4]),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ZeroSize {
                tensor: TensorRole::Query,
                dim: "q_len"
            }
        ),
        "{e}"
    );
    says(&e, &["q: dimension `q_len` is 0", "at least 1"]);
    let e = run(
        &t(&[1, 1, 2, 4]),
        &t(&[1, 1, 3, 4]),
        &t(&[1, 1, 3, 0]),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ZeroSize {
                tensor: TensorRole::Value,
                dim: "value_dim"
            }
        ),
        "{e}"
    );
}

#[test]
fn error_q_heads_not_multiple_of_kv_heads() {
    let e = run(
        &t(&[1, 3, 2, 4]),
        &t(&[1, 2, 3, 4]),
        &t(&[1, 2, 3, 4]),
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::HeadGroups {
            q_heads: 3,
            kv_heads: 2
        }
    );
    says(&e, &["q_heads (3) must be a multiple of kv_heads (2)"]);
}

#[test]
fn error_mask_cannot_broadcast() {
    let (q, k, v) = (t(&[2, 2, 5, 4]), t(&[2, 1, 8, 4]), t(&[2, 1, 8, 4]));
    for bad in [
        vec![1, 1, 5, 7],
        vec![3, 1, 5, 8],
        vec![5, 8],
        vec![2, 2, 2, 5, 8],
    ] {
        let opts = AttentionOptions::default().mask(MaskKind::Bool, t(&bad));
        let e = run(&q, &k, &v, &opts).unwrap_err();
        assert!(
            matches!(&e, Error::MaskBroadcast { got, target: [2, 2, 5, 8] } if *got == bad),
            "{e}"
        );
        says(
            &e,
            &[&format!("mask: shape {bad:?}"), "[2, 2, 5, 8]", "or be 1"],
        );
    }
}

#[test]
fn error_key_lengths_count_and_range() {
    let (q, k, v) = (t(&[2, 1, 5, 4]), t(&[2, 1, 8, 4]), t(&[2, 1, 8, 4]));
    let e = run(
        &q,
        &k,
        &v,
        &AttentionOptions::default().key_lengths(vec![8]),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::KeyLengthsCount {
            expected: 2,
            got: 1
        }
    );
    says(&e, &["one length per batch entry (2), got 1"]);
    let e = run(
        &q,
        &k,
        &v,
        &AttentionOptions::default().key_lengths(vec![8, 9]),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::KeyLengthTooLarge {
            index: 1,
            value: 9,
            kv_len: 8
        }
    );
    says(&e, &["key_lengths[1] = 9 exceeds kv_len = 8"]);
}

#[test]
fn error_non_finite_scale() {
    let (q, k, v) = (t(&[1, 1, 5, 4]), t(&[1, 1, 8, 4]), t(&[1, 1, 8, 4]));
    for s in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = run(&q, &k, &v, &AttentionOptions::default().scale(s)).unwrap_err();
        assert!(matches!(e, Error::NonFiniteScale(_)), "{e}");
        says(&e, &["scale must be finite", &s.to_string()]);
    }
}

#[test]
fn error_output_shape_and_data_length() {
    let (q, k, v) = (t(&[1, 2, 5, 4]), t(&[1, 1, 8, 4]), t(&[1, 1, 8, 6]));
    let outputs = AttentionOutput {
        out: t(&[1, 2, 5, 4]),
        lse: None,
        probs: None,
        variant: Variant::Auto,
    };
    let e = pollster::block_on(ctx().attention_into(&q, &k, &v, &Default::default(), &outputs))
        .unwrap_err();
    assert!(
        matches!(&e, Error::OutputShape { tensor: TensorRole::Output, expected, .. } if *expected == vec![1, 2, 5, 6]),
        "{e}"
    );
    says(
        &e,
        &["out: output shape must be [1, 2, 5, 6], got [1, 2, 5, 4]"],
    );
    let e = Tensor::from_data(ctx(), &[2, 3], &[1.0; 5]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DataLength {
                expected: 6,
                got: 5,
                ..
            }
        ),
        "{e}"
    );
    says(&e, &["shape [2, 3] holds 6 elements, data has 5"]);
}

#[test]
fn error_no_adapter_matches_filter() {
    let e = Context::new_blocking(ContextOptions {
        adapter_name: Some("no-such-adapter-4711".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(&e, Error::NoAdapter { filter: Some(f), .. } if f == "no-such-adapter-4711"),
        "{e}"
    );
    assert!(e.to_string().contains("adapters seen"), "{e}");
}

/// A caller's device with 1 MiB bindings and 4 MiB buffers, wrapped with `from_device`.
fn small_limits_ctx(uncaptured: Arc<AtomicUsize>) -> Context {
    pollster::block_on(async {
        let backend = common::expected_backend();
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backend.into();
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .enumerate_adapters(backend.into())
            .await
            .into_iter()
            .next()
            .expect("an adapter");
        let mut limits = adapter.limits();
        limits.max_storage_buffer_binding_size = 1 << 20;
        limits.max_buffer_size = 4 << 20;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("caller device"),
                required_features: wgpu::Features::empty(),
                required_limits: limits,
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .unwrap();
        device.on_uncaptured_error(Arc::new(move |_e: wgpu::Error| {
            uncaptured.fetch_add(1, Ordering::SeqCst);
        }));
        Context::from_device(device, queue)
    })
}

#[test]
fn caller_device_small_limits_splits_work_and_refuses_oversized_tensors() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = small_limits_ctx(count.clone());
    assert_eq!(c.limits().max_storage_buffer_binding_size, 1 << 20);

    // Scores of 2 x 600 x 600 floats (2.9 MB) exceed the 1 MiB binding: the staged path splits
    // the rows over several dispatches and still matches the reference, P included.
    let case = Case::random("split_by_limit", shape(1, 2, 1, 600, 600, 8, 8), 5)
        .with_causal(Causal::TopLeft);
    let r = check::verify_blocking(
        &c,
        &case,
        &AttentionOptions::default().with_probs(),
        Some(40),
        Tolerance::CONTRACT,
    )
    .unwrap();
    assert!(r.passed, "{}", r.line());

    // A q tensor of 1.2 MB cannot be bound at all.
    let big = Tensor::from_data(&c, &[1, 1, 300_000, 1], &vec![0.1; 300_000]).unwrap();
    let small = Tensor::from_data(&c, &[1, 1, 4, 1], &[0.1; 4]).unwrap();
    let e = c
        .attention_blocking(&big, &small, &small, &Default::default())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooLarge {
                tensor: TensorRole::Query,
                limit: 1048576,
                ..
            }
        ),
        "{e}"
    );
    // Asked-for probabilities beyond max_buffer_size are refused before any work.
    let q = Tensor::from_data(&c, &[1, 1, 1100, 1], &vec![0.1; 1100]).unwrap();
    let e = c
        .attention_blocking(&q, &q, &q, &AttentionOptions::default().with_probs())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooLarge {
                tensor: TensorRole::Probs,
                limit_name: "max_buffer_size",
                ..
            }
        ),
        "{e}"
    );
    // The same without probabilities runs.
    c.attention_blocking(&q, &q, &q, &Default::default())
        .unwrap();

    // The caller's uncaptured-error handler is still theirs: an error outside our scopes reaches it.
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "the library's own errors were captured"
    );
    let _bad = c.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "caller's handler received the caller's error"
    );
}

#[test]
fn device_loss_returns_device_lost_on_every_later_call() {
    let c = new_ctx();
    let q = Tensor::from_data(&c, &[1, 1, 4, 4], &[0.25; 16]).unwrap();
    c.attention_blocking(&q, &q, &q, &Default::default())
        .unwrap();
    c.device().destroy();
    let e = c
        .attention_blocking(&q, &q, &q, &Default::default())
        .unwrap_err();
    assert!(matches!(e, Error::DeviceLost(_)), "{e}");
    let e = q.read_blocking(&c).unwrap_err();
    assert!(matches!(e, Error::DeviceLost(_)), "{e}");
    let e = Tensor::from_data(&c, &[1], &[1.0]).unwrap_err();
    assert!(matches!(e, Error::DeviceLost(_)), "{e}");
}

#[test]
fn repeated_calls_compile_nothing() {
    let c = new_ctx();
    let q = Tensor::from_data(&c, &[1, 2, 9, 4], &[0.25; 72]).unwrap();
    let run_all = || {
        for variant in Variant::CONCRETE {
            for causal in Causal::ALL {
                let opts = AttentionOptions::default().causal(causal).variant(variant);
                c.attention_blocking(&q, &q, &q, &opts).unwrap();
                c.attention_blocking(&q, &q, &q, &opts.with_probs())
                    .unwrap();
            }
        }
    };
    run_all();
    let n = c.pipelines_compiled();
    assert!(n > 0);
    run_all();
    assert_eq!(
        c.pipelines_compiled(),
        n,
        "a repeated call compiled a pipeline"
    );
}

#[test]
fn records_into_callers_encoder_with_their_own_work() {
    let c = ctx();
    let case = Case::random("encoder", shape(1, 2, 2, 10, 12, 8, 8), 9);
    let (q, k, v, opts) = case.upload(c).unwrap();
    let mut enc = c.device().create_command_encoder(&Default::default());
    let out = c.record_attention(&mut enc, &q, &k, &v, &opts).unwrap();
    // The caller's own work in the same encoder: copy the output elsewhere.
    let copy = Tensor::filled(c, &[1, 2, 10, 8], f32::NAN).unwrap();
    enc.copy_buffer_to_buffer(out.out.buffer(), 0, copy.buffer(), 0, out.out.bytes());
    c.queue().submit([enc.finish()]);
    let got = copy.read_blocking(c).unwrap();
    let reference = wgpu_attention::reference::attention(&case, false);
    for (g, r) in got.iter().zip(&reference.out) {
        assert!((*g as f64 - r).abs() < 1e-5, "{g} vs {r}");
    }
}

#[test]
fn timeout_is_an_error_not_a_hang() {
    let c = new_ctx();
    let case = Case::random("slow", shape(1, 8, 8, 1024, 1024, 64, 64), 3);
    let (q, k, v, opts) = case.upload(&c).unwrap();
    c.attention_blocking(&q, &k, &v, &opts).unwrap(); // compile first
    let opts = AttentionOptions {
        timeout: Some(Duration::from_micros(1)),
        ..opts
    };
    let e = c.attention_blocking(&q, &k, &v, &opts).unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    // The context stays usable.
    c.attention_blocking(&q, &k, &v, &AttentionOptions::default())
        .unwrap();
}

#[test]
fn variant_is_reported_and_auto_resolves() {
    let c = ctx();
    let q = Tensor::from_data(c, &[1, 1, 3, 2], &[0.5; 6]).unwrap();
    let out = c
        .attention_blocking(&q, &q, &q, &Default::default())
        .unwrap();
    assert_ne!(out.variant, Variant::Auto);
    for v in Variant::CONCRETE {
        let out = c
            .attention_blocking(&q, &q, &q, &AttentionOptions::default().variant(v))
            .unwrap();
        assert_eq!(out.variant, v);
    }
}

/// The automatic choice honours the known-issue table: with a row marking the fused variant on
/// every adapter, prefill shapes go to staged and decode shapes still to decode; forcing fused
/// still runs it (the table guides `auto`, it does not forbid).
#[test]
fn auto_choice_avoids_variants_in_the_known_issue_table() {
    use wgpu_attention::known_issues::{Action, KnownIssue};
    use wgpu_attention::tuning::AdapterPattern;
    let backend = common::expected_backend();
    let c = Context::new_blocking(ContextOptions {
        backends: Some(wgpu::Backends::from(backend)),
        known_issues: vec![KnownIssue {
            implementation: None,
            kernel: "",
            adapter: AdapterPattern::ANY,
            variant: Some(Variant::Fused),
            subgroups: None,
            action: Action::ExpectFail,
            reason: "test row",
            link: "tests/api.rs",
        }],
        ..Default::default()
    })
    .unwrap();
    let prefill = Tensor::from_data(&c, &[1, 2, 8, 4], &[0.5; 64]).unwrap();
    let out = c
        .attention_blocking(&prefill, &prefill, &prefill, &Default::default())
        .unwrap();
    assert_eq!(out.variant, Variant::Staged);
    // Without the row, the same call goes to fused.
    let (q0, k0) = (t(&[1, 2, 8, 4]), t(&[1, 2, 8, 4]));
    let plain = run(&q0, &k0, &k0, &Default::default()).unwrap();
    assert_eq!(plain.variant, Variant::Fused);
    let q = Tensor::from_data(&c, &[1, 2, 1, 4], &[0.5; 8]).unwrap();
    let kv = Tensor::from_data(&c, &[1, 2, 2048, 4], &vec![0.5; 2 * 2048 * 4]).unwrap();
    let out = c
        .attention_blocking(&q, &kv, &kv, &Default::default())
        .unwrap();
    assert_eq!(out.variant, Variant::Decode);
    let forced = AttentionOptions::default().variant(Variant::Fused);
    assert_eq!(
        c.attention_blocking(&prefill, &prefill, &prefill, &forced)
            .unwrap()
            .variant,
        Variant::Fused
    );
}

/// A caller's tuning replaces the adapter's row, and its values reach the kernels: a different
/// staged tile and fused tile still give correct results, and a decode threshold above the key
/// length sends a decode-sized call to fused.
#[test]
fn callers_tuning_is_used_and_results_stay_correct() {
    use wgpu_attention::kernels::Tile;
    use wgpu_attention::tuning::Tuning;
    let tuning = Tuning {
        staged_tile: Tile {
            tm: 32,
            tn: 32,
            tk: 8,
        },
        fused_rows: 32,
        fused_tile_bytes: 8 * 1024,
        fused_sg_rows: 2,
        // Off here: lavapipe's own row turns wide loads on, so this covers the vec4<f32> reads of
        // dims that are multiples of 8 (24, 16 below).
        fused_wide_loads: false,
        decode_dims_in_lanes: false,
        decode_max_q_len: 16,
        decode_min_kv_len: 1 << 20,
        decode_rows: 32,
        dispatch_work: 1 << 20,
    };
    let c = Context::new_blocking(ContextOptions {
        backends: Some(wgpu::Backends::from(common::expected_backend())),
        tuning: Some(tuning),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.tuning(), (&tuning, "caller"));
    for (s, variant) in [
        (shape(1, 2, 1, 37, 70, 24, 24), Variant::Staged),
        (shape(1, 2, 1, 37, 70, 24, 24), Variant::Fused),
        (shape(1, 4, 2, 1, 2048, 16, 16), Variant::Auto),
    ] {
        let case = Case::random("tuned", s, 5);
        let opts = AttentionOptions::default().variant(variant);
        let report = check::verify_blocking(&c, &case, &opts, None, Tolerance::CONTRACT).unwrap();
        if variant == Variant::Auto {
            assert_eq!(report.variant, "fused", "threshold above kv_len");
        }
        assert!(report.passed, "{report:?}");
    }
}
