//! vireo's training harness, shared by every paper: the run directory, atomic checkpoints and
//! resume, burn-train `SupervisedTraining` glue with a NaN guard, one-line-per-epoch progress,
//! `metrics.csv`, `curves.png` and `report.md`.
//!
//! Paper crates own their models and losses; everything about *running* an experiment lives here.

pub mod checkpoint;
pub mod classification;
pub mod config;
pub mod epoch_log;
pub mod plot;
pub mod report;
pub use report::{ReportInput, render_report};
pub mod run_dir;
pub mod schedule;

pub use checkpoint::{AtomicRecorder, latest_checkpoint};
pub use classification::{FitOptions, TrainOutcome, fit_classifier};
pub use config::{OptimizerConfig, TrainConfig};
pub use epoch_log::{EpochLog, EpochRow};
pub use run_dir::{RunDir, RunMeta};
pub use schedule::{Schedule, ScheduleConfig, ScheduleKind};
