//! The released ELASTIC ImageNet layout (`elastic.md` §5) on a tiny elastic SE-ResNeXt of the same
//! layout written from the spec by `fixtures/make_elastic_checkpoint.py`: every entry loads (the
//! `module.` prefix and `downsample.0/1` mapped, the optimizer state left alone), and the network
//! reproduces PyTorch's eval logits, training-mode logits and input gradient — a parity test of
//! the whole elastic network (odd sizes: padding and cropping at 9², 5² and 3²).

use std::path::{Path, PathBuf};

use burn::{
    backend::{Autodiff, Flex},
    store::{ModuleStore, SafetensorsStore},
    tensor::{Tensor, TensorData, Tolerance},
};
use core_nets::{ResNet, ResNetConfig, load_pytorch_checkpoint};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(key: &str) -> TensorData {
    let mut store = SafetensorsStore::from_file(fixture("elastic_tiny.safetensors"));
    store
        .get_snapshot(key)
        .expect("readable fixture")
        .unwrap_or_else(|| panic!("fixture key {key}"))
        .to_data()
        .unwrap()
}

/// The fixture's architecture (make_elastic_checkpoint.py).
fn tiny() -> ResNetConfig {
    ResNetConfig {
        layers: [2, 2, 2, 1],
        planes: [8, 8, 16, 16],
        stem_width: 8,
        groups: 4,
        num_classes: Some(5),
        ..elastic::models::two_path_resnext([2, 2, 2, 1], true, true)
    }
}

fn load<B: burn::tensor::backend::Backend>(device: &B::Device) -> ResNet<B> {
    let (model, report) = load_pytorch_checkpoint(
        tiny().init::<B>(device),
        &fixture("elastic_tiny.pth.tar"),
        "the tiny elastic SE-ResNeXt",
    )
    .unwrap();
    assert_eq!(report.model_entry.as_deref(), Some("state_dict"));
    assert!(
        report
            .other_entries
            .iter()
            .any(|k| k.starts_with("optimizer"))
    );
    model
}

#[test]
fn the_released_layout_loads_and_matches_pytorch_in_eval_mode() {
    let device = Default::default();
    let model = load::<Flex>(&device);
    let x = Tensor::<Flex, 4>::from_data(reference("x"), &device);
    model
        .forward(x)
        .into_data()
        .assert_approx_eq::<f32>(&reference("eval_logits"), Tolerance::absolute(1e-4));
}

#[test]
fn training_mode_logits_and_input_gradient_match_pytorch() {
    type AD = Autodiff<Flex>;
    let device = Default::default();
    let model = load::<AD>(&device);
    let x = Tensor::<AD, 4>::from_data(reference("x"), &device).require_grad();
    let logits = model.forward(x.clone());
    logits
        .clone()
        .into_data()
        .assert_approx_eq::<f32>(&reference("train_logits"), Tolerance::absolute(1e-4));
    let w = Tensor::<AD, 2>::from_data(reference("w"), &device);
    let grads = (logits * w).sum().backward();
    x.grad(&grads)
        .unwrap()
        .into_data()
        .assert_approx_eq::<f32>(&reference("grad_x"), Tolerance::absolute(1e-4));
}

#[test]
fn another_layout_is_refused_naming_the_keys() {
    let device = Default::default();
    // The plain ResNeXt-50 two-path model does not fit the tiny file.
    let err = load_pytorch_checkpoint(
        elastic::models::two_path_resnext([3, 4, 6, 3], false, false).init::<Flex>(&device),
        &fixture("elastic_tiny.pth.tar"),
        "resnext50",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("resnext50") && err.contains("layer"), "{err}");
}

/// The tiny elastic DLA-X of the same script (trees of depth 1, 2 and 3, residual roots) in the
/// released DLA layout: eval and training-mode logits and the input gradient equal PyTorch's.
#[test]
fn a_released_layout_dla_matches_pytorch() {
    use core_nets::{DLA_KEY_REMAPPING, DlaConfig, load_pytorch_checkpoint_with};
    let reference = |key: &str| {
        let mut store = SafetensorsStore::from_file(fixture("dla_tiny.safetensors"));
        store.get_snapshot(key).unwrap().unwrap().to_data().unwrap()
    };
    let config = DlaConfig {
        levels: [1, 1, 1, 2, 3, 1],
        channels: [8, 16, 32, 32, 64, 64],
        cardinality: 32,
        residual_root: true,
        elastic: true,
        num_classes: Some(5),
        ..DlaConfig::default()
    };
    let file = fixture("dla_tiny.pth.tar");
    let device = Default::default();
    let (eval_net, report) = load_pytorch_checkpoint_with(
        config.init::<Flex>(&device),
        &file,
        "the tiny elastic DLA-X",
        DLA_KEY_REMAPPING,
    )
    .unwrap();
    assert!(
        report
            .ignored
            .iter()
            .all(|k| k.ends_with("num_batches_tracked"))
    );
    let x = Tensor::<Flex, 4>::from_data(reference("x"), &device);
    eval_net
        .forward(x)
        .into_data()
        .assert_approx_eq::<f32>(&reference("eval_logits"), Tolerance::absolute(1e-4));
    type AD = Autodiff<Flex>;
    let (train_net, _) = load_pytorch_checkpoint_with(
        config.init::<AD>(&device),
        &file,
        "the tiny elastic DLA-X",
        DLA_KEY_REMAPPING,
    )
    .unwrap();
    let x = Tensor::<AD, 4>::from_data(reference("x"), &device).require_grad();
    let logits = train_net.forward(x.clone());
    logits
        .clone()
        .into_data()
        .assert_approx_eq::<f32>(&reference("train_logits"), Tolerance::absolute(1e-4));
    let w = Tensor::<AD, 2>::from_data(reference("w"), &device);
    let grads = (logits * w).sum().backward();
    x.grad(&grads)
        .unwrap()
        .into_data()
        // Gradients of order 1 summed in another order in f32: 1e-4 relative.
        .assert_approx_eq::<f32>(&reference("grad_x"), Tolerance::rel_abs(1e-4, 1e-4));
}

/// The tiny elastic DenseNet-BC of the same script in the released DenseNet layout.
#[test]
fn a_released_layout_densenet_matches_pytorch() {
    use core_nets::{DenseNetConfig, densenet_key_remapping, load_pytorch_checkpoint_with};
    let reference = |key: &str| {
        let mut store = SafetensorsStore::from_file(fixture("densenet_tiny.safetensors"));
        store.get_snapshot(key).unwrap().unwrap().to_data().unwrap()
    };
    let config = DenseNetConfig {
        growth_rate: 4,
        block_config: [2, 2, 2, 2],
        num_init_features: 8,
        elastic: true,
        num_classes: Some(5),
        ..DenseNetConfig::default()
    };
    let remaps = densenet_key_remapping(2);
    let remaps: Vec<(&str, &str)> = remaps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let file = fixture("densenet_tiny.pth.tar");
    let device = Default::default();
    let (eval_net, _) = load_pytorch_checkpoint_with(
        config.init::<Flex>(&device),
        &file,
        "tiny DenseNet",
        &remaps,
    )
    .unwrap();
    let x = Tensor::<Flex, 4>::from_data(reference("x"), &device);
    eval_net
        .forward(x)
        .into_data()
        .assert_approx_eq::<f32>(&reference("eval_logits"), Tolerance::absolute(1e-4));
    type AD = Autodiff<Flex>;
    let (train_net, _) =
        load_pytorch_checkpoint_with(config.init::<AD>(&device), &file, "tiny DenseNet", &remaps)
            .unwrap();
    let x = Tensor::<AD, 4>::from_data(reference("x"), &device).require_grad();
    let logits = train_net.forward(x.clone());
    logits
        .clone()
        .into_data()
        .assert_approx_eq::<f32>(&reference("train_logits"), Tolerance::absolute(1e-4));
    let w = Tensor::<AD, 2>::from_data(reference("w"), &device);
    let grads = (logits * w).sum().backward();
    x.grad(&grads)
        .unwrap()
        .into_data()
        .assert_approx_eq::<f32>(&reference("grad_x"), Tolerance::rel_abs(1e-4, 1e-4));
}
