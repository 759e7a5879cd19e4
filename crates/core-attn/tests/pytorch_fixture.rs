//! The layer against a PyTorch reference (`fixtures/make_fixtures.py`, written from
//! `axial-deeplab.md` §2.1/§2.2): training-mode output with batch statistics, gradients of the
//! input, the relative tables and the qkv weight, the running statistics after the step, and the
//! evaluation-mode output — for the repository's convention, DeepLab2's, and a strided 8-head
//! width layer whose span exceeds the axis.

use std::path::{Path, PathBuf};

use burn::{
    backend::{Autodiff, Flex},
    module::AutodiffModule,
    store::{ModuleStore, SafetensorsStore},
    tensor::{Tensor, TensorData, Tolerance},
};
use burn_store::ModuleSnapshot;
use core_attn::{AxialAttention, AxialAttentionConfig, Axis, RpeConvention, Span};

type B = Flex;
type AD = Autodiff<Flex>;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/axial_layer.safetensors")
}

fn reference(key: &str) -> TensorData {
    let mut store = SafetensorsStore::from_file(fixture());
    store
        .get_snapshot(key)
        .expect("readable fixture")
        .unwrap_or_else(|| panic!("fixture key {key}"))
        .to_data()
        .unwrap()
}

/// The layer of `case`, its weights loaded from the fixture's `<case>.` keys.
fn load(case: &str, config: AxialAttentionConfig) -> AxialAttention<AD> {
    let mut layer = config.init::<AD>(&Default::default());
    let mut store = SafetensorsStore::from_file(fixture())
        .with_key_remapping(format!(r"^{case}\."), "")
        .allow_partial(true);
    let result = layer.load_from(&mut store).expect("fixture loads");
    assert!(result.missing.is_empty(), "missing: {:?}", result.missing);
    assert!(result.errors.is_empty(), "errors: {:?}", result.errors);
    layer
}

fn check(case: &str, config: AxialAttentionConfig) {
    let tolerance = Tolerance::<f32>::absolute(2e-4);
    let device = Default::default();
    let layer = load(case, config);
    let x = Tensor::<AD, 4>::from_data(reference(&format!("{case}.input")), &device).require_grad();
    let out = layer.forward(x.clone());
    out.to_data()
        .assert_approx_eq(&reference(&format!("{case}.train_out")), tolerance);
    let weights = Tensor::<AD, 4>::from_data(reference(&format!("{case}.loss_weights")), &device);
    let grads = (out * weights).sum().backward();
    x.grad(&grads)
        .unwrap()
        .to_data()
        .assert_approx_eq(&reference(&format!("{case}.grad_input")), tolerance);
    layer
        .relative
        .grad(&grads)
        .unwrap()
        .to_data()
        .assert_approx_eq(&reference(&format!("{case}.grad_relative")), tolerance);
    layer
        .qkv_transform
        .weight
        .grad(&grads)
        .unwrap()
        .to_data()
        .assert_approx_eq(&reference(&format!("{case}.grad_qkv")), tolerance);
    // Running statistics after the training step, then evaluation with them.
    let eval = layer.valid();
    for (name, bn) in [
        ("bn_qkv", &eval.bn_qkv),
        ("bn_similarity", &eval.bn_similarity),
        ("bn_output", &eval.bn_output),
    ] {
        bn.running_mean.value().to_data().assert_approx_eq(
            &reference(&format!("{case}.after.{name}.running_mean")),
            tolerance,
        );
        bn.running_var.value().to_data().assert_approx_eq(
            &reference(&format!("{case}.after.{name}.running_var")),
            tolerance,
        );
    }
    let x = Tensor::<B, 4>::from_data(reference(&format!("{case}.input")), &device);
    eval.forward(x)
        .to_data()
        .assert_approx_eq(&reference(&format!("{case}.eval_out")), tolerance);
}

#[test]
fn repository_convention_matches_pytorch() {
    check(
        "height",
        AxialAttentionConfig::new(6, 8, Span::Global { size: 5 }, Axis::Height).with_heads(2),
    );
}

#[test]
fn deeplab2_convention_matches_pytorch() {
    check(
        "height_dl2",
        AxialAttentionConfig::new(6, 8, Span::Global { size: 5 }, Axis::Height)
            .with_heads(2)
            .with_convention(RpeConvention::Dl2),
    );
}

#[test]
fn strided_width_layer_with_a_longer_span_matches_pytorch() {
    let config =
        AxialAttentionConfig::new(8, 16, Span::Global { size: 6 }, Axis::Width).with_stride(2);
    check("width_stride2", config);
}
