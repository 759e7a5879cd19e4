//! CubeCL kernels (wgpu, CUDA) for the two reductions the normalisations need (`gn.md`/`bcn.md`
//! statistics; the kernels issue, item 2): per `(n, c)` plane of an `[N, C, H, W]` tensor,
//!
//! * [`PlaneKernels::plane_moments`]: the plane's mean and centred sum of squares `Σ(x − mean)²`
//!   (two passes over the plane, as PyTorch's statistics are two-pass in precision);
//! * [`PlaneKernels::plane_grad_sums`]: `Σ dy` and `Σ dy·(x − shift)` for a given per-plane
//!   `shift` (the normalisation's mean), what every norm's backward reduces.
//!
//! One cube per plane; its units stride over the plane and meet in a shared-memory tree. Every
//! other step of the norms (combining planes into groups or channels, the affine passes) is a
//! handful of element-wise burn ops on `[N, C]` or `[N, C, H, W]` tensors ([`crate::planes`]),
//! which burn's fusion compiles into one kernel each.
//!
//! Under fusion (`Fusion<CubeBackend<…>>`, what `burn::backend::Wgpu` and `Cuda` are with the
//! `fusion` feature) each reduction is registered as a custom operation of burn's IR
//! (`OperationIr::Custom`): the fuser ends its element-wise chains at it and runs the kernel on
//! the plain CubeCL tensors.

use burn::tensor::{DType, Shape, TensorMetadata, backend::Backend, ops::FloatTensor};
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

/// A backend with the per-plane reductions as kernels of its own.
pub trait PlaneKernels: Backend {
    /// `x [N, C, H, W]` → each plane's `(mean, Σ(x − mean)²)`, each `[N, C]`.
    fn plane_moments(x: FloatTensor<Self>) -> [FloatTensor<Self>; 2];
    /// `dy`, `x [N, C, H, W]`, `shift [N, C]` → each plane's `(Σ dy, Σ dy·(x − shift))`, each
    /// `[N, C]`.
    fn plane_grad_sums(
        dy: FloatTensor<Self>,
        x: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 2];
}

/// Units per cube: a power of two (the tree halves it), at most 256, no more than a plane needs.
fn block_for(len: usize) -> u32 {
    len.clamp(32, 256).next_power_of_two().min(256) as u32
}

/// Cubes for `planes` planes, one each: wgpu allows 65,535 cubes along an axis, so the count is
/// folded into a second axis (the kernels read the linear `CUBE_POS` and skip the overhang).
fn cube_count(planes: usize) -> CubeCount {
    let x = planes.clamp(1, 65_535);
    CubeCount::Static(x as u32, planes.div_ceil(x) as u32, 1)
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

#[cube(launch)]
fn plane_moments_kernel<F: Float>(
    x: &Tensor<F>,
    mean: &mut Tensor<F>,
    m2: &mut Tensor<F>,
    planes: u32,
    len: u32,
    #[comptime] block: u32,
    #[define(F)] _dtype: StorageType,
) {
    let plane = CUBE_POS;
    if plane >= planes as usize {
        terminate!();
    }
    let len = len as usize;
    let base = plane * len;
    let unit = UNIT_POS_X as usize;
    let step = block as usize;
    let mut sum = SharedMemory::<F>::new(block as usize);

    let mut acc = F::new(0.0);
    let mut i = unit;
    while i < len {
        acc += x[base + i];
        i += step;
    }
    sum[unit] = acc;
    tree_sum::<F>(&mut sum);
    let mu = sum[0] / F::cast_from(len);
    sync_cube();

    let mut acc = F::new(0.0);
    let mut i = unit;
    while i < len {
        let d = x[base + i] - mu;
        acc += d * d;
        i += step;
    }
    sum[unit] = acc;
    tree_sum::<F>(&mut sum);
    if unit == 0 {
        mean[plane] = mu;
        m2[plane] = sum[0];
    }
}

#[cube(launch)]
fn plane_grad_sums_kernel<F: Float>(
    dy: &Tensor<F>,
    x: &Tensor<F>,
    shift: &Tensor<F>,
    sum_dy: &mut Tensor<F>,
    sum_dy_x: &mut Tensor<F>,
    planes: u32,
    len: u32,
    #[comptime] block: u32,
    #[define(F)] _dtype: StorageType,
) {
    let plane = CUBE_POS;
    if plane >= planes as usize {
        terminate!();
    }
    let len = len as usize;
    let base = plane * len;
    let unit = UNIT_POS_X as usize;
    let step = block as usize;
    let mut first = SharedMemory::<F>::new(block as usize);
    let mut second = SharedMemory::<F>::new(block as usize);
    let centre = shift[plane];

    let mut a = F::new(0.0);
    let mut b = F::new(0.0);
    let mut i = unit;
    while i < len {
        let g = dy[base + i];
        a += g;
        b += g * (x[base + i] - centre);
        i += step;
    }
    first[unit] = a;
    second[unit] = b;
    tree_sum::<F>(&mut first);
    tree_sum::<F>(&mut second);
    if unit == 0 {
        sum_dy[plane] = first[0];
        sum_dy_x[plane] = second[0];
    }
}

/// `[N, C, H, W]` → `(planes, plane length, [N, C])`.
fn plane_layout(shape: &Shape) -> (usize, usize, Shape) {
    let [n, c, h, w] = shape.dims::<4>();
    (n * c, h * w, Shape::new([n, c]))
}

fn empty_like_planes<R: CubeRuntime>(x: &CubeTensor<R>, shape: &Shape) -> CubeTensor<R> {
    empty_device_dtype(x.client.clone(), x.device.clone(), shape.clone(), x.dtype)
}

impl<R, F, I, BT> PlaneKernels for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn plane_moments(x: CubeTensor<R>) -> [CubeTensor<R>; 2] {
        let x = into_contiguous(x);
        let (planes, len, shape) = plane_layout(&x.shape());
        let [mean, m2] = [(); 2].map(|_| empty_like_planes(&x, &shape));
        let block = block_for(len);
        let dtype = x.dtype;
        plane_moments_kernel::launch::<R>(
            &x.client.clone(),
            cube_count(planes),
            CubeDim::new_1d(block),
            x.into_tensor_arg(),
            mean.clone().into_tensor_arg(),
            m2.clone().into_tensor_arg(),
            planes as u32,
            len as u32,
            block,
            dtype.into(),
        );
        [mean, m2]
    }

    fn plane_grad_sums(
        dy: CubeTensor<R>,
        x: CubeTensor<R>,
        shift: CubeTensor<R>,
    ) -> [CubeTensor<R>; 2] {
        let (dy, x, shift) = (
            into_contiguous(dy),
            into_contiguous(x),
            into_contiguous(shift),
        );
        let (planes, len, shape) = plane_layout(&x.shape());
        let [sum_dy, sum_dy_x] = [(); 2].map(|_| empty_like_planes(&x, &shape));
        let block = block_for(len);
        let dtype = x.dtype;
        plane_grad_sums_kernel::launch::<R>(
            &x.client.clone(),
            cube_count(planes),
            CubeDim::new_1d(block),
            dy.into_tensor_arg(),
            x.into_tensor_arg(),
            shift.into_tensor_arg(),
            sum_dy.clone().into_tensor_arg(),
            sum_dy_x.clone().into_tensor_arg(),
            planes as u32,
            len as u32,
            block,
            dtype.into(),
        );
        [sum_dy, sum_dy_x]
    }
}

/// Which reduction a custom fusion operation runs.
#[derive(Clone, Copy, Debug)]
enum Reduction {
    Moments,
    GradSums,
}

/// A reduction as an operation of burn's fusion stream: what it reads and writes, and which.
#[derive(Debug)]
struct PlaneOp<B> {
    desc: CustomOpIr,
    which: Reduction,
    backend: std::marker::PhantomData<fn() -> B>,
}

impl<B: FusionBackend + PlaneKernels> Operation<B::FusionRuntime> for PlaneOp<B> {
    fn execute(
        &self,
        handles: &mut HandleContainer<<B::FusionRuntime as FusionRuntime>::FusionHandle>,
    ) {
        let outputs = match self.which {
            Reduction::Moments => {
                let ([x], _) = self.desc.as_fixed::<1, 2>();
                B::plane_moments(handles.get_float_tensor::<B>(x))
            }
            Reduction::GradSums => {
                let ([dy, x, shift], _) = self.desc.as_fixed::<3, 2>();
                let [dy, x, shift] = [dy, x, shift].map(|t| handles.get_float_tensor::<B>(t));
                B::plane_grad_sums(dy, x, shift)
            }
        };
        for (ir, tensor) in self.desc.outputs.iter().zip(outputs) {
            handles.register_float_tensor::<B>(&ir.id, tensor);
        }
    }
}

/// Registers `which` on `inputs`' stream; the two `[N, C]` outputs come back as fusion tensors.
fn register<B: FusionBackend + PlaneKernels>(
    which: Reduction,
    inputs: Vec<FloatTensor<Fusion<B>>>,
    name: &'static str,
) -> [FloatTensor<Fusion<B>>; 2] {
    let client = inputs[0].client.clone();
    let (_, _, shape) = plane_layout(&inputs[0].shape);
    let dtype: DType = inputs[0].dtype;
    let streams = OperationStreams::with_inputs(inputs.iter());
    let outputs =
        [(); 2].map(|_| TensorIr::uninit(client.create_empty_handle(), shape.clone(), dtype));
    let inputs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new(name, &inputs, &outputs);
    let op = PlaneOp::<B> {
        desc: desc.clone(),
        which,
        backend: std::marker::PhantomData,
    };
    client
        .register(streams, OperationIr::Custom(desc), op)
        .try_into()
        .expect("two outputs registered")
}

impl<B: FusionBackend + PlaneKernels> PlaneKernels for Fusion<B> {
    fn plane_moments(x: FloatTensor<Self>) -> [FloatTensor<Self>; 2] {
        register::<B>(Reduction::Moments, vec![x], "vireo_plane_moments")
    }

    fn plane_grad_sums(
        dy: FloatTensor<Self>,
        x: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 2] {
        register::<B>(
            Reduction::GradSums,
            vec![dy, x, shift],
            "vireo_plane_grad_sums",
        )
    }
}
