//! The official checkpoint layout (`axial-deeplab.md` §5) on a tiny model of the same layout made by
//! `fixtures/make_fixtures.py`: `{'net': state_dict}` of a DataParallel model, `hight_block` keys,
//! `flatten_index` buffers; the loaded model's eval logits equal PyTorch's.

use std::path::{Path, PathBuf};

use axial_deeplab::{AxialResNetConfig, load_axial_checkpoint};
use burn::{
    backend::Flex,
    store::{ModuleStore, SafetensorsStore},
    tensor::{Tensor, TensorData, Tolerance},
};
use core_nets::ImportError;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(key: &str) -> TensorData {
    let mut store = SafetensorsStore::from_file(fixture("axial_tiny.safetensors"));
    store
        .get_snapshot(key)
        .expect("readable fixture")
        .unwrap_or_else(|| panic!("fixture key {key}"))
        .to_data()
        .unwrap()
}

fn tiny() -> AxialResNetConfig {
    AxialResNetConfig::new([1, 1, 1, 1], 0.0625)
        .with_num_classes(10)
        .with_span(8)
        .with_heads(2)
}

#[test]
fn the_repository_layout_loads_and_reproduces_pytorch() {
    let device = Default::default();
    let model = tiny().init::<Flex>(&device);
    let (model, report) =
        load_axial_checkpoint(model, &fixture("axial_tiny.pth"), "tiny axial").unwrap();
    assert!(report.applied > 0);
    assert!(report.ignored.iter().any(|k| k.ends_with("flatten_index")));
    let x = Tensor::<Flex, 4>::from_data(reference("input"), &device);
    model
        .forward(x)
        .to_data()
        .assert_approx_eq(&reference("logits"), Tolerance::<f32>::absolute(1e-4));
}

#[test]
fn a_checkpoint_of_another_shape_is_refused_with_the_keys() {
    let model = tiny()
        .with_num_classes(11)
        .init::<Flex>(&Default::default());
    let err = load_axial_checkpoint(model, &fixture("axial_tiny.pth"), "tiny axial (11 classes)")
        .unwrap_err();
    assert!(matches!(err, ImportError::Mismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("fc.weight") && text.contains("11 classes"),
        "{text}"
    );
}

#[test]
fn the_training_scripts_checkpoint_with_optimizer_state_loads() {
    // `{'net', 'optim', 'epoch'}` as train.py saves it (core-nets'
    // fixtures/make_training_checkpoints.py): only `net` is read.
    let device = Default::default();
    let model = tiny().init::<Flex>(&device);
    let (model, report) =
        load_axial_checkpoint(model, &fixture("axial_tiny_train.pth"), "tiny axial").unwrap();
    assert_eq!(report.model_entry.as_deref(), Some("net"));
    assert!(report.other_entries.iter().all(|k| k.starts_with("optim.")));
    assert!(!report.other_entries.is_empty());
    let x = Tensor::<Flex, 4>::from_data(reference("input"), &device);
    model
        .forward(x)
        .to_data()
        .assert_approx_eq(&reference("logits"), Tolerance::<f32>::absolute(1e-4));
}
