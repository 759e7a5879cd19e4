//! The fault-injection suite (docs/reliability.md): corrupt and truncated files in every reader a
//! run uses, truncated and foreign checkpoints, a full disk, a kill at each stage of a checkpoint
//! write, divergence, degenerate configs. Each case checks the exit code, that the message names
//! the file or key, and that nothing written before is lost.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

mod common;

use common::*;

/// Replaces `path` with the first bytes of a PNG and nothing after: a truncated download.
fn corrupt(path: &Path) {
    fs::write(path, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
}

fn truncate(path: &Path) {
    let bytes = fs::read(path).unwrap();
    fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// No temporary `.partial` file and no empty file is left in a run directory.
fn assert_clean(run: &Path) {
    for file in files(run) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".partial"),
            "left behind: {}",
            file.display()
        );
        assert!(
            fs::metadata(&file).unwrap().len() > 0,
            "empty file: {}",
            file.display()
        );
    }
}

fn train_config(config: &Path, out: &Path) -> Vec<String> {
    [
        "train",
        "ws",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_corrupt_image_ends_the_run_naming_it_or_is_skipped_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let config = image_folder_config(dir.path(), "");
    let bad = dir.path().join("folder/train/n02/2.png");
    corrupt(&bad);
    let out = dir.path().join("runs");
    let err = run_err(&train_config(&config, &out));
    assert!(
        err.contains("n02/2.png") && err.contains("training stopped"),
        "{err}"
    );
    let run = single_run(&out, "ws");
    assert!(
        !run.join("checkpoint/model-1.mpk").exists(),
        "a partial epoch must not be checkpointed"
    );
    assert_clean(&run);

    // data.skip_corrupt = true: the image is left out, named once, counted in the report.
    let skipping = image_folder_config(dir.path(), "skip_corrupt = true");
    corrupt(&bad);
    let out = dir.path().join("skipping");
    let output = vireo(&train_config(&skipping, &out)).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped") && stderr.contains("n02/2.png"),
        "{stderr}"
    );
    let report = fs::read_to_string(single_run(&out, "ws").join("report.md")).unwrap();
    assert!(report.contains("left out"), "{report}");

    // A corrupt validation image stops `eval` with its name (a run made before it broke).
    let clean = image_folder_config(dir.path(), "");
    let out = dir.path().join("eval");
    run_ok(&train_config(&clean, &out));
    corrupt(&dir.path().join("folder/val/n01/1.png"));
    let run = single_run(&out, "ws");
    let err = run_err(&["eval", "ws", "--run", run.to_str().unwrap()]);
    assert!(err.contains("n01/1.png"), "{err}");
}

#[test]
fn a_corrupt_panoptic_label_ends_the_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = cityscapes_config(dir.path(), "");
    let label = dir.path().join(
        "cityscapes/gtFine/cityscapes_panoptic_train_trainId/aachen_000001_000019_gtFine_panoptic.png",
    );
    corrupt(&label);
    let out = dir.path().join("runs");
    let mut args = train_config(&config, &out);
    args[1] = "axial".into();
    let err = run_err(&args);
    assert!(
        err.contains("aachen_000001_000019_gtFine_panoptic.png"),
        "{err}"
    );
    assert_clean(&single_run(&out, "axial"));
    // A truncated annotation file is named before any run directory exists.
    let json = dir
        .path()
        .join("cityscapes/gtFine/cityscapes_panoptic_train_trainId.json");
    truncate(&json);
    let out = dir.path().join("runs-json");
    let mut args = train_config(&config, &out);
    args[1] = "axial".into();
    let err = run_err(&args);
    assert!(
        err.contains("cityscapes_panoptic_train_trainId.json"),
        "{err}"
    );
    assert!(!out.join("axial").exists());
}

#[test]
fn resume_passes_over_checkpoints_that_do_not_decode() {
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_train(
        "ws",
        out.path(),
        "3",
        &["--set", "train.checkpoints_kept=3"],
    ));
    let run = single_run(out.path(), "ws");
    let uninterrupted = forget_epoch_3(&run);
    truncate(&run.join("checkpoint/optim-2.mpk"));
    let output = vireo(&["train", "ws", "--resume", run.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("epoch 1") && stderr.contains("optim-2.mpk"),
        "the fallback and its reason are said: {stderr}"
    );
    let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(without_timing(&resumed), without_timing(&uninterrupted));

    // A file that decodes but is not this model's checkpoint is refused by name, not a panic.
    let foreign = fixture("core-nets", "tiny_resnets.json");
    forget_epoch_3(&run);
    fs::write(
        run.join("checkpoint/model-2.mpk"),
        rmp_like_map(&fs::read(foreign).unwrap()),
    )
    .unwrap();
    let output = vireo(&["train", "ws", "--resume", run.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("model-2.mpk"), "{stderr}");
}

/// A well-formed MessagePack map `{"bytes": <bin>}`: decodes, but is no model record.
fn rmp_like_map(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81, 0xa5];
    out.extend_from_slice(b"bytes");
    out.push(0xc6);
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

#[test]
fn eval_and_infer_fall_back_from_a_truncated_model_mpk() {
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_train("ws", out.path(), "2", &[]));
    let run = single_run(out.path(), "ws");
    truncate(&run.join("model.mpk"));
    let output = vireo(&["eval", "ws", "--run", run.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("model.mpk") && stderr.contains("model-2.mpk"),
        "{stderr}"
    );
    assert!(
        stdout.contains("model-2.mpk") && stdout.contains("top-1"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("0.14") && !stderr.contains("backward"),
        "{stderr}"
    );
    // With no intact weights at all, one error in vireo's words.
    for part in ["model", "optim", "scheduler"] {
        for epoch in [1, 2] {
            let file = run.join(format!("checkpoint/{part}-{epoch}.mpk"));
            if file.exists() {
                truncate(&file);
            }
        }
    }
    let err = run_err(&["eval", "ws", "--run", run.to_str().unwrap()]);
    assert!(
        err.contains("no usable weights") && err.contains("model.mpk is truncated"),
        "{err}"
    );
}

#[test]
fn a_kill_at_each_stage_of_a_checkpoint_write_resumes_to_the_same_run() {
    let reference = tempfile::tempdir().unwrap();
    run_ok(&tiny_train("ws", reference.path(), "3", &[]));
    let expected =
        fs::read_to_string(single_run(reference.path(), "ws").join("metrics.csv")).unwrap();
    for stage in [
        "before-rename:optim-2.mpk",
        "after:optim-2.mpk",
        "after:scheduler-2.mpk",
        "before-rename:model-2.mpk",
        "after:model-2.mpk",
        "before-rename:model.mpk",
        "after:model.mpk",
    ] {
        let out = tempfile::tempdir().unwrap();
        let status = vireo(&tiny_train("ws", out.path(), "3", &[]))
            .env("VIREO_FAULT_ABORT", stage)
            .output()
            .unwrap()
            .status;
        assert!(!status.success(), "{stage}: the run was not stopped");
        let run = single_run(out.path(), "ws");
        let output = vireo(&["train", "ws", "--resume", run.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stage == "after:model.mpk" {
            // Everything that matters was written: the run is finished.
            assert!(
                stderr.contains("finished all 3 epochs"),
                "{stage}: {stderr}"
            );
        } else {
            assert!(output.status.success(), "{stage}: {stderr}");
        }
        let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
        assert_eq!(
            without_timing(&resumed),
            without_timing(&expected),
            "{stage}"
        );
        for file in ["model.mpk", "report.md", "curves.png"] {
            assert!(run.join(file).is_file(), "{stage}: {file} missing");
        }
        if stage != "after:model.mpk" {
            assert_clean(&run);
        }
    }
}

#[test]
fn a_full_disk_reports_the_file_that_failed_first_and_leaves_no_partial_files() {
    // A file-size limit (no root, no tmpfs needed) makes every write past 256 KiB fail as a full
    // disk would; the checkpoints of the tiny model are larger, config.json is not.
    if Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 256")
        .status()
        .is_err()
    {
        eprintln!("skipped: no bash to set a file-size limit");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(r#"ulimit -f 256; trap "" XFSZ; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_vireo"))
        .args(tiny_train("ws", out.path(), "2", &[]));
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let first_error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("");
    assert!(
        first_error.contains("checkpoint") && first_error.contains(".mpk"),
        "the checkpoint write failed first: {stderr}"
    );
    let run = single_run(out.path(), "ws");
    assert!(run.join("config.json").is_file());
    assert_clean(&run);
}

#[test]
fn divergence_stops_the_panoptic_loop_and_keeps_the_last_good_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_axial(out.path(), "1"));
    let run = single_run(out.path(), "axial");
    // The same run continued at an absurd learning rate: epoch 2 diverges.
    let path = run.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    config["config"]["train"]["epochs"] = 2.into();
    config["config"]["train"]["lr"] = 1e30.into();
    fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    fs::remove_file(run.join("model.mpk")).unwrap();
    let err = run_err(&["train", "axial", "--resume", run.to_str().unwrap()]);
    assert!(
        (err.contains("loss became") || err.contains("exploded"))
            && err.contains("last good checkpoint is epoch 1"),
        "{err}"
    );
    assert!(run.join("checkpoint/model-1.mpk").is_file());
    assert!(!run.join("checkpoint/model-2.mpk").exists());
    assert!(
        fs::read_to_string(run.join("report.md"))
            .unwrap()
            .contains("Stopped early")
    );
    assert_eq!(csv_epochs(&run), [1]);
}

#[test]
fn an_exploding_loss_stops_a_classification_run() {
    let out = tempfile::tempdir().unwrap();
    // A learning rate that makes the second step's loss blow up: caught as an explosion (finite)
    // or a non-finite loss, whichever it is, before anything is checkpointed.
    let err = run_err(&tiny_train(
        "ws",
        out.path(),
        "2",
        &[
            "--set",
            "train.optimizer.lr=1e4",
            "--set",
            "train.divergence_factor=1.5",
        ],
    ));
    assert!(
        (err.contains("exploded") && err.contains("train.divergence_factor"))
            || err.contains("loss became"),
        "{err}"
    );
    assert!(err.contains("no epoch completed"), "{err}");
    let err = run_err(&tiny_train(
        "ws",
        out.path(),
        "2",
        &["--set", "train.divergence_factor=0.5"],
    ));
    assert!(err.contains("train.divergence_factor = 0.5"), "{err}");
}

#[test]
fn degenerate_inputs_are_refused_by_name() {
    let out = tempfile::tempdir().unwrap();
    let err = run_err(&tiny_train(
        "ws",
        out.path(),
        "1",
        &["--set", "train.batch_size=-4"],
    ));
    assert!(
        err.contains("train.batch_size") && err.contains("-4"),
        "{err}"
    );
    let err = run_err(&tiny_train(
        "bcn",
        out.path(),
        "1",
        &[
            "--set",
            "model.num_classes=1",
            "--set",
            "data.world.num_classes=1",
        ],
    ));
    assert!(err.contains("at least 2 classes"), "{err}");
    // An image folder whose class folders hold no image.
    let dir = tempfile::tempdir().unwrap();
    let config = image_folder_config(dir.path(), "");
    for class in ["n01", "n02"] {
        let folder = dir.path().join("folder/train").join(class);
        fs::remove_dir_all(&folder).unwrap();
        fs::create_dir_all(&folder).unwrap();
    }
    let err = run_err(&train_config(&config, &dir.path().join("runs")));
    assert!(err.contains("folder/train"), "{err}");
    let err = run_err(&[
        "import",
        "--model",
        "axial_deeplab_s",
        "--checkpoint",
        "x.pth",
    ]);
    assert!(
        err.contains("axial_deeplab_s") && err.contains("no official checkpoint loader"),
        "{err}"
    );

    // A resumed run whose metrics.csv was deleted says its history is lost.
    run_ok(&tiny_train("ws", out.path(), "3", &[]));
    let run = single_run(out.path(), "ws");
    forget_epoch_3(&run);
    fs::remove_file(run.join("metrics.csv")).unwrap();
    let output = vireo(&["train", "ws", "--resume", run.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("metrics.csv is missing"), "{stderr}");
}

#[test]
fn training_scripts_checkpoints_load_with_their_optimizer_state_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.toml");
    fs::write(
        &model,
        "block = \"bottleneck\"\nlayers = [1, 1, 1, 1]\nplanes = [2, 4, 8, 16]\nstem_width = 8\nconv = { kind = \"ws\", variant = \"official_torch\" }\nnorm = { kind = \"group\", groups = 2 }\n",
    )
    .unwrap();
    let image = dir.path().join("photo.png");
    image_of(30, 30, 100).save(&image).unwrap();
    let output = run_ok(&[
        "infer",
        "ws",
        "--checkpoint",
        &fixture("core-nets", "gn_ws_tiny_train.pth.tar"),
        "--model",
        model.to_str().unwrap(),
        "--num-classes",
        "5",
        "--image",
        image.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("class "));
}
