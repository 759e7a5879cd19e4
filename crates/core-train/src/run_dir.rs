//! The run directory `runs/<paper>/<time>/`: the resolved config and where it ran, the
//! checkpoints, metrics, plots and report. Nothing in an existing run directory is overwritten,
//! except by `--resume` of that same run, which only appends.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Where and how a run ran; stored beside its config in `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMeta {
    pub paper: String,
    pub preset: String,
    pub git_revision: String,
    pub backend: String,
    pub device: String,
    pub started: String,
    pub command: String,
    pub vireo_version: String,
}

#[derive(Clone, Debug)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Makes a fresh `<out>/<paper>/<YYYYmmdd-HHMMSS>` (with a suffix if that exists already).
    pub fn create(out: &Path, paper: &str) -> Result<Self> {
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
        let parent = out.join(paper);
        fs::create_dir_all(&parent)
            .with_context(|| format!("creating the run directory parent {}", parent.display()))?;
        for attempt in 0..100 {
            let name = if attempt == 0 {
                stamp.clone()
            } else {
                format!("{stamp}-{attempt}")
            };
            let path = parent.join(name);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("creating run directory {}", path.display()));
                }
            }
        }
        bail!(
            "could not find a free run directory name under {}",
            parent.display()
        )
    }

    /// An existing run to resume: it must hold `config.json`.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.join("config.json").is_file() {
            bail!(
                "{} is not a vireo run directory: expected {}/config.json (written when the run started)",
                path.display(),
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// The newest run of `paper` under `out`, for `--resume` without a path.
    pub fn latest(out: &Path, paper: &str) -> Result<Self> {
        let parent = out.join(paper);
        let newest = fs::read_dir(&parent)
            .with_context(|| format!("--resume: no runs of '{paper}' under {}", parent.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("config.json").is_file())
            .max()
            .with_context(|| {
                format!(
                    "--resume: no run directory with a config.json under {}",
                    parent.display()
                )
            })?;
        Self::open(&newest)
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.path.join("checkpoint")
    }
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `config.json`: `{ "meta": …, "config": … }`. Refuses to replace an existing one.
    pub fn write_config<C: Serialize>(&self, meta: &RunMeta, config: &C) -> Result<()> {
        let path = self.file("config.json");
        if path.exists() {
            bail!(
                "{} exists already: a run directory's config is never overwritten",
                path.display()
            );
        }
        let json = serde_json::json!({ "meta": meta, "config": config });
        let text = serde_json::to_string_pretty(&json)?;
        crate::checkpoint::write_atomically(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The weights file of the run's final model: `model.mpk`, or, where it is missing or does not
    /// decode (a kill before it was written, a truncated copy), the newest checkpoint whose files
    /// all decode — said on stderr with the reason.
    pub fn final_weights(&self) -> Result<PathBuf> {
        let model = self.file("model.mpk");
        let reason = match crate::checkpoint::check_decodes(&model) {
            Ok(()) => return Ok(model),
            Err(reason) => reason,
        };
        let (epoch, skipped) = crate::checkpoint::latest_intact_checkpoint(&self.checkpoint_dir());
        let Some(epoch) = epoch else {
            bail!(
                "{} has no usable weights: {reason}; and no intact checkpoint in {}{}",
                self.path.display(),
                self.checkpoint_dir().display(),
                skipped_note(&skipped)
            );
        };
        let file = self.checkpoint_dir().join(format!("model-{epoch}.mpk"));
        if model.exists() {
            eprintln!(
                "warning: {reason}; using the newest intact checkpoint, {}{}",
                file.display(),
                skipped_note(&skipped)
            );
        }
        Ok(file)
    }

    /// `model` with the weights of `file` (a burn record this recorder wrote).
    pub fn load_model<B: burn::tensor::backend::Backend, M: burn::module::Module<B>>(
        model: M,
        file: &Path,
        device: &B::Device,
    ) -> Result<M> {
        use burn::record::Recorder;
        let record = Recorder::<B>::load(&crate::AtomicRecorder, file.to_path_buf(), device)
            .map_err(|e| anyhow::anyhow!("loading {}: {}", file.display(), recorder_message(e)))?;
        Ok(model.load_record(record))
    }

    /// `model` with the weights of the run's final model (see [`Self::final_weights`]); also the
    /// file it read.
    pub fn load_final_model<B: burn::tensor::backend::Backend, M: burn::module::Module<B>>(
        &self,
        model: M,
        device: &B::Device,
    ) -> Result<(M, PathBuf)> {
        let file = self.final_weights()?;
        Ok((Self::load_model(model, &file, device)?, file))
    }

    /// Model selection after training: of `rows`, each `(epoch, score)` by `key`, the model of
    /// the epoch with the best finite score (the earlier epoch on ties), loaded from its checkpoint into
    /// `template`; the `last` model when that epoch is the last or its checkpoint is no longer
    /// kept. Also a sentence saying what was picked, `what` naming the score
    /// (e.g. "L0 validation top-1").
    pub fn select_best_epoch<B, M, R>(
        &self,
        rows: &[R],
        key: impl Fn(&R) -> (usize, f64),
        what: &str,
        template: M,
        last: M,
        device: &B::Device,
    ) -> Result<(M, String)>
    where
        B: burn::tensor::backend::Backend,
        M: burn::module::Module<B>,
    {
        let epoch_of = |r: &R| key(r).0;
        let score = |r: &R| key(r).1;
        let last_epoch = rows.last().map_or(0, epoch_of);
        let last_score = rows.last().map_or(f64::NAN, score);
        let best = rows.iter().filter(|r| score(r).is_finite()).max_by(|a, b| {
            score(a)
                .total_cmp(&score(b))
                .then(epoch_of(b).cmp(&epoch_of(a)))
        });
        let Some(best) = best.filter(|b| epoch_of(b) != last_epoch) else {
            return Ok((
                last,
                format!("the last epoch, {last_epoch} (also the best {what}, {last_score:.2} %)"),
            ));
        };
        let (epoch, value) = (epoch_of(best), score(best));
        let file = self.checkpoint_dir().join(format!("model-{epoch}.mpk"));
        if !file.is_file() {
            return Ok((
                last,
                format!(
                    "the last epoch, {last_epoch}: the best {what} was epoch {epoch}'s ({value:.2} %) but its checkpoint is no longer kept (raise train.checkpoints_kept)"
                ),
            ));
        }
        Ok((
            Self::load_model(template, &file, device)?,
            format!(
                "epoch {epoch} (best {what}, {value:.2} %; the last epoch's was {last_score:.2} %)"
            ),
        ))
    }

    /// "the last good checkpoint is epoch N in DIR" (or that there is none), for a stopped run.
    pub fn last_good_checkpoint(&self) -> String {
        // The checkpoint `--resume` would use: intact, and reached by metrics.csv.
        let (epoch, _) = crate::checkpoint::latest_intact_checkpoint_upto(
            &self.checkpoint_dir(),
            self.metrics_rows_reach().unwrap_or(usize::MAX),
        );
        match epoch {
            Some(e) => format!(
                "the last good checkpoint is epoch {e} in {}",
                self.checkpoint_dir().display()
            ),
            None => "no epoch completed, so there is no checkpoint".into(),
        }
    }

    /// The last epoch up to which `metrics.csv` has a row for every epoch (its first column is the
    /// epoch, whatever the paper's columns); `None` without a readable file.
    pub fn metrics_rows_reach(&self) -> Option<usize> {
        let text = fs::read_to_string(self.file("metrics.csv")).ok()?;
        let mut reach = 0;
        for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            match line
                .split(',')
                .next()
                .and_then(|e| e.trim().parse::<usize>().ok())
            {
                Some(epoch) if epoch == reach + 1 => reach = epoch,
                _ => break,
            }
        }
        Some(reach)
    }

    /// The error that stops a run: `reason` and the checkpoint `--resume` would use. `report` writes
    /// the stopped run's report first; its own failure is only warned about, so the first error is
    /// the one reported.
    pub fn stop(&self, reason: &str, report: impl FnOnce(&str) -> Result<()>) -> anyhow::Error {
        let error = format!("{reason}; {}", self.last_good_checkpoint());
        if let Err(e) = report(&error) {
            eprintln!("warning: the report of the stopped run was not written: {e:#}");
        }
        anyhow::anyhow!("training stopped: {error}")
    }

    /// The paper `config.json` says this run is of.
    pub fn paper(&self) -> Result<String> {
        Ok(self.read_config::<serde_json::Value>()?.0.paper)
    }

    /// Opens a run for `--resume`: its config (which must be a run of `paper`), and the newest
    /// complete checkpoint's epoch, which must be before `epochs(config)`.
    pub fn open_for_resume<C: serde::de::DeserializeOwned>(
        path: &Path,
        paper: &str,
        epochs: impl Fn(&C) -> usize,
    ) -> Result<(Self, RunMeta, C, usize)> {
        let run = Self::open(path)?;
        let (meta, config): (RunMeta, C) = run.read_config()?;
        if meta.paper != paper {
            bail!(
                "{} is a run of '{}', not '{paper}'",
                run.path.display(),
                meta.paper
            );
        }
        // burn-train writes a checkpoint and the epoch's metrics row on different threads: a kill
        // in between leaves a checkpoint newer than the rows. Resume from the newest intact
        // checkpoint the rows reach, so no epoch is missing from metrics.csv.
        let rows_reach = run.metrics_rows_reach();
        let (mut epoch, mut skipped) = crate::checkpoint::latest_intact_checkpoint_upto(
            &run.checkpoint_dir(),
            rows_reach.unwrap_or(usize::MAX),
        );
        if let (Some(reach), None) = (rows_reach, epoch) {
            // No checkpoint as old as the rows (an older one was deleted): take the newest.
            (epoch, skipped) = crate::checkpoint::latest_intact_checkpoint(&run.checkpoint_dir());
            if let Some(e) = epoch
                && e > reach
            {
                eprintln!(
                    "warning: metrics.csv ends at epoch {reach} but the oldest kept checkpoint is epoch {e}: epochs {}–{e} will be missing from metrics.csv",
                    reach + 1
                );
            }
        }
        let Some(epoch) = epoch else {
            bail!(
                "{} has no complete checkpoint to resume from (expected checkpoint/model-N.mpk, optim-N.mpk, scheduler-N.mpk that decode){}",
                run.path.display(),
                skipped_note(&skipped)
            );
        };
        if !skipped.is_empty() {
            eprintln!(
                "warning: resuming from the checkpoint of epoch {epoch}{}",
                skipped_note(&skipped)
            );
        }
        if epoch >= epochs(&config) {
            // A run killed after its last checkpoint but before `model.mpk`: resuming finishes it
            // (model, report, plots) without training.
            if crate::checkpoint::check_decodes(&run.file("model.mpk")).is_ok() {
                bail!(
                    "{} finished all {} epochs already (its model.mpk is written)",
                    run.path.display(),
                    epochs(&config)
                );
            }
            eprintln!(
                "all {} epochs are checkpointed but model.mpk is missing: finishing the run",
                epochs(&config)
            );
        }
        Ok((run, meta, config, epoch))
    }

    /// Reads back the `config` and `meta` parts of `config.json`.
    pub fn read_config<C: serde::de::DeserializeOwned>(&self) -> Result<(RunMeta, C)> {
        let path = self.file("config.json");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        #[derive(Deserialize)]
        struct Stored<C> {
            meta: RunMeta,
            config: C,
        }
        let stored: Stored<C> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a vireo run config", path.display()))?;
        Ok((stored.meta, stored.config))
    }
}

/// ", skipped: …" for checkpoints that were passed over, with the reason.
fn skipped_note(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (passed over: {})", skipped.join("; "))
    }
}

/// burn's recorder errors in vireo's words (its own text points at burn's record-format history,
/// which is not what went wrong here).
fn recorder_message(error: burn::record::RecorderError) -> String {
    match error {
        burn::record::RecorderError::FileNotFound(m)
        | burn::record::RecorderError::Unknown(m)
        | burn::record::RecorderError::DeserializeError(m) => m,
    }
}

/// `git describe`-style revision of the working tree, or "unknown" outside a checkout.
pub fn git_revision() -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{rev}-dirty") } else { rev }
        }
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_are_fresh_and_configs_are_never_overwritten() {
        let out = tempfile::tempdir().unwrap();
        let a = RunDir::create(out.path(), "ws").unwrap();
        let b = RunDir::create(out.path(), "ws").unwrap();
        assert_ne!(a.path, b.path);
        let meta = RunMeta {
            paper: "ws".into(),
            preset: "smoke".into(),
            git_revision: git_revision(),
            backend: "cpu".into(),
            device: "cpu".into(),
            started: "now".into(),
            command: "test".into(),
            vireo_version: "0".into(),
        };
        a.write_config(&meta, &serde_json::json!({"x": 1})).unwrap();
        assert!(a.write_config(&meta, &serde_json::json!({"x": 2})).is_err());
        let (_, config): (RunMeta, serde_json::Value) = a.read_config().unwrap();
        assert_eq!(config["x"], 1);
        assert!(
            RunDir::open(&b.path)
                .unwrap_err()
                .to_string()
                .contains("config.json")
        );
    }
}
