//! CubeCL kernels (wgpu, CUDA) for the two reductions the normalisations need (the kernels
//! issue, item 2), over the *segments* of an `[N, C, H, W]` tensor a [`Layout`] describes (a
//! group norm's `(n, group)` blocks, or a batch norm's channels across the batch):
//!
//! * [`SegmentKernels::segment_moments`]: each segment's mean and centred sum of squares
//!   `Σ(x − mean)²` (two passes over the segment, as PyTorch's statistics are two-pass);
//! * [`SegmentKernels::segment_grad_sums`]: `Σ a·dy` and `Σ b·dy·(x − shift)` for per-plane
//!   `shift` (the normalisation's mean) and weights `a`, `b`: what the norms' backward reduces.
//!
//! One cube per segment; its units stride over the segment and meet in a shared-memory tree.
//! The rest of each norm (the per-plane coefficients, the affine passes) is a handful of
//! element-wise burn ops ([`crate::segments`]) that burn's fusion compiles into one kernel each.
//!
//! Under fusion (`Fusion<CubeBackend<…>>`, what `burn::backend::Wgpu` and `Cuda` are with the
//! `fusion` feature) each reduction is registered as a custom operation of burn's IR
//! (`OperationIr::Custom`): the fuser ends its element-wise chains at it and runs the kernel on
//! the plain CubeCL tensors.

use burn::tensor::{Shape, backend::Backend, ops::FloatTensor};
use burn_cubecl::{
    BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement, kernel::into_contiguous,
    ops::numeric::empty_device_dtype, tensor::CubeTensor,
};
use burn_fusion::{
    Fusion, FusionBackend, FusionRuntime,
    stream::{Operation, OperationStreams},
};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
use cubecl::prelude::*;

use crate::segments::Layout;

/// A backend with the segment reductions as kernels of its own.
pub trait SegmentKernels: Backend {
    /// `x [N, C, H, W]` → each segment's `(mean, Σ(x − mean)²)`, each `[segments]`.
    fn segment_moments(x: FloatTensor<Self>, layout: Layout) -> [FloatTensor<Self>; 2];
    /// `dy`, `x [N, C, H, W]`, per-plane `[shift, a, b]` (each `[N, C]`) → each segment's
    /// `(Σ a·dy, Σ b·dy·(x − shift))`, each `[segments]`.
    fn segment_grad_sums(
        dy: FloatTensor<Self>,
        x: FloatTensor<Self>,
        planes: [FloatTensor<Self>; 3],
        layout: Layout,
    ) -> [FloatTensor<Self>; 2];
}

/// Units per cube: a power of two (the tree halves it) from 32 to 256, with at least 16 elements
/// each where the segment has 512 or more (fewer units, fewer rounds of the tree's barriers).
fn block_for(len: usize) -> u32 {
    let units = (len / 16).clamp(32, 256);
    (1 << units.ilog2()) as u32
}

/// Cubes for `segments` segments, one each: wgpu allows 65,535 cubes along an axis, so the count
/// is folded into a second axis (the kernels read the linear `CUBE_POS` and skip the overhang).
fn cube_count(segments: usize) -> CubeCount {
    let x = segments.clamp(1, 65_535);
    CubeCount::Static(x as u32, segments.div_ceil(x) as u32, 1)
}

/// Sums `sum[0..CUBE_DIM_X]` in place (a tree of halving strides; the cube's size is a power of
/// two); `sum[0]` holds the total.
#[cube]
fn tree_sum<F: Float>(sum: &mut SharedMemory<F>) {
    sync_cube();
    let mut active = CUBE_DIM_X / 2;
    while active > 0 {
        if UNIT_POS_X < active {
            let other = sum[(UNIT_POS_X + active) as usize];
            sum[UNIT_POS_X as usize] += other;
        }
        sync_cube();
        active /= 2;
    }
}

/// A unit's walk over its segment's elements `unit, unit + step, …` (see [`Layout`]): the
/// element's plane `r` within the segment and place `i` in it advance by constants, so no element
/// pays a division.
#[derive(CubeType)]
struct Walk {
    j: usize,
    r: usize,
    i: usize,
    dr: usize,
    di: usize,
    run: usize,
    base_plane: usize,
    run_planes: usize,
}

#[cube]
impl Walk {
    /// The walk of this unit over segment `CUBE_POS` of `layout` (the kernels' `u32` arguments,
    /// in [`sizes`]' order).
    fn new(layout: &Sequence<u32>) -> Walk {
        let run = *layout.index(2usize) as usize;
        let unit = UNIT_POS_X as usize;
        let step = CUBE_DIM_X as usize;
        Walk {
            j: unit,
            r: unit / run,
            i: unit % run,
            dr: step / run,
            di: step % run,
            run,
            base_plane: CUBE_POS * *layout.index(3usize) as usize,
            run_planes: *layout.index(4usize) as usize,
        }
    }

    /// The tensor plane the element lies in.
    fn plane(&self) -> usize {
        self.base_plane + self.r * self.run_planes
    }

    /// The element's index in the tensor.
    fn address(&self) -> usize {
        self.plane() * self.run + self.i
    }

    fn advance(&mut self) {
        self.j += CUBE_DIM_X as usize;
        self.r += self.dr;
        self.i += self.di;
        if self.i >= self.run {
            self.i -= self.run;
            self.r += 1;
        }
    }
}

#[cube(launch)]
fn segment_moments_kernel<F: Float>(
    x: &Tensor<F>,
    mean: &mut Tensor<F>,
    m2: &mut Tensor<F>,
    layout: Sequence<u32>,
    #[comptime] block: u32,
    #[define(F)] _dtype: StorageType,
) {
    let segment = CUBE_POS;
    if segment >= *layout.index(0usize) as usize {
        terminate!();
    }
    let count = *layout.index(1usize) as usize;
    let unit = UNIT_POS_X as usize;
    let mut sum = SharedMemory::<F>::new(block as usize);

    let mut acc = F::new(0.0);
    let mut at = Walk::new(&layout);
    while at.j < count {
        acc += x[at.address()];
        at.advance();
    }
    sum[unit] = acc;
    tree_sum::<F>(&mut sum);
    let mu = sum[0] / F::cast_from(count);
    sync_cube();

    let mut acc = F::new(0.0);
    let mut at = Walk::new(&layout);
    while at.j < count {
        let d = x[at.address()] - mu;
        acc += d * d;
        at.advance();
    }
    sum[unit] = acc;
    tree_sum::<F>(&mut sum);
    if unit == 0 {
        mean[segment] = mu;
        m2[segment] = sum[0];
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn segment_grad_sums_kernel<F: Float>(
    dy: &Tensor<F>,
    x: &Tensor<F>,
    shift: &Tensor<F>,
    a: &Tensor<F>,
    b: &Tensor<F>,
    sum_a: &mut Tensor<F>,
    sum_b: &mut Tensor<F>,
    layout: Sequence<u32>,
    #[comptime] block: u32,
    #[define(F)] _dtype: StorageType,
) {
    let segment = CUBE_POS;
    if segment >= *layout.index(0usize) as usize {
        terminate!();
    }
    let count = *layout.index(1usize) as usize;
    let unit = UNIT_POS_X as usize;
    let mut first = SharedMemory::<F>::new(block as usize);
    let mut second = SharedMemory::<F>::new(block as usize);

    let mut acc_a = F::new(0.0);
    let mut acc_b = F::new(0.0);
    let mut at = Walk::new(&layout);
    while at.j < count {
        let (element, plane) = (at.address(), at.plane());
        let g = dy[element];
        acc_a += a[plane] * g;
        acc_b += b[plane] * g * (x[element] - shift[plane]);
        at.advance();
    }
    first[unit] = acc_a;
    second[unit] = acc_b;
    tree_sum::<F>(&mut first);
    tree_sum::<F>(&mut second);
    if unit == 0 {
        sum_a[segment] = first[0];
        sum_b[segment] = second[0];
    }
}

fn empty_segments<R: CubeRuntime>(x: &CubeTensor<R>, layout: &Layout) -> CubeTensor<R> {
    let shape = Shape::new([layout.segments]);
    empty_device_dtype(x.client.clone(), x.device.clone(), shape, x.dtype)
}

/// The layout as the kernels' `u32` arguments: segments, count, run, the plane strides.
fn sizes<R: CubeRuntime>(layout: &Layout) -> SequenceArg<R, u32> {
    let Layout {
        segments,
        count,
        run,
        seg_planes,
        run_planes,
    } = *layout;
    let all = [segments, count, run, seg_planes, run_planes];
    assert!(
        all.iter().all(|&v| v <= u32::MAX as usize),
        "core-ops segment kernels: sizes {all:?} exceed u32"
    );
    let mut sequence = SequenceArg::new();
    for v in all {
        sequence.push(v as u32);
    }
    sequence
}

impl<R, F, I, BT> SegmentKernels for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn segment_moments(x: CubeTensor<R>, layout: Layout) -> [CubeTensor<R>; 2] {
        let x = into_contiguous(x);
        let [mean, m2] = [(); 2].map(|_| empty_segments(&x, &layout));
        let (dtype, block) = (x.dtype, block_for(layout.count));
        segment_moments_kernel::launch::<R>(
            &x.client.clone(),
            cube_count(layout.segments),
            CubeDim::new_1d(block),
            x.into_tensor_arg(),
            mean.clone().into_tensor_arg(),
            m2.clone().into_tensor_arg(),
            sizes(&layout),
            block,
            dtype.into(),
        );
        [mean, m2]
    }

    fn segment_grad_sums(
        dy: CubeTensor<R>,
        x: CubeTensor<R>,
        planes: [CubeTensor<R>; 3],
        layout: Layout,
    ) -> [CubeTensor<R>; 2] {
        let (dy, x) = (into_contiguous(dy), into_contiguous(x));
        let [shift, a, b] = planes.map(into_contiguous);
        let [sum_a, sum_b] = [(); 2].map(|_| empty_segments(&x, &layout));
        let (dtype, block) = (x.dtype, block_for(layout.count));
        segment_grad_sums_kernel::launch::<R>(
            &x.client.clone(),
            cube_count(layout.segments),
            CubeDim::new_1d(block),
            dy.into_tensor_arg(),
            x.into_tensor_arg(),
            shift.into_tensor_arg(),
            a.into_tensor_arg(),
            b.into_tensor_arg(),
            sum_a.clone().into_tensor_arg(),
            sum_b.clone().into_tensor_arg(),
            sizes(&layout),
            block,
            dtype.into(),
        );
        [sum_a, sum_b]
    }
}

/// Which reduction a custom fusion operation runs, on which segments.
#[derive(Clone, Copy, Debug)]
enum Reduction {
    Moments(Layout),
    GradSums(Layout),
}

/// A reduction as an operation of burn's fusion stream: what it reads and writes, and which.
#[derive(Debug)]
struct SegmentOp<B> {
    desc: CustomOpIr,
    which: Reduction,
    backend: std::marker::PhantomData<fn() -> B>,
}

impl<B: FusionBackend + SegmentKernels> Operation<B::FusionRuntime> for SegmentOp<B> {
    fn execute(
        &self,
        handles: &mut HandleContainer<<B::FusionRuntime as FusionRuntime>::FusionHandle>,
    ) {
        let outputs = match self.which {
            Reduction::Moments(layout) => {
                let ([x], _) = self.desc.as_fixed::<1, 2>();
                B::segment_moments(handles.get_float_tensor::<B>(x), layout)
            }
            Reduction::GradSums(layout) => {
                let ([dy, x, shift, a, b], _) = self.desc.as_fixed::<5, 2>();
                let [dy, x] = [dy, x].map(|t| handles.get_float_tensor::<B>(t));
                let planes = [shift, a, b].map(|t| handles.get_float_tensor::<B>(t));
                B::segment_grad_sums(dy, x, planes, layout)
            }
        };
        for (ir, tensor) in self.desc.outputs.iter().zip(outputs) {
            handles.register_float_tensor::<B>(&ir.id, tensor);
        }
    }
}

/// Registers `which` on `inputs`' streams; its two `[segments]` outputs come back as fusion
/// tensors.
fn register<B: FusionBackend + SegmentKernels>(
    which: Reduction,
    segments: usize,
    inputs: Vec<FloatTensor<Fusion<B>>>,
    name: &'static str,
) -> [FloatTensor<Fusion<B>>; 2] {
    let client = inputs[0].client.clone();
    let dtype = inputs[0].dtype;
    let streams = OperationStreams::with_inputs(inputs.iter());
    let outputs = [(); 2]
        .map(|_| TensorIr::uninit(client.create_empty_handle(), Shape::new([segments]), dtype));
    let inputs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new(name, &inputs, &outputs);
    let op = SegmentOp::<B> {
        desc: desc.clone(),
        which,
        backend: std::marker::PhantomData,
    };
    client
        .register(streams, OperationIr::Custom(desc), op)
        .try_into()
        .expect("two outputs registered")
}

impl<B: FusionBackend + SegmentKernels> SegmentKernels for Fusion<B> {
    fn segment_moments(x: FloatTensor<Self>, layout: Layout) -> [FloatTensor<Self>; 2] {
        let which = Reduction::Moments(layout);
        register::<B>(which, layout.segments, vec![x], "vireo_segment_moments")
    }

    fn segment_grad_sums(
        dy: FloatTensor<Self>,
        x: FloatTensor<Self>,
        [shift, a, b]: [FloatTensor<Self>; 3],
        layout: Layout,
    ) -> [FloatTensor<Self>; 2] {
        let which = Reduction::GradSums(layout);
        let inputs = vec![dy, x, shift, a, b];
        register::<B>(which, layout.segments, inputs, "vireo_segment_grad_sums")
    }
}
