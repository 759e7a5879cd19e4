//! Loading the authors' PyTorch checkpoints into our ResNets (`ws.md` §5, `bcn.md` §5,
//! `resnet-family.md` §5.5): wrappers stripped and keys remapped in one place, shapes verified,
//! every unmatched key reported.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_store::{ModuleSnapshot, PytorchStore};

use crate::ResNet;

/// `(pattern, replacement)` applied in order to every checkpoint key.
const KEY_REMAPPING: &[(&str, &str)] = &[
    // `{'state_dict': …}` / `{'net': …}` / `{'model': …}` wrappers, then data-parallel and MoCo prefixes.
    (r"^(state_dict|net|model)\.", ""),
    (r"^module\.encoder_q\.", ""),
    (r"^module\.", ""),
    // torchvision's `downsample = Sequential(conv, norm)`.
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.norm."),
    // The BCN README's `BCNorm` names its stage 1 `bn`; the ImageNet code names it `pbn`.
    (
        r"\.bn\.(weight|bias|running_mean|running_var|num_batches_tracked|estbn_moving_speed)$",
        ".pbn.$1",
    ),
];

/// Checkpoint entries that carry no information our modules need (Axial-DeepLab's
/// `flatten_index` is a gather table the layer recomputes).
fn ignorable(key: &str) -> bool {
    key.ends_with("num_batches_tracked")
        || key.ends_with("estbn_moving_speed")
        || key.ends_with("flatten_index")
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("checkpoint {0} does not exist")]
    NotFound(PathBuf),
    #[error(
        "cannot read {path} as a PyTorch checkpoint (.pth/.pth.tar zip or legacy pickle): {reason}"
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} does not fit {model}: {}", summarize(.missing, .unexpected, .shapes))]
    Mismatch {
        path: PathBuf,
        model: String,
        missing: Vec<String>,
        unexpected: Vec<String>,
        shapes: Vec<String>,
    },
}

fn summarize(missing: &[String], unexpected: &[String], shapes: &[String]) -> String {
    let list = |what: &str, keys: &[String]| {
        (!keys.is_empty()).then(|| {
            let shown: Vec<_> = keys.iter().take(5).map(String::as_str).collect();
            let more = if keys.len() > 5 {
                format!(", … ({} more)", keys.len() - 5)
            } else {
                String::new()
            };
            format!("{} {what} ({}{more})", keys.len(), shown.join(", "))
        })
    };
    [
        list("model tensors missing from the file", missing),
        list("file keys the model does not have", unexpected),
        list("shape mismatches", shapes),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ")
}

/// What a successful import consumed.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Tensors copied into the model.
    pub applied: usize,
    /// Entries skipped on purpose (`num_batches_tracked`, `estbn_moving_speed`).
    pub ignored: Vec<String>,
}

/// Loads a PyTorch ResNet/ResNeXt state_dict (plain or wrapped, with or without `module.`) into
/// `model`, which must have the checkpoint's structure and kinds. The raw conv weights become the
/// WS parameters unchanged. `model_name` is used in errors.
pub fn load_pytorch_resnet<B: Backend>(
    model: ResNet<B>,
    path: &Path,
    model_name: &str,
) -> Result<(ResNet<B>, ImportReport), ImportError> {
    load_pytorch_checkpoint(model, path, model_name)
}

/// Loads any PyTorch state_dict whose keys (after the wrapper and `downsample` remapping of
/// `KEY_REMAPPING`) equal `model`'s parameter paths; every tensor of the model must be found with
/// its shape, and every file key used or ignorable. `model_name` is used in errors.
pub fn load_pytorch_checkpoint<B: Backend, M: ModuleSnapshot<B>>(
    mut model: M,
    path: &Path,
    model_name: &str,
) -> Result<(M, ImportReport), ImportError> {
    if !path.is_file() {
        return Err(ImportError::NotFound(path.to_path_buf()));
    }
    let mut store = PytorchStore::from_file(path)
        .allow_partial(true)
        .validate(false)
        .map_indices_contiguous(false);
    for &(pattern, replacement) in KEY_REMAPPING {
        store = store.with_key_remapping(pattern, replacement);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| ImportError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let (ignored, unexpected): (Vec<String>, Vec<String>) =
        result.unused.iter().cloned().partition(|k| ignorable(k));
    let missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
    let shapes: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    if !missing.is_empty() || !unexpected.is_empty() || !shapes.is_empty() {
        return Err(ImportError::Mismatch {
            path: path.to_path_buf(),
            model: model_name.to_string(),
            missing,
            unexpected,
            shapes,
        });
    }
    Ok((
        model,
        ImportReport {
            applied: result.applied.len(),
            ignored,
        },
    ))
}
