//! Per-epoch metrics: a burn-train `MetricLogger` that keeps each split's epoch means, writes
//! `metrics.csv` after every epoch, and prints one line per epoch when stdout is not a terminal.

use std::{
    collections::HashMap,
    io::IsTerminal,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Instant,
};

use burn::train::{
    logger::MetricLogger,
    metric::{
        MetricDefinition, MetricId, NumericEntry,
        store::{EpochSummary, MetricsUpdate, Split},
    },
};
use serde::{Deserialize, Serialize};

use crate::metrics_csv::MetricsRow;

/// One finished epoch. Accuracies in percent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    /// Mean learning rate over the epoch.
    pub lr: f64,
    pub train_loss: f64,
    pub train_top1: f64,
    pub train_top5: f64,
    pub valid_loss: f64,
    pub valid_top1: f64,
    pub valid_top5: f64,
    /// Training images per second over the epoch's training part (data loading included).
    pub train_images_per_s: f64,
    pub epoch_seconds: f64,
}

impl EpochRow {
    pub const CSV_HEADER: &str = "epoch,lr,train_loss,train_top1,train_top5,valid_loss,valid_top1,valid_top5,train_images_per_s,epoch_seconds";

    /// Parses the rows of a `metrics.csv` this module wrote.
    pub fn read_csv(text: &str) -> Result<Vec<EpochRow>, String> {
        crate::metrics_csv::read_rows(text).map_err(|e| format!("metrics.csv: {e:#}"))
    }
}

impl MetricsRow for EpochRow {
    const HEADER: &'static str = Self::CSV_HEADER;

    fn values(&self) -> Vec<f64> {
        vec![
            self.epoch as f64,
            self.lr,
            self.train_loss,
            self.train_top1,
            self.train_top5,
            self.valid_loss,
            self.valid_top1,
            self.valid_top5,
            self.train_images_per_s,
            self.epoch_seconds,
        ]
    }

    fn from_values(v: &[f64]) -> Self {
        EpochRow {
            epoch: v[0] as usize,
            lr: v[1],
            train_loss: v[2],
            train_top1: v[3],
            train_top5: v[4],
            valid_loss: v[5],
            valid_top1: v[6],
            valid_top5: v[7],
            train_images_per_s: v[8],
            epoch_seconds: v[9],
        }
    }
}

impl EpochMetrics for EpochRow {
    fn record(&mut self, part: Part, means: &EpochMeans) {
        let loss = means.of(|n| n == "Loss");
        let top1 = means.of(|n| n == "Accuracy");
        let top5 = means.of(|n| n.starts_with("Top-K"));
        match part {
            Part::Train => {
                (self.train_loss, self.train_top1, self.train_top5) = (loss, top1, top5);
                self.lr = means.of(|n| n == "Learning Rate");
            }
            Part::Valid => (self.valid_loss, self.valid_top1, self.valid_top5) = (loss, top1, top5),
        }
    }

    crate::epoch_timing!();

    fn summary(&self) -> String {
        format!(
            "lr {:.2e} | train loss {:.4} top1 {:5.1}% | valid loss {:.4} top1 {:5.1}% top5 {:5.1}% | {:.0} img/s | {:.0}s",
            self.lr,
            self.train_loss,
            self.train_top1,
            self.valid_loss,
            self.valid_top1,
            self.valid_top5,
            self.train_images_per_s,
            self.epoch_seconds,
        )
    }

    fn reference_loss(&self) -> Option<f64> {
        Some(self.train_loss)
    }
}

/// burn-train's epoch means of one part of an epoch, by metric name.
pub struct EpochMeans<'a>(&'a HashMap<String, NumericEntry>);

impl EpochMeans<'_> {
    /// The mean of the metric whose burn-train name satisfies `is_name` (NaN when none is
    /// registered).
    pub fn of(&self, is_name: impl Fn(&str) -> bool) -> f64 {
        self.0
            .iter()
            .find(|(name, _)| is_name(name))
            .map(|(_, e)| e.current())
            .unwrap_or(f64::NAN)
    }
}

/// The part of an epoch a metric summary belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Train,
    Valid,
}

/// A `metrics.csv` row the burn-train logger fills from its metrics' epoch means: each task
/// (classification's [`EpochRow`], a multi-label task's own) says which metrics go where.
pub trait EpochMetrics: MetricsRow + Clone + Default + Send + 'static {
    /// Takes `part`'s epoch means.
    fn record(&mut self, part: Part, means: &EpochMeans);
    /// The epoch's number, training throughput and duration.
    fn timing(&mut self, epoch: usize, train_images_per_s: f64, epoch_seconds: f64);
    fn epoch(&self) -> usize;
    /// The console line's body (after `epoch e/E | `).
    fn summary(&self) -> String;
    fn epoch_seconds(&self) -> f64;
    /// The training loss the divergence guard compares later epochs with.
    fn reference_loss(&self) -> Option<f64>;
}

/// The [`EpochMetrics`] methods of a row whose fields `epoch`, `train_images_per_s` and
/// `epoch_seconds` hold them (write `core_train::epoch_timing!();` in its `impl EpochMetrics`).
#[macro_export]
macro_rules! epoch_timing {
    () => {
        fn timing(&mut self, epoch: usize, train_images_per_s: f64, epoch_seconds: f64) {
            (self.epoch, self.train_images_per_s, self.epoch_seconds) =
                (epoch, train_images_per_s, epoch_seconds);
        }

        fn epoch(&self) -> usize {
            self.epoch
        }

        fn epoch_seconds(&self) -> f64 {
            self.epoch_seconds
        }
    };
}

/// The rows so far, shared between the logger (on burn-train's metric thread) and the caller.
#[derive(Clone, Debug)]
pub struct EpochLog<R = EpochRow> {
    pub rows: Arc<Mutex<Vec<R>>>,
}

impl<R> Default for EpochLog<R> {
    fn default() -> Self {
        Self {
            rows: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<R: EpochMetrics> EpochLog<R> {
    /// Starts from the rows of a resumed run (those up to its checkpoint).
    pub fn resumed(rows: Vec<R>) -> Self {
        Self {
            rows: Arc::new(Mutex::new(rows)),
        }
    }

    pub fn rows(&self) -> Vec<R> {
        self.rows.lock().expect("epoch log poisoned").clone()
    }

    /// The burn-train logger feeding this log; writes `csv_path` after each epoch.
    /// `train_images`: images per training epoch, for the throughput column.
    pub fn logger(
        &self,
        csv_path: PathBuf,
        total_epochs: usize,
        train_images: usize,
        stop: burn::train::Interrupter,
    ) -> EpochLogger<R> {
        EpochLogger {
            stop,
            log: self.clone(),
            csv_path,
            total_epochs,
            names: HashMap::new(),
            current: HashMap::new(),
            train_started: None,
            train_seconds: 0.0,
            train_images,
            pending: R::default(),
            print: !std::io::stdout().is_terminal(),
            last_epoch_end: Instant::now(),
        }
    }
}

pub struct EpochLogger<R = EpochRow> {
    /// An epoch the run was stopped in (divergence, a data failure) gets no row.
    stop: burn::train::Interrupter,
    log: EpochLog<R>,
    csv_path: PathBuf,
    total_epochs: usize,
    names: HashMap<MetricId, String>,
    /// Running epoch means of the current split, by metric name.
    current: HashMap<String, NumericEntry>,
    train_started: Option<Instant>,
    train_seconds: f64,
    train_images: usize,
    pending: R,
    print: bool,
    last_epoch_end: Instant,
}

impl<R: EpochMetrics> EpochLogger<R> {
    /// Hands the current split's epoch means to the pending row.
    fn record(&mut self, part: Part) {
        self.pending.record(part, &EpochMeans(&self.current));
    }

    fn finish_epoch(&mut self, epoch: usize) {
        if self.stop.should_stop() {
            return;
        }
        let now = Instant::now();
        let mut row = std::mem::take(&mut self.pending);
        let throughput = if self.train_seconds > 0.0 {
            self.train_images as f64 / self.train_seconds
        } else {
            0.0
        };
        row.timing(
            epoch,
            throughput,
            now.duration_since(self.last_epoch_end).as_secs_f64(),
        );
        self.last_epoch_end = now;
        let rows = {
            let mut rows = self.log.rows.lock().expect("epoch log poisoned");
            rows.retain(|r| r.epoch() < epoch);
            rows.push(row.clone());
            rows.clone()
        };
        if let Err(e) = crate::metrics_csv::write_rows(&rows, &self.csv_path) {
            tracing::error!("could not write {}: {e:#}", self.csv_path.display());
        }
        if self.print {
            let remaining = self.total_epochs.saturating_sub(epoch) as f64;
            println!(
                "epoch {epoch:>3}/{} | {}, ETA {}",
                self.total_epochs,
                row.summary(),
                format_duration(row.epoch_seconds() * remaining),
            );
        }
    }
}

pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

impl<R: EpochMetrics> MetricLogger for EpochLogger<R> {
    fn log(&mut self, update: MetricsUpdate, _epoch: usize, split: &Split) {
        if matches!(split, Split::Train) && self.train_started.is_none() {
            self.train_started = Some(Instant::now());
        }
        for entry in update.entries_numeric {
            if let Some(name) = self.names.get(&entry.entry.metric_id) {
                self.current.insert(name.clone(), entry.running_entry);
            }
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        // burn-train's own file logger answers these queries; this one only keeps epoch means.
        Err(format!(
            "EpochLogger keeps no per-batch history of '{name}'"
        ))
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        match summary.split {
            Split::Train => {
                self.record(Part::Train);
                self.train_seconds = self
                    .train_started
                    .take()
                    .map(|t| t.elapsed().as_secs_f64())
                    .unwrap_or(0.0);
            }
            Split::Valid => {
                self.record(Part::Valid);
                self.finish_epoch(summary.epoch_number);
            }
            Split::Test(_) => {}
        }
        self.current.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let row = EpochRow {
            epoch: 3,
            lr: 0.1,
            train_loss: 1.5,
            valid_top1: 42.5,
            ..EpochRow::default()
        };
        let values: Vec<String> = row.values().iter().map(|v| v.to_string()).collect();
        let text = format!("{}\n{}\n", EpochRow::CSV_HEADER, values.join(","));
        assert_eq!(EpochRow::read_csv(&text).unwrap(), vec![row]);
        assert!(
            EpochRow::read_csv("epoch\n1")
                .unwrap_err()
                .contains("header")
        );
        let short = format!("{}\n1,2,3\n", EpochRow::CSV_HEADER);
        assert!(EpochRow::read_csv(&short).unwrap_err().contains("1,2,3"));
    }
}
