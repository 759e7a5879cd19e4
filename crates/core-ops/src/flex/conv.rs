//! 2-D convolution on flex as im2col + `gemm`, forward and backward, NCHW throughout.
//!
//! Per image and channel group, the unfolded input `col [K, P]` (`K = C_in/g·kH·kW` rows, one per
//! kernel tap; `P` output pixels) turns the convolution into matrix products:
//!
//! * forward `Y_g = W_g · col` — `gemm` writes straight into the output (bias first, then
//!   accumulated onto);
//! * input gradient `dcol = W_gᵀ · dY_g`, folded back onto the input (col2im, adding contiguous
//!   runs), per image in parallel;
//! * weight gradient `dW_g += dY_g · colᵀ`, accumulated across a thread's units into one
//!   contiguous `[C_out, K]` buffer, the threads' buffers summed at the end.
//!
//! The work is split into units: a band of output rows of one large image (so that `col` stays
//! under [`COL_BUDGET`] elements), or several whole small images side by side in one `col` of
//! about [`TARGET_COLUMNS`] columns (unfolded through a tap map computed once per call; their
//! output and output gradient staged as one `[C_out/g, columns]` matrix). A 1×1 convolution with
//! stride 1 and no padding reads a single image in place as its own `[C, P]` matrix. Units run one
//! consecutive run per thread with `gemm` serial inside; with fewer units than threads they run
//! one after another and `gemm` uses the threads. The per-thread weight-gradient shares are summed
//! in order, so a result never depends on scheduling.

use burn::{backend::flex::FlexTensor, tensor::ops::ConvOptions};
use gemm::Parallelism;
use rayon::prelude::*;

use super::{Real, contiguous, dims, elements, from_vec, norm::sum, with_real};

/// The most elements an unfolded band holds (16 MiB of f32).
pub const COL_BUDGET: usize = 1 << 22;

/// Columns a unit of work aims for: images smaller than this are unfolded several at a time, so
/// that a late stage's 4×4 or 1×1 maps make one wide matrix product instead of many thin ones.
pub const TARGET_COLUMNS: usize = 512;

/// A piece of a convolution: `images` consecutive images from `first_image` (whole), or the
/// output rows `rows` of one image.
#[derive(Clone, Copy, Debug)]
struct Unit {
    first_image: usize,
    images: usize,
    rows: (usize, usize),
}

impl Unit {
    /// Output pixels of one image in the unit.
    fn band(&self, g: &Geometry) -> usize {
        (self.rows.1 - self.rows.0) * g.out_width
    }

    /// Columns of the unit's `col`.
    fn columns(&self, g: &Geometry) -> usize {
        self.images * self.band(g)
    }
}

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
        // A pointwise conv reads its image in place; a small image is unfolded whole through
        // its tap map.
        if self.pointwise() || self.pixels() < TARGET_COLUMNS {
            return self.out_height.max(1);
        }
        (COL_BUDGET / (self.taps() * self.out_width).max(1)).clamp(1, self.out_height.max(1))
    }

    /// Images unfolded side by side in one `col`: enough for [`TARGET_COLUMNS`] columns when an
    /// image has fewer pixels (a 32² network's late stages have 16, 4, 1), within
    /// [`COL_BUDGET`]; one image otherwise.
    fn images_per_unit(&self) -> usize {
        let pixels = self.pixels().max(1);
        if pixels >= TARGET_COLUMNS {
            return 1;
        }
        let by_budget = COL_BUDGET / (self.taps() * pixels).max(1);
        TARGET_COLUMNS
            .div_ceil(pixels)
            .min(by_budget)
            .min(self.batch)
            .max(1)
    }

    /// The pieces of work, in batch order: runs of whole images, or bands of one image.
    fn units(&self) -> Vec<Unit> {
        let per = self.images_per_unit();
        if per > 1 {
            return (0..self.batch)
                .step_by(per)
                .map(|first| Unit {
                    first_image: first,
                    images: per.min(self.batch - first),
                    rows: (0, self.out_height),
                })
                .collect();
        }
        let rows = self.band_rows();
        (0..self.batch)
            .flat_map(|image| {
                (0..self.out_height).step_by(rows).map(move |first| Unit {
                    first_image: image,
                    images: 1,
                    rows: (first, (first + rows).min(self.out_height)),
                })
            })
            .collect()
    }

    /// For images of fewer than [`TARGET_COLUMNS`] pixels, where a row of a tap is a handful of
    /// elements: the offset in a channel plane that each (tap, output pixel) reads, `-1` in the
    /// padding — `[kH·kW, H'·W']`, shared by every channel and image of the call.
    fn tap_map(&self) -> Option<Vec<i32>> {
        if self.pixels() >= TARGET_COLUMNS {
            return None;
        }
        let [kh, kw] = self.kernel;
        let mut map = Vec::with_capacity(kh * kw * self.pixels());
        for ki in 0..kh {
            for kj in 0..kw {
                for oh in 0..self.out_height {
                    let ih = (oh * self.stride[0] + ki * self.dilation[0]) as isize
                        - self.padding[0] as isize;
                    for ow in 0..self.out_width {
                        let iw = (ow * self.stride[1] + kj * self.dilation[1]) as isize
                            - self.padding[1] as isize;
                        let inside = (0..self.height as isize).contains(&ih)
                            && (0..self.width as isize).contains(&iw);
                        map.push(if inside {
                            (ih * self.width as isize + iw) as i32
                        } else {
                            -1
                        });
                    }
                }
            }
        }
        Some(map)
    }

    /// Whether a unit reads its image in place as its `col` (a single image of a pointwise conv).
    fn in_place(&self, unit: &Unit) -> bool {
        self.pointwise() && unit.images == 1
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
    /// row's first element in a `col` of row stride `stride` whose image starts at column
    /// `column`; `run` is where it reads the input, `None` when the input row lies in the padding.
    fn walk_taps(
        &self,
        (first, last): (usize, usize),
        (stride, column): (usize, usize),
        mut visit: impl FnMut(usize, Option<Run>),
    ) {
        let [kh, kw] = self.kernel;
        for channel in 0..self.group_in() {
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = (channel * kh + ki) * kw + kj;
                    let offset = (kj * self.dilation[1]) as isize - self.padding[1] as isize;
                    let columns = self.valid_columns(offset);
                    for oh in first..last {
                        let at = row * stride + column + (oh - first) * self.out_width;
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

/// Unfolds the band `rows` of one image's channel group `x [C/g, H, W]` into the columns from
/// `layout.1` of `col [K, layout.0]`: through the [`Geometry::tap_map`] of a small image (whole),
/// a row of a tap at a time otherwise.
fn im2col<T: Real>(
    geometry: &Geometry,
    map: Option<&[i32]>,
    x: &[T],
    rows: (usize, usize),
    layout: (usize, usize),
    col: &mut [T],
) {
    let Some(map) = map else {
        return im2col_rows(geometry, x, rows, layout, col);
    };
    debug_assert_eq!(
        rows,
        (0, geometry.out_height),
        "a tap map unfolds whole images"
    );
    let (pixels, plane) = (geometry.pixels(), geometry.plane());
    let (stride, column) = layout;
    for (channel, xc) in x.chunks(plane).take(geometry.group_in()).enumerate() {
        for (tap, offsets) in map.chunks_exact(pixels).enumerate() {
            let row = (channel * map.len() / pixels + tap) * stride + column;
            for (d, &m) in col[row..row + pixels].iter_mut().zip(offsets) {
                *d = if m >= 0 { xc[m as usize] } else { T::ZERO };
            }
        }
    }
}

/// [`im2col`] a row of a tap at a time: contiguous runs copied, the padding filled.
fn im2col_rows<T: Real>(
    geometry: &Geometry,
    x: &[T],
    rows: (usize, usize),
    layout: (usize, usize),
    col: &mut [T],
) {
    let (stride, width) = (geometry.stride[1], geometry.out_width);
    geometry.walk_taps(rows, layout, |at, run| {
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

/// Adds the columns from `layout.1` of `dcol [K, layout.0]` (the band `rows` of one image) back
/// onto the image's channel-group gradient `dx [C/g, H, W]` (the reverse of [`im2col`]).
fn col2im<T: Real>(
    geometry: &Geometry,
    map: Option<&[i32]>,
    dcol: &[T],
    rows: (usize, usize),
    layout: (usize, usize),
    dx: &mut [T],
) {
    let Some(map) = map else {
        return col2im_rows(geometry, dcol, rows, layout, dx);
    };
    debug_assert_eq!(
        rows,
        (0, geometry.out_height),
        "a tap map folds whole images"
    );
    let (pixels, plane) = (geometry.pixels(), geometry.plane());
    let (stride, column) = layout;
    for (channel, dxc) in dx.chunks_mut(plane).take(geometry.group_in()).enumerate() {
        for (tap, offsets) in map.chunks_exact(pixels).enumerate() {
            let row = (channel * map.len() / pixels + tap) * stride + column;
            for (&g, &m) in dcol[row..row + pixels].iter().zip(offsets) {
                if m >= 0 {
                    dxc[m as usize] += g;
                }
            }
        }
    }
}

/// [`col2im`] a row of a tap at a time.
fn col2im_rows<T: Real>(
    geometry: &Geometry,
    dcol: &[T],
    rows: (usize, usize),
    layout: (usize, usize),
    dx: &mut [T],
) {
    let stride = geometry.stride[1];
    geometry.walk_taps(rows, layout, |at, run| {
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

/// Runs `work(units, threads)` over the units split into consecutive parts: one part per
/// thread with gemm serial inside when there are enough units, else a single part with gemm
/// using the threads. Returns the parts' results in order. The split depends only on the units
/// and the thread count, so a sum over the parts is the same from run to run.
///
/// With `whole_images`, the bands of one image stay in one part: the input gradient's col2im
/// adds into the rows a band's kernel window reaches, which overlap the next band's.
fn schedule<R: Send>(
    units: &[Unit],
    whole_images: bool,
    work: impl Fn(&[Unit], Parallelism) -> R + Sync,
) -> Vec<R> {
    let threads = rayon::current_num_threads();
    let parts = parts(units, threads, whole_images);
    if units.len() < threads || parts.len() == 1 {
        return vec![work(units, Parallelism::Rayon(0))];
    }
    parts
        .into_par_iter()
        .map(|run| work(run, Parallelism::None))
        .collect()
}

/// `units` cut into at most `threads` consecutive runs of about equal length, cut only between
/// images when `whole_images`.
fn parts(units: &[Unit], threads: usize, whole_images: bool) -> Vec<&[Unit]> {
    let per_part = units.len().div_ceil(threads.max(1)).max(1);
    let mut parts = Vec::with_capacity(threads);
    let mut start = 0;
    for end in 1..=units.len() {
        let cut_allowed = end == units.len()
            || !whole_images
            || units[end].first_image != units[end - 1].first_image;
        if cut_allowed && (end - start >= per_part || end == units.len()) {
            parts.push(&units[start..end]);
            start = end;
        }
    }
    parts
}

/// Splits a scratch buffer into pieces of the given lengths.
fn split<T, const N: usize>(mut buffer: &mut [T], lengths: [usize; N]) -> [&mut [T]; N] {
    lengths.map(|len| {
        let (piece, rest) = std::mem::take(&mut buffer).split_at_mut(len);
        buffer = rest;
        piece
    })
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
    let (pixels, taps, plane) = (g.pixels(), g.taps(), g.plane());
    let (image_in, image_out) = (g.in_channels * plane, g.out_channels * pixels);
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
    let units = g.units();
    let widest = units.iter().map(|u| u.columns(g)).max().unwrap_or(0);
    let map = g.tap_map();
    let mut out: Vec<T> = Vec::with_capacity(len);
    let out_ptr = Shared(out.as_mut_ptr());
    let work = |run: &[Unit], threads: Parallelism| {
        let lengths = [taps * widest, g.group_out() * widest];
        T::with_scratch(lengths.iter().sum(), |scratch| {
            let [col, staged] = split(scratch, lengths);
            for unit in run {
                let (band, columns) = (unit.band(g), unit.columns(g));
                for group in 0..g.groups {
                    let in_offset = group * g.group_in() * plane;
                    let rhs = if g.in_place(unit) {
                        (
                            x[unit.first_image * image_in + in_offset..].as_ptr(),
                            plane,
                            1,
                        )
                    } else {
                        for i in 0..unit.images {
                            let xg = &x[(unit.first_image + i) * image_in + in_offset..];
                            im2col(g, map.as_deref(), xg, unit.rows, (columns, i * band), col);
                        }
                        (col.as_ptr(), columns, 1)
                    };
                    let lhs = (w[group * g.group_out() * taps..].as_ptr(), taps, 1);
                    let out_offset = group * g.group_out() * pixels;
                    if unit.images == 1 {
                        // In place: rows of the image's output (stride `pixels`), the band's columns.
                        let at =
                            unit.first_image * image_out + out_offset + unit.rows.0 * g.out_width;
                        // SAFETY: this unit's band of the output, written by this task alone.
                        let dst = unsafe { out_ptr.get().add(at) };
                        if let Some(b) = bias {
                            for o in 0..g.group_out() {
                                let row = unsafe {
                                    std::slice::from_raw_parts_mut(dst.add(o * pixels), band)
                                };
                                row.fill(b[group * g.group_out() + o]);
                            }
                        }
                        // SAFETY: operands inside their buffers; gemm reads `dst` only to add the bias.
                        unsafe {
                            matmul(
                                [g.group_out(), band, taps],
                                (dst, pixels, 1),
                                bias.is_some(),
                                lhs,
                                rhs,
                                threads,
                            )
                        }
                    } else {
                        let staged = &mut staged[..g.group_out() * columns];
                        // SAFETY: `staged` is [C_out/g, columns], this task's own.
                        unsafe {
                            matmul(
                                [g.group_out(), columns, taps],
                                (staged.as_mut_ptr(), columns, 1),
                                false,
                                lhs,
                                rhs,
                                threads,
                            )
                        }
                        for i in 0..unit.images {
                            for o in 0..g.group_out() {
                                let at =
                                    (unit.first_image + i) * image_out + out_offset + o * pixels;
                                // SAFETY: this unit's images, written by this task alone.
                                let row = unsafe {
                                    std::slice::from_raw_parts_mut(out_ptr.get().add(at), pixels)
                                };
                                let from = &staged[o * columns + i * pixels..][..pixels];
                                match bias {
                                    Some(b) => {
                                        let v = b[group * g.group_out() + o];
                                        for (d, &s) in row.iter_mut().zip(from) {
                                            *d = s + v;
                                        }
                                    }
                                    None => row.copy_from_slice(from),
                                }
                            }
                        }
                    }
                }
            }
        })
    };
    schedule(&units, false, work);
    // SAFETY: the units cover every image and output row, the groups every channel: each output
    // element was written once above.
    unsafe { out.set_len(len) };
    out
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
    if g.batch == 0 || image_out == 0 || image_in == 0 || taps == 0 || !(want_x || want_weight) {
        return (dx, want_weight.then(|| vec![T::ZERO; dw_len]));
    }
    let units = g.units();
    let widest = units.iter().map(|u| u.columns(g)).max().unwrap_or(0);
    let map = g.tap_map();
    let dx_ptr = Shared(dx.as_mut().map_or(std::ptr::null_mut(), |v| v.as_mut_ptr()));
    // Each part returns its share of the weight gradient; its first unit overwrites the share
    // (every element: all groups, all of [C_out/g, K]), later ones add to it.
    let work = |run: &[Unit], threads: Parallelism| {
        let mut share: Vec<T> = Vec::with_capacity(if want_weight { dw_len } else { 0 });
        let lengths = [
            taps * widest,
            if want_x { taps * widest } else { 0 },
            g.group_out() * widest,
        ];
        T::with_scratch(lengths.iter().sum(), |scratch| {
            let [col, dcol, staged] = split(scratch, lengths);
            for (k, unit) in run.iter().enumerate() {
                let (band, columns) = (unit.band(g), unit.columns(g));
                for group in 0..g.groups {
                    let in_offset = group * g.group_in() * plane;
                    let out_offset = group * g.group_out() * pixels;
                    // dY of the unit and group as a [C_out/g, columns] matrix.
                    let dy_matrix = if unit.images == 1 {
                        let at =
                            unit.first_image * image_out + out_offset + unit.rows.0 * g.out_width;
                        (dy[at..].as_ptr(), pixels, 1)
                    } else {
                        for o in 0..g.group_out() {
                            for i in 0..unit.images {
                                let at =
                                    (unit.first_image + i) * image_out + out_offset + o * pixels;
                                staged[o * columns + i * pixels..][..pixels]
                                    .copy_from_slice(&dy[at..at + pixels]);
                            }
                        }
                        (staged.as_ptr(), columns, 1)
                    };
                    if want_weight {
                        // dW_g [C_out/g, K] (+)= dY [C_out/g, columns] · colᵀ [columns, K]
                        let col_t = if g.in_place(unit) {
                            (
                                x[unit.first_image * image_in + in_offset..].as_ptr(),
                                1,
                                plane,
                            )
                        } else {
                            for i in 0..unit.images {
                                let xg = &x[(unit.first_image + i) * image_in + in_offset..];
                                im2col(g, map.as_deref(), xg, unit.rows, (columns, i * band), col);
                            }
                            (col.as_ptr(), 1, columns)
                        };
                        let dst = share
                            .as_mut_ptr()
                            .wrapping_add(group * g.group_out() * taps);
                        // SAFETY: `share` has capacity for [C_out, K]; its first unit writes
                        // every element before any is read.
                        unsafe {
                            matmul(
                                [g.group_out(), taps, columns],
                                (dst, taps, 1),
                                k > 0,
                                dy_matrix,
                                col_t,
                                threads,
                            )
                        }
                    }
                    if want_x {
                        let w_t = (w[group * g.group_out() * taps..].as_ptr(), 1, taps); // Wᵀ [K, C_out/g]
                        if g.in_place(unit) {
                            let at = unit.first_image * image_in + in_offset;
                            // SAFETY: this image's slab of dx, written by this task alone.
                            let dst = unsafe { dx_ptr.get().add(at) };
                            unsafe {
                                matmul(
                                    [taps, band, g.group_out()],
                                    (dst, plane, 1),
                                    false,
                                    w_t,
                                    dy_matrix,
                                    threads,
                                )
                            }
                        } else {
                            // SAFETY: dcol [K, columns] is this task's own.
                            unsafe {
                                matmul(
                                    [taps, columns, g.group_out()],
                                    (dcol.as_mut_ptr(), columns, 1),
                                    false,
                                    w_t,
                                    dy_matrix,
                                    threads,
                                )
                            }
                            for i in 0..unit.images {
                                let at = (unit.first_image + i) * image_in + in_offset;
                                // SAFETY: this unit's images' slabs of dx, written by this task
                                // alone (`schedule` keeps an image's bands in one part).
                                let dxg = unsafe {
                                    std::slice::from_raw_parts_mut(
                                        dx_ptr.get().add(at),
                                        g.group_in() * plane,
                                    )
                                };
                                col2im(
                                    g,
                                    map.as_deref(),
                                    dcol,
                                    unit.rows,
                                    (columns, i * band),
                                    dxg,
                                );
                            }
                        }
                    }
                }
            }
        });
        if want_weight && !run.is_empty() {
            // SAFETY: the first unit wrote all `dw_len` elements.
            unsafe { share.set_len(dw_len) };
        }
        share
    };
    let shares = schedule(&units, want_x, work);
    let dw = want_weight.then(|| {
        let mut shares = shares.into_iter();
        let mut total = shares.next().expect("one part at least");
        for share in shares {
            for (t, v) in total.iter_mut().zip(share) {
                *t += v;
            }
        }
        total
    });
    (dx, dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bands(images: usize, per_image: usize) -> Vec<Unit> {
        (0..images)
            .flat_map(|image| {
                (0..per_image).map(move |b| Unit {
                    first_image: image,
                    images: 1,
                    rows: (b, b + 1),
                })
            })
            .collect()
    }

    #[test]
    fn an_images_bands_stay_in_one_part_when_asked() {
        for (images, per_image, threads) in [(1, 3, 2), (2, 3, 2), (3, 5, 4), (8, 2, 3), (1, 7, 16)]
        {
            let units = bands(images, per_image);
            let whole = parts(&units, threads, true);
            assert!(whole.len() <= threads.min(images));
            assert_eq!(whole.iter().map(|p| p.len()).sum::<usize>(), units.len());
            for pair in whole.windows(2) {
                let (last, next) = (pair[0].last().unwrap(), pair[1][0]);
                assert_ne!(
                    last.first_image, next.first_image,
                    "{images}×{per_image} on {threads}"
                );
            }
            let split = parts(&units, threads, false);
            assert_eq!(
                split.len(),
                units.len().div_ceil(units.len().div_ceil(threads))
            );
        }
    }
}
