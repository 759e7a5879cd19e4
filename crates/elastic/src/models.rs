//! ELASTIC's ResNeXt-family models (`elastic.md` §3, `allenai/elastic` `models/resnext.py`): the
//! two-path block everywhere (the plain baselines keep the two-path key layout), cardinality 32,
//! paths of width `p` with 16 groups; the elastic models move depth from stage 3 to stages 1–2
//! ([6, 8, 5, 3] for 50 layers, [12, 14, 20, 3] for 101) so that FLOPs stay about equal.

use burn::backend::Flex;
use core_nets::{BlockKind, DenseNetConfig, DlaConfig, ResNetConfig, count_parameters};

/// A network family of the paper and its configuration.
#[derive(Clone, Debug)]
pub enum Arch {
    /// The two-path ResNeXt / SE-ResNeXt (core-nets `ResNet`).
    ResNeXt(ResNetConfig),
    /// DLA-X (core-nets `Dla`).
    Dla(DlaConfig),
    /// DenseNet-BC (core-nets `DenseNet`).
    DenseNet(DenseNetConfig),
}

impl Arch {
    /// Trainable parameters, counted on the built network.
    pub fn parameters(&self) -> usize {
        let device = Default::default();
        match self {
            Arch::ResNeXt(c) => count_parameters::<Flex, _>(&c.init::<Flex>(&device)),
            Arch::Dla(c) => count_parameters::<Flex, _>(&c.init::<Flex>(&device)),
            Arch::DenseNet(c) => count_parameters::<Flex, _>(&c.init::<Flex>(&device)),
        }
    }

    /// The official counter's GFLOPs for one `size × size` image.
    pub fn gflops(&self, size: usize) -> f64 {
        let flops = match self {
            Arch::ResNeXt(c) => crate::resnext_flops(c, size),
            Arch::Dla(c) => crate::flops::dla_flops(c, size),
            Arch::DenseNet(c) => crate::flops::densenet_flops(c, size),
        };
        flops as f64 / 1e9
    }
}

/// A model of the paper's tables, with the counts the spec computed from the official code.
pub struct ElasticModel {
    pub name: &'static str,
    pub arch: fn() -> Arch,
    /// `sum(p.numel() for p in model.parameters())` of the official model (`elastic.md` §1).
    pub parameters: usize,
    /// The official counter's GFLOPs at 224 × 224, three decimals (`elastic.md` §1, §2.4).
    pub gflops: f64,
}

/// The two-path ResNeXt 32×4d of the official code with `layers` blocks per stage.
pub fn two_path_resnext(layers: [usize; 4], elastic: bool, se: bool) -> ResNetConfig {
    ResNetConfig {
        block: BlockKind::TwoPath,
        layers,
        groups: 32,
        base_width: 4,
        elastic,
        se,
        ..ResNetConfig::default()
    }
}

/// The segmentation variant of a two-path ResNeXt (`elastic.md` §3, `ResNext(seg=True)`): stages
/// 1–3 as classified (elastic where the model is), stage 4 the unstrided multi-grid `_make_mg`
/// (three blocks, dilations 2·(1, 2, 4), never elastic), and DeepLabv3's ASPP head for
/// `num_classes` (`resnet-family.md` §2.8).
pub fn segmentation(classifier: ResNetConfig, num_classes: usize) -> core_nets::DeepLabConfig {
    let backbone = ResNetConfig {
        layers: [
            classifier.layers[0],
            classifier.layers[1],
            classifier.layers[2],
            3,
        ],
        output_stride: 16,
        layer4_dilations: vec![2, 4, 8],
        ..classifier
    };
    core_nets::DeepLabConfig::new(backbone, num_classes)
}

pub const ELASTIC_MODELS: &[ElasticModel] = &[
    ElasticModel {
        name: "resnext50",
        arch: || Arch::ResNeXt(two_path_resnext([3, 4, 6, 3], false, false)),
        parameters: 25_028_904,
        gflops: 4.273,
    },
    ElasticModel {
        name: "resnext50_elastic",
        arch: || Arch::ResNeXt(two_path_resnext([6, 8, 5, 3], true, false)),
        parameters: 25_246_504,
        gflops: 4.308,
    },
    ElasticModel {
        name: "resnext101",
        arch: || Arch::ResNeXt(two_path_resnext([3, 4, 23, 3], false, false)),
        parameters: 44_177_704,
        gflops: 8.033,
    },
    ElasticModel {
        name: "resnext101_elastic",
        arch: || Arch::ResNeXt(two_path_resnext([12, 14, 20, 3], true, false)),
        parameters: 44_265_256,
        gflops: 8.162,
    },
    ElasticModel {
        name: "se_resnext50",
        arch: || Arch::ResNeXt(two_path_resnext([3, 4, 6, 3], false, true)),
        parameters: 27_559_896,
        gflops: 4.276,
    },
    ElasticModel {
        name: "se_resnext50_elastic",
        arch: || Arch::ResNeXt(two_path_resnext([6, 8, 5, 3], true, true)),
        parameters: 27_803_976,
        gflops: 4.311,
    },
    ElasticModel {
        name: "dla60x",
        arch: || Arch::Dla(DlaConfig::dla60x()),
        parameters: 17_649_816,
        gflops: 3.637,
    },
    ElasticModel {
        name: "dla60x_elastic",
        arch: || Arch::Dla(DlaConfig::dla60x_elastic()),
        parameters: 17_649_816,
        gflops: 3.165,
    },
    ElasticModel {
        name: "dla102x",
        arch: || Arch::Dla(DlaConfig::dla102x()),
        parameters: 26_772_120,
        gflops: 6.038,
    },
    ElasticModel {
        name: "dla102x_elastic",
        arch: || Arch::Dla(DlaConfig::dla102x_elastic()),
        parameters: 24_917_144,
        gflops: 6.077,
    },
    ElasticModel {
        name: "densenet201",
        arch: || Arch::DenseNet(DenseNetConfig::densenet201()),
        parameters: 20_013_928,
        gflops: 4.367,
    },
    ElasticModel {
        name: "densenet201_elastic",
        arch: || Arch::DenseNet(DenseNetConfig::densenet201_elastic()),
        parameters: 19_482_824,
        gflops: 4.386,
    },
];

/// The model called `name`.
pub fn find_model(name: &str) -> Option<&'static ElasticModel> {
    ELASTIC_MODELS.iter().find(|m| m.name == name)
}
