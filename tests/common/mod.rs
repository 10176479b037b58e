//! Shared by the integration tests: one context per test binary, on the backend the run expects.
#![allow(dead_code)]

use std::sync::OnceLock;

use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Report, Tolerance};
pub use wgpu_attention::conformance::Config;
use wgpu_attention::{
    AttentionOptions, Causal, Context, ContextOptions, DType, MaskKind, Shape, Variant,
};

/// The backend the tests must run on: `ATTN_TEST_BACKEND`, else `WGPU_BACKEND`, else vulkan.
/// A context on any other backend fails the tests instead of passing them somewhere unintended.
pub fn expected_backend() -> wgpu::Backend {
    let name = std::env::var("ATTN_TEST_BACKEND")
        .or_else(|_| std::env::var("WGPU_BACKEND"))
        .unwrap_or_else(|_| "vulkan".into());
    match name.to_lowercase().as_str() {
        "vulkan" | "vk" => wgpu::Backend::Vulkan,
        "metal" | "mtl" => wgpu::Backend::Metal,
        "dx12" | "d3d12" => wgpu::Backend::Dx12,
        "gl" | "gles" | "opengl" => wgpu::Backend::Gl,
        other => panic!("unknown expected backend {other:?}"),
    }
}

pub fn new_ctx() -> Context {
    let backend = expected_backend();
    let ctx = Context::new_blocking(ContextOptions {
        backends: Some(wgpu::Backends::from(backend)),
        ..Default::default()
    })
    .unwrap_or_else(|e| {
        panic!("no {backend:?} adapter: {e} (run scripts/test.sh, which installs lavapipe)")
    });
    assert_eq!(
        ctx.adapter_info().backend,
        backend,
        "tests must run on the expected backend"
    );
    ctx
}

/// One context shared by the tests of a binary (pipelines compile once).
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let c = new_ctx();
        eprintln!(
            "adapter: {} ({:?})",
            c.adapter_info().name,
            c.adapter_info().backend
        );
        c
    })
}

/// Every configuration a test runs: the conformance suite's list (each variant in its
/// workgroup-memory form; where the adapter has SUBGROUP, staged with subgroup row reductions;
/// the fused and decode subgroup forms at the size the subgroup probe confirmed, as lavapipe's 8;
/// and those forms emulated at a reported size the probe did not confirm).
pub fn configs() -> Vec<Config> {
    wgpu_attention::conformance::configs(ctx())
}

pub fn shape(b: usize, hq: usize, hkv: usize, lq: usize, lk: usize, d: usize, dv: usize) -> Shape {
    Shape::new(b, hq, hkv, lq, lk, d, dv)
}

/// Every rule at once (tests/differential.rs in f32, tests/dtypes.rs in 16-bit): GQA 8/2, Dk ≠ Dv
/// (40, 24), `causal`, `key_lengths` for the two batch entries, a negative scale and a per-head
/// random mask of `kind`. Additive values stay in [-4, 4): with causal rows as short as one key, a
/// -1e9 on every kept key of a row would ask for the softmax of values that f32 rounds to
/// multiples of 64 (documented in README: use bool masks to mask hard).
pub fn combined_rules(
    name: String,
    dtype: DType,
    causal: Causal,
    kind: MaskKind,
    key_lengths: Vec<u32>,
    seed: u64,
) -> Case {
    Case::random(name, shape(2, 8, 2, 45, 70, 40, 24), seed)
        .with_dtype(dtype)
        .with_causal(causal)
        .with_key_lengths(key_lengths)
        .with_scale(-0.37)
        .with_random_mask(
            kind,
            [false, true, false, false],
            if kind == MaskKind::Bool { 0.75 } else { 1.0 },
            seed,
        )
}

/// Runs `case` on every concrete variant (outputs poisoned with NaN), compares with the f64
/// reference (on `sample` rows when given) and fails with every report when one fails.
pub fn check_all_variants(case: &Case, probs: bool, sample: Option<usize>) -> Vec<Report> {
    check_with(case, &AttentionOptions::default(), probs, sample)
}

pub fn check_with(
    case: &Case,
    base: &AttentionOptions,
    probs: bool,
    sample: Option<usize>,
) -> Vec<Report> {
    let mut reports = Vec::new();
    for cfg in configs() {
        let v = cfg.variant;
        let opts = cfg.apply(&AttentionOptions {
            return_probs: probs,
            ..base.clone()
        });
        let sh = case.shape();
        if matches!(v, Variant::Fused | Variant::Decode)
            && sh.head_dim.max(sh.value_dim) > wgpu_attention::kernels::flash::MAX_DIM
        {
            // Beyond the flash kernel's specialisations: the contract is a typed error.
            let e = check::verify_blocking(ctx(), case, &opts, sample, Tolerance::CONTRACT)
                .unwrap_err();
            assert!(
                matches!(e, wgpu_attention::Error::Unsupported { .. }),
                "{e}"
            );
            continue;
        }
        let r = check::verify_blocking(ctx(), case, &opts, sample, Tolerance::CONTRACT)
            .unwrap_or_else(|e| panic!("{} on {}: error {e}", case.name, cfg.label()));
        eprintln!("{}", r.line());
        assert!(r.passed, "{}", r.line());
        assert_eq!(r.variant, v.as_str(), "the requested variant ran");
        reports.push(r);
    }
    reports
}
