//! # difi-fft: FFT convolution as a custom rule that honours the activity mask
//!
//! `conv(u, v) = real(ifft(fft(u) ⊙ fft(v)))` over all axes: circular convolution of two real
//! arrays of one shape. Its pullback is
//!
//! * `ū = real(ifft(fft(ȳ) ⊙ conj(fft(v))))` and
//! * `v̄ = real(ifft(fft(ȳ) ⊙ conj(fft(u))))`,
//!
//! so with the spectra of the forward pass saved, a full pullback costs three transforms (one
//! forward transform of `ȳ`, one inverse per cotangent). When `v` is `Const` the rule is told
//! so: it saves only `fft(v)` and computes only `ū`, two transforms instead of three.
//!
//! The rule is generic over `T: Real` (every `Real` is a rustfft `FftNum`), so it runs under
//! every engine and at every order.
//!
//! ```
//! use difi_fft::{conv, FftConv};
//! use ndarray::{arr1, ArrayD};
//!
//! let u = arr1(&[1.0, 2.0, 0.0, 0.0]).into_dyn();
//! let v = arr1(&[0.0, 1.0, 0.0, 0.0]).into_dyn(); // a shift by one
//! let y: ArrayD<f64> = conv(&FftConv::new(), u.view(), v.view())?;
//! let want = [0.0, 1.0, 2.0, 0.0];
//! assert!(y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12));
//! # Ok::<(), difi_core::Error>(())
//! ```
//!
//! Under an engine, a `Const` argument's cotangent is never computed:
//!
//! ```
//! use difi_core::{Active, ArrayD, Backend, Const, NoTangent};
//! use difi_fft::{conv, FftConv};
//!
//! let u = ndarray::Array3::<f64>::from_shape_fn((4, 4, 3), |(i, j, k)| (i + j + k) as f64).into_dyn();
//! let v = ndarray::Array3::<f64>::from_shape_fn((4, 4, 3), |(i, j, k)| (i * j) as f64 - k as f64).into_dyn();
//! let rule = FftConv::new();
//! let f = |(u, v): (ArrayD<_>, ArrayD<_>)| conv(&rule, u.view(), v.view()).unwrap().sum();
//! let (du, NoTangent) = difi_tape::Tape::new().gradient(f, (Active(&u), Const(&v)))?;
//! assert_eq!(rule.stats().cotangents, 1); // v's cotangent was never computed
//! // d/du Σ conv(u, v) = Σ v at every element.
//! assert!(du.iter().all(|g| (g - v.sum()).abs() < 1e-9));
//! rule.reset();
//! let (_, dv) = difi_tape::Tape::new().gradient(f, (Active(&u), Active(&v)))?;
//! assert_eq!(rule.stats().cotangents, 2);
//! assert!(dv.iter().all(|g| (g - u.sum()).abs() < 1e-9));
//! # Ok::<(), difi_core::Error>(())
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use difi_core::{apply, ArrayD, ArrayViewD, Error, Real, Result, Rule};
use num_complex::Complex;
use rustfft::{FftDirection, FftPlanner};

/// Counts of the work a [`FftConv`] did, shared by all clones of one rule value.
#[derive(Debug, Default)]
pub struct ConvCounters {
    transforms: AtomicUsize,
    cotangents: AtomicUsize,
    forward_calls: AtomicUsize,
    pullback_calls: AtomicUsize,
}

/// A snapshot of [`ConvCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvStats {
    /// n-dimensional FFTs performed (forward and inverse).
    pub transforms: usize,
    /// Input cotangents computed by pullbacks.
    pub cotangents: usize,
    /// Calls of the forward pass.
    pub forward_calls: usize,
    /// Calls of the pullback.
    pub pullback_calls: usize,
}

/// The FFT convolution rule. Clones share their counters.
#[derive(Clone, Debug, Default)]
pub struct FftConv {
    counters: Arc<ConvCounters>,
}

impl FftConv {
    /// A rule with fresh counters.
    pub fn new() -> FftConv {
        FftConv::default()
    }

    /// The work done so far by this rule and its clones.
    pub fn stats(&self) -> ConvStats {
        let c = &self.counters;
        ConvStats {
            transforms: c.transforms.load(Ordering::Relaxed),
            cotangents: c.cotangents.load(Ordering::Relaxed),
            forward_calls: c.forward_calls.load(Ordering::Relaxed),
            pullback_calls: c.pullback_calls.load(Ordering::Relaxed),
        }
    }

    /// Sets every counter to zero.
    pub fn reset(&self) {
        let c = &self.counters;
        for a in [
            &c.transforms,
            &c.cotangents,
            &c.forward_calls,
            &c.pullback_calls,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }

    fn count(&self, counter: &AtomicUsize, n: usize) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What the forward pass keeps: the spectra the pullback (or pushforward) will need.
pub struct ConvSaved<T> {
    shape: Vec<usize>,
    /// `fft(u)`, kept when `v` needs a derivative.
    u_hat: Option<Vec<Complex<T>>>,
    /// `fft(v)`, kept when `u` needs a derivative.
    v_hat: Option<Vec<Complex<T>>>,
}

/// Circular convolution of `u` and `v` (same shape) as one node under any engine.
///
/// Returns [`Error::Unsupported`] if the shapes differ or an array is empty.
pub fn conv<T: Real>(
    rule: &FftConv,
    u: ArrayViewD<'_, T>,
    v: ArrayViewD<'_, T>,
) -> Result<ArrayD<T>> {
    if u.shape() != v.shape() {
        return Err(Error::Unsupported(format!(
            "conv: u has shape {:?} and v has shape {:?}; circular convolution needs equal shapes \
             (zero-pad the smaller one)",
            u.shape(),
            v.shape()
        )));
    }
    if u.is_empty() {
        return Err(Error::Unsupported("conv: the arrays are empty".into()));
    }
    Ok(apply(rule, &[u, v]).pop().expect("conv has one output"))
}

impl Rule for FftConv {
    type Saved<T: Real> = ConvSaved<T>;

    fn name(&self) -> &'static str {
        "fft-conv"
    }

    fn forward<T: Real>(
        &self,
        inputs: &[ArrayViewD<'_, T>],
        active: &[bool],
    ) -> (Vec<ArrayD<T>>, ConvSaved<T>) {
        self.count(&self.counters.forward_calls, 1);
        let (u, v) = (&inputs[0], &inputs[1]);
        assert_eq!(
            u.shape(),
            v.shape(),
            "FftConv: u and v must have the same shape (use difi_fft::conv for an Err instead)"
        );
        let shape = u.shape().to_vec();
        let mut planner = FftPlanner::new();
        let u_hat = self.spectrum(&mut planner, u, &shape);
        let v_hat = self.spectrum(&mut planner, v, &shape);
        // ū needs fft(v) and v̄ needs fft(u); the product takes the place of a spectrum that
        // no cotangent needs, and a new buffer only when both are kept.
        let (mut prod, u_hat, v_hat) = match (active[1], active[0]) {
            (false, u_active) => (times(u_hat, &v_hat), None, u_active.then_some(v_hat)),
            (true, false) => (times(v_hat, &u_hat), Some(u_hat), None),
            (true, true) => (times(u_hat.clone(), &v_hat), Some(u_hat), Some(v_hat)),
        };
        self.inverse(&mut planner, &mut prod, &shape);
        let y = real_part(&prod, &shape);
        let saved = ConvSaved {
            shape,
            u_hat,
            v_hat,
        };
        (vec![y], saved)
    }

    fn pullback<T: Real>(
        &self,
        saved: &ConvSaved<T>,
        cotangents: &[ArrayViewD<'_, T>],
        needed: &[bool],
    ) -> Vec<Option<ArrayD<T>>> {
        self.count(&self.counters.pullback_calls, 1);
        if !needed.iter().any(|&n| n) {
            return vec![None, None];
        }
        let shape = &saved.shape;
        let mut planner = FftPlanner::new();
        let y_bar_hat = self.spectrum(&mut planner, &cotangents[0], shape);
        // ū correlates ȳ with v, v̄ correlates ȳ with u: multiply by the conjugate spectrum,
        // in place in fft(ȳ) (a copy of it only when both cotangents are needed).
        let mut correlate = |other: &Option<Vec<Complex<T>>>, mut prod: Vec<Complex<T>>| {
            let other = other
                .as_ref()
                .expect("FftConv: the forward pass saved no spectrum for a needed cotangent");
            prod.iter_mut()
                .zip(other)
                .for_each(|(a, b)| *a = *a * b.conj());
            self.inverse(&mut planner, &mut prod, shape);
            self.count(&self.counters.cotangents, 1);
            real_part(&prod, shape)
        };
        match (needed[0], needed[1]) {
            (true, true) => {
                let u_bar = correlate(&saved.v_hat, y_bar_hat.clone());
                vec![Some(u_bar), Some(correlate(&saved.u_hat, y_bar_hat))]
            }
            (true, false) => vec![Some(correlate(&saved.v_hat, y_bar_hat)), None],
            (false, _) => vec![None, Some(correlate(&saved.u_hat, y_bar_hat))],
        }
    }

    fn pushforward<T: Real>(
        &self,
        saved: &ConvSaved<T>,
        tangents: &[Option<ArrayViewD<'_, T>>],
    ) -> Option<Vec<ArrayD<T>>> {
        // dy = conv(du, v) + conv(u, dv): one transform per tangent, one inverse.
        let shape = &saved.shape;
        let n: usize = shape.iter().product();
        let mut planner = FftPlanner::new();
        let mut acc = vec![Complex::new(T::zero(), T::zero()); n];
        for (tangent, other) in tangents.iter().zip([&saved.v_hat, &saved.u_hat]) {
            if let Some(t) = tangent {
                let other = other
                    .as_ref()
                    .expect("FftConv: the forward pass saved no spectrum for a tangent input");
                let t_hat = self.spectrum(&mut planner, t, shape);
                acc.iter_mut()
                    .zip(t_hat.iter().zip(other))
                    .for_each(|(a, (x, y))| *a = *a + *x * *y);
            }
        }
        self.inverse(&mut planner, &mut acc, shape);
        Some(vec![real_part(&acc, shape)])
    }
}

impl FftConv {
    fn spectrum<T: Real>(
        &self,
        planner: &mut FftPlanner<T>,
        x: &ArrayViewD<'_, T>,
        shape: &[usize],
    ) -> Vec<Complex<T>> {
        let complex = |&r: &T| Complex::new(r, T::zero());
        // As a slice where it is one: ndarray's element iterator checks the layout per element.
        let mut data: Vec<Complex<T>> = match x.as_slice() {
            Some(flat) => flat.iter().map(complex).collect(),
            None => x.iter().map(complex).collect(),
        };
        fft_nd(planner, &mut data, shape, FftDirection::Forward);
        self.count(&self.counters.transforms, 1);
        data
    }

    fn inverse<T: Real>(
        &self,
        planner: &mut FftPlanner<T>,
        data: &mut [Complex<T>],
        shape: &[usize],
    ) {
        fft_nd(planner, data, shape, FftDirection::Inverse);
        let scale = T::one() / T::from_usize(data.len()).expect("length fits a float");
        data.iter_mut().for_each(|c| *c = *c * scale);
        self.count(&self.counters.transforms, 1);
    }
}

/// `a ⊙ b`, in `a`'s buffer.
fn times<T: Real>(mut a: Vec<Complex<T>>, b: &[Complex<T>]) -> Vec<Complex<T>> {
    a.iter_mut().zip(b).for_each(|(x, y)| *x = *x * *y);
    a
}

fn real_part<T: Real>(data: &[Complex<T>], shape: &[usize]) -> ArrayD<T> {
    ArrayD::from_shape_vec(shape.to_vec(), data.iter().map(|c| c.re).collect())
        .expect("length matches shape")
}

/// In-place unnormalised n-dimensional FFT of row-major `data` with the given shape.
fn fft_nd<T: Real>(
    planner: &mut FftPlanner<T>,
    data: &mut [Complex<T>],
    shape: &[usize],
    dir: FftDirection,
) {
    let mut block = Vec::new();
    for axis in 0..shape.len() {
        let len = shape[axis];
        if len <= 1 {
            continue;
        }
        let inner: usize = shape[axis + 1..].iter().product();
        let fft = planner.plan_fft(len, dir);
        let mut scratch = vec![Complex::new(T::zero(), T::zero()); fft.get_inplace_scratch_len()];
        if inner == 1 {
            fft.process_with_scratch(data, &mut scratch);
            continue;
        }
        // Each outer block is a len × inner matrix. Its columns are the lanes to transform:
        // copy a few at a time into contiguous rows (a tile that stays in cache), transform,
        // copy back. Transposing the whole block at once strode through it a page per element.
        let lanes = LANES_PER_TILE.min(inner);
        block.resize(len * lanes, Complex::new(T::zero(), T::zero()));
        for chunk in data.chunks_exact_mut(len * inner) {
            for first in (0..inner).step_by(lanes) {
                let width = lanes.min(inner - first);
                let tile = &mut block[..len * width];
                for i in 0..len {
                    let row = &chunk[i * inner + first..i * inner + first + width];
                    for (j, &x) in row.iter().enumerate() {
                        tile[j * len + i] = x;
                    }
                }
                fft.process_with_scratch(tile, &mut scratch);
                for i in 0..len {
                    let row = &mut chunk[i * inner + first..i * inner + first + width];
                    for (j, x) in row.iter_mut().enumerate() {
                        *x = tile[j * len + i];
                    }
                }
            }
        }
    }
}

/// Lanes transformed together along a non-contiguous axis: 32 lanes of 512 complex values
/// are 256 KB, which stays in a 1-4 MB L2.
const LANES_PER_TILE: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, ArrayD, IxDyn};

    /// Direct O(n²) circular convolution, the reference.
    fn conv_direct(u: &ArrayD<f64>, v: &ArrayD<f64>) -> ArrayD<f64> {
        let shape = u.shape().to_vec();
        let mut y = ArrayD::zeros(IxDyn(&shape));
        for (j, &uj) in u.indexed_iter() {
            for (k, &vk) in v.indexed_iter() {
                let idx: Vec<usize> = (0..shape.len()).map(|d| (j[d] + k[d]) % shape[d]).collect();
                y[IxDyn(&idx)] += uj * vk;
            }
        }
        y
    }

    fn sample(shape: (usize, usize, usize), seed: u64) -> ArrayD<f64> {
        let mut s = seed;
        Array3::from_shape_fn(shape, |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
        .into_dyn()
    }

    #[test]
    fn matches_direct_convolution_in_three_dimensions() {
        // (3, 5, 9): axis 0 has 5 · 9 = 45 lanes, one full tile of 32 and a partial one of 13.
        for (shape, seed) in [((4, 3, 5), 1), ((3, 5, 9), 6)] {
            let (u, v) = (sample(shape, seed), sample(shape, seed + 1));
            let y = conv(&FftConv::new(), u.view(), v.view()).unwrap();
            let want = conv_direct(&u, &v);
            for (a, b) in y.iter().zip(want.iter()) {
                assert!((a - b).abs() < 1e-12, "{shape:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn pullback_matches_the_transposed_direct_convolution_and_honours_the_mask() {
        let (u, v) = (sample((3, 4, 2), 3), sample((3, 4, 2), 4));
        let y_bar = sample((3, 4, 2), 5);
        let rule = FftConv::new();
        // Reference: ū_j = Σ_k ȳ_k v_{k-j}, computed from the direct convolution's linearity:
        // ⟨ȳ, conv(e_j, v)⟩.
        let reference = |which: usize| -> Vec<f64> {
            (0..u.len())
                .map(|j| {
                    let mut e = ArrayD::zeros(u.raw_dim());
                    e.as_slice_mut().unwrap()[j] = 1.0;
                    let y = if which == 0 {
                        conv_direct(&e, &v)
                    } else {
                        conv_direct(&u, &e)
                    };
                    y.iter().zip(y_bar.iter()).map(|(a, b)| a * b).sum()
                })
                .collect()
        };
        let (_, saved) = rule.forward(&[u.view(), v.view()], &[true, false]);
        assert!(saved.u_hat.is_none() && saved.v_hat.is_some());
        rule.reset();
        let out = rule.pullback(&saved, &[y_bar.view()], &[true, false]);
        assert!(out[1].is_none());
        for (a, b) in out[0].as_ref().unwrap().iter().zip(reference(0)) {
            assert!((a - b).abs() < 1e-12);
        }
        assert_eq!(rule.stats().cotangents, 1);
        assert_eq!(rule.stats().transforms, 2, "fft(ȳ) and one inverse");

        let (_, saved) = rule.forward(&[u.view(), v.view()], &[false, true]);
        assert!(saved.u_hat.is_some() && saved.v_hat.is_none());
        let out = rule.pullback(&saved, &[y_bar.view()], &[false, true]);
        assert!(out[0].is_none());
        for (a, b) in out[1].as_ref().unwrap().iter().zip(reference(1)) {
            assert!((a - b).abs() < 1e-12);
        }

        let (_, saved) = rule.forward(&[u.view(), v.view()], &[true, true]);
        rule.reset();
        let out = rule.pullback(&saved, &[y_bar.view()], &[true, true]);
        for (a, b) in out[0].as_ref().unwrap().iter().zip(reference(0)) {
            assert!((a - b).abs() < 1e-12);
        }
        for (a, b) in out[1].as_ref().unwrap().iter().zip(reference(1)) {
            assert!((a - b).abs() < 1e-12);
        }
        assert_eq!(rule.stats().cotangents, 2);
        assert_eq!(rule.stats().transforms, 3);
    }

    #[test]
    fn pushforward_is_the_sum_of_both_linear_parts() {
        let (u, v) = (sample((2, 3, 4), 6), sample((2, 3, 4), 7));
        let (du, dv) = (sample((2, 3, 4), 8), sample((2, 3, 4), 9));
        let rule = FftConv::new();
        let (_, saved) = rule.forward(&[u.view(), v.view()], &[true, true]);
        let dy = rule
            .pushforward(&saved, &[Some(du.view()), Some(dv.view())])
            .unwrap()
            .pop()
            .unwrap();
        let want = conv_direct(&du, &v) + conv_direct(&u, &dv);
        for (a, b) in dy.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let u = ArrayD::<f64>::zeros(IxDyn(&[2, 3]));
        let v = ArrayD::<f64>::zeros(IxDyn(&[3, 2]));
        let err = conv(&FftConv::new(), u.view(), v.view()).unwrap_err();
        assert!(err.to_string().contains("[2, 3]"), "{err}");
    }
}
