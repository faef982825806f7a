//! Custom rules, gradient hooks and checkpointed segments: user code that engines call at their
//! own base scalar, so it is written once, generic over [`Real`].

use ndarray::{ArrayD, ArrayViewD};

use crate::Real;

/// A custom differentiation rule on arrays, written once and generic over `T: Real`.
///
/// Engines call it at their base scalar: the tape engine over `f64` calls `forward::<f64>` while
/// recording and `pullback::<f64>` in the reverse sweep; forward-over-reverse calls it over dual
/// numbers, so the same code gives second derivatives.
///
/// `active[i]` says whether input `i` carries derivatives. `pullback` is told which inputs
/// `needed` a cotangent and must return `Some` for exactly those: a `Const` input is never asked,
/// and the rule can skip its work (and what `forward` saves for it).
///
/// ```
/// use difi_core::{apply, ArrayD, ArrayViewD, Real, Rule};
///
/// /// y = a * b elementwise.
/// #[derive(Clone)]
/// struct Mul;
/// impl Rule for Mul {
///     type Saved<T: Real> = (ArrayD<T>, ArrayD<T>);
///     fn forward<T: Real>(&self, x: &[ArrayViewD<'_, T>], _active: &[bool]) -> (Vec<ArrayD<T>>, Self::Saved<T>) {
///         (vec![&x[0] * &x[1]], (x[0].to_owned(), x[1].to_owned()))
///     }
///     fn pullback<T: Real>(&self, s: &Self::Saved<T>, ct: &[ArrayViewD<'_, T>], needed: &[bool]) -> Vec<Option<ArrayD<T>>> {
///         vec![needed[0].then(|| &ct[0] * &s.1), needed[1].then(|| &ct[0] * &s.0)]
///     }
/// }
/// let a = ndarray::arr1(&[1.0, 2.0]).into_dyn();
/// let b = ndarray::arr1(&[3.0, 4.0]).into_dyn();
/// let y = apply(&Mul, &[a.view(), b.view()]);
/// assert_eq!(y[0], ndarray::arr1(&[3.0, 8.0]).into_dyn());
/// ```
pub trait Rule: Clone + Send + Sync + 'static {
    /// What the forward pass keeps for the pullback (inputs, spectra, factorizations...).
    type Saved<T: Real>: Send + Sync + 'static;

    /// A name for error messages and counters.
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }

    /// Computes the outputs and what the pullback will need. `active[i]` is false for inputs
    /// that need no derivative: save nothing for them.
    fn forward<T: Real>(
        &self,
        inputs: &[ArrayViewD<'_, T>],
        active: &[bool],
    ) -> (Vec<ArrayD<T>>, Self::Saved<T>);

    /// Cotangents of the inputs from cotangents of the outputs. Must return one entry per input,
    /// `Some` (with the input's shape) exactly where `needed[i]` is true.
    fn pullback<T: Real>(
        &self,
        saved: &Self::Saved<T>,
        cotangents: &[ArrayViewD<'_, T>],
        needed: &[bool],
    ) -> Vec<Option<ArrayD<T>>>;

    /// An explicit pushforward: output tangents from input tangents (`None` for inputs without
    /// one). Return `None` (the default) to let forward mode run through [`Rule::forward`].
    fn pushforward<T: Real>(
        &self,
        saved: &Self::Saved<T>,
        tangents: &[Option<ArrayViewD<'_, T>>],
    ) -> Option<Vec<ArrayD<T>>> {
        let _ = (saved, tangents);
        None
    }
}

/// Applies a custom rule to arrays of any `T: Real`; under an engine the rule becomes one node.
pub fn apply<T: Real, R: Rule>(rule: &R, inputs: &[ArrayViewD<'_, T>]) -> Vec<ArrayD<T>> {
    T::apply_rule(rule, inputs)
}

/// A function applied to the cotangent flowing back through [`Real::hook`].
///
/// ```
/// use difi_core::{Hook, Real};
/// #[derive(Clone)]
/// struct Clip(f64);
/// impl Hook for Clip {
///     fn cotangent<T: Real>(&self, ct: T) -> T {
///         ct.max(T::constant(-self.0)).min(T::constant(self.0))
///     }
/// }
/// assert_eq!(3.0_f64.hook(Clip(1.0)), 3.0); // identity in the forward pass
/// ```
pub trait Hook: Clone + Send + Sync + 'static {
    /// The cotangent to propagate instead of `ct`.
    fn cotangent<T: Real>(&self, ct: T) -> T;
}

/// A segment of computation that an engine may recompute in reverse instead of storing.
///
/// ```
/// use difi_core::{checkpoint, Real, Segment};
/// #[derive(Clone)]
/// struct Square;
/// impl Segment for Square {
///     fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
///         x.iter().map(|&v| v * v).collect()
///     }
/// }
/// assert_eq!(checkpoint(&Square, &[3.0_f64]), vec![9.0]);
/// ```
pub trait Segment: Clone + Send + Sync + 'static {
    /// The segment's outputs at `inputs`.
    fn eval<T: Real>(&self, inputs: &[T]) -> Vec<T>;

    /// Whether `other` computes the same function as `self`: at the same inputs, the same
    /// outputs by the same operations (a loop of equal steps, as an ODE solver's). Then a
    /// reverse engine may record the segment once and replay that recording to recompute
    /// `other`, instead of recording each: the tape does, recording anew where a comparison
    /// goes the other way at the new inputs. The default, `false`, is always right.
    ///
    /// ```
    /// use difi_core::{Real, Segment};
    /// #[derive(Clone, PartialEq)]
    /// struct Decay { rate: f64 }
    /// impl Segment for Decay {
    ///     fn eval<T: Real>(&self, x: &[T]) -> Vec<T> {
    ///         x.iter().map(|&v| v * T::constant(1.0 - self.rate)).collect()
    ///     }
    ///     fn same_as(&self, other: &Self) -> bool {
    ///         self == other
    ///     }
    /// }
    /// assert!(Decay { rate: 0.1 }.same_as(&Decay { rate: 0.1 }));
    /// ```
    fn same_as(&self, other: &Self) -> bool {
        let _ = other;
        false
    }
}

/// A scalar function of `N` scalars, applied element by element by [`crate::sum_map`] and
/// [`crate::map`].
///
/// It is generic over the scalar so that an engine can evaluate it at other types: reverse
/// engines run it on [`crate::Dual`] numbers with one tangent lane per active operand, element
/// by element, and record the whole map as one node instead of one node per operation per
/// element. Arrays the function reads go in as operands (a constant operand gets no lane);
/// fields hold plain parameters, which a replaying engine keeps from the recording.
///
/// ```
/// use difi_core::{sum_map, Elementwise, Real};
/// use ndarray::ArrayView1;
///
/// /// One term of the extended Rosenbrock function.
/// #[derive(Clone)]
/// struct RosenbrockTerm;
/// impl Elementwise<2> for RosenbrockTerm {
///     fn eval<T: Real>(&self, [a, b]: [T; 2]) -> T {
///         let (u, v) = (T::constant(1.0) - a, b - a * a);
///         u * u + T::constant(100.0) * v * v
///     }
/// }
/// let x = [1.0_f64, 2.0, 3.0];
/// let terms = [ArrayView1::from(&x[..2]), ArrayView1::from(&x[1..])];
/// // (1 − 1)² + 100 (2 − 1)² and (1 − 2)² + 100 (3 − 4)²
/// assert_eq!(sum_map(&RosenbrockTerm, terms), 100.0 + 101.0);
/// ```
pub trait Elementwise<const N: usize>: Clone + Send + Sync + 'static {
    /// The function at one element of each operand.
    fn eval<T: Real>(&self, x: [T; N]) -> T;

    /// The value at `x` and the partial derivatives the mask `needed` asks for (the others are
    /// zero). Reverse engines call it for every element of a [`crate::sum_map`] or
    /// [`crate::map`], asking only for the operands that are active, as custom rules are asked
    /// only for needed cotangents.
    ///
    /// The default runs [`Elementwise::eval`] in forward mode on [`crate::Dual`] numbers with
    /// one lane per needed argument when at most three are needed, `N` lanes otherwise;
    /// arguments not needed are never seeded. Override it with a hand-written gradient where
    /// that is cheaper.
    // Always inlined: engines call it once per element, and a call per element costs more than
    // the small functions it is made for (Rosenbrock's gradient 5.0 -> 7.5 µs out of line).
    #[inline(always)]
    fn value_and_gradient<T: Real>(&self, x: [T; N], needed: [bool; N]) -> (T, [T; N]) {
        match needed.iter().filter(|&&n| n).count() {
            0 => (self.eval(x), [T::zero(); N]),
            1 => in_lanes::<T, N, 1, _>(self, x, needed),
            2 => in_lanes::<T, N, 2, _>(self, x, needed),
            3 => in_lanes::<T, N, 3, _>(self, x, needed),
            _ => in_lanes::<T, N, N, _>(self, x, needed),
        }
    }
}

/// `f` on duals with `K` lanes, lane `j` seeded on the `j`-th needed argument (`K` at least
/// their number); the partials scattered back to the arguments, zero where not needed.
#[inline(always)]
fn in_lanes<T: Real, const N: usize, const K: usize, F: Elementwise<N>>(
    f: &F,
    x: [T; N],
    needed: [bool; N],
) -> (T, [T; N]) {
    let mut lane_of = [None; N];
    let mut lanes = 0;
    for (k, &n) in needed.iter().enumerate() {
        if n {
            lane_of[k] = Some(lanes);
            lanes += 1;
        }
    }
    let duals = std::array::from_fn(|k| match lane_of[k] {
        Some(j) => crate::Dual::seeded(
            x[k],
            std::array::from_fn(|i| if i == j { T::one() } else { T::zero() }),
        ),
        None => crate::Dual::constant_of(x[k]),
    });
    let y: crate::Dual<T, K> = f.eval(duals);
    (y.re, lane_of.map(|j| j.map_or(T::zero(), |j| y.eps[j])))
}

/// Evaluates `segment` at `inputs`, checkpointed under engines that support it.
pub fn checkpoint<T: Real, C: Segment>(segment: &C, inputs: &[T]) -> Vec<T> {
    T::checkpoint(segment, inputs)
}

/// Checks what a rule's pullback returned against its contract: one entry per input, `Some`
/// with the input's shape exactly where `needed`. Engines call it before using the cotangents,
/// so a rule that breaks its contract is an error instead of a wrong gradient.
pub fn check_pullback<T: Real>(
    rule: &'static str,
    result: &[Option<ArrayD<T>>],
    needed: &[bool],
    input_shapes: &[Vec<usize>],
) -> crate::Result<()> {
    let contract = |message: String| crate::Error::RuleContract { rule, message };
    if result.len() != needed.len() {
        return Err(contract(format!(
            "pullback returned {} cotangents for {} inputs",
            result.len(),
            needed.len()
        )));
    }
    for (i, (ct, &n)) in result.iter().zip(needed).enumerate() {
        match (n, ct) {
            (true, Some(ct)) if ct.shape() != input_shapes[i].as_slice() => {
                return Err(contract(format!(
                    "cotangent {i} has shape {:?} but input {i} has shape {:?}",
                    ct.shape(),
                    input_shapes[i]
                )))
            }
            (true, None) => {
                return Err(contract(format!(
                    "input {i} needs a cotangent but the pullback returned None"
                )))
            }
            (false, Some(_)) => {
                return Err(contract(format!(
                    "input {i} is constant (not needed) but the pullback computed a cotangent"
                )))
            }
            _ => {}
        }
    }
    Ok(())
}
