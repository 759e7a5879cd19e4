//! `cargo xtask`: the thin front door. It has no burn dependency; it builds and runs the `vireo`
//! binary in release mode with the cargo features the chosen backend needs.
//!
//! * `cargo xtask train <paper> [vireo train options]` → `cargo run --release -p vireo -- train …`
//! * `cargo xtask eval <paper> --run DIR`, `cargo xtask infer <paper> …`, `cargo xtask models`,
//!   `cargo xtask papers`, `cargo xtask import …`,
//!   `cargo xtask dataset preview shapeworld --task …`, `cargo xtask bench …`
//! * `cargo xtask test` → the README's test command; `cargo xtask ci` → `.ci/run`

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <train|eval|infer|papers|models|import|dataset|bench|test|ci> [args…]
  train <paper> [--preset smoke|mini|paper] [--config FILE] [--set key=value]… [--backend cpu|wgpu|cuda]
                [--device N] [--out DIR] [--resume [RUN_DIR]]
  eval <paper> --run RUN_DIR [--backend …]
  infer <paper> (--run RUN_DIR | --checkpoint FILE [--model NAME|FILE.toml] [--num-classes N])
                --image PATH… [--out DIR] [--json] [--top-k K] [--backend …]
  papers                      the papers, their presets and what each does
  models                      every model preset with its exact parameter count
  import --model NAME --checkpoint FILE.pth
  dataset preview shapeworld --task classification|panoptic|occlusion|scale|sketch [--rows N] [--out PNG]
  bench [--backend cpu|wgpu|cuda] [--suite layers|models|data|all] [--quick] [--torch PYTHON|none] [--case NAME]…
                              speed next to PyTorch (bench/pytorch/bench.py) as ratios; docs/benchmarks.md
  test                        the test suite (cargo test --release --workspace)
  ci                          what CI runs (.ci/run)";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    match task.as_str() {
        "train" | "eval" | "infer" | "papers" | "models" | "import" | "dataset" | "bench" => {
            vireo(task, rest)
        }
        "test" => cargo(&["test", "--release", "--workspace"], rest),
        "ci" => status(Command::new("bash").arg(".ci/run")),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown task '{other}'\n{USAGE}"),
    }
}

/// The cargo feature a `--backend` value needs, if any.
fn backend_feature(args: &[String]) -> Result<Option<&'static str>> {
    let value = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--backend=")
            .map(str::to_string)
            .or_else(|| {
                (a == "--backend")
                    .then(|| args.get(i + 1).cloned())
                    .flatten()
            })
    });
    Ok(match value.as_deref() {
        None | Some("cpu") => None,
        Some("wgpu") => Some("wgpu"),
        Some("cuda") => Some("cuda"),
        Some(other) => bail!("--backend {other}: expected cpu, wgpu or cuda"),
    })
}

fn vireo(task: &str, rest: &[String]) -> Result<ExitCode> {
    let mut cargo_args = vec!["run", "--release", "--quiet", "-p", "vireo"];
    if let Some(feature) = backend_feature(rest)? {
        cargo_args.extend(["--features", feature]);
    }
    cargo_args.extend(["--", task]);
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    cargo_args.extend(rest);
    cargo(&cargo_args, &[])
}

fn cargo(args: &[&str], extra: &[String]) -> Result<ExitCode> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    status(Command::new(cargo).args(args).args(extra))
}

fn status(command: &mut Command) -> Result<ExitCode> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
        None => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn backend_selects_the_cargo_feature() {
        assert_eq!(backend_feature(&args(&["ws"])).unwrap(), None);
        assert_eq!(
            backend_feature(&args(&["ws", "--backend", "wgpu"])).unwrap(),
            Some("wgpu")
        );
        assert_eq!(
            backend_feature(&args(&["ws", "--backend=cuda"])).unwrap(),
            Some("cuda")
        );
        assert!(backend_feature(&args(&["ws", "--backend", "tpu"])).is_err());
    }
}
