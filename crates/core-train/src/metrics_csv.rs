//! `metrics.csv` for the hand-written loops (panoptic, MoCo): one row per epoch, the epoch first,
//! rewritten atomically after every epoch; read back on `--resume`.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result, bail};

/// One epoch of a loop's metrics.
pub trait MetricsRow: Sized {
    /// The header line; its first column is `epoch`.
    const HEADER: &'static str;
    /// The values in the header's order.
    fn values(&self) -> Vec<f64>;
    /// The row of `values` (as many as the header has columns).
    fn from_values(values: &[f64]) -> Self;
}

/// The end of an epoch of a hand-written loop: its row appended and `metrics.csv` rewritten, then
/// the epoch's checkpoint (the row first: a resume keeps only rows its checkpoint reaches, so a row
/// without a checkpoint is recomputed, while a checkpoint without its row would leave a gap).
#[allow(clippy::too_many_arguments)]
pub fn end_epoch<B, M, O, R>(
    run: &crate::RunDir,
    rows: &mut Vec<R>,
    row: R,
    epoch: usize,
    model: &M,
    optimizer: O,
    scheduler_iteration: usize,
    keep: usize,
) -> Result<()>
where
    B: burn::tensor::backend::Backend,
    M: burn::module::Module<B>,
    O: burn::record::Record<B>,
    R: MetricsRow,
{
    rows.push(row);
    write_rows(rows, &run.file("metrics.csv"))?;
    crate::checkpoint::save_checkpoint(
        &run.checkpoint_dir(),
        epoch,
        model,
        optimizer,
        scheduler_iteration,
        keep,
    )
    .with_context(|| format!("writing the epoch {epoch} checkpoint"))
}

fn columns<R: MetricsRow>() -> usize {
    R::HEADER.split(',').count()
}

/// Writes `rows` to `path` atomically.
pub fn write_rows<R: MetricsRow>(rows: &[R], path: &Path) -> Result<()> {
    let mut csv = String::from(R::HEADER);
    for row in rows {
        let values: Vec<String> = row.values().iter().map(|v| format!("{v}")).collect();
        let _ = write!(csv, "\n{}", values.join(","));
    }
    csv.push('\n');
    crate::checkpoint::write_atomically(path, csv.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The rows of a `metrics.csv` [`write_rows`] wrote.
pub fn read_rows<R: MetricsRow>(text: &str) -> Result<Vec<R>> {
    let mut lines = text.lines();
    if lines.next() != Some(R::HEADER) {
        bail!(
            "not this experiment's metrics.csv (expected the header `{}`)",
            R::HEADER
        );
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let values: Vec<f64> = line
                .split(',')
                .map(|x| x.parse::<f64>())
                .collect::<Result<_, _>>()
                .with_context(|| format!("metrics.csv line `{line}`"))?;
            if values.len() != columns::<R>() {
                bail!(
                    "metrics.csv line `{line}`: expected {} values",
                    columns::<R>()
                );
            }
            Ok(R::from_values(&values))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Row {
        epoch: usize,
        loss: f64,
    }

    impl MetricsRow for Row {
        const HEADER: &'static str = "epoch,loss";
        fn values(&self) -> Vec<f64> {
            vec![self.epoch as f64, self.loss]
        }
        fn from_values(v: &[f64]) -> Self {
            Row {
                epoch: v[0] as usize,
                loss: v[1],
            }
        }
    }

    #[test]
    fn rows_round_trip_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let rows = vec![
            Row {
                epoch: 1,
                loss: 0.25,
            },
            Row {
                epoch: 2,
                loss: 1e-7,
            },
        ];
        write_rows(&rows, &path).unwrap();
        assert_eq!(
            read_rows::<Row>(&std::fs::read_to_string(&path).unwrap()).unwrap(),
            rows
        );
        assert!(read_rows::<Row>("epoch,lr\n1,2").is_err());
        assert!(read_rows::<Row>("epoch,loss\n1,2,3").is_err());
    }
}
