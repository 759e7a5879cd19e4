//! Axial-ResNet structure against `axial-deeplab.md` §3.1 and §8.5: exact parameter counts of the
//! repository's four factories, stage shapes at 224.

use axial_deeplab::{AXIAL_PRESETS, AxialResNetConfig};
use burn::{
    backend::Flex,
    tensor::{Distribution, Tensor},
};
use core_nets::count_parameters;

#[test]
fn parameter_counts_equal_the_repository() {
    let device = Default::default();
    for preset in AXIAL_PRESETS {
        let model = (preset.config)().init::<Flex>(&device);
        assert_eq!(
            count_parameters::<Flex, _>(&model),
            preset.parameters,
            "{}",
            preset.name
        );
    }
}

#[test]
fn stage_shapes_at_224() {
    let device = Default::default();
    let model = AxialResNetConfig::axial26s().init::<Flex>(&device);
    let x = Tensor::<Flex, 4>::random([1, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
    let stages = model.forward_features(x.clone());
    let dims: Vec<[usize; 4]> = stages.iter().map(|s| s.dims()).collect();
    assert_eq!(
        dims,
        [
            [1, 128, 56, 56],
            [1, 256, 28, 28],
            [1, 512, 14, 14],
            [1, 1024, 7, 7]
        ]
    );
    assert_eq!(model.forward(x).dims(), [1, 1000]);
}
