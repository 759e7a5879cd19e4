//! Checkpoints that are never half-written: each file is written under a temporary name in the
//! same directory, synced, then renamed over its final name (an atomic step on POSIX file
//! systems). A run killed mid-write leaves the previous checkpoint intact.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use burn::{
    record::{FileRecorder, FullPrecisionSettings, Recorder, RecorderError},
    tensor::backend::Backend,
};
use serde::{Serialize, de::DeserializeOwned};

/// burn's named-MessagePack format (full precision), written atomically.
#[derive(Clone, Copy, Debug, Default)]
pub struct AtomicRecorder;

const EXTENSION: &str = "mpk";

impl<B: Backend> Recorder<B> for AtomicRecorder {
    type Settings = FullPrecisionSettings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, mut file: PathBuf) -> Result<(), RecorderError> {
        file.set_extension(EXTENSION);
        let bytes = rmp_serde::encode::to_vec_named(&item)
            .map_err(|e| RecorderError::Unknown(e.to_string()))?;
        write_atomically(&file, &bytes)
            .map_err(|e| RecorderError::Unknown(format!("writing {}: {e}", file.display())))
    }

    fn load_item<I: DeserializeOwned>(&self, file: &mut PathBuf) -> Result<I, RecorderError> {
        file.set_extension(EXTENSION);
        let bytes = fs::read(&*file)
            .map_err(|e| RecorderError::FileNotFound(format!("{}: {e}", file.display())))?;
        rmp_serde::decode::from_slice(&bytes).map_err(|e| {
            RecorderError::Unknown(format!(
                "{} is truncated or not a vireo/burn checkpoint (named MessagePack, full precision): {e}",
                file.display()
            ))
        })
    }
}

impl<B: Backend> FileRecorder<B> for AtomicRecorder {
    fn file_extension() -> &'static str {
        EXTENSION
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename. On failure (a full
/// disk) the temporary file is removed and `path` is as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let partial = path.with_file_name(format!(".{name}.partial"));
    let written = (|| {
        let mut file = fs::File::create(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fault_point("before-rename", path);
        fs::rename(&partial, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    if let Some(dir) = path.parent().and_then(|d| fs::File::open(d).ok()) {
        // Persist the rename itself; failure here only weakens durability, not atomicity.
        let _ = dir.sync_all();
    }
    fault_point("after", path);
    Ok(())
}

/// Fault injection for the fault suite (`crates/vireo/tests/faults.rs`): with
/// `VIREO_FAULT_ABORT=after:optim-2.mpk` the process aborts right after that file is renamed into
/// place, with `before-rename:model-2.mpk` once its temporary is written — the states a kill -9 can
/// leave. Unset, it costs one cached lookup per write.
fn fault_point(stage: &str, path: &Path) {
    static PLAN: std::sync::OnceLock<Option<(String, String)>> = std::sync::OnceLock::new();
    let plan = PLAN.get_or_init(|| {
        let value = std::env::var("VIREO_FAULT_ABORT").ok()?;
        let (stage, name) = value.split_once(':')?;
        Some((stage.to_string(), name.to_string()))
    });
    if let Some((at, name)) = plan
        && at == stage
        && path.file_name().is_some_and(|n| n == name.as_str())
    {
        std::process::abort();
    }
}

/// The burn-train checkpoint files of one epoch.
const PARTS: [&str; 3] = ["model", "optim", "scheduler"];

/// Writes the three parts of epoch `epoch`'s checkpoint into `dir` (each atomically, the model
/// last so that [`latest_checkpoint`] never sees a partial set), then deletes the checkpoints older
/// than the newest `keep`. For training loops outside burn-train's (whose checkpointer writes the
/// same files).
pub fn save_checkpoint<B: Backend, M: burn::module::Module<B>, O: burn::record::Record<B>>(
    dir: &Path,
    epoch: usize,
    model: &M,
    optimizer: O,
    scheduler_iteration: usize,
    keep: usize,
) -> Result<(), RecorderError> {
    fs::create_dir_all(dir)
        .map_err(|e| RecorderError::Unknown(format!("creating {}: {e}", dir.display())))?;
    let file = |part: &str| dir.join(format!("{part}-{epoch}"));
    Recorder::<B>::record(&AtomicRecorder, optimizer, file("optim"))?;
    Recorder::<B>::record(&AtomicRecorder, scheduler_iteration, file("scheduler"))?;
    Recorder::<B>::record(&AtomicRecorder, model.clone().into_record(), file("model"))?;
    for old in 1..=epoch.saturating_sub(keep.max(1)) {
        for part in PARTS {
            let _ = fs::remove_file(dir.join(format!("{part}-{old}.{EXTENSION}")));
        }
    }
    Ok(())
}

/// Loads epoch `epoch`'s checkpoint (as [`save_checkpoint`] wrote it) into `model` and
/// `optimizer`; returns them with the scheduler's iteration. For training loops outside burn-train's.
pub fn load_checkpoint<B, M, O>(
    dir: &Path,
    epoch: usize,
    model: M,
    optimizer: O,
    device: &B::Device,
) -> Result<(M, O, usize), RecorderError>
where
    B: burn::tensor::backend::AutodiffBackend,
    M: burn::module::AutodiffModule<B>,
    O: burn::optim::Optimizer<M, B>,
{
    let file = |part: &str| dir.join(format!("{part}-{epoch}"));
    let model = model.load_record(Recorder::<B>::load(&AtomicRecorder, file("model"), device)?);
    let optimizer =
        optimizer.load_record(Recorder::<B>::load(&AtomicRecorder, file("optim"), device)?);
    let iteration: usize = Recorder::<B>::load(&AtomicRecorder, file("scheduler"), device)?;
    Ok((model, optimizer, iteration))
}

/// The last epoch whose model, optimizer and scheduler files all exist in `checkpoint_dir`
/// (burn-train writes the three on separate threads, so a kill can leave one without the others).
pub fn latest_checkpoint(checkpoint_dir: &Path) -> Option<usize> {
    checkpoint_epochs(checkpoint_dir)
        .into_iter()
        .filter(|epoch| {
            PARTS.iter().all(|p| {
                checkpoint_dir
                    .join(format!("{p}-{epoch}.{EXTENSION}"))
                    .is_file()
            })
        })
        .max()
}

/// The epochs with a `model-N.mpk` in `checkpoint_dir` (in no order).
fn checkpoint_epochs(checkpoint_dir: &Path) -> Vec<usize> {
    fs::read_dir(checkpoint_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".mpk")?
                .parse::<usize>()
                .ok()
        })
        .collect()
}

/// Deletes the checkpoint files of every epoch after `epoch`.
pub fn remove_checkpoints_after(dir: &Path, epoch: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let newer = PARTS.iter().any(|part| {
            name.strip_prefix(&format!("{part}-"))
                .and_then(|rest| rest.strip_suffix(".mpk"))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n > epoch)
        });
        if newer {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether the burn record at `path` is whole: it exists and decodes as MessagePack to its end
/// (a truncated or foreign file does not). The reason names the file.
pub fn check_decodes(path: &Path) -> Result<(), String> {
    let bytes = fs::read(path).map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    rmp_serde::decode::from_slice::<serde::de::IgnoredAny>(&bytes)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{} is truncated or not a vireo/burn record ({} bytes; {e})",
                path.display(),
                bytes.len()
            )
        })
}

/// The newest epoch whose three checkpoint files all decode, and why each newer one was passed
/// over.
pub fn latest_intact_checkpoint(checkpoint_dir: &Path) -> (Option<usize>, Vec<String>) {
    latest_intact_checkpoint_upto(checkpoint_dir, usize::MAX)
}

/// [`latest_intact_checkpoint`] among the epochs up to `last`.
pub fn latest_intact_checkpoint_upto(
    checkpoint_dir: &Path,
    last: usize,
) -> (Option<usize>, Vec<String>) {
    let mut epochs = checkpoint_epochs(checkpoint_dir);
    epochs.retain(|&e| e <= last);
    epochs.sort_unstable_by(|a, b| b.cmp(a));
    let mut skipped = Vec::new();
    for epoch in epochs {
        let problem = PARTS.iter().find_map(|p| {
            check_decodes(&checkpoint_dir.join(format!("{p}-{epoch}.{EXTENSION}"))).err()
        });
        match problem {
            None => return (Some(epoch), skipped),
            Some(reason) => skipped.push(format!("epoch {epoch}: {reason}")),
        }
    }
    (None, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model-1.mpk");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn latest_checkpoint_needs_all_three_parts() {
        let dir = tempfile::tempdir().unwrap();
        for part in PARTS {
            fs::write(dir.path().join(format!("{part}-1.mpk")), b"x").unwrap();
        }
        fs::write(dir.path().join("model-2.mpk"), b"x").unwrap();
        fs::write(dir.path().join("optim-2.mpk"), b"x").unwrap();
        assert_eq!(latest_checkpoint(dir.path()), Some(1));
        assert_eq!(latest_checkpoint(&dir.path().join("missing")), None);
    }

    #[test]
    fn a_checkpoint_that_does_not_decode_is_passed_over_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let whole = rmp_serde::encode::to_vec_named(&serde_json::json!({"w": [1.0, 2.0]})).unwrap();
        for epoch in [1, 2] {
            for part in PARTS {
                fs::write(dir.path().join(format!("{part}-{epoch}.mpk")), &whole).unwrap();
            }
        }
        assert_eq!(latest_intact_checkpoint(dir.path()), (Some(2), vec![]));
        fs::write(dir.path().join("optim-2.mpk"), &whole[..whole.len() - 3]).unwrap();
        let (epoch, skipped) = latest_intact_checkpoint(dir.path());
        assert_eq!(epoch, Some(1));
        assert!(
            skipped.len() == 1
                && skipped[0].contains("epoch 2")
                && skipped[0].contains("optim-2.mpk"),
            "{skipped:?}"
        );
    }

    #[test]
    fn truncated_checkpoint_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model-1.mpk");
        fs::write(&path, [0x85, 0xa4]).unwrap();
        let err =
            <AtomicRecorder as Recorder<burn::backend::Flex>>::load_item::<serde_json::Value>(
                &AtomicRecorder,
                &mut path.clone(),
            )
            .unwrap_err();
        assert!(format!("{err:?}").contains("model-1.mpk"), "{err:?}");
    }
}
