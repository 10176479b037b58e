//! Element types: [`DType`], and the conversions between f32 and the 16-bit types on the host
//! (round to nearest even, as the kernels do when they write 16-bit outputs).

use std::str::FromStr;

/// The element type of a tensor. Q, K and V of one call share one; scores, softmax statistics and
/// the output accumulator are f32 whatever it is.
///
/// 16-bit tensors are stored packed, two elements to a 32-bit word, element `2w` in the low half
/// of word `w` (little-endian, as `&[u16]` is laid out in memory), so every WebGPU adapter reads
/// them (with or without SHADER_F16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum DType {
    /// IEEE binary32.
    #[default]
    F32,
    /// IEEE binary16: 11 significant bits, largest finite value 65504.
    F16,
    /// bfloat16: f32's exponent range with 8 significant bits.
    #[cfg_attr(feature = "serde", serde(rename = "bf16"))]
    BF16,
}

impl DType {
    /// Every dtype.
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

    /// The name used on the command line and in files.
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }
    /// Unit roundoff u: the largest relative error of rounding a real number (in range) to the
    /// nearest value of the type (2⁻²⁴, 2⁻¹¹, 2⁻⁸).
    pub fn unit_roundoff(self) -> f64 {
        match self {
            DType::F32 => f64::powi(2.0, -24),
            DType::F16 => f64::powi(2.0, -11),
            DType::BF16 => f64::powi(2.0, -8),
        }
    }
    /// Largest finite value.
    pub fn max_finite(self) -> f32 {
        match self {
            DType::F32 => f32::MAX,
            DType::F16 => 65504.0,
            DType::BF16 => f32::from_bits(0x7f7f_0000),
        }
    }
    /// Whether it is F32 (the default, left out of case files).
    pub fn is_f32(&self) -> bool {
        *self == DType::F32
    }
    /// The code the kernels' specialization header uses for it (0, 1, 2).
    pub(crate) fn code(self) -> u32 {
        self as u32
    }
}

impl FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(DType::F32),
            "f16" => Ok(DType::F16),
            "bf16" => Ok(DType::BF16),
            _ => Err(format!("unknown dtype {s:?}; expected f32, f16 or bf16")),
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an f32 value does not fit a dtype: its flat index and value.
pub(crate) struct NotRepresentable {
    pub index: usize,
    pub value: f32,
}

impl DType {
    /// `x` rounded to the nearest value of this type (ties to even), as f32. Values beyond the
    /// type's range become ±infinity; NaN stays NaN.
    pub fn round(self, x: f32) -> f32 {
        match self {
            DType::F32 => x,
            DType::F16 => half::f16::from_f32(x).to_f32(),
            DType::BF16 => half::bf16::from_f32(x).to_f32(),
        }
    }

    /// Whether a finite `x` fits the type: its magnitude is at most the largest finite value
    /// (65504 for f16), so rounding it does not give an infinity. Non-finite values are the
    /// non-finite scan's business, not this check's: they map to themselves.
    pub fn fits(self, x: f32) -> bool {
        !x.is_finite() || x.abs() <= self.max_finite()
    }

    /// The 16-bit pattern of `x` rounded to this type (ties to even). For F32 it is meaningless
    /// and returns 0.
    pub fn to_bits16(self, x: f32) -> u16 {
        match self {
            DType::F32 => 0,
            DType::F16 => half::f16::from_f32(x).to_bits(),
            DType::BF16 => half::bf16::from_f32(x).to_bits(),
        }
    }

    /// The f32 value of a 16-bit pattern of this type (exact). For F32 it is meaningless and
    /// returns 0.
    pub fn from_bits16(self, bits: u16) -> f32 {
        match self {
            DType::F32 => 0.0,
            DType::F16 => half::f16::from_bits(bits).to_f32(),
            DType::BF16 => half::bf16::from_bits(bits).to_f32(),
        }
    }

    /// Bytes of `n` elements as stored: 16-bit data is packed two to a word, so an odd count
    /// leaves half a word of padding, which the storage rounds up to.
    pub fn storage_bytes(self, n: usize) -> u64 {
        ((n * self.size()) as u64).next_multiple_of(4)
    }
}

/// `data` in this dtype's storage layout (packed, padded to whole words), or the first value
/// that does not fit ([`DType::fits`]).
pub(crate) fn encode(dtype: DType, data: &[f32]) -> Result<Vec<u8>, NotRepresentable> {
    if let Some(index) = data.iter().position(|&x| !dtype.fits(x)) {
        return Err(NotRepresentable {
            index,
            value: data[index],
        });
    }
    Ok(match dtype {
        DType::F32 => bytemuck::cast_slice(data).to_vec(),
        _ => {
            let bits: Vec<u16> = data.iter().map(|&x| dtype.to_bits16(x)).collect();
            pack_bits(&bits)
        }
    })
}

/// 16-bit patterns packed two to a little-endian word, padded to whole words.
pub(crate) fn pack_bits(bits: &[u16]) -> Vec<u8> {
    let mut bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

/// The first `n` 16-bit patterns of packed storage.
pub(crate) fn unpack_bits(bytes: &[u8], n: usize) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .take(n)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// The first `n` elements of storage in this dtype, as f32 (exact).
pub(crate) fn decode(dtype: DType, bytes: &[u8], n: usize) -> Vec<f32> {
    match dtype {
        DType::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(&bytes[..n * 4]),
        _ => unpack_bits(bytes, n)
            .into_iter()
            .map(|b| dtype.from_bits16(b))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.as_str().parse::<DType>(), Ok(d));
        }
        assert!("f64".parse::<DType>().is_err());
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        // 1 + 2^-11 is halfway between 1 and the next f16 (1 + 2^-10): ties go to the even 1.
        assert_eq!(DType::F16.round(1.0 + f32::powi(2.0, -11)), 1.0);
        // 1 + 3·2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: ties go to the even 1 + 2^-9.
        assert_eq!(
            DType::F16.round(1.0 + 3.0 * f32::powi(2.0, -11)),
            1.0 + f32::powi(2.0, -9)
        );
        assert_eq!(DType::BF16.round(1.0 + f32::powi(2.0, -8)), 1.0);
        assert_eq!(
            DType::BF16.round(1.0 + 3.0 * f32::powi(2.0, -8)),
            1.0 + f32::powi(2.0, -6)
        );
        // f16 subnormals are kept, not flushed.
        assert_eq!(DType::F16.round(f32::powi(2.0, -24)), f32::powi(2.0, -24));
    }

    #[test]
    fn range_is_checked_not_rounded_to_infinity() {
        assert!(DType::F16.fits(65504.0));
        assert!(!DType::F16.fits(65505.0));
        assert!(!DType::F16.fits(-1e6));
        assert!(DType::BF16.fits(1e38));
        assert!(!DType::BF16.fits(f32::MAX));
        assert!(DType::F16.fits(f32::NAN));
        let e = encode(DType::F16, &[1.0, 2.0, 7e4]).err().unwrap();
        assert_eq!((e.index, e.value), (2, 7e4));
    }

    #[test]
    fn packing_round_trips_odd_counts() {
        let data = [1.5f32, -2.25, 3.0];
        for d in [DType::F16, DType::BF16] {
            let bytes = encode(d, &data).ok().unwrap();
            assert_eq!(bytes.len(), 8, "three halves pad to two words");
            assert_eq!(decode(d, &bytes, 3), data);
        }
        let bytes = encode(DType::F32, &data).ok().unwrap();
        assert_eq!(decode(DType::F32, &bytes, 3), data);
        // Element 2w is the low half of word w.
        let bits = unpack_bits(&encode(DType::F16, &[1.0, 0.0]).ok().unwrap(), 2);
        assert_eq!(bits, [0x3c00, 0]);
    }
}
