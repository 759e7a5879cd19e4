//! Loading the authors' PyTorch checkpoints into our ResNets (`ws.md` §5, `bcn.md` §5,
//! `resnet-family.md` §5.5): wrappers stripped and keys remapped in one place, shapes verified,
//! every unmatched key reported.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn_store::{ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, TensorSnapshot};

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

/// Cadene's SE modules are 1×1 convolutions (`se_module.fc{1,2}.weight` `[o, i, 1, 1]`); ours are
/// linear layers (`resnet-family.md` §2.3, `sake.md` §2.2: "squeeze the 1×1-conv SE weights to
/// matrices"): the file's tensor as `[o, i]`. Every other tensor passes unchanged.
fn squeeze_se_convolution(snapshot: &TensorSnapshot) -> TensorSnapshot {
    let dims = snapshot.shape.as_slice();
    let path = snapshot.full_path();
    let se_weight =
        path.ends_with("se_module.fc1.weight") || path.ends_with("se_module.fc2.weight");
    if !(se_weight && dims.len() == 4 && dims[2] == 1 && dims[3] == 1) {
        return snapshot.clone();
    }
    let shape = [dims[0], dims[1]];
    let data = snapshot.clone_data_fn();
    TensorSnapshot::from_closure(
        std::rc::Rc::new(move || {
            let mut data = data()?;
            data.shape = shape.into();
            Ok(data)
        }),
        snapshot.dtype,
        shape.into(),
        snapshot.path_stack.clone().unwrap_or_default(),
        snapshot.container_stack.clone().unwrap_or_default(),
        snapshot.tensor_id.unwrap_or_default(),
    )
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
    /// The entry of a training script's checkpoint that held the model (`state_dict`, `model`,
    /// `net`), if the weights were not at the top level.
    pub model_entry: Option<String>,
    /// Tensors beside the model's entry (optimizer state, EMA copies, …), not read.
    pub other_entries: Vec<String>,
}

impl ImportReport {
    /// "loaded 161 tensors; ignored 53 bookkeeping entries; read `state_dict`, not optimizer (160 tensors)".
    pub fn summary(&self) -> String {
        let mut text = format!(
            "loaded {} tensors; ignored {} bookkeeping entries (num_batches_tracked and the like)",
            self.applied,
            self.ignored.len()
        );
        if let Some(entry) = &self.model_entry {
            let mut others: Vec<(String, usize)> = Vec::new();
            for key in &self.other_entries {
                let top = key.split('.').next().unwrap_or(key).to_string();
                match others.iter_mut().find(|(t, _)| *t == top) {
                    Some((_, n)) => *n += 1,
                    None => others.push((top, 1)),
                }
            }
            let others: Vec<String> = others
                .iter()
                .map(|(t, n)| format!("{t} ({n} tensor{})", if *n == 1 { "" } else { "s" }))
                .collect();
            text += &format!("; read the model from `{entry}`");
            if !others.is_empty() {
                text += &format!(", not {}", others.join(", "));
            }
        }
        text
    }
}

/// The entries a training script's checkpoint keeps its model under, in the order they are tried.
const MODEL_ENTRIES: [&str; 3] = ["state_dict", "model", "net"];

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
    model: M,
    path: &Path,
    model_name: &str,
) -> Result<(M, ImportReport), ImportError> {
    load_pytorch_checkpoint_with(model, path, model_name, &[])
}

/// [`load_pytorch_checkpoint`] with `remaps` (`(pattern, replacement)`) applied to every key before
/// the shared ones, for a model whose paths differ from the file's by more than the wrappers (MoCo's
/// `encoder_q.*` → `encoder_q.backbone.*`).
pub fn load_pytorch_checkpoint_with<B: Backend, M: ModuleSnapshot<B>>(
    mut model: M,
    path: &Path,
    model_name: &str,
    remaps: &[(&str, &str)],
) -> Result<(M, ImportReport), ImportError> {
    if !path.is_file() {
        return Err(ImportError::NotFound(path.to_path_buf()));
    }
    let unreadable = |e: &dyn std::fmt::Display| ImportError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    // A checkpoint as a training script saves it ({'epoch', 'state_dict', 'optimizer', …}): the
    // model's entry is read, the rest (optimizer state and the like) is named and left alone.
    let raw_keys = PytorchStore::from_file(path)
        .keys()
        .map_err(|e| unreadable(&e))?;
    let top = |key: &str| key.split('.').next().unwrap_or(key).to_string();
    let model_entry = MODEL_ENTRIES
        .into_iter()
        .find(|entry| raw_keys.iter().any(|k| top(k) == *entry))
        .map(str::to_string);
    let other_entries: Vec<String> = match &model_entry {
        Some(entry) => raw_keys
            .iter()
            .filter(|k| top(k) != *entry)
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let mut store = PytorchStore::from_file(path)
        .allow_partial(true)
        .validate(false)
        .map_indices_contiguous(false);
    if let Some(entry) = &model_entry {
        store = store.with_top_level_key(entry.clone());
    }
    for &(pattern, replacement) in remaps.iter().chain(KEY_REMAPPING) {
        store = store.with_key_remapping(pattern, replacement);
    }
    let snapshots = store
        .get_all_snapshots()
        .map_err(|e| unreadable(&e))?
        .values()
        .map(squeeze_se_convolution)
        .collect();
    let result = model.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), true);
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
            model_entry,
            other_entries,
        },
    ))
}

/// One tensor of a safetensors file (a test fixture's reference output, an exported array), named
/// by file and key when it is absent or unreadable.
pub fn read_safetensors_tensor(path: &Path, key: &str) -> Result<burn::tensor::TensorData, String> {
    let mut store = burn_store::SafetensorsStore::from_file(path);
    store
        .get_snapshot(key)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{} has no tensor '{key}'", path.display()))?
        .to_data()
        .map_err(|e| format!("{} '{key}': {e:?}", path.display()))
}
