//! Every operation on wgpu (core-ops' CubeCL norm kernels and burn's composition, under fusion
//! and autotune) against the CPU kernels: the same inputs, values and every gradient. Built with `--features test-wgpu`, e.g.
//! on Mesa's software Vulkan (docs/backends.md):
//! `XDG_RUNTIME_DIR=/tmp/xdg cargo test --release -p core-ops --features test-wgpu --test backends`.
#![cfg(feature = "test-wgpu")]

mod common;

use burn::{
    backend::{Autodiff, Wgpu, wgpu::WgpuDevice},
    tensor::{
        DType, Tensor,
        backend::{AutodiffBackend, Backend},
    },
};
use common::{Ad, assert_close, conv_cases, conv_options, fixed};
use core_ops::dispatch::{Kernels, kernels};

type Gpu = Autodiff<Wgpu>;

/// f32 on two backends: sums in another order, so a little above the same-backend bound.
const TOL: f64 = 1e-4;

fn moved<B: AutodiffBackend, const D: usize>(
    t: &Tensor<Ad, D>,
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(t.to_data(), device).require_grad()
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().iter::<f64>().collect()
}

/// Output and the gradients of `Σ out·r` for `inputs` and `params`, computed on `B`.
fn on<B: AutodiffBackend, const D: usize>(
    device: &B::Device,
    inputs: &[Tensor<Ad, 4>],
    params: &[Tensor<Ad, 1>],
    op: &impl Fn(Vec<Tensor<B, 4>>, Vec<Tensor<B, 1>>) -> Tensor<B, D>,
) -> Vec<Vec<f64>> {
    let inputs: Vec<Tensor<B, 4>> = inputs.iter().map(|t| moved(t, device)).collect();
    let params: Vec<Tensor<B, 1>> = params.iter().map(|t| moved(t, device)).collect();
    let out = op(inputs.clone(), params.clone());
    let r: Tensor<B, D> =
        Tensor::from_data(fixed(out.dims(), 99, 1.0, DType::F32).to_data(), device);
    let grads = (out.clone() * r).sum().backward();
    let mut all = vec![values(out)];
    all.extend(
        inputs
            .iter()
            .map(|t| values(Tensor::<B, 4>::from_inner(t.grad(&grads).unwrap()))),
    );
    all.extend(
        params
            .iter()
            .map(|t| values(Tensor::<B, 1>::from_inner(t.grad(&grads).unwrap()))),
    );
    all
}

/// Runs `op` on the CPU and on wgpu and compares everything.
macro_rules! same_on_both {
    ($what:expr, $inputs:expr, $params:expr, |$t:ident, $p:ident| $body:expr) => {{
        let inputs: &[Tensor<Ad, 4>] = $inputs;
        let params: &[Tensor<Ad, 1>] = $params;
        let cpu = on::<Ad, 4>(&Default::default(), inputs, params, &|$t, $p| $body);
        let gpu = on::<Gpu, 4>(&WgpuDevice::default(), inputs, params, &|$t, $p| $body);
        for (k, (a, b)) in gpu.iter().zip(&cpu).enumerate() {
            assert_close(
                &format!("{} [{k}: 0 = output, then gradients]", $what),
                a,
                b,
                TOL,
            );
        }
    }};
}

#[test]
fn convolution() {
    for (i, (xs, ws, stride, padding, dilation, groups, bias)) in
        conv_cases().into_iter().enumerate()
    {
        let x = fixed(xs, 1 + i as u64, 1.0, DType::F32);
        let w = fixed(ws, 100 + i as u64, 0.5, DType::F32);
        let params = if bias {
            vec![fixed([ws[0]], 200 + i as u64, 0.5, DType::F32)]
        } else {
            vec![]
        };
        let options = conv_options(stride, padding, dilation, groups);
        same_on_both!(format!("conv case {i}"), &[x, w], &params, |t, p| {
            core_ops::conv2d(
                t[0].clone(),
                t[1].clone(),
                p.first().cloned(),
                options.clone(),
            )
        });
    }
}

/// The shapes the segment kernels are checked on: a few channels per group; planes longer than a
/// cube's units (several strides each); one-pixel planes; 66,000 segments (groups, and channels),
/// more than a grid axis holds (65,535), so the cube count folds into a second axis.
fn norm_cases() -> [([usize; 4], usize); 4] {
    [
        ([4, 6, 5, 4], 3),
        ([2, 8, 33, 31], 4),
        ([3, 4, 1, 1], 2),
        ([2, 66_000, 1, 2], 33_000),
    ]
}

#[test]
fn normalisations() {
    assert_eq!(kernels::<Gpu>(), Kernels::AutodiffCube);
    for (i, (shape, groups)) in norm_cases().into_iter().enumerate() {
        let c = shape[1];
        let x = fixed(shape, 10 + i as u64, 2.0, DType::F32).add_scalar(0.7);
        let [w, b] = [20, 30].map(|s| fixed([c], s + i as u64, 1.0, DType::F32));
        same_on_both!(
            format!("group norm {shape:?}"),
            std::slice::from_ref(&x),
            &[w.clone(), b.clone()],
            |t, p| { core_ops::group_norm(t[0].clone(), p[0].clone(), p[1].clone(), groups, 1e-5) }
        );
        same_on_both!(
            format!("batch norm {shape:?}"),
            std::slice::from_ref(&x),
            &[w.clone(), b.clone()],
            |t, p| { core_ops::batch_norm_train(t[0].clone(), p[0].clone(), p[1].clone(), 1e-5).0 }
        );
    }
    let x = fixed([4, 6, 5, 4], 10, 2.0, DType::F32).add_scalar(0.7);
    let [w, b, mean, var] = [20, 30, 40, 50].map(|s| fixed([6], s, 1.0, DType::F32));
    let var = var.abs().add_scalar(0.1);
    let (mean, var) = (mean.to_data(), var.to_data());
    same_on_both!("fixed-statistics batch norm", &[x], &[w, b], |t, p| {
        let device = t[0].device();
        core_ops::batch_norm_fixed(
            t[0].clone(),
            Tensor::from_data(mean.clone(), &device),
            Tensor::from_data(var.clone(), &device),
            p[0].clone(),
            p[1].clone(),
            1e-5,
        )
    });
}

/// Without autodiff (evaluation, and the running statistics a batch norm returns): the same
/// values on wgpu as on the CPU.
#[test]
fn normalisations_without_autodiff() {
    assert_eq!(kernels::<Wgpu>(), Kernels::Cube);
    let device = WgpuDevice::default();
    let on_gpu = |t: &Tensor<Ad, 4>| Tensor::<Wgpu, 4>::from_data(t.to_data(), &device);
    let on_gpu1 = |t: &Tensor<Ad, 1>| Tensor::<Wgpu, 1>::from_data(t.to_data(), &device);
    for (i, (shape, groups)) in norm_cases().into_iter().enumerate() {
        let c = shape[1];
        let x = fixed(shape, 10 + i as u64, 2.0, DType::F32).add_scalar(0.7);
        let [w, b] = [20, 30].map(|s| fixed([c], s + i as u64, 1.0, DType::F32));
        let what = format!("group norm {shape:?}, no autodiff");
        let gpu = core_ops::group_norm(on_gpu(&x), on_gpu1(&w), on_gpu1(&b), groups, 1e-5);
        let cpu = core_ops::group_norm(x.clone(), w.clone(), b.clone(), groups, 1e-5);
        assert_close(&what, &values(gpu), &values(cpu), TOL);
        let (gpu, gpu_mean, gpu_var) =
            core_ops::batch_norm_train(on_gpu(&x), on_gpu1(&w), on_gpu1(&b), 1e-5);
        let (cpu, cpu_mean, cpu_var) = core_ops::batch_norm_train(x, w, b, 1e-5);
        let what = format!("batch norm {shape:?}, no autodiff");
        assert_close(&what, &values(gpu), &values(cpu), TOL);
        assert_close(
            &format!("{what}: mean"),
            &values(gpu_mean),
            &values(cpu_mean),
            TOL,
        );
        assert_close(
            &format!("{what}: var"),
            &values(gpu_var),
            &values(cpu_var),
            TOL,
        );
    }
}

#[test]
fn weight_standardization() {
    let w = fixed([6, 2, 3, 3], 300, 0.2, DType::F32).add_scalar(0.05);
    for (unbiased, eps, eps_inside_root) in [(true, 1e-5, false), (false, 1e-6, true)] {
        let ws = core_ops::Standardization {
            unbiased,
            eps,
            eps_inside_root,
        };
        same_on_both!(
            format!("WS {ws:?}"),
            std::slice::from_ref(&w),
            &[],
            |t, _p| { core_ops::standardize_weight(t[0].clone(), ws) }
        );
    }
}

#[test]
fn bilinear_resize() {
    for (i, (shape, size, align)) in [
        ([2, 3, 5, 4], [10, 8], false), // ELASTIC's ×2
        ([2, 3, 5, 4], [9, 7], true),   // DeepLab's aligned resize
        ([1, 2, 7, 6], [4, 3], false),  // down
    ]
    .into_iter()
    .enumerate()
    {
        let x = fixed(shape, 80 + i as u64, 1.0, DType::F32);
        same_on_both!(format!("bilinear case {i}"), &[x], &[], |t, _p| {
            core_ops::interpolate_bilinear(t[0].clone(), size, align)
        });
    }
}

/// A fault of burn 0.21's wgpu backend (fusion + autotune) seen on Mesa's lavapipe, not of
/// vireo's: `a [M, 8] · bᵀ` with `b` a contiguous `[N, 8]` (the transposed view a 1×1
/// convolution's im2col path and a linear layer's backward multiply by) comes back wrong for
/// M ≥ 512 — 1024×8×32 off by ~17 in values of ~3 — while the same product of a contiguous copy of
/// `bᵀ`, or with an inner size of 4, 12, 16, 24 or 32, is right. It made the tiny ELASTIC
/// network (8-channel layers, batch 16 at 8×8) train differently on wgpu. Kept to check a burn
/// upgrade or another adapter by name; it fails on lavapipe with burn 0.21.
#[test]
#[ignore = "fails with burn 0.21 on lavapipe: a reproducer of a burn fault (docs/backends.md)"]
fn transposed_matmul_with_an_inner_size_of_8() {
    let a = fixed([1, 1, 1024, 8], 1, 1.0, DType::F32);
    let b = fixed([1, 1, 32, 8], 2, 1.0, DType::F32);
    same_on_both!("a · bᵀ, inner size 8", &[a, b], &[], |t, _p| {
        t[0].clone().matmul(t[1].clone().swap_dims(2, 3))
    });
}

/// The two CubeCL segment reductions alone, against their composition on the CPU: over group
/// blocks and over channels across the batch.
#[test]
fn segment_reductions() {
    use core_ops::segments::{Over, segment_grad_sums, segment_moments};
    let device = WgpuDevice::default();
    let gpu = |t: &Tensor<Ad, 4>| Tensor::<Wgpu, 4>::from_data(t.to_data(), &device);
    let gpu2 = |t: &Tensor<Ad, 2>| Tensor::<Wgpu, 2>::from_data(t.to_data(), &device);
    for (i, (shape, groups)) in norm_cases().into_iter().enumerate() {
        let [n, c, _, _] = shape;
        let x = fixed(shape, 60 + i as u64, 2.0, DType::F32).add_scalar(0.3);
        let dy = fixed(shape, 70 + i as u64, 1.0, DType::F32);
        let planes = [80, 90, 100].map(|s| fixed([n, c], s + i as u64, 0.5, DType::F32));
        for over in [Over::Groups(groups), Over::Channels] {
            let cpu = segment_moments(x.clone(), over);
            let ours = segment_moments(gpu(&x), over);
            for (k, (a, b)) in ours.into_iter().zip(cpu).enumerate() {
                let what = format!("moments {shape:?} over {over:?} [{k}: mean, M2]");
                assert_close(&what, &values(a), &values(b), TOL);
            }
            let cpu = segment_grad_sums(dy.clone(), x.clone(), planes.clone(), over);
            let ours = segment_grad_sums(gpu(&dy), gpu(&x), planes.each_ref().map(gpu2), over);
            for (k, (a, b)) in ours.into_iter().zip(cpu).enumerate() {
                let what = format!(
                    "gradient sums {shape:?} over {over:?} [{k}: Σa·dy, Σb·dy·(x − shift)]"
                );
                assert_close(&what, &values(a), &values(b), TOL);
            }
        }
    }
}
