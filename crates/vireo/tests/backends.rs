//! Every paper's tiny training on a GPU backend against the CPU: the same checkpoint, resumed on
//! each backend, gives the same next epoch's losses within float tolerance.
//!
//! Needs a binary with the backend compiled in and a device for it, so it is `#[ignore]`d and run by
//! name, e.g. on Mesa's software Vulkan (lavapipe, docs/backends.md):
//! `XDG_RUNTIME_DIR=/tmp/xdg cargo test --release -p vireo --features wgpu --test backends -- --ignored`
//! (`VIREO_GPU_BACKEND=cuda` and `--features cuda` for CUDA; `VIREO_GPU_PAPERS=ws,co2` for a few).

use std::{fs, path::Path, process::Command};

mod common;

use common::*;

/// Relative difference allowed between the backends' epoch losses (`VIREO_GPU_TOLERANCE` to
/// change it, e.g. for a GPU whose matmuls round to TF32). The state at the start of the epoch is
/// bit-identical on both; what differs is the order of float sums (GPU reductions, fused kernels),
/// which a few SGD steps carry into the losses: ≤ 2e-7 on lavapipe (docs/backends.md).
const LOSS_TOLERANCE: f64 = 1e-5;

/// `vireo <args> --backend <backend>`, whatever `VIREO_TEST_BACKEND` says.
fn on_backend(args: &[String], backend: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_vireo"))
        .args(args)
        .args(["--backend", backend])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "vireo {args:?} --backend {backend} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The loss columns of `metrics.csv`'s row for `epoch`: (name, value).
fn losses(csv: &str, epoch: usize) -> Vec<(String, f64)> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines
        .find(|l| l.split(',').next() == Some(&epoch.to_string()))
        .unwrap_or_else(|| panic!("no row for epoch {epoch}:\n{csv}"))
        .split(',')
        .collect();
    header
        .iter()
        .zip(row)
        .filter(|(name, _)| name.contains("loss"))
        .map(|(name, value)| (name.to_string(), value.parse().unwrap()))
        .collect()
}

#[test]
#[ignore = "needs `--features wgpu` (or cuda) and a device; run by name (see the file's doc)"]
fn every_paper_trains_on_the_gpu_like_on_the_cpu() {
    let backend = std::env::var("VIREO_GPU_BACKEND").unwrap_or_else(|_| "wgpu".into());
    let tolerance: f64 = std::env::var("VIREO_GPU_TOLERANCE")
        .map(|t| t.parse().expect("VIREO_GPU_TOLERANCE: a number"))
        .unwrap_or(LOSS_TOLERANCE);
    let only = std::env::var("VIREO_GPU_PAPERS").ok();
    let dir = tempfile::tempdir().unwrap();
    let out = |paper: &str| dir.path().join(paper);
    let papers: Vec<(&str, Vec<String>)> = vec![
        ("ws", tiny_train("ws", &out("ws"), "2", &[])),
        ("bcn", tiny_train("bcn", &out("bcn"), "2", &[])),
        ("axial", tiny_axial(&out("axial"), "2")),
        ("co2", tiny_co2(&out("co2"), "2")),
        // 16 channels and up: burn 0.21's wgpu matmul is wrong for an inner size of 8 on lavapipe
        // (core-ops' `transposed_matmul_with_an_inner_size_of_8`).
        ("elastic", {
            let mut args = tiny_elastic(&out("elastic"), "2");
            for set in ["model.planes=[16, 16, 32, 32]", "model.stem_width=16"] {
                args.extend(["--set".into(), set.into()]);
            }
            args
        }),
        ("sake", tiny_sake(&out("sake"), "2", &[])),
        ("compnet", tiny_compnet(&out("compnet"), "2")),
    ];
    let mut report = Vec::new();
    for (paper, args) in papers {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|p| p == paper))
        {
            continue;
        }
        on_backend(&args, "cpu");
        let cpu_run = single_run(&out(paper), paper);
        let gpu_run = dir.path().join(format!("{paper}-{backend}"));
        copy_dir(&cpu_run, &gpu_run);
        let cpu_csv = forget_epochs_after(&gpu_run, 1, 2);
        on_backend(
            &[
                "train".into(),
                paper.into(),
                "--resume".into(),
                gpu_run.to_str().unwrap().into(),
            ],
            &backend,
        );
        let gpu_csv = fs::read_to_string(gpu_run.join("metrics.csv")).unwrap();
        let (cpu, gpu) = (losses(&cpu_csv, 2), losses(&gpu_csv, 2));
        assert!(!cpu.is_empty(), "{paper}: no loss column in\n{cpu_csv}");
        for ((name, a), (_, b)) in cpu.iter().zip(&gpu) {
            let relative = (a - b).abs() / a.abs().max(1e-6);
            report.push(format!(
                "{paper} {name}: cpu {a:.6} {backend} {b:.6} (relative {relative:.1e})"
            ));
            assert!(
                relative <= tolerance,
                "{paper}: epoch 2 {name} on {backend} is {b}, on the cpu {a}\n{}",
                report.join("\n")
            );
        }
    }
    println!("{}", report.join("\n"));
}
