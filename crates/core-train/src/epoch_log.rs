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

    fn csv(&self) -> String {
        format!(
            "{},{:.6e},{:.6},{:.4},{:.4},{:.6},{:.4},{:.4},{:.2},{:.2}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_top1,
            self.train_top5,
            self.valid_loss,
            self.valid_top1,
            self.valid_top5,
            self.train_images_per_s,
            self.epoch_seconds
        )
    }

    /// Parses the rows of a `metrics.csv` this module wrote.
    pub fn read_csv(text: &str) -> Result<Vec<EpochRow>, String> {
        let mut lines = text.lines();
        if lines.next() != Some(Self::CSV_HEADER) {
            return Err(format!(
                "metrics.csv: expected the header '{}'",
                Self::CSV_HEADER
            ));
        }
        lines
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, line)| {
                let v: Vec<f64> = line
                    .split(',')
                    .map(|f| f.parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("metrics.csv line {}: {e}", i + 2))?;
                if v.len() != 10 {
                    return Err(format!(
                        "metrics.csv line {}: expected 10 fields, found {}",
                        i + 2,
                        v.len()
                    ));
                }
                Ok(EpochRow {
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
                })
            })
            .collect()
    }
}

/// The rows so far, shared between the logger (on burn-train's metric thread) and the caller.
#[derive(Clone, Debug, Default)]
pub struct EpochLog {
    pub rows: Arc<Mutex<Vec<EpochRow>>>,
}

impl EpochLog {
    /// Starts from the rows of a resumed run (those up to its checkpoint).
    pub fn resumed(rows: Vec<EpochRow>) -> Self {
        Self {
            rows: Arc::new(Mutex::new(rows)),
        }
    }

    pub fn rows(&self) -> Vec<EpochRow> {
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
    ) -> EpochLogger {
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
            pending: EpochRow::default(),
            print: !std::io::stdout().is_terminal(),
            last_epoch_end: Instant::now(),
        }
    }
}

pub struct EpochLogger {
    /// An epoch the run was stopped in (divergence, a data failure) gets no row.
    stop: burn::train::Interrupter,
    log: EpochLog,
    csv_path: PathBuf,
    total_epochs: usize,
    names: HashMap<MetricId, String>,
    /// Running epoch means of the current split, by metric name.
    current: HashMap<String, NumericEntry>,
    train_started: Option<Instant>,
    train_seconds: f64,
    train_images: usize,
    pending: EpochRow,
    print: bool,
    last_epoch_end: Instant,
}

impl EpochLogger {
    fn value(&self, pick: impl Fn(&str) -> bool) -> f64 {
        self.current
            .iter()
            .find(|(name, _)| pick(name))
            .map(|(_, e)| e.current())
            .unwrap_or(f64::NAN)
    }

    fn finish_epoch(&mut self, epoch: usize) {
        if self.stop.should_stop() {
            return;
        }
        let now = Instant::now();
        let mut row = std::mem::take(&mut self.pending);
        row.epoch = epoch;
        row.epoch_seconds = now.duration_since(self.last_epoch_end).as_secs_f64();
        self.last_epoch_end = now;
        let rows = {
            let mut rows = self.log.rows.lock().expect("epoch log poisoned");
            rows.retain(|r| r.epoch < epoch);
            rows.push(row.clone());
            rows.clone()
        };
        let mut csv = String::from(EpochRow::CSV_HEADER);
        for r in &rows {
            csv.push('\n');
            csv.push_str(&r.csv());
        }
        csv.push('\n');
        if let Err(e) = crate::checkpoint::write_atomically(&self.csv_path, csv.as_bytes()) {
            tracing::error!("could not write {}: {e}", self.csv_path.display());
        }
        if self.print {
            let remaining = self.total_epochs.saturating_sub(epoch) as f64;
            println!(
                "epoch {epoch:>3}/{} | lr {:.2e} | train loss {:.4} top1 {:5.1}% | valid loss {:.4} top1 {:5.1}% top5 {:5.1}% | {:.0} img/s | {:.0}s, ETA {}",
                self.total_epochs,
                row.lr,
                row.train_loss,
                row.train_top1,
                row.valid_loss,
                row.valid_top1,
                row.valid_top5,
                row.train_images_per_s,
                row.epoch_seconds,
                format_duration(row.epoch_seconds * remaining),
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

impl MetricLogger for EpochLogger {
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
        let is_loss = |n: &str| n == "Loss";
        let is_top1 = |n: &str| n == "Accuracy";
        let is_top5 = |n: &str| n.starts_with("Top-K");
        match summary.split {
            Split::Train => {
                self.pending.train_loss = self.value(is_loss);
                self.pending.train_top1 = self.value(is_top1);
                self.pending.train_top5 = self.value(is_top5);
                self.pending.lr = self.value(|n| n == "Learning Rate");
                self.train_seconds = self
                    .train_started
                    .take()
                    .map(|t| t.elapsed().as_secs_f64())
                    .unwrap_or(0.0);
                self.pending.train_images_per_s = if self.train_seconds > 0.0 {
                    self.train_images as f64 / self.train_seconds
                } else {
                    0.0
                };
            }
            Split::Valid => {
                self.pending.valid_loss = self.value(is_loss);
                self.pending.valid_top1 = self.value(is_top1);
                self.pending.valid_top5 = self.value(is_top5);
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
        let text = format!("{}\n{}\n", EpochRow::CSV_HEADER, row.csv());
        assert_eq!(EpochRow::read_csv(&text).unwrap(), vec![row]);
        assert!(
            EpochRow::read_csv("epoch\n1")
                .unwrap_err()
                .contains("header")
        );
        let short = format!("{}\n1,2,3\n", EpochRow::CSV_HEADER);
        assert!(EpochRow::read_csv(&short).unwrap_err().contains("line 2"));
    }
}
