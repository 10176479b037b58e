//! The trained date translator through wgpu-attention (on lavapipe in CI): its forward pass
//! against the training framework's logits, the GPU against the CPU with the f64 reference at
//! every step, greedy accuracy on 1,000 held-out dates, beam search, sampling, bad input.

use std::sync::OnceLock;

use wgpu_attention::{Context, ContextOptions, DType};
use wgpu_attention_translator::search::{self, Beam, Sampling, Step};
use wgpu_attention_translator::{
    translate_beam, translate_greedy, translate_sample, Cpu, Error, Gpu, Model, Session, BOS,
    WEIGHTS,
};

fn ctx() -> &'static Context {
    static C: OnceLock<Context> = OnceLock::new();
    C.get_or_init(|| {
        Context::new_blocking(ContextOptions::default()).expect("a GPU adapter (lavapipe in CI)")
    })
}

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| Model::load(WEIGHTS).expect("translator/weights.safetensors"))
}

fn testset() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testset.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Target tokens of an ISO date (BOS, characters).
fn teacher(iso: &str) -> Vec<u32> {
    let cfg = &model().cfg;
    std::iter::once(BOS)
        .chain(
            iso.chars()
                .map(|c| cfg.tgt_chars.iter().position(|&x| x == c).unwrap() as u32 + 3),
        )
        .collect()
}

/// Logits of every teacher-forced step on a backend.
fn teacher_logits(
    attn: &mut dyn wgpu_attention_translator::Attention,
    text: &str,
    iso: &str,
) -> Vec<Vec<f32>> {
    let mut s = Session::new(model(), attn, &[text]).unwrap();
    teacher(iso)
        .iter()
        .enumerate()
        .map(|(pos, &t)| s.step(&[t], pos).unwrap().remove(0))
        .collect()
}

#[test]
fn the_rust_forward_pass_reproduces_the_training_frameworks_logits() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures.json");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for f in fx.as_array().unwrap() {
        let (src, iso) = (f["source"].as_str().unwrap(), f["target"].as_str().unwrap());
        let got = teacher_logits(&mut Cpu::default(), src, iso);
        let want: Vec<Vec<f64>> = serde_json::from_value(f["logits"].clone()).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            for (a, b) in g.iter().zip(w) {
                assert!(
                    (*a as f64 - b).abs() <= 2e-3 * (1.0 + b.abs()),
                    "{src}: logit {a} vs JAX {b}"
                );
            }
        }
    }
}

#[test]
fn gpu_logits_match_the_cpu_reference_at_every_step_in_f32_and_f16() {
    for (text, iso) in testset().into_iter().take(4) {
        let cpu = teacher_logits(&mut Cpu::default(), &text, &iso);
        for dtype in [DType::F32, DType::F16] {
            let mut gpu = Gpu::new(ctx(), model().cfg.dec_layers, model().cfg.tgt_len, dtype);
            let got = teacher_logits(&mut gpu, &text, &iso);
            for (step, (g, c)) in got.iter().zip(&cpu).enumerate() {
                let max = c.iter().fold(1f32, |m, x| m.max(x.abs()));
                // The float32 rule on logits (f32); f16 activations round every attention input
                // and output to 11 bits, so the rule scales by f16's unit roundoff.
                let tol = if dtype == DType::F32 { 1e-4 } else { 2e-2 } * max;
                for (a, b) in g.iter().zip(c) {
                    assert!(
                        (a - b).abs() <= tol && a.is_finite(),
                        "{text} {dtype} step {step}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

/// The GPU keeps each layer's cross-attention keys and values between steps; a step over
/// another encoder output of the same shape must use that output's, not the kept ones. Two
/// sources of one length are encoded, then stepped in turn on one backend without a reset (the
/// decoder cache mixes them, the same way on both backends), and every step's logits are
/// compared with the CPU's.
#[test]
fn gpu_uses_the_cross_keys_of_the_encoder_output_it_is_given() {
    let m = model();
    let texts = testset();
    let (a, b) = texts
        .iter()
        .enumerate()
        .find_map(|(i, (a, _))| {
            texts[i + 1..]
                .iter()
                .find(|(b, _)| {
                    m.encode_source(b).unwrap().len() == m.encode_source(a).unwrap().len() && b != a
                })
                .map(|(b, _)| (a.clone(), b.clone()))
        })
        .expect("two test sentences of one length");
    let run = |attn: &mut dyn wgpu_attention_translator::Attention| {
        attn.reset(1).unwrap();
        let ea = m.encode(attn, &[m.encode_source(&a).unwrap()]).unwrap();
        let eb = m.encode(attn, &[m.encode_source(&b).unwrap()]).unwrap();
        [(&eb, 0), (&ea, 1), (&eb, 2), (&ea, 3)]
            .iter()
            .map(|(e, pos)| m.step(attn, e, &[BOS], *pos).unwrap().0)
            .collect::<Vec<_>>()
    };
    let cpu = run(&mut Cpu::default());
    let mut gpu = Gpu::new(ctx(), m.cfg.dec_layers, m.cfg.tgt_len, DType::F32);
    let got = run(&mut gpu);
    for (step, (g, c)) in got.iter().zip(&cpu).enumerate() {
        let max = c.iter().fold(1f32, |acc, x| acc.max(x.abs()));
        for (x, y) in g.iter().zip(c) {
            assert!(
                (x - y).abs() <= 1e-4 * max && x.is_finite(),
                "step {step} ({a:?} / {b:?}): {x} vs {y}"
            );
        }
    }
}

#[test]
fn greedy_decoding_translates_at_least_95_percent_of_1000_held_out_dates() {
    let set = testset();
    assert_eq!(set.len(), 1000);
    let mut correct = 0;
    let mut gpu = Gpu::new(
        ctx(),
        model().cfg.dec_layers,
        model().cfg.tgt_len,
        DType::F32,
    );
    for chunk in set.chunks(250) {
        let texts: Vec<&str> = chunk.iter().map(|p| p.0.as_str()).collect();
        let out = translate_greedy(model(), &mut gpu, &texts).unwrap();
        correct += out.iter().zip(chunk).filter(|(o, p)| **o == p.1).count();
    }
    let acc = correct as f64 / 1000.0;
    println!("greedy exact match on 1,000 held-out dates: {acc:.3}");
    assert!(acc >= 0.95, "greedy accuracy {acc}");
}

#[test]
fn beam_search_is_at_least_as_accurate_as_greedy() {
    let set: Vec<_> = testset().into_iter().skip(100).take(60).collect();
    let mut gpu = Gpu::new(
        ctx(),
        model().cfg.dec_layers,
        model().cfg.tgt_len,
        DType::F32,
    );
    let texts: Vec<&str> = set.iter().map(|p| p.0.as_str()).collect();
    let greedy = translate_greedy(model(), &mut gpu, &texts).unwrap();
    let g_ok = greedy.iter().zip(&set).filter(|(o, p)| **o == p.1).count();
    let mut b_ok = 0;
    for (text, iso) in &set {
        let b = translate_beam(
            model(),
            &mut gpu,
            text,
            Beam {
                width: 4,
                length_penalty: 0.6,
            },
        )
        .unwrap();
        b_ok += (b == *iso) as usize;
    }
    println!("beam (width 4) {b_ok}/60, greedy {g_ok}/60");
    assert!(b_ok >= g_ok, "beam {b_ok} < greedy {g_ok}");
}

#[test]
fn sampling_at_temperature_0_or_top_k_1_is_greedy_and_a_seed_reproduces() {
    let set: Vec<_> = testset().into_iter().skip(200).take(32).collect();
    let texts: Vec<&str> = set.iter().map(|p| p.0.as_str()).collect();
    let mut gpu = Gpu::new(
        ctx(),
        model().cfg.dec_layers,
        model().cfg.tgt_len,
        DType::F32,
    );
    let greedy = translate_greedy(model(), &mut gpu, &texts).unwrap();
    let s = |t: f64, k: usize, p: f64, seed| Sampling {
        temperature: t,
        top_k: k,
        top_p: p,
        seed,
    };
    assert_eq!(
        translate_sample(model(), &mut gpu, &texts, s(0.0, 0, 1.0, 1)).unwrap(),
        greedy
    );
    assert_eq!(
        translate_sample(model(), &mut gpu, &texts, s(1.5, 1, 1.0, 2)).unwrap(),
        greedy
    );
    let a = translate_sample(model(), &mut gpu, &texts, s(2.0, 5, 0.95, 7)).unwrap();
    let b = translate_sample(model(), &mut gpu, &texts, s(2.0, 5, 0.95, 7)).unwrap();
    assert_eq!(a, b, "a fixed seed reproduces");
    let c = translate_sample(model(), &mut gpu, &texts, s(5.0, 0, 1.0, 8)).unwrap();
    assert_ne!(
        a, c,
        "a hot temperature and another seed give other samples"
    );
    let e = translate_sample(model(), &mut gpu, &texts, s(-1.0, 0, 1.0, 1)).unwrap_err();
    assert!(matches!(e, Error::Option { .. }), "{e}");
    // The step-function API on its own (any model could implement Step).
    let mut sess = Session::new(model(), &mut gpu, &texts[..2]).unwrap();
    let steps = sess.max_steps();
    let g = search::greedy(&mut sess, 2, BOS, wgpu_attention_translator::EOS, steps).unwrap();
    assert_eq!(sess.text(&g[0]), greedy[0]);
}

#[test]
fn bad_input_is_a_clear_error_never_a_panic() {
    let mut gpu = Gpu::new(
        ctx(),
        model().cfg.dec_layers,
        model().cfg.tgt_len,
        DType::F32,
    );
    for (text, what) in [
        ("", "empty"),
        ("march 3rd, 2017 ☃", "not in the vocabulary"),
        (&"1".repeat(200)[..], "at most"),
    ] {
        let e = translate_greedy(model(), &mut gpu, &[text]).unwrap_err();
        assert!(
            matches!(e, Error::Input(_)) && e.to_string().contains(what),
            "{e}"
        );
    }
    let e = Model::load("/nonexistent/weights.safetensors").unwrap_err();
    assert!(matches!(e, Error::Weights { .. }), "{e}");
    let bytes = std::fs::read(WEIGHTS).unwrap();
    for corrupt in [&bytes[..100], &b"not a safetensors file at all"[..]] {
        let e = Model::from_bytes(corrupt).unwrap_err();
        assert!(matches!(e, Error::Weights { .. }), "{e}");
    }
}
