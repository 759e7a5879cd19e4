//! Study presets (`--preset mini`, and any other preset with a `[study]` table): the paper's claim
//! in miniature, several variants × seeds of one experiment, each a full run in its own directory,
//! summarised as a table written into `docs/results.md`.

use std::{fmt::Write, fs, path::Path, time::Instant};

use crate::epoch_log::format_duration;
use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::{
    BackendKind, Experiment, Session,
    command::{TrainRequest, fit},
    preset::find_preset,
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
    /// The table's metric when it is not the paper's [`crate::Card::study_metric`] (a study of
    /// another task of the same experiment).
    #[serde(default)]
    metric: Option<String>,
}

/// Whether `preset` of `card` is a study (its TOML has a `[study]` table).
pub fn is_study(card: &crate::Card, preset: &str) -> bool {
    find_preset(card.presets, card.name, preset)
        .ok()
        .and_then(|p| p.toml.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("study"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Variant {
    name: String,
    set: Vec<String>,
}

/// Every variant of every study preset of `experiment` parses and validates (for the paper
/// crates' tests); returns the variants of `mini`.
pub fn check_variants<E: Experiment>(experiment: &E) -> Result<usize> {
    let card = experiment.card();
    let mut mini = 0;
    for preset in card.presets.iter().filter(|p| is_study(card, p.name)) {
        let file: StudyFile = toml::from_str(preset.toml)
            .with_context(|| format!("the study preset {}", preset.name))?;
        let base = toml::to_string(&file.base)?;
        for variant in &file.variant {
            experiment.config_from_text(&base, &variant.name, &variant.set)?;
        }
        if preset.name == "mini" {
            mini = file.variant.len();
        }
    }
    Ok(mini)
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

/// A study preset of `experiment` (`request.preset`): every variant × seed, each a full run; the
/// final metric of each ([`crate::Card::study_metric`] unless the study names its own) goes into
/// a table in `--results`.
pub fn run<E: Experiment>(experiment: &E, request: &TrainRequest) -> Result<()> {
    let card = experiment.card();
    let preset = request.preset.as_str();
    let text = find_preset(card.presets, card.name, preset)?.toml;
    run_study(
        card.name,
        preset,
        request,
        text,
        card.study_metric,
        |origin, base, sets, dir| {
            let config = experiment.config_from_text(base, origin, sets)?;
            let mut session = Session::new(card.name, preset, dir);
            session.verbose = false;
            let outcome = fit(experiment, config, session, request.backend)?;
            println!("    {}", outcome.summary);
            Ok(Measured {
                metric: outcome.metric,
                extra: outcome.extra,
            })
        },
    )
}

/// Runs every variant × seed of a study preset (`text`): `run_one(origin, config table, run
/// directory)` trains one and returns its final `metric`; the table goes into `--results`.
fn run_study(
    paper: &str,
    preset: &str,
    args: &TrainRequest,
    text: &str,
    metric: &str,
    mut run_one: impl FnMut(&str, &str, &[String], &Path) -> Result<Measured>,
) -> Result<()> {
    let file: StudyFile =
        toml::from_str(text).with_context(|| format!("the study preset {preset}"))?;
    if file.study.seeds.is_empty() || file.variant.is_empty() {
        bail!("the study {preset} needs at least one seed and one variant");
    }
    let metric = file.study.metric.as_deref().unwrap_or(metric);
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let out = args.out.join(paper).join(format!("{stamp}-{preset}"));
    let started = Instant::now();
    let revision = crate::run_dir::git_revision();
    let total = file.variant.len() * file.study.seeds.len();
    let mut results: Vec<(String, Vec<Measured>)> = Vec::new();
    let base_text = toml::to_string(&file.base)?;
    for variant in &file.variant {
        let mut finals = Vec::new();
        for &seed in &file.study.seeds {
            let mut sets = variant.set.clone();
            sets.push(format!("train.seed={seed}"));
            sets.extend(args.overrides.iter().cloned());
            let origin = format!("{preset} study, variant '{}', seed {seed}", variant.name);
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
                &base_text,
                &sets,
                &out.join(format!("{slug}-s{seed}")),
            )?);
        }
        results.push((variant.name.clone(), finals));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let command = format!(
        "cargo xtask train {paper} --preset {preset}{}{}",
        match args.backend.backend {
            BackendKind::Cpu => String::new(),
            other => format!(" --backend {}", other.name()),
        },
        args.overrides
            .iter()
            .map(|o| format!(" --set {o}"))
            .collect::<String>()
    );
    let table = render_table(
        &file.study,
        metric,
        &results,
        &command,
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
    results: &[(String, Vec<Measured>)],
    command: &str,
    revision: &str,
    seconds: f64,
    out: &Path,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### {} (ShapeWorld miniature)\n", header.name);
    let _ = writeln!(
        md,
        "Produced by `{command}` on {} ({}), git {} in {}; runs in `{}`.\n",
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
    // Further numbers the runs gave (the first run's names), mean ± std each.
    let extra: Vec<&str> = results
        .first()
        .and_then(|(_, runs)| runs.first())
        .map(|m| m.extra.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "| variant | {metric}, mean ± std over seeds {seeds} | per seed |{}",
        extra.iter().map(|n| format!(" {n} |")).collect::<String>()
    );
    let _ = writeln!(md, "|---|---|---|{}", "---|".repeat(extra.len()));
    for (name, runs) in results {
        let values: Vec<f64> = runs.iter().map(|m| m.metric).collect();
        let (mean, std) = mean_std(&values);
        let each = values
            .iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(" / ");
        let columns: String = extra
            .iter()
            .map(|n| {
                let values: Vec<f64> = runs
                    .iter()
                    .filter_map(|m| m.extra.iter().find(|(e, _)| e == n).map(|(_, v)| *v))
                    .collect();
                let (mean, std) = mean_std(&values);
                format!(" {mean:.1} ± {std:.1} |")
            })
            .collect();
        let _ = writeln!(md, "| {name} | {mean:.1} ± {std:.1} | {each} |{columns}");
    }
    md
}

/// What one run of a study gave.
#[derive(Clone, Debug)]
pub struct Measured {
    pub metric: f64,
    pub extra: Vec<(String, f64)>,
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
    crate::checkpoint::write_atomically(path, new.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
