//! The released `best.pth` layout (`compnet.md` §5) on a tiny same-layout fixture written by
//! `tests/fixtures/make_best_fixture.py`: the file (a `state_dict` wrapper with a NumPy scalar
//! beside it) loads, the network gives PyTorch's scores, and untied mixtures are refused.

use std::path::PathBuf;

use burn::{
    backend::Flex,
    tensor::{Tensor, TensorData},
};
use compnet::{head::HeadConfig, official::load_best_checkpoint};
use core_nets::{
    read_safetensors_tensor,
    vgg::{VggConfig, VggCut},
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(key: &str) -> TensorData {
    read_safetensors_tensor(&fixture("best_tiny_reference.safetensors"), key).unwrap()
}

fn close(a: &[f32], b: &[f32], rel: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= rel * y.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

fn vgg() -> VggConfig {
    VggConfig {
        cut: VggCut::Pool5,
        width_divisor: 16,
    }
}

#[test]
fn the_released_layout_loads_and_scores_as_pytorch() {
    let device = Default::default();
    let config = HeadConfig {
        mixtures_per_class: 2,
        ..HeadConfig::default()
    };
    let (backbone, head, report) =
        load_best_checkpoint::<Flex>(&fixture("best_tiny.pth"), &vgg(), config, &device).unwrap();
    // 13 convolutions × 2, the kernels, both mixture entries.
    assert_eq!(report.applied, 29, "{}", report.summary());
    assert_eq!(head.mix_model.dims(), [4, 6, 3, 3]);
    let x = Tensor::<Flex, 4>::from_data(reference("x"), &device);
    let occluders = Tensor::<Flex, 2>::from_data(reference("occl"), &device);
    let features = backbone.forward(x);
    assert_eq!(features.dims(), [1, 32, 2, 3]);
    let out = head.forward(features, occluders);
    let scores: Vec<f32> = out.scores.into_data().iter::<f32>().collect();
    let expected: Vec<f32> = reference("scores").iter::<f32>().collect();
    close(&scores, &expected, 1e-4);
    let p: Vec<f32> = out.probabilities.into_data().iter::<f32>().collect();
    close(
        &p,
        &reference("p").iter::<f32>().collect::<Vec<f32>>(),
        1e-4,
    );
}

#[test]
fn untied_mixtures_and_mismatched_settings_are_refused_by_name() {
    let device = Default::default();
    let head = HeadConfig {
        mixtures_per_class: 2,
        ..HeadConfig::default()
    };
    let err =
        load_best_checkpoint::<Flex>(&fixture("best_untied.pth"), &vgg(), head.clone(), &device)
            .unwrap_err();
    assert!(
        format!("{err:#}").contains("pointwiseinference.mix_model"),
        "{err:#}"
    );
    let three = HeadConfig {
        mixtures_per_class: 3,
        ..HeadConfig::default()
    };
    let err = load_best_checkpoint::<Flex>(&fixture("best_tiny.pth"), &vgg(), three, &device)
        .unwrap_err();
    assert!(format!("{err:#}").contains("mixtures_per_class"), "{err:#}");
    let wide = VggConfig {
        width_divisor: 8,
        ..vgg()
    };
    let err =
        load_best_checkpoint::<Flex>(&fixture("best_tiny.pth"), &wide, head, &device).unwrap_err();
    assert!(format!("{err:#}").contains("conv1o1.weight"), "{err:#}");
}

/// The released initialisation pickles, converted (`tools/convert_init_pickles.py`), load as the
/// released `getCompositionModel` sizes, pads and stacks them (`make_init_fixture.py`).
#[test]
fn the_released_initialisation_loads_as_get_composition_model_builds_it() {
    use compnet::official::load_released_init;
    let classes: Vec<String> = ["bus", "car", "boat"].map(String::from).to_vec();
    let init = load_released_init(
        &fixture("init_tiny.safetensors"),
        &classes,
        VggCut::Pool5,
        4,
    )
    .unwrap();
    assert_eq!(init.dictionary.len(), 3);
    assert_eq!(init.size, [3, 5], "H max 3 (odd), W max 4 → 5");
    assert_eq!(init.clusters, [2, 4, 0], "bus has 2 mixtures, boat none");
    let expected: Vec<f32> =
        read_safetensors_tensor(&fixture("init_tiny_reference.safetensors"), "mix_model")
            .unwrap()
            .iter::<f32>()
            .collect();
    let per_class = 4 * 3 * 3 * 5;
    assert_eq!(&init.mixtures[..2 * per_class], expected.as_slice());
    assert!(
        init.mixtures[2 * per_class..].iter().all(|&v| v == 0.0),
        "boat's rows are empty"
    );
    let err =
        load_released_init(&fixture("best_tiny.pth"), &classes, VggCut::Pool5, 4).unwrap_err();
    assert!(format!("{err:#}").contains("best_tiny.pth"), "{err:#}");
}
