//! The CompNet experiment's configuration (`compnet.md` §4): the DCNN (VGG features, trained first
//! on the embedded data), the compositional head, its initialisation, the end-to-end loss, the
//! released recipe, the evaluation with its switches, and the data. Every error names the key.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use core_nets::vgg::VggConfig;
use core_train::{OptimizerKind, TrainConfig};
use datasets::{Normalization, ShapeWorld, formats::occluded::COMPNET_CLASSES};
use serde::{Deserialize, Serialize};

use crate::{
    backbone::{BackboneChoice, ResNetBackbone},
    dcnn::DcnnConfig,
    head::HeadConfig,
    init::InitConfig,
    model::LossConfig,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompNetExperiment {
    /// What the preset is for and what it should give (shown in reports).
    #[serde(default)]
    pub description: String,
    /// CN-vMF's end-to-end training (§4.1): Adagrad, per-epoch exponential decay.
    pub train: TrainConfig,
    pub backbone: BackboneConfig,
    #[serde(default)]
    pub head: HeadConfig,
    #[serde(default)]
    pub init: InitConfig,
    #[serde(default)]
    pub loss: LossConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    pub data: CompNetData,
}

/// The VGG features under both models, and the DCNN they come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    pub vgg: VggConfig,
    /// A core-nets ResNet instead of VGG (the released code's untested option), cut after
    /// layer4 or layer3.
    #[serde(default)]
    pub resnet: Option<ResNetBackbone>,
    /// torchvision's `vgg16` (or, with `resnet`, ResNet) ImageNet weights (`features.*`; `model.vgg.width_divisor` 1): the
    /// DCNN starts from them, and with `compositional = "imagenet"` the compositional models
    /// use them as they are (the released CN-vMF's backbone, §2.2).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The DCNN (features + linear classifier) trained on the L0 training images: the embedded
    /// data's stand-in for ImageNet pre-training, and CN-WACV's fine-tuned VGG (§4.2).
    pub pretrain: TrainConfig,
    /// Whose features the compositional models sit on.
    #[serde(default)]
    pub compositional: CompositionalFeatures,
}

/// The features under CN-vMF and CN-WACV's compositional model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompositionalFeatures {
    /// The trained DCNN's (on the embedded data, where no ImageNet network exists).
    #[default]
    Dcnn,
    /// `backbone.file`'s ImageNet features, untouched (the released model).
    Imagenet,
}

/// The evaluation (§4.3) and the switches of §2.11 that act at test time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// CN-WACV's switch: a fixed τ, or (none) the τ of `tau_grid` with the best mean accuracy on
    /// the held-out occluded images.
    pub tau_switch: Option<f64>,
    pub tau_grid: Vec<f64>,
    /// Occluder models from the trained dictionary (fixed); `true`: the released code's models
    /// built from the initial dictionary (§2.11 `recompute_clutter_after_load = false`).
    pub stale_occluders: bool,
    /// The released localisation script's "TP = 0 → TP = 1" hack in the ROC.
    pub official_tp_hack: bool,
    /// CN-WACV's padded mixture positions scored as released (NaN; bug reproduction only).
    pub bernoulli_official_padding: bool,
    /// Validation images per occlusion level drawn in `occluders.png`.
    pub pictures_per_level: usize,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            tau_switch: None,
            tau_grid: vec![
                0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0,
            ],
            stale_occluders: false,
            official_tp_hack: false,
            bernoulli_official_padding: false,
            pictures_per_level: 3,
            batch_size: 32,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum CompNetData {
    /// ShapeWorld's occlusion task (`datasets::shapeworld::occlusion`): unoccluded (L0) training
    /// images; L0 validation images for model selection; held-out images at every level for
    /// CN-WACV's τ; test images at L0–L3 with occluder and object masks; background scenes
    /// (objects removed), a white and a noise image for the occluder models.
    Shapeworld {
        #[serde(default)]
        world: ShapeWorld,
        train_size: usize,
        valid_size: usize,
        /// Per occlusion level.
        heldout_size: usize,
        /// Per occlusion level.
        test_size: usize,
        /// `general` background scenes (the released code has 5).
        #[serde(default = "five")]
        backgrounds: usize,
        #[serde(default = "shapeworld_normalization")]
        normalization: Normalization,
    },
    /// Occluded PASCAL3D+ (`compnet.md` §7): `root` is `data/pascal3d+_occ`. Training on every
    /// class's L0 list, a seeded `valid_fraction` held out (model selection, τ); the 6 vehicle
    /// classes tested at ZERO/ONE/FIVE/NINE with the `occluders` types and both masks. Images
    /// keep their aspect (short side 224): batch 1 as released, or `eval.batch_size` images of one
    /// size.
    Pascal3dOcc {
        root: PathBuf,
        /// The occluder models' background images (the released `background_images/`).
        backgrounds: PathBuf,
        #[serde(default = "tenth")]
        valid_fraction: f64,
        #[serde(default = "object_only")]
        occluders: Vec<PascalOccluder>,
    },
    /// Occluded MS-COCO vehicles (`compnet.md` §7): `root` is `data/coco_occ`; as
    /// [`CompNetData::Pascal3dOcc`] without masks (no occluder-localisation ROC).
    CocoOcc {
        root: PathBuf,
        backgrounds: PathBuf,
        #[serde(default = "tenth")]
        valid_fraction: f64,
    },
}

fn five() -> usize {
    5
}

fn tenth() -> f64 {
    0.1
}

fn object_only() -> Vec<PascalOccluder> {
    vec![PascalOccluder::Object]
}

/// Occluded PASCAL3D+'s occluder types (`compnet.md` §4.3, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PascalOccluder {
    /// Natural objects cut out of other images (folder suffix `''`; the released test.py's only
    /// one).
    Object,
    White,
    Noise,
    Texture,
}

impl PascalOccluder {
    pub fn name(self) -> &'static str {
        match self {
            PascalOccluder::Object => "object",
            PascalOccluder::White => "white box",
            PascalOccluder::Noise => "noise box",
            PascalOccluder::Texture => "texture box",
        }
    }

    pub fn reader_type(self) -> datasets::formats::occluded::OccluderType {
        use datasets::formats::occluded::OccluderType;
        match self {
            PascalOccluder::Object => OccluderType::Object,
            PascalOccluder::White => OccluderType::White,
            PascalOccluder::Noise => OccluderType::Noise,
            PascalOccluder::Texture => OccluderType::Texture,
        }
    }
}

fn shapeworld_normalization() -> Normalization {
    Normalization {
        mean: [0.5; 3],
        std: [0.25; 3],
    }
}

impl CompNetData {
    pub fn normalization(&self) -> Normalization {
        match self {
            CompNetData::Shapeworld { normalization, .. } => *normalization,
            _ => Normalization::IMAGENET,
        }
    }

    /// ShapeWorld: the images' side; real data: the short side (224, aspect kept).
    pub fn image_size(&self) -> usize {
        match self {
            CompNetData::Shapeworld { world, .. } => world.image_size,
            _ => datasets::formats::occluded::SHORT_SIDE,
        }
    }

    /// Whether images are square (ShapeWorld) or keep their aspect (real data).
    pub fn square(&self) -> bool {
        matches!(self, CompNetData::Shapeworld { .. })
    }

    pub fn num_classes(&self) -> usize {
        match self {
            CompNetData::Shapeworld { world, .. } => world.num_classes,
            _ => COMPNET_CLASSES.len(),
        }
    }

    pub fn class_names(&self) -> Vec<String> {
        match self {
            CompNetData::Shapeworld { world, .. } => world
                .class_names()
                .into_iter()
                .map(str::to_string)
                .collect(),
            _ => COMPNET_CLASSES.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// A real dataset's root.
    pub fn root(&self) -> Option<&Path> {
        match self {
            CompNetData::Shapeworld { .. } => None,
            CompNetData::Pascal3dOcc { root, .. } | CompNetData::CocoOcc { root, .. } => Some(root),
        }
    }
}

/// A real dataset's held-out fraction is a fraction (its folders are checked when read).
fn real_paths(fraction: f64) -> Result<()> {
    if !(0.0..1.0).contains(&fraction) || fraction == 0.0 {
        bail!("data.valid_fraction = {fraction}: expected a fraction in (0, 1) (0.1 as released)");
    }
    Ok(())
}

impl CompNetExperiment {
    pub fn dcnn(&self) -> DcnnConfig {
        DcnnConfig {
            vgg: self.backbone.vgg.clone(),
            resnet: self.backbone.resnet.clone(),
            num_classes: self.data.num_classes(),
        }
    }

    /// The DCNN's recipe, its seed offset by the run's `train.seed` (so that a study's seeds
    /// vary every stage).
    pub fn pretrain(&self) -> TrainConfig {
        TrainConfig {
            seed: self.backbone.pretrain.seed.wrapping_add(self.train.seed),
            ..self.backbone.pretrain.clone()
        }
    }

    /// The initialisation's settings, its seed offset by the run's `train.seed`.
    pub fn init_config(&self) -> InitConfig {
        InitConfig {
            seed: self.init.seed.wrapping_add(self.train.seed),
            ..self.init.clone()
        }
    }

    /// The backbone network's choice (VGG, or a ResNet).
    pub fn backbone_choice(&self) -> BackboneChoice<'_> {
        BackboneChoice {
            vgg: &self.backbone.vgg,
            resnet: self.backbone.resnet.as_ref(),
        }
    }

    pub fn kernels(&self) -> usize {
        self.init.dictionary.components
    }

    pub fn validate(&self) -> Result<()> {
        self.train.validate().map_err(anyhow::Error::msg)?;
        self.train
            .optimizer
            .expect_kind(OptimizerKind::Adagrad, "CN-vMF (`compnet.md` §4.1)")
            .map_err(anyhow::Error::msg)?;
        self.backbone
            .pretrain
            .validate()
            .map_err(|e| anyhow::anyhow!("backbone.pretrain: {e}"))?;
        self.backbone
            .pretrain
            .optimizer
            .expect_kind(OptimizerKind::Sgd, "the DCNN's training")
            .map_err(|e| anyhow::anyhow!("backbone.pretrain: {e}"))?;
        if self.backbone.compositional == CompositionalFeatures::Imagenet
            && self.backbone.file.is_none()
        {
            bail!(
                "backbone.compositional = \"imagenet\" needs backbone.file (torchvision's vgg16 weights)"
            );
        }
        if let Some(r) = &self.backbone.resnet {
            r.net
                .validate()
                .map_err(|e| anyhow::anyhow!("backbone.resnet.net: {e}"))?;
        }
        if self.backbone.vgg.width_divisor == 0 {
            bail!("backbone.vgg.width_divisor = 0: expected 1 (VGG-16) or more");
        }
        let h = &self.head;
        if !(h.kappa > 0.0 && h.kappa.is_finite()) {
            bail!("head.kappa = {}: expected a positive number (30)", h.kappa);
        }
        if !(h.occ > 0.0 && h.occ < 1.0) {
            bail!(
                "head.occ = {}: expected a prior in (0, 1) (0.6); with 0 the released code multiplies a log by −∞",
                h.occ
            );
        }
        if h.mixtures_per_class == 0 {
            bail!("head.mixtures_per_class = 0: expected at least 1 (4)");
        }
        if h.mixture_bg {
            bail!(
                "head.mixture_bg = true: classification scores one occluder per image (the released train/test); localisation always uses the per-position best occluder"
            );
        }
        if self.kernels() < 2 {
            bail!(
                "init.dictionary.components = {}: expected at least 2 vMF kernels (512)",
                self.kernels()
            );
        }
        if self.init.positions_per_image == 0 || self.init.dictionary_images_per_class == 0 {
            bail!("init.positions_per_image and init.dictionary_images_per_class must be positive");
        }
        if self.init.mixture_images_per_class < 2 {
            bail!(
                "init.mixture_images_per_class = {}: expected at least 2",
                self.init.mixture_images_per_class
            );
        }
        if !(self.loss.alpha >= 0.0 && self.loss.beta >= 0.0) {
            bail!("loss.alpha and loss.beta must be ≥ 0 (3 and 3)");
        }
        if let Some(tau) = self.eval.tau_switch
            && !(0.0..=1.0).contains(&tau)
        {
            bail!("eval.tau_switch = {tau}: expected a probability in [0, 1]");
        }
        if self.eval.tau_grid.iter().any(|t| !(0.0..=1.0).contains(t))
            || self.eval.tau_grid.is_empty()
        {
            bail!("eval.tau_grid: expected probabilities in [0, 1], at least one");
        }
        if self.eval.batch_size == 0 {
            bail!("eval.batch_size = 0: expected at least 1");
        }
        match &self.data {
            CompNetData::Shapeworld {
                world,
                train_size,
                valid_size,
                heldout_size,
                test_size,
                backgrounds,
                ..
            } => {
                world
                    .validate()
                    .map_err(|e| anyhow::anyhow!("data.world: {e}"))?;
                for (name, v) in [
                    ("data.train_size", train_size),
                    ("data.valid_size", valid_size),
                    ("data.heldout_size", heldout_size),
                    ("data.test_size", test_size),
                    ("data.backgrounds", backgrounds),
                ] {
                    if *v == 0 {
                        bail!("{name} = 0: expected at least 1");
                    }
                }
                let stride = match &self.backbone.resnet {
                    Some(r) if r.cut == crate::backbone::ResNetCut::Second => 16,
                    Some(_) => 32,
                    None => self.backbone.vgg.cut.stride(),
                };
                if world.image_size < stride {
                    bail!(
                        "data.world.image_size = {}: the {:?} features have stride {stride}; expected images of at least {stride} pixels",
                        world.image_size,
                        self.backbone.vgg.cut
                    );
                }
            }
            CompNetData::Pascal3dOcc {
                valid_fraction,
                occluders,
                ..
            } => {
                real_paths(*valid_fraction)?;
                if occluders.is_empty() {
                    bail!(
                        "data.occluders is empty: expected some of object, white, noise, texture"
                    );
                }
            }
            CompNetData::CocoOcc { valid_fraction, .. } => real_paths(*valid_fraction)?,
        }
        Ok(())
    }

    /// "VGG-16 pool4 with widths / 8 (D = 64, frozen), K = 64 vMF kernels, 12 classes × 4
    /// mixtures of 4 × 4: N parameters".
    pub fn model_summary(&self, parameters: usize, [mh, mw]: [usize; 2]) -> String {
        let backbone = self.backbone_choice();
        format!(
            "{} (D = {}, frozen), K = {} vMF kernels, {} classes × {} mixtures of {mh} × {mw}: {} parameters",
            backbone.describe(),
            backbone.out_channels(),
            self.kernels(),
            self.data.num_classes(),
            self.head.mixtures_per_class,
            core_train::report::group_thousands(parameters)
        )
    }
}
