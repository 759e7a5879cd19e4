//! 2-D max pooling on flex, PyTorch's `max_pool2d`: implicit −∞ padding, dilation, `ceil_mode`;
//! within a window a tie goes to the first maximum in row-major order and a NaN wins (PyTorch's
//! CPU rule, `val > max || isnan(val)`). Planes (sample, channel) run in parallel; an output row
//! is the running maximum over the window's input rows and columns, a column loop at a time (no
//! index arithmetic per element). Under autodiff the forward also keeps each output's argmax (its
//! index in the input plane) and the backward adds the output gradient there.
//!
//! burn-flex's own max pool runs a scalar 3-D loop that tracks indices even for inference
//! (12.6 % of a CN-vMF inference step's profile, docs/benchmarks.md).

use burn::backend::flex::FlexTensor;
use rayon::prelude::*;

use super::{Real, contiguous, dims, elements, from_vec, with_real};

/// A max pool's window: kernel, stride, padding and dilation as (height, width), and
/// `ceil_mode` (the output size rounded up, PyTorch's rule that a last window must start inside
/// the input or its left padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
}

impl Pool2d {
    /// The output's `[height, width]` for an input plane of `[height, width]`, by PyTorch's
    /// arithmetic (`pooling_output_shape`): in ceil mode a last window may hang over the
    /// input's end, as long as it starts inside the input or its left padding.
    ///
    /// # Panics
    /// On an empty plane, a zero kernel, stride or dilation, padding above half the kernel, or
    /// an output of no rows or columns (PyTorch's conditions).
    pub fn output_size(&self, input: [usize; 2]) -> [usize; 2] {
        std::array::from_fn(|a| {
            let (k, s, p, d) = (
                self.kernel[a],
                self.stride[a],
                self.padding[a],
                self.dilation[a],
            );
            assert!(
                input[a] > 0 && k > 0 && s > 0 && d > 0 && p <= k / 2,
                "max pool of a {input:?} plane: kernel {:?}, stride {:?}, dilation {:?} must be positive and padding {:?} at most half the kernel",
                self.kernel,
                self.stride,
                self.dilation,
                self.padding
            );
            let [n, k, s, p, d] = [input[a], k, s, p, d].map(|v| v as i64);
            let round_up = if self.ceil_mode { s - 1 } else { 0 };
            let mut out = (n + 2 * p - d * (k - 1) - 1 + round_up).div_euclid(s) + 1;
            if self.ceil_mode && (out - 1) * s >= n + p {
                out -= 1;
            }
            assert!(
                out >= 1,
                "max pool: input {input:?} padded by {:?} is smaller than the dilated kernel {:?} (dilation {:?})",
                self.padding,
                self.kernel,
                self.dilation
            );
            out as usize
        })
    }
}

/// Where one axis' windows read: for each kernel tap, the outputs whose tap lands inside the
/// input (`lo..hi`) and the input index of output 0's tap (`offset`, may be negative).
struct Axis {
    taps: Vec<(usize, usize, isize)>,
    stride: usize,
}

impl Axis {
    fn new(input: usize, output: usize, k: usize, s: usize, p: usize, d: usize) -> Self {
        let taps = (0..k)
            .map(|t| {
                let offset = (t * d) as isize - p as isize;
                let inside = |o: usize| {
                    let i = (o * s) as isize + offset;
                    i >= 0 && (i as usize) < input
                };
                let lo = (0..output).find(|&o| inside(o)).unwrap_or(output);
                let hi = (lo..output).find(|&o| !inside(o)).unwrap_or(output);
                (lo, hi, offset)
            })
            .collect();
        Self { taps, stride: s }
    }

    /// The input index of output `o`'s tap with this offset (the caller checked it is inside).
    fn at(&self, o: usize, offset: isize) -> usize {
        ((o * self.stride) as isize + offset) as usize
    }
}

/// The two axes of a pool over `[h, w]` planes and the output plane's size.
fn axes(pool: &Pool2d, [h, w]: [usize; 2]) -> ([Axis; 2], [usize; 2]) {
    let [oh, ow] = pool.output_size([h, w]);
    let axis = |a: usize, input: usize, output: usize| {
        Axis::new(
            input,
            output,
            pool.kernel[a],
            pool.stride[a],
            pool.padding[a],
            pool.dilation[a],
        )
    };
    ([axis(0, h, oh), axis(1, w, ow)], [oh, ow])
}

/// PyTorch's max: a larger value or a NaN replaces the running one (so a NaN stays).
#[inline(always)]
fn wins<T: Real>(value: T, max: T) -> bool {
    #[allow(clippy::eq_op)] // a NaN is the value unequal to itself
    let nan = value != value;
    value > max || nan
}

/// One plane's pooled values, `[oh, ow]` from a plane of width `w` (with `argmax`: also each
/// output's index in the plane).
fn pool_plane<T: Real>(
    [rows, cols]: &[Axis; 2],
    w: usize,
    ow: usize,
    x: &[T],
    y: &mut [T],
    mut argmax: Option<&mut [u32]>,
) {
    for (o, out) in y.chunks_mut(ow).enumerate() {
        out.fill(T::of(f64::NEG_INFINITY));
        let mut indices = argmax.as_deref_mut().map(|a| &mut a[o * ow..(o + 1) * ow]);
        let mut started = false;
        for &(lo, hi, row_offset) in &rows.taps {
            if !(lo..hi).contains(&o) {
                continue;
            }
            let r = rows.at(o, row_offset);
            let input = &x[r * w..(r + 1) * w];
            // The input columns of the outputs `lo..hi` for one column tap.
            let taps = cols
                .taps
                .iter()
                .filter(|t| t.0 < t.1)
                .map(|&(lo, hi, offset)| {
                    let column = input[cols.at(lo, offset)..].iter().step_by(cols.stride);
                    (lo, hi, cols.at(lo, offset), column)
                });
            match indices.as_deref_mut() {
                None => {
                    for (lo, hi, _, column) in taps {
                        for (max, &v) in out[lo..hi].iter_mut().zip(column) {
                            // Selects, not branches: which element wins is data, not pattern.
                            *max = if wins(v, *max) { v } else { *max };
                        }
                    }
                }
                Some(indices) => {
                    if !started {
                        // PyTorch starts a window's index at its first element inside the input
                        // (what a window of −∞ reports): the first tap written last. (A window
                        // with no element inside, possible only with a dilation wider than the
                        // plane, keeps index 0 and −∞: its gradient goes nowhere that matters.)
                        for &(lo, hi, offset) in cols.taps.iter().rev() {
                            for (c, index) in indices.iter_mut().enumerate().take(hi).skip(lo) {
                                *index = (r * w + cols.at(c, offset)) as u32;
                            }
                        }
                        started = true;
                    }
                    for (lo, hi, first, column) in taps {
                        let maxima = out[lo..hi].iter_mut().zip(&mut indices[lo..hi]);
                        let mut at = (r * w + first) as u32;
                        for ((max, index), &v) in maxima.zip(column) {
                            let better = wins(v, *max);
                            *max = if better { v } else { *max };
                            *index = if better { at } else { *index };
                            at = at.wrapping_add(cols.stride as u32);
                        }
                    }
                }
            }
        }
    }
}

/// `x [N, C, H, W]` max-pooled (values only: inference).
pub fn forward(x: &FlexTensor, pool: &Pool2d) -> FlexTensor {
    pooled(x, pool, false).0
}

/// `x [N, C, H, W]` max-pooled, with each output's argmax in its input plane (for
/// [`backward`]).
pub fn forward_with_argmax(x: &FlexTensor, pool: &Pool2d) -> (FlexTensor, Vec<u32>) {
    pooled(x, pool, true)
}

fn pooled(x: &FlexTensor, pool: &Pool2d, with_argmax: bool) -> (FlexTensor, Vec<u32>) {
    let [n, c, h, w] = dims::<4>(x);
    assert!(
        h * w <= u32::MAX as usize,
        "max pool: a plane of {h}×{w} has more elements than a u32 index reaches"
    );
    let (axes, [oh, ow]) = axes(pool, [h, w]);
    let x = contiguous(x);
    let (plane_in, plane_out) = (h * w, oh * ow);
    let mut argmax = vec![0u32; if with_argmax { n * c * plane_out } else { 0 }];
    let output = with_real!(x.dtype(), T => {
        let xs = elements::<T>(&x);
        let mut y = vec![T::ZERO; n * c * plane_out];
        if plane_out > 0 {
            let planes = y.par_chunks_mut(plane_out).zip(xs.par_chunks(plane_in.max(1)));
            if with_argmax {
                planes
                    .zip(argmax.par_chunks_mut(plane_out))
                    .for_each(|((out, plane), indices)| {
                        pool_plane(&axes, w, ow, plane, out, Some(indices))
                    });
            } else {
                planes.for_each(|(out, plane)| pool_plane(&axes, w, ow, plane, out, None));
            }
        }
        from_vec(y, &[n, c, oh, ow])
    });
    (output, argmax)
}

/// The input gradient `[N, C, H, W]` (`input_shape`) of a max pool: each output's gradient
/// added at its argmax (overlapping windows add up).
pub fn backward(grad: &FlexTensor, argmax: &[u32], input_shape: [usize; 4]) -> FlexTensor {
    let [_, _, oh, ow] = dims::<4>(grad);
    let grad = contiguous(grad);
    let plane_in = input_shape[2] * input_shape[3];
    let plane_out = oh * ow;
    with_real!(grad.dtype(), T => {
        let gs = elements::<T>(&grad);
        let mut dx = vec![T::ZERO; input_shape.iter().product()];
        if plane_out > 0 && plane_in > 0 {
            dx.par_chunks_mut(plane_in)
                .zip(gs.par_chunks(plane_out).zip(argmax.par_chunks(plane_out)))
                .for_each(|(dx, (g, indices))| {
                    for (&g, &i) in g.iter().zip(indices) {
                        dx[i as usize] += g;
                    }
                });
        }
        from_vec(dx, &input_shape)
    })
}
