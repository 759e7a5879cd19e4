//! ResNet (He et al. 2016) and ResNeXt (Xie et al. 2017) in the torchvision / pytorch-classification
//! layout, spec `resnet-family.md` §2.2, §3. Module paths equal the PyTorch state_dict keys
//! (`conv1`, `bn1`, `layer{1..4}.{b}.*`, `fc`), except `downsample.{0,1}` → `downsample.{conv,norm}`.

use burn::{
    module::Module,
    nn::{Linear, LinearConfig},
    tensor::{Tensor, activation::relu, backend::Backend},
};
use core_norm::{Conv2d, ConvKind, KindError, Norm, NormKind, WsVariant};
use serde::{Deserialize, Serialize};

use crate::block::{BasicBlock, BlockSpec, Bottleneck, ResidualBlock, TwoPathBottleneck};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    Basic,
    Bottleneck,
    /// ELASTIC's two-path ResNeXt bottleneck (`elastic.md` §2.1): paths of width `p` with
    /// `groups / 2` groups each; `elastic` and `se` of the config apply to it.
    TwoPath,
}

impl BlockKind {
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck | BlockKind::TwoPath => 4,
        }
    }
}

/// Where a bottleneck strides and how the stem pools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResNetStyle {
    /// torchvision "v1.5" (`resnet-family.md` §2.2): stride on the 3×3, stem pool 3×3/2 pad 1.
    #[default]
    Torchvision,
    /// Caffe / Cadene `pretrainedmodels` (§2.3, SE-ResNets): stride on the first 1×1, stem pool
    /// 3×3/2 without padding in ceil mode.
    Caffe,
}

/// Everything that decides a ResNet's structure. Defaults: torchvision ResNet-50 with BN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetConfig {
    pub block: BlockKind,
    /// Blocks per stage: `[3, 4, 6, 3]` for ResNet-50.
    pub layers: [usize; 4],
    /// Planes per stage (`p`); a stage outputs `p · expansion` channels.
    pub planes: [usize; 4],
    pub stem_width: usize,
    /// 3×3 stride-1 stem without max-pool, for 32–64 px inputs (CIFAR-style).
    pub small_stem: bool,
    pub in_channels: usize,
    /// ResNeXt cardinality (1 for ResNet).
    pub groups: usize,
    /// ResNeXt bottleneck width per group at `p = 64` (64 for ResNet, 4 for 32×4d).
    pub base_width: usize,
    /// `None`: no classifier; `forward` is unavailable and the model gives features only.
    pub num_classes: Option<usize>,
    pub conv: ConvKind,
    pub norm: NormKind,
    /// Zero the scale of the last norm of every residual branch (forced in the BCN code).
    pub zero_init_residual: bool,
    /// 32 (every stage after the first strided) or 16 (the last stage keeps its input
    /// resolution, for dense prediction heads; dilated only with `layer4_dilations`).
    pub output_stride: usize,
    /// Two-path blocks: the second path of every stride-1 block of stages 1–3 at half
    /// resolution (ELASTIC; stage 4 never is).
    pub elastic: bool,
    /// Squeeze-and-excitation: two-path blocks after the merged norm (ELASTIC's SE-ResNeXt);
    /// bottlenecks after `bn3` (Cadene's SE-ResNet-50, `resnet-family.md` §2.3).
    pub se: bool,
    /// Bottleneck SE: condition inputs appended to every SE's hidden vector after its ReLU
    /// (SAKE's CSE-ResNet-50, `sake.md` §2.2: 1, the domain bit); the forward then takes the
    /// condition ([`ResNet::forward_features_conditioned`]).
    pub se_condition: usize,
    pub style: ResNetStyle,
    /// DeepLab's dilated last stage (`resnet-family.md` §2.8): the dilation of each stage-4
    /// block's 3×3 convolution, one per block; with `output_stride = 16` (stage 4 unstrided, its
    /// projection 1×1 stride 1). DeepLabv3.pytorch (WS/BCN): `[1, 2, 2]`; ELASTIC's multi-grid
    /// `_make_mg`: `[2, 4, 8]`. Empty: no dilation.
    pub layer4_dilations: Vec<usize>,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            block: BlockKind::Bottleneck,
            layers: [3, 4, 6, 3],
            planes: [64, 128, 256, 512],
            stem_width: 64,
            small_stem: false,
            in_channels: 3,
            groups: 1,
            base_width: 64,
            num_classes: Some(1000),
            conv: ConvKind::Plain,
            norm: NormKind::BATCH,
            zero_init_residual: false,
            output_stride: 32,
            elastic: false,
            se: false,
            se_condition: 0,
            style: ResNetStyle::Torchvision,
            layer4_dilations: Vec::new(),
        }
    }
}

impl ResNetConfig {
    fn depth(block: BlockKind, layers: [usize; 4]) -> Self {
        Self {
            block,
            layers,
            ..Self::default()
        }
    }
    pub fn resnet18() -> Self {
        Self::depth(BlockKind::Basic, [2, 2, 2, 2])
    }
    pub fn resnet34() -> Self {
        Self::depth(BlockKind::Basic, [3, 4, 6, 3])
    }
    pub fn resnet50() -> Self {
        Self::depth(BlockKind::Bottleneck, [3, 4, 6, 3])
    }
    pub fn resnet101() -> Self {
        Self::depth(BlockKind::Bottleneck, [3, 4, 23, 3])
    }
    pub fn resnet152() -> Self {
        Self::depth(BlockKind::Bottleneck, [3, 8, 36, 3])
    }
    /// ResNeXt-50 32×4d.
    pub fn resnext50() -> Self {
        Self {
            groups: 32,
            base_width: 4,
            ..Self::resnet50()
        }
    }
    /// ResNeXt-101 32×4d.
    pub fn resnext101() -> Self {
        Self {
            groups: 32,
            base_width: 4,
            ..Self::resnet101()
        }
    }

    /// Cadene's SE-ResNet-50 (`resnet-family.md` §2.3): Caffe layout, SE after every bottleneck.
    pub fn se_resnet50() -> Self {
        Self {
            se: true,
            style: ResNetStyle::Caffe,
            ..Self::resnet50()
        }
    }

    /// SAKE's conditional SE-ResNet-50 (`sake.md` §2.2): the domain bit in every SE block.
    pub fn cse_resnet50() -> Self {
        Self {
            se_condition: 1,
            ..Self::se_resnet50()
        }
    }

    /// GN(32) + WS, the Weight Standardization paper's networks (`ws.md` §3).
    pub fn gn_ws(self) -> Self {
        Self {
            conv: ConvKind::Ws {
                variant: WsVariant::OfficialTorch,
            },
            norm: NormKind::group(32),
            ..self
        }
    }

    /// BCN(32) + WS as the BCN ImageNet code builds it: its WS formula, forced zero-init of the
    /// per-group γ ending each branch (`bcn.md` §2.4, §3).
    pub fn bcn_ws(self) -> Self {
        Self {
            conv: ConvKind::Ws {
                variant: WsVariant::BcnRepo,
            },
            norm: NormKind::batch_channel(32, core_norm::BatchStatistics::Batch { momentum: 0.1 }),
            zero_init_residual: true,
            ..self
        }
    }

    pub fn with_num_classes(self, num_classes: Option<usize>) -> Self {
        Self {
            num_classes,
            ..self
        }
    }

    /// Channels out of each stage.
    pub fn stage_channels(&self) -> [usize; 4] {
        self.planes.map(|p| p * self.block.expansion())
    }

    /// The bottleneck's 3×3 width for planes `p`: `floor(p·base_width/64)·groups` (pitfall 6).
    fn width(&self, planes: usize) -> usize {
        match self.block {
            BlockKind::Basic => planes,
            BlockKind::Bottleneck => planes * self.base_width / 64 * self.groups,
            // Each of the two paths; `groups / 2` groups per path.
            BlockKind::TwoPath => planes,
        }
    }

    /// The groups of a bottleneck's 3×3 (per path for the two-path block).
    fn conv_groups(&self) -> usize {
        match self.block {
            BlockKind::TwoPath => self.groups / 2,
            _ => self.groups,
        }
    }

    /// Rejects a structure that cannot be built, naming the setting.
    pub fn validate(&self) -> Result<(), KindError> {
        let positive = |what, value: usize| {
            if value == 0 {
                Err(KindError::Range {
                    what,
                    value: 0.0,
                    expected: "a positive integer",
                })
            } else {
                Ok(())
            }
        };
        positive("model.stem_width", self.stem_width)?;
        positive("model.in_channels", self.in_channels)?;
        positive("model.groups", self.groups)?;
        if self.output_stride != 16 && self.output_stride != 32 {
            return Err(KindError::Range {
                what: "model.output_stride",
                value: self.output_stride as f64,
                expected: "16 or 32",
            });
        }
        if let Some(classes) = self.num_classes {
            positive("model.num_classes", classes)?;
        }
        if !self.layer4_dilations.is_empty() {
            let range = |value: f64, expected| {
                Err(KindError::Range {
                    what: "model.layer4_dilations",
                    value,
                    expected,
                })
            };
            if self.layer4_dilations.len() != self.layers[3] {
                return range(
                    self.layer4_dilations.len() as f64,
                    "as many dilations as stage-4 blocks (model.layers[3])",
                );
            }
            if self.output_stride != 16 {
                return range(
                    self.output_stride as f64,
                    "model.output_stride = 16 (a dilated stage 4 is unstrided)",
                );
            }
            if self.block == BlockKind::Basic {
                return range(
                    0.0,
                    "bottleneck or two-path blocks (basic blocks are not dilated)",
                );
            }
            if self.layer4_dilations.contains(&0) {
                return range(0.0, "positive dilations");
            }
        }
        if self.se_condition > 0 && !(self.se && self.block == BlockKind::Bottleneck) {
            return Err(KindError::Range {
                what: "model.se_condition",
                value: self.se_condition as f64,
                expected: "0 unless model.se = true with bottleneck blocks",
            });
        }
        if self.style == ResNetStyle::Caffe && self.block != BlockKind::Bottleneck {
            return Err(KindError::Range {
                what: "model.style",
                value: 0.0,
                expected: "\"torchvision\" unless the blocks are bottlenecks",
            });
        }
        self.norm.validate(self.stem_width)?;
        for (&planes, &blocks) in self.planes.iter().zip(&self.layers) {
            positive("model.layers", blocks)?;
            let width = self.width(planes);
            positive("model.planes (bottleneck width)", width)?;
            let groups = self.conv_groups();
            let odd_two_path = self.block == BlockKind::TwoPath && self.groups % 2 == 1;
            if self.block != BlockKind::Basic
                && (odd_two_path || groups == 0 || !width.is_multiple_of(groups))
            {
                return Err(KindError::Groups {
                    what: "model.groups (two-path blocks: groups / 2 per path)",
                    channels: width,
                    groups,
                });
            }
            if self.se && (self.block == BlockKind::Basic || planes * 4 < 16) {
                return Err(KindError::Range {
                    what: "model.se",
                    value: 1.0,
                    expected: "bottleneck or two-path blocks with at least 16 output channels",
                });
            }
            self.norm.validate(width)?;
            self.norm.validate(planes * self.block.expansion())?;
        }
        Ok(())
    }

    /// Builds the network; panics on a configuration that [`ResNetConfig::validate`] rejects.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        if let Err(err) = self.validate() {
            panic!("invalid ResNet configuration: {err}");
        }
        let conv1 = if self.small_stem {
            self.conv
                .conv(self.in_channels, self.stem_width, 3)
                .with_padding(1)
        } else {
            self.conv
                .conv(self.in_channels, self.stem_width, 7)
                .with_stride(2)
                .with_padding(3)
        };
        let mut in_channels = self.stem_width;
        let mut stages = [0, 1, 2, 3].map(|stage| {
            let planes = self.planes[stage];
            let blocks = (0..self.layers[stage])
                .map(|b| {
                    let spec = BlockSpec {
                        conv: self.conv,
                        norm: self.norm,
                        in_channels,
                        planes,
                        stride: match (b, stage) {
                            (0, 1 | 2) => 2,
                            (0, 3) if self.output_stride == 32 => 2,
                            _ => 1,
                        },
                        width: self.width(planes),
                        out_channels: planes * self.block.expansion(),
                        shortcut: true,
                        groups: self.groups,
                        zero_init_residual: self.zero_init_residual,
                        elastic: false,
                        se: self.se,
                        se_condition: self.se_condition,
                        stride_in_1x1: self.style == ResNetStyle::Caffe,
                        dilation: match stage {
                            3 => self.layer4_dilations.get(b).copied().unwrap_or(1),
                            _ => 1,
                        },
                    };
                    // ELASTIC: stride-1 blocks of stages 1–3 (`stride == 1 and planes < 512`).
                    let spec = BlockSpec {
                        elastic: self.elastic && spec.stride == 1 && stage < 3,
                        ..spec
                    };
                    in_channels = planes * self.block.expansion();
                    match self.block {
                        BlockKind::Basic => ResidualBlock::Basic(BasicBlock::new(&spec, device)),
                        BlockKind::Bottleneck => {
                            ResidualBlock::Bottleneck(Bottleneck::new(&spec, device))
                        }
                        BlockKind::TwoPath => {
                            ResidualBlock::TwoPath(TwoPathBottleneck::new(&spec, device))
                        }
                    }
                })
                .collect::<Vec<_>>();
            Some(blocks)
        });
        let mut take = |i: usize| stages[i].take().expect("each stage is built once");
        ResNet {
            conv1: conv1.init(device),
            bn1: self.norm.init(self.stem_width, device),
            layer1: take(0),
            layer2: take(1),
            layer3: take(2),
            layer4: take(3),
            fc: self
                .num_classes
                .map(|classes| LinearConfig::new(in_channels, classes).init(device)),
            max_pool: !self.small_stem,
            ceil_pool: self.style == ResNetStyle::Caffe,
        }
    }
}

#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: Norm<B>,
    pub layer1: Vec<ResidualBlock<B>>,
    pub layer2: Vec<ResidualBlock<B>>,
    pub layer3: Vec<ResidualBlock<B>>,
    pub layer4: Vec<ResidualBlock<B>>,
    pub fc: Option<Linear<B>>,
    pub max_pool: bool,
    /// The Caffe stem pool: no padding, ceil mode.
    pub ceil_pool: bool,
}

/// The feature map after the stem and after each stage, for dense tasks.
#[derive(Debug, Clone)]
pub struct ResNetFeatures<B: Backend> {
    pub stem: Tensor<B, 4>,
    pub stages: [Tensor<B, 4>; 4],
}

impl<B: Backend> ResNet<B> {
    /// `[B, 3, H, W] -> [B, C, H/4, W/4]` (or `[B, C, H, W]` with the small stem).
    pub fn forward_stem(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        match (self.max_pool, self.ceil_pool) {
            (false, _) => x,
            (true, false) => core_ops::max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false),
            (true, true) => core_ops::max_pool2d(x, [3, 3], [2, 2], [0, 0], [1, 1], true),
        }
    }

    /// Every stage's output: `[B, 4p_i, H/4·2^-i, …]` for stages i = 0..3 (standard stem).
    pub fn forward_features(&self, x: Tensor<B, 4>) -> ResNetFeatures<B> {
        self.forward_features_conditioned(x, None)
    }

    /// [`Self::forward_features`] with the condition `[B, k]` every SE module reads (SAKE's
    /// domain bit: 0 sketch, 1 photo); `None` for a network without one.
    pub fn forward_features_conditioned(
        &self,
        x: Tensor<B, 4>,
        condition: Option<Tensor<B, 2>>,
    ) -> ResNetFeatures<B> {
        let stem = self.forward_stem(x);
        let run = |blocks: &[ResidualBlock<B>], x: Tensor<B, 4>| {
            blocks
                .iter()
                .fold(x, |x, b| b.forward_conditioned(x, condition.clone()))
        };
        let s1 = run(&self.layer1, stem.clone());
        let s2 = run(&self.layer2, s1.clone());
        let s3 = run(&self.layer3, s2.clone());
        let s4 = run(&self.layer4, s3.clone());
        ResNetFeatures {
            stem,
            stages: [s1, s2, s3, s4],
        }
    }

    /// Global average pooled last-stage features: `[B, 3, H, W] -> [B, C4]`.
    pub fn forward_pooled(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_pooled_conditioned(x, None)
    }

    /// [`Self::forward_pooled`] with the SE modules' condition `[B, k]`. At 224 px the global
    /// mean is Cadene's `AvgPool2d(7, stride 1)`; at other sizes it is still the global mean.
    pub fn forward_pooled_conditioned(
        &self,
        x: Tensor<B, 4>,
        condition: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 2> {
        let x = self.forward_stem(x);
        let x = [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
            .fold(x, |x, block| {
                block.forward_conditioned(x, condition.clone())
            });
        let [b, c, h, w] = x.dims();
        x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
    }

    /// This network with `extra` more condition inputs in every bottleneck SE module, their
    /// weights zero: the same function for any condition (`sake.md` §2.2's conversion of the
    /// ImageNet SE-ResNet-50 into the CSE-ResNet-50).
    pub fn conditioned(self, extra: usize) -> Self {
        let convert = |blocks: Vec<ResidualBlock<B>>| {
            blocks
                .into_iter()
                .map(|block| match block {
                    ResidualBlock::Bottleneck(b) => ResidualBlock::Bottleneck(Bottleneck {
                        se_module: b.se_module.map(|se| se.conditioned(extra)),
                        ..b
                    }),
                    other => other,
                })
                .collect()
        };
        Self {
            layer1: convert(self.layer1),
            layer2: convert(self.layer2),
            layer3: convert(self.layer3),
            layer4: convert(self.layer4),
            ..self
        }
    }

    /// `[B, 3, H, W] -> [B, classes]`. Panics for a features-only model (`num_classes = None`).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let fc = self
            .fc
            .as_ref()
            .expect("ResNet built without a classifier (num_classes = None)");
        fc.forward(self.forward_pooled(x))
    }
}

/// A named model that `vireo models` lists with its exact parameter count.
pub struct ModelPreset {
    pub name: &'static str,
    pub paper: &'static str,
    pub config: fn() -> ResNetConfig,
}

/// The full-size models of the WS and BCN papers and their BN baselines (`resnet-family.md` §3.1).
pub const MODEL_PRESETS: &[ModelPreset] = &[
    ModelPreset {
        name: "resnet18",
        paper: "baseline (BN)",
        config: ResNetConfig::resnet18,
    },
    ModelPreset {
        name: "resnet34",
        paper: "baseline (BN)",
        config: ResNetConfig::resnet34,
    },
    ModelPreset {
        name: "resnet50",
        paper: "baseline (BN)",
        config: ResNetConfig::resnet50,
    },
    ModelPreset {
        name: "resnet101",
        paper: "baseline (BN)",
        config: ResNetConfig::resnet101,
    },
    ModelPreset {
        name: "resnet152",
        paper: "baseline (BN)",
        config: ResNetConfig::resnet152,
    },
    ModelPreset {
        name: "resnext50_32x4d",
        paper: "baseline (BN)",
        config: ResNetConfig::resnext50,
    },
    ModelPreset {
        name: "resnext101_32x4d",
        paper: "baseline (BN)",
        config: ResNetConfig::resnext101,
    },
    ModelPreset {
        name: "se_resnet50",
        paper: "baseline (BN, Cadene)",
        config: ResNetConfig::se_resnet50,
    },
    ModelPreset {
        name: "resnet50_gn_ws",
        paper: "ws",
        config: || ResNetConfig::resnet50().gn_ws(),
    },
    ModelPreset {
        name: "resnet101_gn_ws",
        paper: "ws",
        config: || ResNetConfig::resnet101().gn_ws(),
    },
    ModelPreset {
        name: "resnext50_gn_ws",
        paper: "ws",
        config: || ResNetConfig::resnext50().gn_ws(),
    },
    ModelPreset {
        name: "resnext101_gn_ws",
        paper: "ws",
        config: || ResNetConfig::resnext101().gn_ws(),
    },
    ModelPreset {
        name: "resnet50_bcn_ws",
        paper: "bcn",
        config: || ResNetConfig::resnet50().bcn_ws(),
    },
    ModelPreset {
        name: "resnet101_bcn_ws",
        paper: "bcn",
        config: || ResNetConfig::resnet101().bcn_ws(),
    },
    ModelPreset {
        name: "resnext50_bcn_ws",
        paper: "bcn",
        config: || ResNetConfig::resnext50().bcn_ws(),
    },
    ModelPreset {
        name: "resnext101_bcn_ws",
        paper: "bcn",
        config: || ResNetConfig::resnext101().bcn_ws(),
    },
];
