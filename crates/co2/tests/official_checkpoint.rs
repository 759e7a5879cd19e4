//! The released MoCo layout (`co2-moco.md` §5) on a tiny model of the same layout made by
//! `fixtures/make_moco_checkpoint.py`: both encoders' eval embeddings equal PyTorch's, the queue and
//! its pointer are restored, the optimizer state is left alone.

use std::path::{Path, PathBuf};

use burn::{
    backend::Flex,
    store::{ModuleStore, SafetensorsStore},
    tensor::{Tensor, TensorData, Tolerance},
};
use co2::{Head, KeyBn, MocoConfig, official::load_moco_checkpoint};
use core_nets::{BlockKind, ResNetConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(key: &str) -> TensorData {
    let mut store = SafetensorsStore::from_file(fixture("moco_tiny.safetensors"));
    store
        .get_snapshot(key)
        .expect("readable fixture")
        .unwrap_or_else(|| panic!("fixture key {key}"))
        .to_data()
        .unwrap()
}

/// The fixture's architecture (make_moco_checkpoint.py).
fn tiny() -> MocoConfig {
    MocoConfig {
        backbone: ResNetConfig {
            block: BlockKind::Basic,
            layers: [1, 1, 1, 1],
            planes: [4, 4, 8, 8],
            stem_width: 4,
            num_classes: None,
            ..ResNetConfig::default()
        },
        head: Head::Mlp,
        dim: 6,
        queue: 16,
        momentum: 0.999,
        tau: 0.2,
        key_bn: KeyBn::None,
    }
}

#[test]
fn the_released_layout_loads_both_encoders_the_queue_and_its_pointer() {
    let device = Default::default();
    let (model, report) = load_moco_checkpoint(
        tiny().init::<Flex>(&device),
        &fixture("moco_tiny.pth.tar"),
        "tiny MoCo v2",
    )
    .unwrap();
    assert_eq!(report.model_entry.as_deref(), Some("state_dict"));
    assert!(
        report
            .other_entries
            .iter()
            .all(|k| k.starts_with("optimizer."))
    );
    let x = Tensor::<Flex, 4>::from_data(reference("x"), &device);
    let tolerance = Tolerance::<f32>::rel_abs(1e-4, 1e-5);
    model
        .encoder_q
        .forward(x.clone())
        .into_data()
        .assert_approx_eq::<f32>(&reference("q"), tolerance);
    model
        .encoder_k
        .forward(x)
        .into_data()
        .assert_approx_eq::<f32>(&reference("k"), tolerance);
    model
        .queue
        .snapshot()
        .into_data()
        .assert_approx_eq::<f32>(&reference("queue"), tolerance);
    assert_eq!(model.queue.position(), 8);
}

#[test]
fn a_checkpoint_of_another_head_is_refused_with_the_keys() {
    let config = MocoConfig {
        head: Head::Linear,
        ..tiny()
    };
    let err = load_moco_checkpoint(
        config.init::<Flex>(&Default::default()),
        &fixture("moco_tiny.pth.tar"),
        "tiny MoCo v1",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("fc") && err.contains("tiny MoCo v1"), "{err}");
}
