//! Checks in float64: the spec vectors at the spec's f64 tolerance (1e-9 relative) and
//! finite-difference gradient checks (`ws.md` §8.4, `bcn.md` §8.5). This file is its own test
//! binary so that it can switch the CPU device to f64 before any tensor exists.

use burn::{
    backend::{Autodiff, Flex, flex::FlexDevice},
    tensor::{DType, Tensor, TensorData, backend::Backend},
};
use core_norm::{
    BatchChannelNorm, BatchStatistics, Conv2dConfig, ConvKind, WsVariant, standardize_weight,
};

type AD = Autodiff<Flex>;

fn f64_device() -> FlexDevice {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        burn::tensor::set_default_dtypes::<Flex>(&FlexDevice, DType::F64, DType::I32)
            .expect("the f64 default is set before any tensor is created");
    });
    FlexDevice
}

fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// Central differences of `f` at `x` (h = 1e-6), element by element.
fn finite_difference<const D: usize>(
    x: &[f64],
    shape: [usize; D],
    f: impl Fn(Tensor<Flex, D>) -> f64,
) -> Vec<f64> {
    let h = 1e-6;
    (0..x.len())
        .map(|i| {
            let at = |delta: f64| {
                let mut v = x.to_vec();
                v[i] += delta;
                f(Tensor::from_data(TensorData::new(v, shape), &f64_device()))
            };
            (at(h) - at(-h)) / (2.0 * h)
        })
        .collect()
}

/// Fixed pseudo-random values in `[-scale, scale)` (a tested gradient must not depend on the run:
/// burn's generator is shared by the test threads).
fn fixed<const D: usize>(shape: [usize; D], seed: u64, scale: f64) -> Tensor<Flex, D> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f64> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &f64_device())
}

fn max_relative_error(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-2))
        .fold(0.0, f64::max)
}

#[test]
fn ws_gradient_matches_finite_differences() {
    for variant in [WsVariant::OfficialTorch, WsVariant::BcnRepo, WsVariant::Bit] {
        let (w, r) = (fixed([3, 2, 3, 3], 1, 0.8), fixed([3, 2, 3, 3], 2, 1.0));
        let loss =
            |w: Tensor<Flex, 4>| values((standardize_weight(w, variant) * r.clone()).sum())[0];
        let numeric = finite_difference(&values(w.clone()), [3, 2, 3, 3], loss);

        let w_ad = Tensor::<AD, 4>::from_inner(w).require_grad();
        let r_ad = Tensor::<AD, 4>::from_inner(r.clone());
        let grads = (standardize_weight(w_ad.clone(), variant) * r_ad)
            .sum()
            .backward();
        let analytic = values(w_ad.grad(&grads).expect("gradient of W"));
        let err = max_relative_error(&analytic, &numeric);
        eprintln!("{variant:?}: max relative error {err:e}");
        assert!(err < 1e-6, "{variant:?}: max relative error {err}");
    }
}

#[test]
fn ws_gradient_of_a_constant_kernel_is_finite() {
    let device = f64_device();
    let w = Tensor::<AD, 4>::from_data(TensorData::new(vec![0.5f64; 8], [2, 1, 2, 2]), &device)
        .require_grad();
    let grads = standardize_weight(w.clone(), WsVariant::OfficialTorch)
        .sum()
        .backward();
    assert!(
        values(w.grad(&grads).unwrap())
            .iter()
            .all(|g| g.is_finite())
    );
}

#[test]
fn estbn_gradient_treats_the_estimates_as_constants() {
    // bcn.md §8.5: with r = 0.1, autograd equals the finite difference of a function whose
    // estimates are the constants the training step produced.
    let device = f64_device();
    let x = fixed([2, 4, 2, 2], 3, 4.0).add_scalar(1.0);
    let r = fixed([2, 4, 2, 2], 4, 1.0);

    let norm = BatchChannelNorm::<AD>::new(
        4,
        2,
        1e-5,
        BatchStatistics::Estimated { rate: 0.1 },
        &device,
    );
    let x_ad = Tensor::<AD, 4>::from_inner(x.clone()).require_grad();
    let out = norm.forward(x_ad.clone());
    let grads = (out * Tensor::from_inner(r.clone())).sum().backward();
    let analytic = values(x_ad.grad(&grads).unwrap());

    // The estimates after that one update, frozen: evaluation mode of the same module.
    use burn::module::AutodiffModule;
    let frozen = norm.valid();
    let numeric = finite_difference(&values(x.clone()), [2, 4, 2, 2], |x| {
        values((frozen.forward(x) * r.clone()).sum())[0]
    });
    let err = max_relative_error(&analytic, &numeric);
    assert!(err < 1e-6, "max relative error {err}");
}

#[test]
fn ws_vectors_in_float64() {
    // ws.md §8.1 and §8.2 at 1e-9 relative, the near-constant channel included.
    let device = f64_device();
    let w = Tensor::<Flex, 4>::from_data(
        TensorData::new(
            vec![
                1.0f64, 2.0, 3.0, 4.0, -1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.501,
            ],
            [3, 1, 2, 2],
        ),
        &device,
    );
    let cases = [
        (
            WsVariant::OfficialTorch,
            [-1.1618860039, 1.2247298716, -0.4901960784, 1.4705882353],
        ),
        (
            WsVariant::BcnRepo,
            [-1.1618915182, 1.2247356859, -0.0780868809, 0.2342606428],
        ),
        (
            WsVariant::TIMM,
            [-1.3416402498, 1.4142121482, -0.2294157339, 0.6882472016],
        ),
        (
            WsVariant::Bit,
            [-1.3416407864, 1.4142135622, -0.5771963707, 1.731589112],
        ),
    ];
    for (variant, expected) in cases {
        let v = values(standardize_weight(w.clone(), variant));
        let got = [v[0], v[7], v[8], v[11]];
        for (g, e) in got.iter().zip(expected) {
            assert!(
                (g - e).abs() <= 1e-9 * e.abs().max(1.0),
                "{variant:?}: {g} vs {e}"
            );
        }
    }
    let x = Tensor::<Flex, 4>::from_data(
        TensorData::new((1..=9).map(f64::from).collect::<Vec<_>>(), [1, 1, 3, 3]),
        &device,
    );
    let mut conv = Conv2dConfig::new(1, 3, 2)
        .with_kind(ConvKind::Ws {
            variant: WsVariant::OfficialTorch,
        })
        .init::<Flex>(&device);
    conv.weight = burn::module::Param::from_tensor(w);
    let y = values(conv.forward(x));
    for (channel, expected) in [5.42213468501571, 4.89891948630119, 3.92156862745]
        .into_iter()
        .enumerate()
    {
        for &v in &y[channel * 4..channel * 4 + 4] {
            assert!(
                (v - expected).abs() < 2e-11 * expected,
                "channel {channel}: {v} vs {expected}"
            );
        }
    }
}
