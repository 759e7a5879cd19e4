//! ELASTIC's ResNeXt models against `elastic.md`: exact parameter counts, the official FLOP
//! counter's GFLOPs and state_dict entry counts (§1, §5), which blocks are elastic and the feature
//! shapes (§8.2), the released initialisation (§3), the resampling vectors (§8.1).

use burn::{
    backend::Flex,
    module::{Module, ModuleVisitor, Param},
    tensor::{Distribution, Tensor, TensorData, backend::Backend},
};
use core_nets::{ResNet, ResNetConfig, ResidualBlock, count_parameters, resample};
use elastic::{
    ELASTIC_MODELS,
    models::{Arch, find_model},
    official_init,
};

fn build(name: &str) -> ResNet<Flex> {
    let Arch::ResNeXt(config) = (find_model(name).unwrap().arch)() else {
        panic!("{name} is a ResNeXt")
    };
    config.init::<Flex>(&Default::default())
}

/// PyTorch's state_dict entries: every tensor, plus `num_batches_tracked` per BatchNorm.
struct Entries {
    path: Vec<String>,
    tensors: usize,
    batch_norms: usize,
}

impl<B: Backend> ModuleVisitor<B> for Entries {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<B, D>>) {
        self.tensors += 1;
        if self.path.last().is_some_and(|n| n == "running_mean") {
            self.batch_norms += 1;
        }
    }
}

fn state_dict_entries<M: Module<Flex>>(model: &M) -> usize {
    let mut entries = Entries {
        path: Vec::new(),
        tensors: 0,
        batch_norms: 0,
    };
    model.visit(&mut entries);
    entries.tensors + entries.batch_norms
}

#[test]
fn parameter_counts_flops_and_entries_are_the_official_ones() {
    for model in ELASTIC_MODELS {
        let arch = (model.arch)();
        let gflops = arch.gflops(224);
        assert!(
            (gflops - model.gflops).abs() < 5e-4,
            "{}: {gflops:.4} GFLOPs, expected {}",
            model.name,
            model.gflops
        );
        assert_eq!(arch.parameters(), model.parameters, "{}", model.name);
        let config = match arch {
            Arch::ResNeXt(config) => config,
            Arch::Dla(config) => {
                if model.name == "dla60x_elastic" {
                    let net = config.init::<Flex>(&Default::default());
                    assert_eq!(state_dict_entries(&net), 606);
                }
                continue;
            }
            Arch::DenseNet(config) => {
                if model.name == "densenet201_elastic" {
                    let net = config.init::<Flex>(&Default::default());
                    assert_eq!(state_dict_entries(&net), 1_931);
                }
                continue;
            }
        };
        let net = config.init::<Flex>(&Default::default());
        let expected_entries = match model.name {
            "resnext50" => Some(528),
            "resnext50_elastic" => Some(714),
            "se_resnext50_elastic" => Some(802),
            _ => None,
        };
        if let Some(entries) = expected_entries {
            assert_eq!(state_dict_entries(&net), entries, "{}", model.name);
        }
    }
}

fn elastic_flags(blocks: &[ResidualBlock<Flex>]) -> Vec<u8> {
    blocks
        .iter()
        .map(|b| match b {
            ResidualBlock::TwoPath(b) => b.elastic as u8,
            _ => panic!("not a two-path block"),
        })
        .collect()
}

#[test]
fn elastic_blocks_are_the_stride_one_blocks_of_stages_one_to_three() {
    let net = build("resnext50_elastic");
    assert_eq!(elastic_flags(&net.layer1), [1; 6]);
    assert_eq!(elastic_flags(&net.layer2), [0, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(elastic_flags(&net.layer3), [0, 1, 1, 1, 1]);
    assert_eq!(elastic_flags(&net.layer4), [0; 3]);
    let net = build("resnext101_elastic");
    assert_eq!(elastic_flags(&net.layer1), [1; 12]);
    assert_eq!(
        elastic_flags(&net.layer2),
        [[0].as_slice(), &[1; 13]].concat()
    );
    assert_eq!(
        elastic_flags(&net.layer3),
        [[0].as_slice(), &[1; 19]].concat()
    );
    assert_eq!(elastic_flags(&net.layer4), [0; 3]);
    assert!(
        elastic_flags(&build("resnext50").layer1)
            .iter()
            .all(|&f| f == 0)
    );
}

#[test]
fn feature_shapes_at_224_and_225() {
    let net = build("resnext50_elastic");
    for size in [224, 225] {
        let x = Tensor::<Flex, 4>::zeros([1, 3, size, size], &Default::default());
        let features = net.forward_features(x);
        let shapes: Vec<[usize; 4]> = features.stages.iter().map(|s| s.dims()).collect();
        let s = if size == 224 {
            [56, 28, 14, 7]
        } else {
            [57, 29, 15, 8]
        };
        assert_eq!(features.stem.dims(), [1, 64, s[0], s[0]]);
        assert_eq!(
            shapes,
            [
                [1, 256, s[0], s[0]],
                [1, 512, s[1], s[1]],
                [1, 1024, s[2], s[2]],
                [1, 2048, s[3], s[3]]
            ]
        );
    }
}

fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn std_of(t: Tensor<Flex, 4>) -> f64 {
    let v = values(t);
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

#[test]
fn the_released_initialisation_and_its_projection_quirk() {
    let released = official_init(build("resnext50_elastic"), true);
    let zero_bn3 = [
        &released.layer1,
        &released.layer2,
        &released.layer3,
        &released.layer4,
    ]
    .into_iter()
    .flatten()
    .filter(|b| match b {
        ResidualBlock::TwoPath(b) => match &b.bn3 {
            core_norm::Norm::Batch(bn) => values(bn.weight.val()).iter().all(|&g| g == 0.0),
            _ => false,
        },
        _ => false,
    })
    .count();
    assert_eq!(zero_bn3, 22);
    let ResidualBlock::TwoPath(first) = &released.layer1[0] else {
        panic!()
    };
    let down = first.downsample.as_ref().unwrap();
    let core_norm::Norm::Batch(down_bn) = &down.norm else {
        panic!()
    };
    assert!(values(down_bn.weight.val()).iter().all(|&g| g == 1.0));
    // layer1's projection, fan_in 64: default kaiming-uniform(√5) std 1/√(3·64) = 0.0722 (the
    // spec measured 0.0721), against kaiming-normal fan_in √(2/64) = 0.177 for every other conv.
    let quirk_std = std_of(down.conv.weight.val());
    assert!((quirk_std - 0.0722).abs() < 0.004, "{quirk_std}");
    let conv1_std = std_of(first.conv1.weight.val());
    assert!((conv1_std - 0.177).abs() < 0.01, "{conv1_std}");
    let corrected = official_init(build("resnext50_elastic"), false);
    let ResidualBlock::TwoPath(first) = &corrected.layer1[0] else {
        panic!()
    };
    let fixed_std = std_of(first.downsample.as_ref().unwrap().conv.weight.val());
    assert!((fixed_std - 0.177).abs() < 0.01, "{fixed_std}");
    let fc = released.fc.as_ref().unwrap();
    let fc_std = std_of(fc.weight.val().reshape([1, 1, 1000, 2048]));
    assert!((fc_std - 0.01).abs() < 0.001, "{fc_std}");
    assert!(
        values(fc.bias.as_ref().unwrap().val())
            .iter()
            .all(|&b| b == 0.0)
    );
}

fn ramp(h: usize, w: usize) -> Tensor<Flex, 4> {
    let data: Vec<f32> = (1..=h * w).map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, [1, 1, h, w]), &Default::default())
}

/// §8.1: pooling, padding and the cropped bilinear ×2, on `1..n` row-major maps.
#[test]
fn resampling_vectors() {
    let cases: [(usize, usize, Vec<f32>, Vec<f32>); 3] = [
        (
            4,
            4,
            vec![3.5, 5.5, 11.5, 13.5],
            vec![
                3.5, 4.0, 5.0, 5.5, 5.5, 6.0, 7.0, 7.5, 9.5, 10.0, 11.0, 11.5, 11.5, 12.0, 13.0,
                13.5,
            ],
        ),
        (
            3,
            3,
            vec![3.0, 4.5, 7.5, 9.0],
            vec![3.0, 3.375, 4.125, 4.125, 4.5, 5.25, 6.375, 6.75, 7.5],
        ),
        (
            3,
            4,
            vec![3.5, 5.5, 9.5, 11.5],
            vec![3.5, 4.0, 5.0, 5.5, 5.0, 5.5, 6.5, 7.0, 8.0, 8.5, 9.5, 10.0],
        ),
    ];
    for (h, w, pooled, restored) in cases {
        let down = resample::elastic_down(ramp(h, w));
        assert_eq!(down.dims(), [1, 1, 2, 2]);
        assert_eq!(values(down.clone()), pooled, "{h}×{w} pooled");
        let up = resample::elastic_up(down, [h, w]);
        assert_eq!(up.dims(), [1, 1, h, w]);
        let got = values(up);
        for (g, e) in got.iter().zip(&restored) {
            assert!((g - e).abs() < 1e-6, "{h}×{w}: {got:?} vs {restored:?}");
        }
    }
}

/// §8.2: DLA-60x-elastic's level shapes at 224; its elastic blocks' paths have half the bottleneck
/// width and 16 groups.
#[test]
fn dla_levels_and_branch_widths() {
    let Arch::Dla(config) = (find_model("dla60x_elastic").unwrap().arch)() else {
        panic!()
    };
    let net = config.init::<Flex>(&Default::default());
    let x = Tensor::<Flex, 4>::zeros([1, 3, 224, 224], &Default::default());
    let shapes: Vec<[usize; 4]> = net.forward_levels(x).iter().map(|l| l.dims()).collect();
    assert_eq!(
        shapes,
        [
            [1, 16, 224, 224],
            [1, 32, 112, 112],
            [1, 128, 56, 56],
            [1, 256, 28, 28],
            [1, 512, 14, 14],
            [1, 1024, 7, 7]
        ]
    );
    // level2.tree2 (planes 128, bottle 128): paths of 64 channels, conv2_d [64, 4, 3, 3].
    let core_nets::dla::Tree::Depth1(level2) = &net.level2 else {
        panic!("level 2 is one tree deep")
    };
    let ResidualBlock::TwoPath(block) = &level2[0].tree2 else {
        panic!()
    };
    assert!(block.elastic);
    assert_eq!(block.conv2_d.weight.dims(), [64, 4, 3, 3]);
    assert_eq!(level2[0].root.conv.weight.dims(), [128, 256, 1, 1]);
    assert_eq!(
        level2[0].project.as_ref().unwrap().conv.weight.dims(),
        [128, 32, 1, 1]
    );
    let ResidualBlock::TwoPath(first) = &level2[0].tree1 else {
        panic!()
    };
    assert!(!first.elastic, "the strided first block is not elastic");
}

#[test]
fn the_segmentation_variant_has_the_official_size_and_keeps_stride_16() {
    // §3: resnext50_elastic(seg=True) with 21 classes has 38,738,005 parameters; layer 4 is the
    // unstrided multi-grid stage (dilations 2, 4, 8), never elastic; the logits come back at the
    // input's size.
    let Some(Arch::ResNeXt(classifier)) = find_model("resnext50_elastic").map(|m| (m.arch)())
    else {
        panic!("resnext50_elastic is a ResNeXt")
    };
    let config = elastic::models::segmentation(classifier, 21);
    config.validate().unwrap();
    let device = Default::default();
    let model = config.init::<Flex>(&device);
    assert_eq!(count_parameters::<Flex, _>(&model), 38_738_005);
    assert_eq!(elastic_flags(&model.backbone.layer4), [0, 0, 0]);
    let dilations: Vec<usize> = model
        .backbone
        .layer4
        .iter()
        .map(|b| match b {
            ResidualBlock::TwoPath(b) => b.conv2.dilation,
            _ => panic!("two-path blocks"),
        })
        .collect();
    assert_eq!(dilations, [2, 4, 8]);
    let small = elastic::models::segmentation(
        ResNetConfig {
            layers: [1, 1, 1, 1],
            planes: [8, 8, 16, 16],
            stem_width: 8,
            groups: 4,
            ..elastic::models::two_path_resnext([1, 1, 1, 1], true, false)
        },
        3,
    );
    let net = small.init::<Flex>(&device);
    let x = Tensor::<Flex, 4>::random([2, 3, 33, 47], Distribution::Normal(0.0, 1.0), &device);
    assert_eq!(net.forward(x).dims(), [2, 3, 33, 47]);
    assert_eq!(
        net.backbone
            .forward_features(Tensor::zeros([1, 3, 64, 64], &device))
            .stages[3]
            .dims(),
        [1, 64, 4, 4]
    );
}
