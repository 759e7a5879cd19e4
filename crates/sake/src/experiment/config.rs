//! The SAKE experiment's configuration (`sake.md` §4): the student and its teacher, the loss, the
//! zipped sketch/photo batching, the augmentation, the recipe, the retrieval evaluation, and the
//! data — ShapeWorld's sketch task (embedded) or the extended Sketchy / TU-Berlin benchmarks.
//! Every error names the key.

use std::path::PathBuf;

use anyhow::{Result, bail};
use core_train::{OptimizerKind, TrainConfig};
use datasets::{Normalization, ShapeWorld};
use serde::{Deserialize, Serialize};

use crate::{
    SakeLossConfig, SakeModelConfig, augment::AffineAugment, itq::ItqConfig,
    retrieval::MapReduction,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SakeExperiment {
    /// What the preset is for and what it should give (shown in reports).
    #[serde(default)]
    pub description: String,
    /// SAKE fine-tuning: Adam, the per-epoch exponential schedule, 20 epochs in the paper.
    pub train: TrainConfig,
    /// The student; `model.num_classes` must equal the data's seen classes and
    /// `model.teacher_classes` the teacher's.
    pub model: SakeModelConfig,
    pub teacher: TeacherConfig,
    #[serde(default)]
    pub loss: SakeLossConfig,
    pub batching: Batching,
    #[serde(default)]
    pub augment: AffineAugment,
    #[serde(default)]
    pub eval: EvalConfig,
    /// `false`: no fine-tuning — the teacher's trunk under the SVD-initialised heads is evaluated
    /// as it is (the mini study's baseline).
    #[serde(default = "yes")]
    pub finetune: bool,
    pub data: SakeData,
}

fn yes() -> bool {
    true
}

/// Sketches and photos per optimizer step (§4): 4 + 36 on TU-Berlin (`40//10`, `40//10·9`),
/// 13 + 26 on Sketchy (`40//3`, `40//3·2`); one step takes the next of each shuffled stream, an
/// epoch ends with the shorter one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batching {
    pub sketches: usize,
    pub photos: usize,
}

/// Where the teacher (the frozen ImageNet network, and the student's initialisation) comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// Cadene's `se_resnet50-ce0d4300.pth` (or a file of its layout for `model.backbone`).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Or trained first, in the same run: a plain SE-ResNet classifier on ShapeWorld photos of
    /// every teacher class — ImageNet's role on the embedded data (its classes are a superset of
    /// the seen and unseen ones).
    #[serde(default)]
    pub pretrain: Option<TeacherPretrain>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherPretrain {
    pub train: TrainConfig,
    pub train_size: usize,
    pub valid_size: usize,
}

/// The retrieval evaluation (§2.6, §2.7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// How mAP is averaged: over queries (the paper's mAP@all) or per class first.
    pub map_reduction: MapReduction,
    /// P@k's k (100 in the paper).
    pub precision_k: usize,
    /// Also mAP@k and P@k at this k (200 for Sketchy split 2).
    pub top: Option<usize>,
    /// The binary codes (64 bits in the paper; at most `model.hashing_dim`).
    pub itq: ItqConfig,
    /// Query sketches shown in `retrieval.png`, each with its top 10.
    pub sheet_queries: usize,
    /// Images per forward pass when embedding.
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            map_reduction: MapReduction::Queries,
            precision_k: 100,
            top: None,
            itq: ItqConfig::default(),
            sheet_queries: 6,
            batch_size: 64,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum SakeData {
    /// ShapeWorld's sketch task (`datasets::shapeworld::sketch`): sketches and photos of the seen
    /// classes for training, held-out seen-class sketches for model selection, unseen-class
    /// sketches as queries against unseen-class photos; relation rows from the class hierarchy.
    Shapeworld {
        #[serde(default)]
        world: ShapeWorld,
        train_sketches: usize,
        train_photos: usize,
        valid_sketches: usize,
        query_sketches: usize,
        gallery_photos: usize,
        #[serde(default = "shapeworld_normalization")]
        normalization: Normalization,
    },
    /// Sketchy Extended (`sake.md` §7): `root` is the unzipped `dataset/`; `zeroshot1` lists,
    /// `cid_mask.npy` converted from `cid_mask.pickle` by `datasets/tools/convert_cid_mask.py`.
    Sketchy {
        root: PathBuf,
        #[serde(default = "two_twenty_four")]
        image_size: usize,
        #[serde(default)]
        skip_corrupt: bool,
    },
    /// TU-Berlin Extended, as [`SakeData::Sketchy`] (`zeroshot` lists).
    Tuberlin {
        root: PathBuf,
        #[serde(default = "two_twenty_four")]
        image_size: usize,
        #[serde(default)]
        skip_corrupt: bool,
    },
}

fn two_twenty_four() -> usize {
    224
}

fn shapeworld_normalization() -> Normalization {
    Normalization {
        mean: [0.5; 3],
        std: [0.25; 3],
    }
}

impl SakeData {
    pub fn normalization(&self) -> Normalization {
        match self {
            SakeData::Shapeworld { normalization, .. } => *normalization,
            _ => Normalization::IMAGENET,
        }
    }

    /// The side images are fed at.
    pub fn image_size(&self) -> usize {
        match self {
            SakeData::Shapeworld { world, .. } => world.image_size,
            SakeData::Sketchy { image_size, .. } | SakeData::Tuberlin { image_size, .. } => {
                *image_size
            }
        }
    }

    pub fn skip_corrupt(&self) -> bool {
        match self {
            SakeData::Shapeworld { .. } => false,
            SakeData::Sketchy { skip_corrupt, .. } | SakeData::Tuberlin { skip_corrupt, .. } => {
                *skip_corrupt
            }
        }
    }
}

impl SakeExperiment {
    pub fn validate(&self) -> Result<()> {
        self.train.validate().map_err(anyhow::Error::msg)?;
        self.train
            .optimizer
            .expect_kind(OptimizerKind::Adam, "SAKE (`sake.md` §4)")
            .map_err(anyhow::Error::msg)?;
        // core-nets names its keys `model.*`; here the network is `model.backbone`.
        self.model.backbone.validate().map_err(|e| {
            anyhow::anyhow!("{}", e.to_string().replace("model.", "model.backbone."))
        })?;
        let m = &self.model;
        if m.backbone.se_condition != 1 || !m.backbone.se {
            bail!(
                "model.backbone: se = {}, se_condition = {}: SAKE's CSE-ResNet has SE modules with one domain bit (se = true, se_condition = 1)",
                m.backbone.se,
                m.backbone.se_condition
            );
        }
        if m.backbone.style != core_nets::ResNetStyle::Caffe {
            bail!(
                "model.backbone.style = {:?}: SAKE's CSE-ResNet is Cadene's Caffe-style SE-ResNet (style = \"caffe\": stride on the first 1×1, ceil-mode stem pool; `sake.md` pitfall 2)",
                m.backbone.style
            );
        }
        if m.hashing_dim == 0 || m.num_classes == 0 || m.teacher_classes == 0 {
            bail!(
                "model.hashing_dim, model.num_classes and model.teacher_classes must be positive"
            );
        }
        if m.hashing_dim > m.teacher_classes.min(m.feature_dim()) {
            bail!(
                "model.hashing_dim = {}: the SVD initialisation needs at most min(teacher_classes, features) = {}",
                m.hashing_dim,
                m.teacher_classes.min(m.feature_dim())
            );
        }
        let step = self.batching.sketches + self.batching.photos;
        if self.train.batch_size != step {
            bail!(
                "train.batch_size = {}: a SAKE step is batching.sketches + batching.photos = {step} images; set train.batch_size = {step}",
                self.train.batch_size
            );
        }
        if self.batching.sketches == 0 || self.batching.photos == 0 {
            bail!(
                "batching: sketches = {}, photos = {}: each step needs both (knowledge preservation is on photos, model selection on sketches)",
                self.batching.sketches,
                self.batching.photos
            );
        }
        for (what, value) in [
            ("loss.sake_lambda", self.loss.sake_lambda),
            ("loss.kd_lambda", self.loss.kd_lambda),
            ("loss.kdneg_lambda", self.loss.kdneg_lambda),
            ("loss.ems_m", self.loss.ems_m),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                bail!("{what} = {value}: expected a finite number >= 0");
            }
        }
        self.augment.validate().map_err(anyhow::Error::msg)?;
        let itq = &self.eval.itq;
        if itq.bits == 0 || itq.bits > m.hashing_dim {
            bail!(
                "eval.itq.bits = {}: expected 1 ..= model.hashing_dim = {}",
                itq.bits,
                m.hashing_dim
            );
        }
        if self.eval.precision_k == 0 || self.eval.batch_size == 0 || self.eval.top == Some(0) {
            bail!("eval.precision_k, eval.batch_size and eval.top must be positive");
        }
        match (&self.teacher.file, &self.teacher.pretrain) {
            (Some(_), Some(_)) | (None, None) => bail!(
                "[teacher]: set exactly one of teacher.file (the ImageNet SE-ResNet-50) and [teacher.pretrain] (trained first on ShapeWorld photos)"
            ),
            (None, Some(pretrain)) => {
                pretrain
                    .train
                    .validate()
                    .and_then(|()| {
                        pretrain
                            .train
                            .optimizer
                            .expect_kind(OptimizerKind::Sgd, "the teacher's pre-training")
                    })
                    .map_err(|e| anyhow::anyhow!("teacher.pretrain.{e}"))?;
                if !matches!(self.data, SakeData::Shapeworld { .. }) {
                    bail!(
                        "[teacher.pretrain] trains on ShapeWorld photos: a real benchmark needs teacher.file (se_resnet50-ce0d4300.pth)"
                    );
                }
                if pretrain.train_size == 0 || pretrain.valid_size == 0 {
                    bail!("teacher.pretrain.train_size and valid_size must be positive");
                }
            }
            (Some(_), None) => {}
        }
        if let SakeData::Shapeworld {
            world,
            train_sketches,
            train_photos,
            valid_sketches,
            query_sketches,
            gallery_photos,
            ..
        } = &self.data
        {
            let counts = [
                (
                    "data.train_sketches",
                    *train_sketches,
                    self.batching.sketches,
                ),
                ("data.train_photos", *train_photos, self.batching.photos),
                ("data.valid_sketches", *valid_sketches, 1),
                ("data.query_sketches", *query_sketches, 1),
                ("data.gallery_photos", *gallery_photos, 1),
            ];
            for (what, value, least) in counts {
                if value < least {
                    bail!("{what} = {value}: expected at least {least}");
                }
            }
            if world.image_size < 16 {
                bail!(
                    "data.world.image_size = {}: expected at least 16",
                    world.image_size
                );
            }
            let classes = crate::experiment::data::shapeworld_classes();
            if m.num_classes != classes.seen.len() || m.teacher_classes != classes.teacher.len() {
                bail!(
                    "model.num_classes = {}, model.teacher_classes = {}: ShapeWorld's sketch task has {} seen classes and {} teacher classes",
                    m.num_classes,
                    m.teacher_classes,
                    classes.seen.len(),
                    classes.teacher.len()
                );
            }
        }
        Ok(())
    }

    /// "CSE-ResNet (Caffe, SE + domain bit) [1, 1, 1, 1], D = 32, 9 classes — 1.2 M parameters".
    pub fn model_summary(&self, parameters: usize) -> String {
        let m = &self.model;
        format!(
            "CSE-ResNet {:?} planes {:?}, D = {}, {} seen classes, teacher head {} — {} parameters",
            m.backbone.layers,
            m.backbone.planes,
            m.hashing_dim,
            m.num_classes,
            m.teacher_classes,
            core_train::report::group_thousands(parameters)
        )
    }
}
