//! `--preset mini`: the paper's claim in miniature, several variants × seeds of one experiment, each
//! a full run in its own directory, summarised as a table written into `docs/results.md`.

use std::{fmt::Write, fs, path::Path, time::Instant};

use anyhow::{Context, Result, bail};
use core_train::epoch_log::format_duration;
use serde::Deserialize;

use crate::{
    TrainArgs,
    experiment::{ClassificationExperiment, load_table, preset_text},
    train::{SingleRun, on_backend},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyFile {
    study: StudyHeader,
    variant: Vec<Variant>,
    base: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyHeader {
    name: String,
    seeds: Vec<u64>,
    /// Marker name of the section in the results file.
    section: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Variant {
    name: String,
    set: Vec<String>,
}

/// Mean and sample standard deviation.
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The classification mini study (WS/BCN): each run's final validation top-1.
pub fn run(args: &TrainArgs) -> Result<()> {
    run_study(
        args,
        preset_text(&args.paper, "mini")?,
        "valid top-1 (%)",
        |origin, table, dir| {
            let experiment = ClassificationExperiment::from_table(table, origin)?;
            let mut job = SingleRun::fresh(experiment, args, "mini", dir);
            job.verbose = false;
            let rows = on_backend(&args.backend, job)?;
            let last = rows
                .last()
                .context("a study run finished without a completed epoch")?;
            println!("    valid top-1 {:.2} %", last.valid_top1);
            Ok(last.valid_top1)
        },
    )
}

/// Runs every variant × seed of a study preset (`text`): `run_one(origin, config table, run
/// directory)` trains one and returns its final `metric`; the table goes into `--results`.
pub fn run_study(
    args: &TrainArgs,
    text: &str,
    metric: &str,
    mut run_one: impl FnMut(&str, toml::Table, &Path) -> Result<f64>,
) -> Result<()> {
    let file: StudyFile = toml::from_str(text).context("the mini study preset")?;
    if file.study.seeds.is_empty() || file.variant.is_empty() {
        bail!("the mini study needs at least one seed and one variant");
    }
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let out = args.out.join(&args.paper).join(format!("{stamp}-mini"));
    let started = Instant::now();
    let revision = core_train::run_dir::git_revision();
    let total = file.variant.len() * file.study.seeds.len();
    let mut results: Vec<(String, Vec<f64>)> = Vec::new();
    let base_text = toml::to_string(&file.base)?;
    for variant in &file.variant {
        let mut finals = Vec::new();
        for &seed in &file.study.seeds {
            let mut sets = variant.set.clone();
            sets.push(format!("train.seed={seed}"));
            sets.extend(args.overrides.iter().cloned());
            let origin = format!("mini study, variant '{}', seed {seed}", variant.name);
            let table = load_table(&base_text, &origin, &sets)?;
            let slug: String = variant
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            let done = results.iter().map(|r| r.1.len()).sum::<usize>() + finals.len();
            println!("[{}/{total}] {} (seed {seed})", done + 1, variant.name);
            finals.push(run_one(
                &origin,
                table,
                &out.join(format!("{slug}-s{seed}")),
            )?);
        }
        results.push((variant.name.clone(), finals));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let table = render_table(
        &file.study,
        metric,
        &results,
        args,
        &revision,
        elapsed,
        &out,
    );
    println!("\n{table}");
    write_section(&args.results, &file.study.section, &table)?;
    println!(
        "table written to {} (runs in {})",
        args.results.display(),
        out.display()
    );
    Ok(())
}

fn render_table(
    header: &StudyHeader,
    metric: &str,
    results: &[(String, Vec<f64>)],
    args: &TrainArgs,
    revision: &str,
    seconds: f64,
    out: &Path,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### {} (ShapeWorld miniature)\n", header.name);
    let _ = writeln!(
        md,
        "Produced by `cargo xtask train {} --preset mini{}` on {} ({}), git {} in {}; runs in `{}`.\n",
        args.paper,
        if args.backend.backend == crate::BackendKind::Cpu {
            String::new()
        } else {
            format!(" --backend {:?}", args.backend.backend).to_lowercase()
        },
        chrono::Local::now().format("%Y-%m-%d"),
        machine(),
        revision,
        format_duration(seconds),
        out.display()
    );
    let seeds = header
        .seeds
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        md,
        "| variant | {metric}, mean ± std over seeds {seeds} | per seed |"
    );
    let _ = writeln!(md, "|---|---|---|");
    for (name, values) in results {
        let (mean, std) = mean_std(values);
        let each = values
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(" / ");
        let _ = writeln!(md, "| {name} | {mean:.1} ± {std:.1} | {each} |");
    }
    md
}

/// CPU model and thread count, for the table's provenance line.
fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cpu}, {threads} threads")
}

/// Replaces the text between `<!-- section:begin -->` and `<!-- section:end -->` (appending the
/// section if the file lacks it), leaving the rest of the file as it was.
fn write_section(path: &Path, section: &str, body: &str) -> Result<()> {
    let (begin, end) = (
        format!("<!-- {section}:begin -->"),
        format!("<!-- {section}:end -->"),
    );
    let old = fs::read_to_string(path).unwrap_or_else(|_| "# Results\n".to_string());
    let block = format!("{begin}\n{body}{end}");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{}\n{block}\n", old.trim_end()),
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).ok();
    }
    core_train::checkpoint::write_atomically(path, new.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_study_preset_parses_and_every_variant_validates() {
        let file: StudyFile = toml::from_str(preset_text("ws", "mini").unwrap()).unwrap();
        let base = toml::to_string(&file.base).unwrap();
        for variant in &file.variant {
            let table = load_table(&base, &variant.name, &variant.set).unwrap();
            ClassificationExperiment::from_table(table, &variant.name)
                .unwrap_or_else(|e| panic!("{}: {e:#}", variant.name));
        }
    }

    #[test]
    fn sections_are_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.md");
        fs::write(&path, "# Results\n\nintro\n").unwrap();
        write_section(&path, "s", "one\n").unwrap();
        write_section(&path, "s", "two\n").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("intro") && text.contains("two") && !text.contains("one"),
            "{text}"
        );
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
    }
}
