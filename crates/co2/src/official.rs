//! The released MoCo checkpoints (`co2-moco.md` §5): `moco_v1_200ep` / `moco_v2_{200,800}ep
//! _pretrain.pth.tar`, `{'epoch', 'arch', 'state_dict', 'optimizer'}` with `module.encoder_q.*`,
//! `module.encoder_k.*` (torchvision ResNet names; the v2 head as `fc.0`, `fc.2`), `module.queue`
//! and `module.queue_ptr`. Loaded whole — both encoders, the queue and its pointer — for resuming
//! pre-training or for the linear evaluation of `encoder_q`.

use std::path::Path;

use burn::tensor::backend::Backend;
use core_nets::{ImportError, ImportReport, load_pytorch_checkpoint_with};

use crate::Moco;

/// How the file's keys (after the `state_dict` entry and `module.` are stripped) map onto [`Moco`].
const MOCO_KEYS: &[(&str, &str)] = &[
    (r"^module\.", ""),
    // The v2 head `Sequential(Linear, ReLU, Linear)`.
    (r"^(encoder_[qk])\.fc\.0\.", "$1.fc.hidden."),
    (r"^(encoder_[qk])\.fc\.2\.", "$1.fc.output."),
    // The torchvision body sits under `backbone` here.
    (
        r"^(encoder_[qk])\.(conv1|bn1|layer[1-4])\.",
        "$1.backbone.$2.",
    ),
    (r"^queue$", "queue.keys"),
    (r"^queue_ptr$", "queue.pointer"),
];

/// `model` (built from the matching [`crate::MocoConfig`]) with the weights, queue and pointer of
/// an official MoCo checkpoint; every tensor must be found with its shape.
pub fn load_moco_checkpoint<B: Backend>(
    model: Moco<B>,
    path: &Path,
    model_name: &str,
) -> Result<(Moco<B>, ImportReport), ImportError> {
    load_pytorch_checkpoint_with(model, path, model_name, MOCO_KEYS)
}
