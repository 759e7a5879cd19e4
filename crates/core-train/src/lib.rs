//! vireo's training harness, shared by every paper: the run directory, atomic checkpoints and
//! resume, burn-train `SupervisedTraining` glue with a NaN guard, one-line-per-epoch progress,
//! `metrics.csv`, `curves.png` and `report.md`.
//!
//! Paper crates own their models, losses and experiments ([`Experiment`]); everything generic about
//! *running* an experiment lives here: backend dispatch, presets and overrides, run directories,
//! resume, the mini study, and the command-line verbs ([`Paper`]).

pub mod backend;
pub mod checkpoint;
pub mod classification;
pub mod command;
pub mod config;
pub mod epoch_log;
pub mod experiment;
pub mod guard;
pub mod metrics_csv;
pub mod plot;
pub mod preset;
pub mod report;
pub use report::{ReportInput, render_report};
pub mod run_dir;
pub mod schedule;
pub mod step_metric;
pub mod study;

pub use backend::{BackendChoice, BackendKind, OnBackend, on_backend};
pub use checkpoint::{AtomicRecorder, latest_checkpoint};
pub use classification::{
    AdamOf, Components, FitOptions, LossValue, SgdOf, TrainOutcome, Training, fit_classifier,
    fit_classifier_with, fit_supervised, fit_supervised_with,
};
pub use command::{EvalRequest, InferRequest, Paper, TrainRequest};
pub use config::{OptimizerConfig, OptimizerKind, TrainConfig};
pub use epoch_log::{EpochLog, EpochMeans, EpochMetrics, EpochRow, Part};
pub use experiment::{
    Card, Destination, Experiment, InferOptions, ModelCount, Outcome, Prediction, Session, Weights,
};
pub use guard::DivergenceGuard;
pub use preset::Preset;
pub use run_dir::{RunDir, RunMeta};
pub use schedule::{Schedule, ScheduleConfig, ScheduleKind};
pub use step_metric::{StepMetric, StepValues};
