//! 2-D convolution on flex as im2col + `gemm`, forward and backward, NCHW throughout.
//!
//! Per image and channel group, the unfolded input `col [K, P]` (`K = C_in/g·kH·kW` rows, one per
//! kernel tap; `P` output pixels) turns the convolution into matrix products:
//!
//! * forward `Y_g = W_g · col` — `gemm` writes straight into the output (bias first, then
//!   accumulated onto);
//! * input gradient `dcol = W_gᵀ · dY_g`, folded back onto the input (col2im, adding contiguous
//!   runs), per image in parallel;
//! * weight gradient `dW_g += dY_g · colᵀ`, accumulated across the images of a thread into one
//!   contiguous `[C_out, K]` buffer, the threads' buffers summed at the end.
//!
//! A 1×1 convolution with stride 1 and no padding needs no `col`: the image is its own `[C, P]`
//! matrix. Large images are unfolded a band of output rows at a time so that `col` stays under
//! [`COL_BUDGET`] elements. With fewer images than threads, images run one after another and
//! `gemm` uses the threads instead.

use burn::{backend::flex::FlexTensor, tensor::ops::ConvOptions};
use gemm::Parallelism;
use rayon::prelude::*;

use std::mem::MaybeUninit;

use super::{Real, contiguous, dims, elements, from_vec, norm::sum, with_real, written};

/// The most elements an unfolded band holds (16 MiB of f32).
pub const COL_BUDGET: usize = 1 << 22;

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub out_height: usize,
    pub out_width: usize,
}

impl Geometry {
    /// The geometry of `x [N, C_in, H, W]` convolved with `weight [C_out, C_in/g, kH, kW]`.
    ///
    /// # Panics
    /// On channels that do not match the weight and groups, or a kernel larger than the padded
    /// input (burn's own convolution panics on these too).
    pub fn new(x: [usize; 4], weight: [usize; 4], options: &ConvOptions<2>) -> Self {
        let [batch, in_channels, height, width] = x;
        let [out_channels, per_group, kh, kw] = weight;
        let groups = options.groups;
        assert!(
            groups > 0 && per_group * groups == in_channels && out_channels.is_multiple_of(groups),
            "conv2d: input of {in_channels} channels, weight {weight:?} and {groups} groups do not match"
        );
        let out = |size: usize, axis: usize, k: usize| {
            let span = options.dilation[axis] * (k - 1) + 1;
            let padded = size + 2 * options.padding[axis];
            assert!(
                padded >= span,
                "conv2d: kernel span {span} exceeds the padded input {padded} on axis {axis}"
            );
            (padded - span) / options.stride[axis] + 1
        };
        Self {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel: [kh, kw],
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
            groups,
            out_height: out(height, 0, kh),
            out_width: out(width, 1, kw),
        }
    }

    fn group_in(&self) -> usize {
        self.in_channels / self.groups
    }

    fn group_out(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Rows of `col`: one per (input channel of a group, kernel tap).
    fn taps(&self) -> usize {
        self.group_in() * self.kernel[0] * self.kernel[1]
    }

    fn pixels(&self) -> usize {
        self.out_height * self.out_width
    }

    fn plane(&self) -> usize {
        self.height * self.width
    }

    /// A 1×1, stride-1, unpadded convolution: the input is its own `col`.
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Output rows per band: as many as fit [`COL_BUDGET`], at least one.
    fn band_rows(&self) -> usize {
        if self.pointwise() {
            return self.out_height.max(1);
        }
        (COL_BUDGET / (self.taps() * self.out_width).max(1)).clamp(1, self.out_height.max(1))
    }

    fn bands(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (rows, height) = (self.band_rows(), self.out_height);
        (0..height)
            .step_by(rows)
            .map(move |first| (first, (first + rows).min(height)))
    }

    fn col_len(&self) -> usize {
        if self.pointwise() {
            0
        } else {
            self.taps() * self.band_rows() * self.out_width
        }
    }

    /// Output columns `[lo, hi)` whose input column `ow·stride + offset` lies inside the image.
    fn valid_columns(&self, offset: isize) -> (usize, usize) {
        let (stride, width) = (self.stride[1] as isize, self.width as isize);
        let lo = if offset >= 0 {
            0
        } else {
            (-offset + stride - 1) / stride
        };
        let hi = if width - 1 - offset < 0 {
            0
        } else {
            ((width - 1 - offset) / stride + 1).min(self.out_width as isize)
        };
        (lo.min(hi) as usize, hi as usize)
    }

    /// Calls `visit(at, run)` for every (tap row, output row in the band): `at` indexes that
    /// row's first element in `col [K, band]`; `run` is where it reads the input, `None` when
    /// the input row lies in the padding.
    fn walk_taps(&self, (first, last): (usize, usize), mut visit: impl FnMut(usize, Option<Run>)) {
        let [kh, kw] = self.kernel;
        let band = (last - first) * self.out_width;
        for channel in 0..self.group_in() {
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = (channel * kh + ki) * kw + kj;
                    let offset = (kj * self.dilation[1]) as isize - self.padding[1] as isize;
                    let columns = self.valid_columns(offset);
                    for oh in first..last {
                        let at = row * band + (oh - first) * self.out_width;
                        let ih = (oh * self.stride[0] + ki * self.dilation[0]) as isize
                            - self.padding[0] as isize;
                        // A row in the padding, or one whose columns all fall in it (large
                        // dilation on a small image), reads nothing.
                        let inside = ih >= 0 && ih < self.height as isize && columns.0 < columns.1;
                        visit(
                            at,
                            inside.then(|| {
                                let input_row = channel * self.plane() + ih as usize * self.width;
                                Run {
                                    columns,
                                    start: (input_row as isize
                                        + (columns.0 * self.stride[1]) as isize
                                        + offset)
                                        as usize,
                                }
                            }),
                        );
                    }
                }
            }
        }
    }
}

/// Where one output row of one kernel tap reads the input: output columns `[lo, hi)` read input
/// elements `start`, `start + stride`, … (columns outside read the padding).
#[derive(Clone, Copy)]
struct Run {
    columns: (usize, usize),
    start: usize,
}

/// Unfolds the band `rows` of one image's channel group `x [C/g, H, W]` into `col [K, band]`.
fn im2col<T: Real>(geometry: &Geometry, x: &[T], rows: (usize, usize), col: &mut [T]) {
    let (stride, width) = (geometry.stride[1], geometry.out_width);
    geometry.walk_taps(rows, |at, run| {
        let out = &mut col[at..at + width];
        let Some(Run {
            columns: (lo, hi),
            start,
        }) = run
        else {
            out.fill(T::ZERO);
            return;
        };
        out[..lo].fill(T::ZERO);
        out[hi..].fill(T::ZERO);
        if stride == 1 {
            out[lo..hi].copy_from_slice(&x[start..start + (hi - lo)]);
        } else {
            for (k, o) in out[lo..hi].iter_mut().enumerate() {
                *o = x[start + k * stride];
            }
        }
    });
}

/// Adds the band `dcol [K, band]` back onto one image's channel-group gradient `dx [C/g, H, W]`.
fn col2im<T: Real>(geometry: &Geometry, dcol: &[T], rows: (usize, usize), dx: &mut [T]) {
    let stride = geometry.stride[1];
    geometry.walk_taps(rows, |at, run| {
        let Some(Run {
            columns: (lo, hi),
            start,
        }) = run
        else {
            return;
        };
        let from = &dcol[at + lo..at + hi];
        if stride == 1 {
            for (d, &g) in dx[start..start + (hi - lo)].iter_mut().zip(from) {
                *d += g;
            }
        } else {
            for (k, &g) in from.iter().enumerate() {
                dx[start + k * stride] += g;
            }
        }
    });
}

/// A raw pointer that rayon tasks may share: each task writes a disjoint range through it.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

/// `dst[m, n] (= dst +) lhs[m, k] · rhs[k, n]`, each operand given by (pointer, row stride, column
/// stride) in elements.
///
/// # Safety
/// Every pointer with its strides must address a valid matrix of the given size, and `dst`
/// must not overlap the others.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul<T: Real>(
    [m, n, k]: [usize; 3],
    dst: (*mut T, usize, usize),
    accumulate: bool,
    lhs: (*const T, usize, usize),
    rhs: (*const T, usize, usize),
    parallelism: Parallelism,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.2 as isize,
            dst.1 as isize,
            accumulate,
            lhs.0,
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0,
            rhs.2 as isize,
            rhs.1 as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Images in parallel (gemm serial in each), or — with fewer images than threads — one image at
/// a time with gemm using the threads.
fn images_in_parallel(batch: usize) -> bool {
    batch >= rayon::current_num_threads()
}

fn gemm_threads(images_parallel: bool) -> Parallelism {
    if images_parallel {
        Parallelism::None
    } else {
        Parallelism::Rayon(0)
    }
}

/// `x [N, C_in, H, W]`, `weight [C_out, C_in/g, kH, kW]`, `bias [C_out]` → `[N, C_out, H', W']`.
pub fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let geometry = Geometry::new(dims::<4>(x), dims::<4>(weight), options);
    let (x, weight) = (contiguous(x), contiguous(weight));
    let bias = bias.map(contiguous);
    let shape = [
        geometry.batch,
        geometry.out_channels,
        geometry.out_height,
        geometry.out_width,
    ];
    with_real!(x.dtype(), T => from_vec(
        forward_slices::<T>(&geometry, elements(&x), elements(&weight), bias.as_ref().map(elements)),
        &shape,
    ))
}

fn forward_slices<T: Real>(g: &Geometry, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let (pixels, taps) = (g.pixels(), g.taps());
    let (image_in, image_out) = (g.in_channels * g.plane(), g.out_channels * pixels);
    let len = g.batch * image_out;
    if len == 0 || image_in == 0 || taps == 0 {
        let mut out = vec![T::ZERO; len];
        if let Some(b) = bias.filter(|_| pixels > 0) {
            for (row, &v) in out.chunks_mut(pixels).zip(b.iter().cycle()) {
                row.fill(v);
            }
        }
        return out;
    }
    let one_image = |col: &mut Vec<T>, xn: &[T], yn: &mut [MaybeUninit<T>], threads| {
        if let Some(b) = bias {
            for (row, &v) in yn.chunks_mut(pixels).zip(b) {
                row.fill(MaybeUninit::new(v));
            }
        }
        for group in 0..g.groups {
            let xg = &xn[group * g.group_in() * g.plane()..][..g.group_in() * g.plane()];
            let wg = &w[group * g.group_out() * taps..];
            for (first, last) in g.bands() {
                let band = (last - first) * g.out_width;
                let rhs = if g.pointwise() {
                    (xg.as_ptr(), pixels, 1)
                } else {
                    im2col(g, xg, (first, last), col);
                    (col.as_ptr(), band, 1)
                };
                let dst = yn[group * g.group_out() * pixels + first * g.out_width..]
                    .as_mut_ptr()
                    .cast::<T>();
                // SAFETY: rows of `yn` (stride `pixels`) × the band's columns, `wg` [C_out/g, K],
                // `rhs` [K, band] — all inside their slices; gemm reads `dst` only when the
                // bias was written into it.
                unsafe {
                    matmul(
                        [g.group_out(), band, taps],
                        (dst, pixels, 1),
                        bias.is_some(),
                        (wg.as_ptr(), taps, 1),
                        rhs,
                        threads,
                    )
                }
            }
        }
    };
    // SAFETY: the groups' gemms write every output element of every image (the bands cover
    // the rows, the groups the channels).
    unsafe {
        written(len, |out| {
            if images_in_parallel(g.batch) {
                out.par_chunks_mut(image_out)
                    .zip(x.par_chunks(image_in))
                    .for_each_init(
                        || vec![T::ZERO; g.col_len()],
                        |col, (yn, xn)| one_image(col, xn, yn, gemm_threads(true)),
                    );
            } else {
                let mut col = vec![T::ZERO; g.col_len()];
                for (yn, xn) in out.chunks_mut(image_out).zip(x.chunks(image_in)) {
                    one_image(&mut col, xn, yn, gemm_threads(false));
                }
            }
        })
    }
}

/// The gradients a convolution's backward asked for.
pub struct ConvGrads {
    pub x: Option<FlexTensor>,
    pub weight: Option<FlexTensor>,
    pub bias: Option<FlexTensor>,
}

/// The gradients of [`forward`] with respect to the input, the weight and the bias, each only
/// when asked for, given the output gradient `grad [N, C_out, H', W']`.
pub fn backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    options: &ConvOptions<2>,
    [want_x, want_weight, want_bias]: [bool; 3],
) -> ConvGrads {
    let geometry = Geometry::new(dims::<4>(x), dims::<4>(weight), options);
    let x_shape = dims::<4>(x);
    let w_shape = dims::<4>(weight);
    let (x, weight, grad) = (contiguous(x), contiguous(weight), contiguous(grad));
    with_real!(x.dtype(), T => {
        let (xs, ws, dys) = (elements::<T>(&x), elements::<T>(&weight), elements::<T>(&grad));
        let (dx, dw) = backward_slices::<T>(&geometry, xs, ws, dys, want_x, want_weight);
        ConvGrads {
            x: dx.map(|v| from_vec(v, &x_shape)),
            weight: dw.map(|v| from_vec(v, &w_shape)),
            bias: want_bias.then(|| from_vec(bias_grad(&geometry, dys), &[geometry.out_channels])),
        }
    })
}

/// `Σ_{n, pixel} dY`, per output channel.
fn bias_grad<T: Real>(g: &Geometry, dy: &[T]) -> Vec<T> {
    let mut total = vec![T::ZERO; g.out_channels];
    if g.pixels() == 0 {
        return total;
    }
    let planes: Vec<T> = dy.par_chunks(g.pixels()).map(sum).collect();
    for image in planes.chunks(g.out_channels) {
        for (t, &v) in total.iter_mut().zip(image) {
            *t += v;
        }
    }
    total
}

/// Per-thread buffers of the backward pass: the unfolded input, its gradient, the thread's
/// share of the weight gradient.
struct Scratch<T> {
    col: Vec<T>,
    dcol: Vec<T>,
    dw: Vec<T>,
}

#[allow(clippy::type_complexity)]
fn backward_slices<T: Real>(
    g: &Geometry,
    x: &[T],
    w: &[T],
    dy: &[T],
    want_x: bool,
    want_weight: bool,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let (pixels, taps, plane) = (g.pixels(), g.taps(), g.plane());
    let (image_in, image_out) = (g.in_channels * plane, g.out_channels * pixels);
    let mut dx = want_x.then(|| vec![T::ZERO; g.batch * image_in]);
    let dw_len = g.out_channels * taps;
    if g.batch == 0 || image_out == 0 || image_in == 0 || !(want_x || want_weight) {
        return (dx, want_weight.then(|| vec![T::ZERO; dw_len]));
    }
    let dx_ptr = Shared(dx.as_mut().map_or(std::ptr::null_mut(), |v| v.as_mut_ptr()));
    let scratch = || Scratch {
        col: vec![T::ZERO; if want_weight { g.col_len() } else { 0 }],
        dcol: vec![T::ZERO; if want_x { g.col_len() } else { 0 }],
        dw: vec![T::ZERO; if want_weight { dw_len } else { 0 }],
    };
    let one_image = |s: &mut Scratch<T>, image: usize, threads: Parallelism| {
        let xn = &x[image * image_in..][..image_in];
        let dyn_ = &dy[image * image_out..][..image_out];
        for group in 0..g.groups {
            let in_offset = group * g.group_in() * plane;
            let xg = &xn[in_offset..][..g.group_in() * plane];
            let wg = &w[group * g.group_out() * taps..][..g.group_out() * taps];
            let dyg = &dyn_[group * g.group_out() * pixels..];
            for (first, last) in g.bands() {
                let band = (last - first) * g.out_width;
                let dy_band = dyg[first * g.out_width..].as_ptr();
                if want_weight {
                    // dW_g [C_out/g, K] += dY_g [C_out/g, band] · colᵀ [band, K]
                    let col_t = if g.pointwise() {
                        (xg.as_ptr(), 1, plane)
                    } else {
                        im2col(g, xg, (first, last), &mut s.col);
                        (s.col.as_ptr(), 1, band)
                    };
                    let dst = s.dw[group * g.group_out() * taps..].as_mut_ptr();
                    // SAFETY: operands inside their slices; `dst` is this thread's own buffer.
                    unsafe {
                        matmul(
                            [g.group_out(), taps, band],
                            (dst, taps, 1),
                            true,
                            (dy_band, pixels, 1),
                            col_t,
                            threads,
                        )
                    }
                }
                if want_x {
                    // SAFETY: image `image`'s slab of dx, written by this task alone.
                    let dxg = unsafe {
                        std::slice::from_raw_parts_mut(
                            dx_ptr.get().add(image * image_in + in_offset),
                            g.group_in() * plane,
                        )
                    };
                    let w_t = (wg.as_ptr(), 1, taps); // Wᵀ [K, C_out/g]
                    if g.pointwise() {
                        let dst = dxg[first * g.out_width..].as_mut_ptr();
                        // SAFETY: rows of dxg (stride `plane`) × the band's columns.
                        unsafe {
                            matmul(
                                [taps, band, g.group_out()],
                                (dst, plane, 1),
                                false,
                                w_t,
                                (dy_band, pixels, 1),
                                threads,
                            )
                        }
                    } else {
                        // SAFETY: dcol [K, band] is this thread's buffer.
                        unsafe {
                            matmul(
                                [taps, band, g.group_out()],
                                (s.dcol.as_mut_ptr(), band, 1),
                                false,
                                w_t,
                                (dy_band, pixels, 1),
                                threads,
                            )
                        }
                        col2im(g, &s.dcol, (first, last), dxg);
                    }
                }
            }
        }
    };
    let dw = if images_in_parallel(g.batch) {
        // A fixed split of the batch (one run of consecutive images per thread) and the shares
        // summed in order: the weight gradient is the same from run to run, which an exact
        // `--resume` needs (rayon's adaptive `fold` would vary the summation order).
        let parts = rayon::current_num_threads().min(g.batch);
        let per_part = g.batch.div_ceil(parts);
        let shares: Vec<Vec<T>> = (0..parts)
            .into_par_iter()
            .map(|part| {
                let mut s = scratch();
                for image in part * per_part..((part + 1) * per_part).min(g.batch) {
                    one_image(&mut s, image, gemm_threads(true));
                }
                s.dw
            })
            .collect();
        want_weight.then(|| {
            let mut total = vec![T::ZERO; dw_len];
            for share in shares {
                for (t, v) in total.iter_mut().zip(share) {
                    *t += v;
                }
            }
            total
        })
    } else {
        let mut s = scratch();
        for image in 0..g.batch {
            one_image(&mut s, image, gemm_threads(false));
        }
        want_weight.then_some(s.dw)
    };
    (dx, dw)
}
