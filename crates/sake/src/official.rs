//! The authors' weights (`sake.md` §5): Cadene's ImageNet `se_resnet50` (the teacher and the
//! student's initialisation) and the released SAKE checkpoints (`CSEResnetModel_KDHashing`, saved
//! from `nn.DataParallel` inside `{'epoch', 'arch', 'state_dict', 'best_acc1', 'optimizer'}`).

use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use core_nets::{ImportReport, ResNet, load_pytorch_checkpoint_with};

use crate::{SakeModelConfig, SakeNet};

/// Cadene's layout → core-nets' ResNet: the stem is `layer0.{conv1, bn1}`, the classifier
/// `last_linear` (SE modules' 1×1 convolutions are squeezed by core-nets' loader).
pub const CADENE_KEY_REMAPPING: &[(&str, &str)] = &[(r"^layer0\.", ""), (r"^last_linear\.", "fc.")];

/// The released SAKE layout → [`SakeNet`]: `original_model.layer0..4` is the trunk, the two
/// hashing layers sit beside it, `linear` on top (with or without `module.`).
pub const SAKE_KEY_REMAPPING: &[(&str, &str)] = &[
    (r"^(module\.)?original_model\.layer0\.", "backbone."),
    (
        r"^(module\.)?original_model\.(layer[1-4])\.",
        "backbone.$2.",
    ),
    (
        r"^(module\.)?original_model\.(second_last_linear|last_linear)\.",
        "$2.",
    ),
    (r"^module\.linear\.", "linear."),
];

/// Cadene's ImageNet SE-ResNet-50 file (`se_resnet50-ce0d4300.pth`, or any file of that layout
/// for `config`'s trunk) as SAKE's teacher: loaded into the plain SE-ResNet, then converted to the
/// CSE-ResNet by zero domain columns (`sake.md` §2.2), so it ignores the domain bit.
pub fn load_imagenet_teacher<B: Backend>(
    config: &SakeModelConfig,
    path: &Path,
    device: &B::Device,
) -> Result<(ResNet<B>, ImportReport)> {
    let plain = core_nets::ResNetConfig {
        se_condition: 0,
        ..config.teacher_config()
    };
    let (model, report) = load_pytorch_checkpoint_with(
        plain.init::<B>(device),
        path,
        "the ImageNet SE-ResNet (Cadene layout) of this config's trunk",
        CADENE_KEY_REMAPPING,
    )?;
    Ok((model.conditioned(config.backbone.se_condition), report))
}

/// A released SAKE checkpoint (`model_best.pth.tar`) into the student of `config` (its D and
/// classes must be the checkpoint's: the Sketchy training script's default D is 512, the test
/// script's 64, `sake.md` pitfall 11).
pub fn load_sake_checkpoint<B: Backend>(
    config: &SakeModelConfig,
    path: &Path,
    device: &B::Device,
) -> Result<(SakeNet<B>, ImportReport)> {
    let name = format!(
        "CSEResnetModel_KDHashing with D = {} and {} classes",
        config.hashing_dim, config.num_classes
    );
    load_pytorch_checkpoint_with(config.init::<B>(device), path, &name, SAKE_KEY_REMAPPING)
        .with_context(|| {
            "a SAKE checkpoint needs model.hashing_dim and model.num_classes of the file"
                .to_string()
        })
}
