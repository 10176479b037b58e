//! Out-of-bounds safety, on every variant: inputs are views into one buffer with NaN everywhere
//! around them (xFormers' method: a read outside a tensor would bring NaN into the results), and
//! outputs are views into one buffer filled with a sentinel (a write outside a tensor would
//! change it). Results must match the reference, and every sentinel must survive.

mod common;

use common::{configs, ctx, shape};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Got, Tolerance};
use wgpu_attention::{reference, AttentionOptions, AttentionOutput, Causal, MaskKind, Tensor};

const SENTINEL: f32 = 7.25e11;

/// Places `parts` one after another in one buffer, each at an aligned offset with at least
/// `gap` bytes of `fill` before it and after the last; returns the buffer and the offsets.
fn packed(parts: &[&[f32]], fill: f32, gap: u64) -> (wgpu::Buffer, Vec<u64>) {
    let c = ctx();
    let align = c.limits().min_storage_buffer_offset_alignment as u64;
    let mut offsets = Vec::new();
    let mut at = gap.next_multiple_of(align);
    for p in parts {
        offsets.push(at);
        at = (at + p.len() as u64 * 4 + gap).next_multiple_of(align);
    }
    let mut data = vec![fill; (at / 4) as usize];
    for (p, &o) in parts.iter().zip(&offsets) {
        data[(o / 4) as usize..(o / 4) as usize + p.len()].copy_from_slice(p);
    }
    let whole = Tensor::from_data(c, &[data.len()], &data).unwrap();
    (whole.buffer().clone(), offsets)
}

fn run(case: &Case) {
    let c = ctx();
    let s = case.shape();
    let mask = case.mask.as_ref();
    let empty: Vec<f32> = Vec::new();
    let (inb, io) = packed(
        &[&case.q, &case.k, &case.v, mask.map_or(&empty, |m| &m.data)],
        f32::NAN,
        1024,
    );
    let q = Tensor::view(c, inb.clone(), io[0], &s.q()).unwrap();
    let k = Tensor::view(c, inb.clone(), io[1], &s.k()).unwrap();
    let v = Tensor::view(c, inb.clone(), io[2], &s.v()).unwrap();
    let n = |d: &[usize]| d.iter().product::<usize>();
    // Each output in a buffer of its own (wgpu forbids a buffer bound read-write in a dispatch
    // alongside another binding of it), with sentinels before and after.
    let dims: [Vec<usize>; 3] = [s.out().to_vec(), s.lse().to_vec(), s.probs().to_vec()];
    let outs: Vec<(wgpu::Buffer, u64)> = dims
        .iter()
        .map(|d| {
            let (b, o) = packed(&[&vec![SENTINEL; n(d)]], SENTINEL, 1024);
            (b, o[0])
        })
        .collect();
    let mut base = AttentionOptions {
        causal: case.causal,
        key_lengths: case.key_lengths.clone(),
        return_lse: true,
        return_probs: true,
        ..Default::default()
    };
    if let Some(m) = mask {
        base = base.mask(
            m.kind,
            Tensor::view(c, inb.clone(), io[3], &m.shape).unwrap(),
        );
    }
    let expected = reference::attention(case, true);
    for cfg in configs() {
        let (variant, label) = (cfg.variant, cfg.label());
        // Fresh sentinels and poison: every output buffer back to the sentinel value.
        for (b, _) in &outs {
            c.queue().write_buffer(
                b,
                0,
                bytemuck::cast_slice(&vec![SENTINEL; (b.size() / 4) as usize]),
            );
        }
        let outputs = AttentionOutput {
            out: Tensor::view(c, outs[0].0.clone(), outs[0].1, &s.out()).unwrap(),
            lse: Some(Tensor::view(c, outs[1].0.clone(), outs[1].1, &s.lse()).unwrap()),
            probs: Some(Tensor::view(c, outs[2].0.clone(), outs[2].1, &s.probs()).unwrap()),
            variant,
        };
        let opts = cfg.apply(&base);
        let ran = c
            .attention_into_blocking(&q, &k, &v, &opts, &outputs)
            .unwrap();
        let (o, l, p) = (
            outputs.out.read_blocking(c).unwrap(),
            outputs.lse.as_ref().unwrap().read_blocking(c).unwrap(),
            outputs.probs.as_ref().unwrap().read_blocking(c).unwrap(),
        );
        let r = check::compare(
            &case.name,
            ran,
            &s,
            &Got {
                out: &o,
                lse: Some(&l),
                probs: Some(&p),
            },
            &expected,
            Tolerance::CONTRACT,
            wgpu_attention::DType::F32,
        );
        assert!(r.passed, "{label}: {}", r.line());
        // Everything outside the three views still holds the sentinel.
        for (k, (b, off)) in outs.iter().enumerate() {
            let all = Tensor::from_buffer(b.clone(), &[(b.size() / 4) as usize])
                .unwrap()
                .read_blocking(c)
                .unwrap();
            let (first, len) = ((*off / 4) as usize, n(&dims[k]));
            let touched: Vec<usize> = (0..all.len())
                .filter(|&e| {
                    (e < first || e >= first + len) && all[e].to_bits() != SENTINEL.to_bits()
                })
                .collect();
            assert!(
                touched.is_empty(),
                "{label} wrote outside output {k} at f32 index {:?}",
                &touched[..touched.len().min(8)]
            );
        }
    }
}

#[test]
fn odd_shape_gqa_causal_bool_mask_key_lengths_stay_inside_their_tensors() {
    let case = Case::random("bounds", shape(2, 4, 2, 37, 70, 24, 20), 11)
        .with_causal(Causal::TopLeft)
        .with_key_lengths(vec![70, 33])
        .with_random_mask(MaskKind::Bool, [false, true, false, false], 0.7, 11);
    run(&case);
}

#[test]
fn decode_shape_long_keys_odd_dims_stay_inside_their_tensors() {
    let case = Case::random("bounds-decode", shape(1, 4, 1, 3, 1100, 59, 59), 12)
        .with_causal(Causal::BottomRight);
    run(&case);
}

#[test]
fn views_must_be_aligned_and_inside_their_buffer() {
    let c = ctx();
    let b = Tensor::from_data(c, &[1024], &[0.0; 1024])
        .unwrap()
        .buffer()
        .clone();
    assert!(Tensor::view(c, b.clone(), 4, &[4]).is_err());
    assert!(Tensor::view(c, b.clone(), 256 * 16, &[4]).is_err());
    let t = Tensor::view(c, b, 256, &[8]).unwrap();
    assert_eq!(t.offset(), 256);
}
