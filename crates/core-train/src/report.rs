//! `report.md`: what ran, where, with which settings, and what it gave.

use std::fmt::Write;

use crate::{EpochRow, RunMeta, epoch_log::format_duration};

/// Everything the report shows besides the epoch rows.
pub struct ReportInput<'a> {
    pub title: &'a str,
    pub meta: &'a RunMeta,
    /// The resolved configuration, as TOML.
    pub config_toml: &'a str,
    pub model_summary: &'a str,
    pub rows: &'a [EpochRow],
    /// Free-form lines under "Notes" (e.g. chance level, resume points).
    pub notes: &'a [String],
}

/// The title and the table of what ran where: command, preset, revision, backend, start, training
/// time, model; then, for a run that stopped, why.
pub fn write_header(
    md: &mut String,
    title: &str,
    meta: &RunMeta,
    training_seconds: f64,
    epochs: usize,
    model_summary: &str,
    stopped: Option<&str>,
) {
    let _ = writeln!(md, "# {title}\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| command | `{}` |", meta.command);
    let _ = writeln!(md, "| paper / preset | {} / {} |", meta.paper, meta.preset);
    let _ = writeln!(md, "| git revision | {} |", meta.git_revision);
    let _ = writeln!(
        md,
        "| backend / device | {} / {} |",
        meta.backend, meta.device
    );
    let _ = writeln!(md, "| started | {} |", meta.started);
    let _ = writeln!(
        md,
        "| training time | {} over {} epochs |",
        format_duration(training_seconds),
        epochs
    );
    let _ = writeln!(md, "| model | {model_summary} |\n");
    if let Some(error) = stopped {
        let _ = writeln!(md, "**Stopped early:** {error}\n");
    }
}

pub fn render_report(input: &ReportInput<'_>) -> String {
    let ReportInput {
        title,
        meta,
        config_toml,
        model_summary,
        rows,
        notes,
    } = input;
    let mut md = String::new();
    let total: f64 = rows.iter().map(|r| r.epoch_seconds).sum();
    write_header(&mut md, title, meta, total, rows.len(), model_summary, None);
    if let (Some(last), Some(best)) = (
        rows.last(),
        rows.iter()
            .max_by(|a, b| a.valid_top1.total_cmp(&b.valid_top1)),
    ) {
        let _ = writeln!(md, "## Result\n");
        let _ = writeln!(
            md,
            "| | valid top-1 | valid top-5 | valid loss | train loss |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        let _ = writeln!(
            md,
            "| last epoch ({}) | {:.2} % | {:.2} % | {:.4} | {:.4} |",
            last.epoch, last.valid_top1, last.valid_top5, last.valid_loss, last.train_loss
        );
        let _ = writeln!(
            md,
            "| best epoch ({}) | {:.2} % | {:.2} % | {:.4} | {:.4} |\n",
            best.epoch, best.valid_top1, best.valid_top5, best.valid_loss, best.train_loss
        );
        let throughput: f64 =
            rows.iter().map(|r| r.train_images_per_s).sum::<f64>() / rows.len() as f64;
        let _ = writeln!(
            md,
            "Mean training throughput: {throughput:.0} images/s (data loading included).\n"
        );
    }
    let _ = writeln!(md, "![loss and accuracy per epoch](curves.png)\n");
    if !notes.is_empty() {
        let _ = writeln!(md, "## Notes\n");
        for note in notes.iter() {
            let _ = writeln!(md, "- {note}");
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Epochs\n");
    let _ = writeln!(
        md,
        "| epoch | mean lr | train loss | train top-1 | valid loss | valid top-1 | valid top-5 | img/s | s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter() {
        let _ = writeln!(
            md,
            "| {} | {:.2e} | {:.4} | {:.2} | {:.4} | {:.2} | {:.2} | {:.0} | {:.1} |",
            r.epoch,
            r.lr,
            r.train_loss,
            r.train_top1,
            r.valid_loss,
            r.valid_top1,
            r.valid_top5,
            r.train_images_per_s,
            r.epoch_seconds
        );
    }
    let _ = writeln!(md, "\n## Configuration\n\n```toml\n{}```", config_toml);
    md
}

/// `25557032` → `25,557,032`.
/// The report's line about images left out under `data.skip_corrupt` (the first three named).
pub fn skipped_note(skipped: &[String]) -> Option<String> {
    (!skipped.is_empty()).then(|| {
        format!(
            "data.skip_corrupt: {} unreadable image loads left out ({}{}).",
            skipped.len(),
            skipped[..skipped.len().min(3)].join("; "),
            if skipped.len() > 3 { "; …" } else { "" }
        )
    })
}

pub fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
