//! Times group norm and batch norm (forward + backward, `Autodiff<Wgpu>`) through core-ops'
//! CubeCL segment kernels and through burn's composition, side by side in one process, at the
//! shapes of ResNet-50 GN's stages and of the `gn32_fwd_bwd` bench case:
//! `XDG_RUNTIME_DIR=/tmp/xdg cargo run --release -p core-ops --features wgpu --example norm_timing`.
//! (docs/backends.md lists what it measured on lavapipe.)

use std::time::Instant;

use burn::{
    backend::{Autodiff, Wgpu, wgpu::WgpuDevice},
    tensor::{Distribution, Tensor},
};

type G = Autodiff<Wgpu>;

/// Milliseconds per forward + backward of `norm` on `x` (three warm-up runs, then ten).
fn time(x: &Tensor<G, 4>, norm: impl Fn(Tensor<G, 4>) -> Tensor<G, 4>) -> f64 {
    let run = || {
        let grads = (norm(x.clone()) * 1.5).sum().backward();
        x.grad(&grads).expect("input gradient").into_data();
    };
    for _ in 0..3 {
        run();
    }
    let start = Instant::now();
    for _ in 0..10 {
        run();
    }
    start.elapsed().as_secs_f64() * 100.0
}

fn main() {
    let device = WgpuDevice::default();
    let shapes = [
        [8, 64, 56, 56],
        [32, 256, 16, 16],
        [32, 512, 8, 8],
        [32, 2048, 2, 2],
    ];
    println!("shape, op: core-ops kernels ms | burn composition ms (fwd+bwd, mean of 10)");
    for shape in shapes {
        let x =
            Tensor::<G, 4>::random(shape, Distribution::Normal(0.5, 2.0), &device).require_grad();
        let w = Tensor::<G, 1>::random([shape[1]], Distribution::Normal(1.0, 0.1), &device)
            .require_grad();
        let b = Tensor::<G, 1>::zeros([shape[1]], &device).require_grad();
        let gn = |x| core_ops::group_norm(x, w.clone(), b.clone(), 32, 1e-5);
        let gn_ref = |x| core_ops::reference::group_norm(x, w.clone(), b.clone(), 32, 1e-5);
        let bn = |x| core_ops::batch_norm_train(x, w.clone(), b.clone(), 1e-5).0;
        let bn_ref = |x| core_ops::reference::batch_norm_train(x, w.clone(), b.clone(), 1e-5).0;
        // Twice each, alternating, so a slow start or a busy moment shows as disagreement.
        for _ in 0..2 {
            let (ours, composed) = (time(&x, gn), time(&x, gn_ref));
            println!("{shape:?} GN(32): {ours:.1} | {composed:.1}");
            let (ours, composed) = (time(&x, bn), time(&x, bn_ref));
            println!("{shape:?} BN: {ours:.1} | {composed:.1}");
        }
    }
}
