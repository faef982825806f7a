//! ba: ADBench's bundle adjustment (reprojection residuals and weight residuals), its file reader,
//! and the sparse Jacobian, one observation's 2 × 15 block at a time.

use std::path::Path;

use difi_core::{Active, Backend, Const, Real};

/// Parameters per camera: `[r(3), C(3), f, u0, v0, k1, k2]`.
pub const CAM_PARAMS: usize = 11;

/// Nonzeros per reprojection row of the Jacobian: 11 camera, 3 point, 1 weight.
pub const BLOCK_COLS: usize = CAM_PARAMS + 3 + 1;

/// One ba problem: `n` cameras, `m` points, `p` observations.
#[derive(Clone, Debug)]
pub struct BaInput {
    /// Cameras.
    pub n: usize,
    /// Points.
    pub m: usize,
    /// Observations.
    pub p: usize,
    /// Cameras, `n × 11` row-major.
    pub cams: Vec<f64>,
    /// Points, `m × 3` row-major.
    pub x: Vec<f64>,
    /// One weight per observation, `p`.
    pub w: Vec<f64>,
    /// One feature (measured image point) per observation, `p × 2`.
    pub feats: Vec<f64>,
    /// Camera and point index per observation, `p`.
    pub obs: Vec<(usize, usize)>,
}

impl BaInput {
    /// Reads ADBench's format: `n m p`, then one camera (11 numbers), one point (3), one
    /// weight and one feature (2), replicated as [`BaInput::replicate`] does.
    pub fn read(path: &Path) -> Result<BaInput, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        BaInput::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses ADBench's format from text.
    pub fn parse(text: &str) -> Result<BaInput, String> {
        let mut tokens = text.split_whitespace();
        let mut count = |what: &str| -> Result<usize, String> {
            tokens
                .next()
                .ok_or(format!("ba file ends before {what}"))?
                .parse::<usize>()
                .map_err(|e| format!("ba file: {what} must be a non-negative integer: {e}"))
        };
        let (n, m, p) = (count("n")?, count("m")?, count("p")?);
        let mut next = |what: &str| -> Result<f64, String> {
            tokens
                .next()
                .ok_or(format!("ba file ends before {what}"))?
                .parse::<f64>()
                .map_err(|e| format!("ba file: {what}: {e}"))
        };
        let mut take =
            |k: usize, what: &str| (0..k).map(|_| next(what)).collect::<Result<Vec<_>, _>>();
        let cam = take(CAM_PARAMS, "the camera")?;
        let x = take(3, "the point")?;
        let w = take(1, "the weight")?[0];
        let feat = take(2, "the feature")?;
        if let Some(extra) = tokens.next() {
            return Err(format!(
                "ba file: unexpected `{extra}` after the feature (the file holds n m p, 11 camera \
                 parameters, 3 point coordinates, 1 weight and 2 feature coordinates)"
            ));
        }
        BaInput::replicate(n, m, p, &cam, &x, w, &feat)
    }

    /// The problem ADBench and GradBench build from one camera, point, weight and feature:
    /// each replicated `n`, `m`, `p` and `p` times; observation `i` sees camera `i mod n` and
    /// point `i mod m`.
    pub fn replicate(
        n: usize,
        m: usize,
        p: usize,
        cam: &[f64],
        x: &[f64],
        w: f64,
        feat: &[f64],
    ) -> Result<BaInput, String> {
        if n == 0 || m == 0 || p == 0 {
            return Err(format!(
                "ba: n, m and p must be at least 1 (got n = {n}, m = {m}, p = {p})"
            ));
        }
        if cam.len() != CAM_PARAMS || x.len() != 3 || feat.len() != 2 {
            return Err(format!(
                "ba: cam must have 11 numbers, x 3 and feat 2 (got {}, {} and {})",
                cam.len(),
                x.len(),
                feat.len()
            ));
        }
        Ok(BaInput {
            n,
            m,
            p,
            cams: cam.repeat(n),
            x: x.repeat(m),
            w: vec![w; p],
            feats: feat.repeat(p),
            obs: (0..p).map(|i| (i % n, i % m)).collect(),
        })
    }

    /// Checks that the arrays have the lengths `n`, `m`, `p` ask for and that every observation
    /// names an existing camera and point.
    pub fn check(&self) -> Result<(), String> {
        let (n, m, p) = (self.n, self.m, self.p);
        if self.cams.len() != CAM_PARAMS * n
            || self.x.len() != 3 * m
            || self.w.len() != p
            || self.feats.len() != 2 * p
            || self.obs.len() != p
        {
            return Err(format!(
                "ba: with n = {n}, m = {m}, p = {p} the arrays must have lengths cams {}, x {}, \
                 w {p}, feats {}, obs {p} (got {}, {}, {}, {}, {})",
                CAM_PARAMS * n,
                3 * m,
                2 * p,
                self.cams.len(),
                self.x.len(),
                self.w.len(),
                self.feats.len(),
                self.obs.len()
            ));
        }
        if let Some((i, &(c, pt))) = self
            .obs
            .iter()
            .enumerate()
            .find(|(_, &(c, pt))| c >= n || pt >= m)
        {
            return Err(format!(
                "ba: observation {i} names camera {c} and point {pt}, but there are {n} cameras \
                 and {m} points"
            ));
        }
        Ok(())
    }

    /// Observation `i`'s camera (11), point (3), weight and feature (2).
    pub fn observation(&self, i: usize) -> (&[f64], &[f64], f64, &[f64]) {
        let (c, pt) = self.obs[i];
        (
            &self.cams[c * CAM_PARAMS..(c + 1) * CAM_PARAMS],
            &self.x[pt * 3..pt * 3 + 3],
            self.w[i],
            &self.feats[2 * i..2 * i + 2],
        )
    }
}

fn cross<T: Real>(a: &[T], b: &[T]) -> [T; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Rotates `pt` by the angle-axis vector `rot` (Rodrigues' formula); at `rot = 0` exactly,
/// the first-order form `pt + rot × pt`, as ADBench does.
pub fn rodrigues_rotate_point<T: Real>(rot: &[T], pt: &[T]) -> [T; 3] {
    let sqtheta = rot[0] * rot[0] + rot[1] * rot[1] + rot[2] * rot[2];
    if sqtheta != T::zero() {
        let theta = sqtheta.sqrt();
        let (costheta, sintheta) = (theta.cos(), theta.sin());
        let theta_inverse = T::one() / theta;
        let v = [
            rot[0] * theta_inverse,
            rot[1] * theta_inverse,
            rot[2] * theta_inverse,
        ];
        let v_cross_pt = cross(&v, pt);
        let tmp = (v[0] * pt[0] + v[1] * pt[1] + v[2] * pt[2]) * (T::one() - costheta);
        std::array::from_fn(|k| pt[k] * costheta + v_cross_pt[k] * sintheta + v[k] * tmp)
    } else {
        let rot_cross_pt = cross(rot, pt);
        std::array::from_fn(|k| pt[k] + rot_cross_pt[k])
    }
}

/// The projection of point `x` (3) by camera `cam` (11): Rodrigues rotation of `x − C`,
/// perspective division, radial distortion `1 + k1 |p|² + k2 |p|⁴`, focal length and principal
/// point.
pub fn ba_project<T: Real>(cam: &[T], x: &[T]) -> [T; 2] {
    let xo = [x[0] - cam[3], x[1] - cam[4], x[2] - cam[5]];
    let xc = rodrigues_rotate_point(&cam[0..3], &xo);
    let p = [xc[0] / xc[2], xc[1] / xc[2]];
    let rsq = p[0] * p[0] + p[1] * p[1];
    let l = T::one() + cam[9] * rsq + cam[10] * rsq * rsq;
    [p[0] * l * cam[6] + cam[7], p[1] * l * cam[6] + cam[8]]
}

/// One observation's reprojection residual `w (proj(cam, x) − feat)` (2 values).
pub fn ba_reprojection<T: Real>(cam: &[T], x: &[T], w: T, feat: &[T]) -> [T; 2] {
    let proj = ba_project(cam, x);
    [w * (proj[0] - feat[0]), w * (proj[1] - feat[1])]
}

/// One weight residual `1 − w²`.
pub fn w_err<T: Real>(w: T) -> T {
    T::one() - w * w
}

/// The primal: all reprojection residuals (`2p`, observation by observation) and all weight
/// residuals (`p`).
///
/// # Panics
///
/// If `input` fails [`BaInput::check`].
pub fn ba_objective(input: &BaInput) -> (Vec<f64>, Vec<f64>) {
    let (mut reproj, mut w_err) = (Vec::new(), Vec::new());
    ba_objective_into(input, &mut reproj, &mut w_err);
    (reproj, w_err)
}

/// [`ba_objective`] written into `reproj` and `w_err`, which are cleared first and keep their
/// capacity: a harness that evaluates many times allocates once, as ADBench's does.
///
/// ```
/// use difi_benches::ba::{ba_objective, ba_objective_into, BaInput};
///
/// let input = BaInput::parse("1 1 2\n1 0 0 0 0 0 1 0 0 0 0\n0 0 5\n1\n0.1 0.2")?;
/// let (mut reproj, mut w_err) = (Vec::new(), Vec::new());
/// ba_objective_into(&input, &mut reproj, &mut w_err);
/// assert_eq!((reproj, w_err), ba_objective(&input));
/// # Ok::<(), String>(())
/// ```
///
/// # Panics
///
/// If `input` fails [`BaInput::check`].
pub fn ba_objective_into(input: &BaInput, reproj: &mut Vec<f64>, w_err_out: &mut Vec<f64>) {
    if let Err(e) = input.check() {
        panic!("{e}");
    }
    reproj.clear();
    reproj.reserve(2 * input.p);
    for i in 0..input.p {
        let (cam, x, w, feat) = input.observation(i);
        reproj.extend(ba_reprojection(cam, x, w, feat));
    }
    w_err_out.clear();
    w_err_out.extend(input.w.iter().map(|&w| w_err(w)));
}

/// The Jacobian of `(reproj, w_err)` with respect to `(cams, x, w)` in compressed sparse rows,
/// in ADBench's layout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BaJacobian {
    /// Rows: `3p` (two reprojection rows per observation, then one weight row per observation).
    pub nrows: usize,
    /// Columns: `11n + 3m + p`.
    pub ncols: usize,
    /// Row pointers, `nrows + 1`: row `r` holds entries `rows[r]..rows[r + 1]`.
    pub rows: Vec<usize>,
    /// Column of each entry.
    pub cols: Vec<usize>,
    /// Value of each entry.
    pub vals: Vec<f64>,
}

impl BaJacobian {
    /// The entry at (`row`, `col`), zero when not stored.
    pub fn get(&self, row: usize, col: usize) -> f64 {
        (self.rows[row]..self.rows[row + 1])
            .find(|&k| self.cols[k] == col)
            .map_or(0.0, |k| self.vals[k])
    }
}

/// The sparse Jacobian of the ba residuals on `backend`.
///
/// Each observation's 2 × 15 block (camera, point, weight) is the Jacobian at one argument set
/// of [`Backend::jacobian_batch`] (the 15 local inputs, the feature constant); the blocks are
/// computed separately even though ADBench's inputs repeat one camera and point. For observation `i` with camera `c` and point
/// `q`, rows `2i` and `2i + 1` hold columns `11c..11c + 11`, `11n + 3q..11n + 3q + 3` and
/// `11n + 3m + i`, in that order; row `2p + i` holds column `11n + 3m + i` with value `−2 w_i`
/// (analytic, as ADBench does).
///
/// # Panics
///
/// If `input` fails [`BaInput::check`].
pub fn ba_jacobian<B: Backend>(backend: &B, input: &BaInput) -> difi_core::Result<BaJacobian> {
    let mut jac = BaJacobian::default();
    ba_jacobian_into(backend, input, &mut jac)?;
    Ok(jac)
}

/// [`ba_jacobian`] written into `jac`, whose arrays are cleared first and keep their capacity: a
/// harness that evaluates many times allocates once, as ADBench's does. On an error `jac` is
/// left empty.
///
/// # Panics
///
/// If `input` fails [`BaInput::check`].
pub fn ba_jacobian_into<B: Backend>(
    backend: &B,
    input: &BaInput,
    jac: &mut BaJacobian,
) -> difi_core::Result<()> {
    if let Err(e) = input.check() {
        panic!("{e}");
    }
    let result = fill_jacobian(backend, input, jac);
    if result.is_err() {
        *jac = BaJacobian::default();
    }
    result
}

// Out of line: inlined into a large caller (`ratios`' main), the per-block loop's codegen
// followed unrelated code there, and ba's forward Jacobian moved between 10 and 12.6.
#[inline(never)]
fn fill_jacobian<B: Backend>(
    backend: &B,
    input: &BaInput,
    jac: &mut BaJacobian,
) -> difi_core::Result<()> {
    let (n, m, p) = (input.n, input.m, input.p);
    let (point_offset, weight_offset) = (CAM_PARAMS * n, CAM_PARAMS * n + 3 * m);
    let nnz = 2 * BLOCK_COLS * p + p;
    let BaJacobian {
        nrows,
        ncols,
        rows,
        cols,
        vals,
    } = jac;
    (*nrows, *ncols) = (3 * p, weight_offset + p);
    rows.clear();
    cols.clear();
    vals.clear();
    rows.reserve(3 * p + 1);
    cols.reserve(nnz);
    vals.reserve(nnz);
    rows.push(0);
    // Each observation is one argument set: its 15 local inputs, and its feature as a constant
    // (an argument, so an engine that replays one recording for all sets sees it change).
    let sets = (0..p).map(|i| {
        let (cam, x, w, feat) = input.observation(i);
        let mut local = [0.0_f64; BLOCK_COLS];
        local[..CAM_PARAMS].copy_from_slice(cam);
        local[CAM_PARAMS..CAM_PARAMS + 3].copy_from_slice(x);
        local[BLOCK_COLS - 1] = w;
        (Active(local), Const([feat[0], feat[1]]))
    });
    backend.jacobian_batch(
        |(v, feat): ([B::Tracer<f64>; BLOCK_COLS], [B::Tracer<f64>; 2])| {
            ba_reprojection(
                &v[..CAM_PARAMS],
                &v[CAM_PARAMS..CAM_PARAMS + 3],
                v[BLOCK_COLS - 1],
                &feat,
            )
        },
        sets,
        |i, _, block| {
            let (c, q) = input.obs[i];
            // A block row's columns are the camera's, the point's and the weight's, in the order
            // of the local inputs: the row is copied whole.
            for row in block.rows() {
                rows.push(rows[rows.len() - 1] + BLOCK_COLS);
                cols.extend(CAM_PARAMS * c..CAM_PARAMS * (c + 1));
                cols.extend(point_offset + 3 * q..point_offset + 3 * (q + 1));
                cols.push(weight_offset + i);
                match row.as_slice() {
                    Some(row) => vals.extend_from_slice(row),
                    None => vals.extend(row.iter()),
                }
            }
        },
    )?;
    for i in 0..p {
        rows.push(rows[rows.len() - 1] + 1);
        cols.push(weight_offset + i);
        vals.push(-2.0 * input.w[i]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use difi_closure::Closure;
    use difi_tape::Tape;

    fn test_file() -> BaInput {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/adbench/ba/test.txt");
        BaInput::read(&path).expect("the ADBench test file beside the repository")
    }

    /// A small problem with distinct cameras, points, weights and features (so a block computed
    /// for the wrong observation shows), one camera with `r = 0` (the other Rodrigues branch).
    fn small() -> BaInput {
        let base = test_file();
        let (n, m, p) = (3, 4, 5);
        let mut cams = base.cams[..CAM_PARAMS].repeat(n);
        for c in 0..n {
            for j in 0..CAM_PARAMS {
                cams[c * CAM_PARAMS + j] *= 1.0 + 0.01 * (c * CAM_PARAMS + j) as f64;
            }
        }
        cams[CAM_PARAMS..CAM_PARAMS + 3].copy_from_slice(&[0.0; 3]);
        let x = (0..3 * m)
            .map(|k| base.x[k % 3] + 0.3 * k as f64)
            .collect::<Vec<_>>();
        let w = (0..p).map(|i| 0.4 + 0.1 * i as f64).collect::<Vec<_>>();
        let feats = (0..2 * p)
            .map(|k| base.feats[k % 2] + 3.0 * k as f64)
            .collect::<Vec<_>>();
        let obs = vec![(0, 0), (1, 1), (2, 2), (0, 3), (1, 0)];
        let input = BaInput {
            n,
            m,
            p,
            cams,
            x,
            w,
            feats,
            obs,
        };
        input.check().unwrap();
        input
    }

    /// Central differences of one observation's residual over its 15 local inputs.
    fn fd_block(cam: &[f64], x: &[f64], w: f64, feat: &[f64]) -> [[f64; BLOCK_COLS]; 2] {
        let mut local = [0.0; BLOCK_COLS];
        local[..CAM_PARAMS].copy_from_slice(cam);
        local[CAM_PARAMS..CAM_PARAMS + 3].copy_from_slice(x);
        local[BLOCK_COLS - 1] = w;
        let f = |v: &[f64; BLOCK_COLS]| {
            ba_reprojection(
                &v[..CAM_PARAMS],
                &v[CAM_PARAMS..CAM_PARAMS + 3],
                v[BLOCK_COLS - 1],
                feat,
            )
        };
        let mut out = [[0.0; BLOCK_COLS]; 2];
        for j in 0..BLOCK_COLS {
            let h = 1e-6 * local[j].abs().max(1.0);
            let (mut plus, mut minus) = (local, local);
            plus[j] += h;
            minus[j] -= h;
            let (fp, fm) = (f(&plus), f(&minus));
            for r in 0..2 {
                out[r][j] = (fp[r] - fm[r]) / (2.0 * h);
            }
        }
        out
    }

    fn assert_matches_fd(jac: &BaJacobian, input: &BaInput) {
        for i in 0..input.p {
            let (cam, x, w, feat) = input.observation(i);
            let want = fd_block(cam, x, w, feat);
            for (r, want) in want.iter().enumerate() {
                let row = 2 * i + r;
                let got = &jac.vals[jac.rows[row]..jac.rows[row + 1]];
                assert_eq!(got.len(), BLOCK_COLS);
                for (j, (a, b)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                        "observation {i}, row {r}, local column {j}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn reads_the_adbench_test_file() {
        let input = test_file();
        assert_eq!((input.n, input.m, input.p), (2, 10, 10));
        assert_eq!(input.cams.len(), 22);
        assert_eq!(input.cams[0], 1.797201);
        assert_eq!(input.cams[6], 211.628116);
        assert_eq!(input.cams[10], 0.069976);
        assert_eq!(input.cams[11..], input.cams[..11]);
        assert_eq!(&input.x[..3], &[4.173048, 5.586898, 1.403869]);
        assert_eq!(input.x.len(), 30);
        assert_eq!(input.w, vec![0.417022; 10]);
        assert_eq!(&input.feats[18..], &[-525.672849, 161.811929]);
        assert_eq!(input.obs[3], (1, 3));
        assert_eq!(input.obs[9], (1, 9));
        let (reproj, werr) = ba_objective(&input);
        assert_eq!((reproj.len(), werr.len()), (20, 10));
        assert!(reproj.iter().all(|v| v.is_finite()));
        assert!((werr[0] - (1.0 - 0.417022 * 0.417022)).abs() < 1e-15);
    }

    #[test]
    fn reads_the_first_adbench_size() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/adbench/ba/ba1_n49_m7776_p31843.txt");
        let input = BaInput::read(&path).expect("the ADBench data beside the repository");
        assert_eq!((input.n, input.m, input.p), (49, 7776, 31843));
        assert_eq!(input.obs[31842], (31842 % 49, 31842 % 7776));
        assert_eq!(&input.feats[..2], &[271.760969, 834.209256]);
    }

    #[test]
    fn malformed_files_are_refused_with_a_message() {
        let good = "2 10 10\n1 2 3 4 5 6 7 8 9 10 11\n1 2 3\n0.5\n1 2\n";
        assert!(BaInput::parse(good).is_ok());
        for (text, says) in [
            ("", "before n"),
            ("2 10", "before p"),
            ("2.5 10 10", "n must be"),
            (
                "2 10 10\n1 2 3 4 5 6 7 8 9 10 11\n1 2 3\n0.5\n1",
                "before the feature",
            ),
            (
                "2 10 10\n1 2 3 x 5 6 7 8 9 10 11\n1 2 3\n0.5\n1 2",
                "the camera",
            ),
            (
                "2 10 10\n1 2 3 4 5 6 7 8 9 10 11\n1 2 3\n0.5\n1 2 3",
                "unexpected `3`",
            ),
            (
                "0 10 10\n1 2 3 4 5 6 7 8 9 10 11\n1 2 3\n0.5\n1 2",
                "at least 1",
            ),
        ] {
            let err = BaInput::parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
        let err = BaInput::read(Path::new("/nonexistent/ba.txt")).unwrap_err();
        assert!(err.contains("/nonexistent/ba.txt"), "{err}");
        let mut bad = small();
        bad.obs[2] = (3, 0);
        assert!(bad.check().unwrap_err().contains("observation 2"));
    }

    #[test]
    fn residual_at_zero_rotation_by_hand() {
        // r = 0, C = 0: Xc = X = (1, 2, 4), p = (1/4, 1/2), |p|² = 5/16.
        let (f, u0, v0, k1, k2) = (2.0, 0.5, -1.0, 0.125, 0.0625);
        let cam = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, f, u0, v0, k1, k2];
        let (x, w, feat) = ([1.0, 2.0, 4.0], 0.5, [1.0_f64, 0.0]);
        let l = 1.0 + k1 * 0.3125 + k2 * 0.3125 * 0.3125;
        let want = [
            w * (0.25 * l * f + u0 - feat[0]),
            w * (0.5 * l * f + v0 - feat[1]),
        ];
        let got = ba_reprojection(&cam, &x, w, &feat);
        assert!((got[0] - want[0]).abs() < 1e-15 && (got[1] - want[1]).abs() < 1e-15);
        // The r = 0 branch: X − C rotated by nothing, then the cross term is zero too.
        let cam = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        let got = ba_reprojection(&cam, &[2.0, 3.0, 5.0], 1.0, &[0.0, 0.0]);
        assert_eq!(got, [0.25, 0.5]);
        assert_eq!(w_err(0.5), 0.75);
    }

    #[test]
    fn residual_at_a_quarter_turn_by_hand() {
        // r = (0, 0, π/2): a quarter turn about z maps (x, y, z) to (−y, x, z).
        let h = std::f64::consts::FRAC_PI_2;
        let (f, u0, v0) = (3.0, 0.25, 0.5);
        let cam = [0.0, 0.0, h, 1.0, 0.0, 0.0, f, u0, v0, 0.0, 0.0];
        let (x, w, feat) = ([2.0, 2.0, 4.0], 2.0, [0.1, 0.2]);
        // X − C = (1, 2, 4) → (−2, 1, 4), p = (−1/2, 1/4).
        let want = [w * (-0.5 * f + u0 - feat[0]), w * (0.25 * f + v0 - feat[1])];
        let got = ba_reprojection(&cam, &x, w, &feat);
        assert!((got[0] - want[0]).abs() < 1e-14 && (got[1] - want[1]).abs() < 1e-14);
        // Rodrigues against the rotation matrix I + sin θ K + (1 − cos θ) K² for a general r.
        let r = [0.3_f64, -0.4, 1.2];
        let theta = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
        let k = [r[0] / theta, r[1] / theta, r[2] / theta];
        let km = [[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]];
        let pt = [0.7, -1.1, 2.3];
        let rotated = rodrigues_rotate_point(&r, &pt);
        for a in 0..3 {
            let mut want = pt[a];
            for b in 0..3 {
                let k2 = (0..3).map(|c| km[a][c] * km[c][b]).sum::<f64>();
                want += (theta.sin() * km[a][b] + (1.0 - theta.cos()) * k2) * pt[b];
            }
            assert!((rotated[a] - want).abs() < 1e-14, "{rotated:?}");
        }
    }

    #[test]
    fn tape_jacobian_matches_finite_differences() {
        let input = small();
        let jac = ba_jacobian(&Tape::new(), &input).unwrap();
        assert_matches_fd(&jac, &input);
        let file = test_file();
        assert_matches_fd(&ba_jacobian(&Tape::new(), &file).unwrap(), &file);
    }

    fn assert_matches_the_tape(jac: &BaJacobian, input: &BaInput) {
        let tape = ba_jacobian(&Tape::new(), input).unwrap();
        assert_eq!((&jac.rows, &jac.cols), (&tape.rows, &tape.cols));
        for (a, b) in jac.vals.iter().zip(&tape.vals) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn closure_jacobian_matches_finite_differences_and_the_tape() {
        let input = small();
        let jac = ba_jacobian(&Closure::default(), &input).unwrap();
        assert_matches_fd(&jac, &input);
        assert_matches_the_tape(&jac, &input);
    }

    #[test]
    fn forward_jacobian_matches_finite_differences_and_the_tape() {
        // 15 lanes: each 2 × 15 block in one forward pass; 16 (as `ratios` times it): one pass
        // with a lane unused.
        let input = small();
        let jac = ba_jacobian(&difi_forward::Forward::<15>, &input).unwrap();
        assert_matches_fd(&jac, &input);
        assert_matches_the_tape(&jac, &input);
        let jac = ba_jacobian(&difi_forward::Forward::<16>, &input).unwrap();
        assert_matches_the_tape(&jac, &input);
    }

    #[test]
    fn into_forms_overwrite_what_their_outputs_held() {
        let (small, file) = (small(), test_file());
        let mut jac = ba_jacobian(&Tape::new(), &file).unwrap();
        let (mut reproj, mut w_err) = ba_objective(&file);
        assert_ne!(
            jac.vals.len(),
            ba_jacobian(&Tape::new(), &small).unwrap().vals.len()
        );
        ba_jacobian_into(&Tape::new(), &small, &mut jac).unwrap();
        assert_eq!(jac, ba_jacobian(&Tape::new(), &small).unwrap());
        ba_objective_into(&small, &mut reproj, &mut w_err);
        assert_eq!((reproj, w_err), ba_objective(&small));
    }

    #[test]
    fn jacobian_has_adbench_sparse_layout() {
        let input = small();
        let (n, m, p) = (input.n, input.m, input.p);
        let jac = ba_jacobian(&Tape::new(), &input).unwrap();
        assert_eq!((jac.nrows, jac.ncols), (3 * p, 11 * n + 3 * m + p));
        let want_rows: Vec<usize> = (0..=2 * p)
            .map(|r| 15 * r)
            .chain((1..=p).map(|i| 30 * p + i))
            .collect();
        assert_eq!(jac.rows, want_rows);
        assert_eq!(&jac.rows[..4], &[0, 15, 30, 45]);
        assert_eq!((jac.cols.len(), jac.vals.len()), (31 * p, 31 * p));
        for i in 0..p {
            let (c, q) = input.obs[i];
            let want: Vec<usize> = (0..11)
                .map(|j| 11 * c + j)
                .chain((0..3).map(|j| 11 * n + 3 * q + j))
                .chain([11 * n + 3 * m + i])
                .collect();
            for r in [2 * i, 2 * i + 1] {
                assert_eq!(&jac.cols[jac.rows[r]..jac.rows[r + 1]], &want[..]);
            }
            // The weight column of a reprojection row is the residual divided by w.
            let (cam, x, w, feat) = input.observation(i);
            let res = ba_reprojection(cam, x, w, feat);
            assert!((jac.get(2 * i, want[14]) - res[0] / w).abs() < 1e-10);
            // Weight rows: one entry, −2 w_i.
            let r = 2 * p + i;
            assert_eq!(jac.rows[r + 1] - jac.rows[r], 1);
            assert_eq!(jac.cols[jac.rows[r]], 11 * n + 3 * m + i);
            assert_eq!(jac.vals[jac.rows[r]], -2.0 * input.w[i]);
        }
        assert_eq!(jac.get(0, 11 * n + 3 * m + 1), 0.0);
    }
}
