//! Out-of-bounds safety, on every variant: inputs are views into one buffer with NaN everywhere
//! around them (xFormers' method: a read outside a tensor would bring NaN into the results), and
//! outputs are views into one buffer filled with a sentinel (a write outside a tensor would
//! change it). Results must match the reference, and every sentinel must survive. In every dtype:
//! 16-bit inputs are padded with 16-bit NaN, and a 16-bit output's sentinel is checked half word
//! by half word.

mod common;

use common::{configs, ctx, shape};
use wgpu_attention::case::Case;
use wgpu_attention::check::{self, Got, Tolerance};
use wgpu_attention::{
    reference, AttentionOptions, AttentionOutput, Causal, DType, MaskKind, Tensor,
};

const SENTINEL: f32 = 7.25e11;
/// The 16-bit outputs' sentinel: a pattern no result here has (f16 -0.00021, bf16 -4.8e-30).
const SENTINEL16: u16 = 0x8ace;

/// The storage bytes of `data` in `dtype`, and a 4-byte fill pattern: NaN in the dtype.
fn encode(data: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F32 => bytemuck::cast_slice(data).to_vec(),
        _ => data
            .iter()
            .flat_map(|&x| dtype.to_bits16(x).to_le_bytes())
            .collect(),
    }
}

fn nan_fill(dtype: DType) -> [u8; 4] {
    match dtype {
        DType::F32 => f32::NAN.to_le_bytes(),
        _ => {
            let h = dtype.to_bits16(f32::NAN).to_le_bytes();
            [h[0], h[1], h[0], h[1]]
        }
    }
}

/// Places `parts` (bytes) one after another in one buffer, each at an aligned offset with at
/// least `gap` bytes of the 4-byte pattern `fill` before it and after the last; returns the buffer
/// and the offsets.
fn packed(parts: &[&[u8]], fill: [u8; 4], gap: u64) -> (wgpu::Buffer, Vec<u64>) {
    let c = ctx();
    let align = c.limits().min_storage_buffer_offset_alignment as u64;
    let mut offsets = Vec::new();
    let mut at = gap.next_multiple_of(align);
    for p in parts {
        offsets.push(at);
        at = (at + p.len() as u64 + gap).next_multiple_of(align);
    }
    let mut data: Vec<u8> = fill.iter().copied().cycle().take(at as usize).collect();
    for (p, &o) in parts.iter().zip(&offsets) {
        data[o as usize..o as usize + p.len()].copy_from_slice(p);
    }
    let words: Vec<f32> = bytemuck::pod_collect_to_vec(&data);
    let whole = Tensor::from_data(c, &[words.len()], &words).unwrap();
    (whole.buffer().clone(), offsets)
}

/// Runs `case` in `dtype` (Q, K, V and the mask in it, O too) on every configuration.
fn run(case: &Case, dtype: DType) {
    let c = ctx();
    let case = &case.clone().with_dtype(dtype);
    let s = case.shape();
    let mask = case.mask.as_ref();
    let empty: Vec<u8> = Vec::new();
    let mask_bytes = mask.map_or(empty, |m| encode(&m.data, dtype));
    let (inb, io) = packed(
        &[
            &encode(&case.q, dtype),
            &encode(&case.k, dtype),
            &encode(&case.v, dtype),
            &mask_bytes,
        ],
        nan_fill(dtype),
        1024,
    );
    let q = Tensor::view_as(c, inb.clone(), io[0], &s.q(), dtype).unwrap();
    let k = Tensor::view_as(c, inb.clone(), io[1], &s.k(), dtype).unwrap();
    let v = Tensor::view_as(c, inb.clone(), io[2], &s.v(), dtype).unwrap();
    let n = |d: &[usize]| d.iter().product::<usize>();
    // Each output in a buffer of its own (wgpu forbids a buffer bound read-write in a dispatch
    // alongside another binding of it), with sentinels before and after. O is in `dtype`.
    let dims: [Vec<usize>; 3] = [s.out().to_vec(), s.lse().to_vec(), s.probs().to_vec()];
    let out_dtypes = [dtype, DType::F32, DType::F32];
    let sentinel = |d: DType| match d {
        DType::F32 => SENTINEL.to_le_bytes(),
        _ => {
            let h = SENTINEL16.to_le_bytes();
            [h[0], h[1], h[0], h[1]]
        }
    };
    let outs: Vec<(wgpu::Buffer, u64)> = dims
        .iter()
        .zip(out_dtypes)
        .map(|(d, dt)| {
            let bytes = (n(d) * dt.size()) as u64;
            let (b, o) = packed(&[&vec![0u8; bytes as usize]], sentinel(dt), 1024);
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
            Tensor::view_as(c, inb.clone(), io[3], &m.shape, dtype).unwrap(),
        );
    }
    // The reference sees the mask as the GPU does: rounded to the dtype.
    let mut rounded = case.clone();
    if let Some(m) = &mut rounded.mask {
        m.data.iter_mut().for_each(|x| *x = dtype.round(*x));
    }
    let expected = reference::attention(&rounded, true);
    for cfg in configs() {
        let (variant, label) = (cfg.variant, format!("{} {dtype}", cfg.label()));
        // Fresh sentinels: every output buffer back to its sentinel pattern.
        for ((b, _), dt) in outs.iter().zip(out_dtypes) {
            let fill: Vec<u8> = sentinel(dt)
                .iter()
                .copied()
                .cycle()
                .take(b.size() as usize)
                .collect();
            c.queue().write_buffer(b, 0, &fill);
        }
        let view = |k: usize| {
            Tensor::view_as(c, outs[k].0.clone(), outs[k].1, &dims[k], out_dtypes[k]).unwrap()
        };
        let outputs = AttentionOutput {
            out: view(0),
            lse: Some(view(1)),
            probs: Some(view(2)),
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
            dtype,
        );
        assert!(r.passed, "{label}: {}", r.line());
        // Everything outside the three views still holds the sentinel, the half word after an
        // odd-length 16-bit output included.
        for (k, (b, off)) in outs.iter().enumerate() {
            let dt = out_dtypes[k];
            let unit = dt.size() as u64;
            let all: Vec<u32> = if dt == DType::F32 {
                Tensor::from_buffer(b.clone(), &[(b.size() / 4) as usize])
                    .unwrap()
                    .read_blocking(c)
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect()
            } else {
                let t = Tensor::from_buffer_as(b.clone(), &[(b.size() / 2) as usize], dt).unwrap();
                pollster::block_on(t.read_bits(c))
                    .unwrap()
                    .into_iter()
                    .map(u32::from)
                    .collect()
            };
            let want = if dt == DType::F32 {
                SENTINEL.to_bits()
            } else {
                SENTINEL16 as u32
            };
            let (first, len) = ((*off / unit) as usize, n(&dims[k]));
            let touched: Vec<usize> = (0..all.len())
                .filter(|&e| (e < first || e >= first + len) && all[e] != want)
                .collect();
            assert!(
                touched.is_empty(),
                "{label} wrote outside output {k} at element {:?}",
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
    for dtype in DType::ALL {
        run(&case, dtype);
    }
}

#[test]
fn decode_shape_long_keys_odd_dims_stay_inside_their_tensors() {
    let case = Case::random("bounds-decode", shape(1, 4, 1, 3, 1100, 59, 59), 12)
        .with_causal(Causal::BottomRight);
    for dtype in DType::ALL {
        run(&case, dtype);
    }
}

/// Odd element counts everywhere (rows of dims 3 and 5 start mid-word in 16-bit data, and the
/// 16-bit output ends in half a word that is not its own), with an additive mask in the dtype.
#[test]
fn odd_counts_rows_mid_word_stay_inside_their_tensors() {
    let case = Case::random("bounds-odd", shape(1, 3, 1, 5, 77, 3, 5), 13)
        .with_causal(Causal::BottomRight)
        .with_random_mask(MaskKind::Additive, [true, false, false, false], 1.0, 13);
    for dtype in DType::ALL {
        run(&case, dtype);
    }
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
