//! A small seeded generator for test data (random cases, the conformance matrix): SplitMix64.
//! Enough for reproducible inputs, not for anything that must be unpredictable; kept here so that
//! the library does not depend on `rand`.

use std::ops::{Range, RangeInclusive};

/// SplitMix64 (Steele, Lea and Flood, 2014): one 64-bit state, a fixed increment and a mixing
/// function; passes BigCrush, and every seed gives its own sequence.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// The generator for `seed`.
    pub fn seed_from_u64(seed: u64) -> Self {
        SeededRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform f64 in [0, 1), from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (0 to 1).
    pub fn random_bool(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A uniform value of `range` (half-open or inclusive; integer or float).
    pub fn random_range<T, R: SampleRange<T>>(&mut self, range: R) -> T {
        range.sample(self)
    }
}

/// A range [`SeededRng::random_range`] can draw from.
pub trait SampleRange<T> {
    /// One uniform value of the range.
    fn sample(self, rng: &mut SeededRng) -> T;
}

/// A type whose ranges [`SeededRng::random_range`] can draw from.
pub trait Uniform: Copy + PartialOrd {
    /// A uniform value in `lo .. hi` (`lo ..= hi` when `inclusive`).
    fn between(rng: &mut SeededRng, lo: Self, hi: Self, inclusive: bool) -> Self;
}

impl<T: Uniform> SampleRange<T> for Range<T> {
    fn sample(self, rng: &mut SeededRng) -> T {
        assert!(self.start < self.end, "empty range");
        T::between(rng, self.start, self.end, false)
    }
}

impl<T: Uniform> SampleRange<T> for RangeInclusive<T> {
    fn sample(self, rng: &mut SeededRng) -> T {
        let (lo, hi) = self.into_inner();
        assert!(lo <= hi, "empty range");
        T::between(rng, lo, hi, true)
    }
}

/// A uniform integer below `span`, by widening multiplication (the bias is below 2^-32 for the
/// spans used here).
fn below(rng: &mut SeededRng, span: u64) -> u64 {
    ((rng.next_u64() as u128 * span as u128) >> 64) as u64
}

macro_rules! int_uniform {
    ($($t:ty),*) => {$(
        impl Uniform for $t {
            fn between(rng: &mut SeededRng, lo: Self, hi: Self, inclusive: bool) -> Self {
                lo + below(rng, (hi - lo) as u64 + inclusive as u64) as $t
            }
        }
    )*};
}
int_uniform!(usize, u32, u64);

macro_rules! float_uniform {
    ($($t:ty),*) => {$(
        impl Uniform for $t {
            fn between(rng: &mut SeededRng, lo: Self, hi: Self, _inclusive: bool) -> Self {
                let x = lo + (hi - lo) * rng.next_f64() as $t;
                // Rounding to a narrower type can land on the end of a half-open range.
                if x < hi { x } else { lo }
            }
        }
    )*};
}
float_uniform!(f32, f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_in_bounds_and_cover_them() {
        let mut r = SeededRng::seed_from_u64(7);
        let mut seen = [false; 5];
        for _ in 0..10_000 {
            let i: usize = r.random_range(0..5);
            seen[i] = true;
            let j: u32 = r.random_range(3..=4);
            assert!((3..=4).contains(&j));
            let x: f32 = r.random_range(-1.0..1.0);
            assert!((-1.0..1.0).contains(&x));
        }
        assert!(seen.iter().all(|&s| s));
        let p = (0..10_000).filter(|_| r.random_bool(0.3)).count();
        assert!((2_700..3_300).contains(&p), "{p}");
    }

    #[test]
    fn a_seed_gives_one_sequence() {
        let a: Vec<u64> = {
            let mut r = SeededRng::seed_from_u64(1);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = SeededRng::seed_from_u64(1);
        assert!(a.iter().all(|&x| x == r.next_u64()));
        assert_ne!(a[0], SeededRng::seed_from_u64(2).next_u64());
    }
}
