//! VGG-16 features (`resnet-family.md` §2.7, `compnet.md` §2.2, §3): exact parameter counts and
//! torchvision's layout against PyTorch (fixture from `tests/fixtures/make_vgg_fixture.py`).

use std::path::Path;

use burn::{
    backend::Flex,
    tensor::{Tensor, TensorData, Tolerance},
};
use core_nets::{VggConfig, VggCut, count_parameters, load_vgg16_features};

type B = Flex;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(key: &str) -> TensorData {
    core_nets::read_safetensors_tensor(&fixture("vgg_tiny.safetensors"), key).unwrap()
}

#[test]
fn vgg16_feature_counts_are_torchvisions() {
    let device = Default::default();
    let count = |cut| count_parameters::<B, _>(&VggConfig::vgg16(cut).init::<B>(&device));
    assert_eq!(count(VggCut::Pool5), 14_714_688);
    assert_eq!(count(VggCut::Pool4), 7_635_264);
}

#[test]
fn torchvision_layout_features_match_pytorch_at_both_cuts() {
    let device = Default::default();
    let x = Tensor::<B, 4>::from_data(reference("x"), &device);
    for (cut, key) in [(VggCut::Pool5, "pool5"), (VggCut::Pool4, "pool4")] {
        let config = VggConfig {
            cut,
            width_divisor: 16,
        };
        let (model, report) =
            load_vgg16_features::<B>(&config, &fixture("vgg_tiny.pth"), &device).unwrap();
        assert_eq!((report.applied, model.convs.len()), (26, cut.convs()));
        model
            .forward(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&reference(key), Tolerance::absolute(1e-5));
    }
    // A file of other widths is refused, naming the network.
    let err = load_vgg16_features::<B>(
        &VggConfig::vgg16(VggCut::Pool5),
        &fixture("vgg_tiny.pth"),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("VGG-16 features") && err.contains("shape"),
        "{err}"
    );
}
