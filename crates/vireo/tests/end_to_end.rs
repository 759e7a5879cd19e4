//! The `vireo` binary end to end on tiny settings: a run leaves its files, a killed run resumes,
//! bad input fails with one clear message and leaves existing runs untouched.

use std::{
    fs,
    process::Stdio,
    time::{Duration, Instant},
};

mod common;

use common::*;

#[test]
fn smoke_runs_leave_config_metrics_plot_report_and_checkpoints() {
    for paper in ["ws", "bcn"] {
        let out = tempfile::tempdir().unwrap();
        run_ok(&tiny_train(paper, out.path(), "2", &[]));
        let run = single_run(out.path(), paper);
        for file in [
            "config.json",
            "metrics.csv",
            "curves.png",
            "report.md",
            "model.mpk",
            "checkpoint/model-2.mpk",
        ] {
            assert!(run.join(file).is_file(), "{paper}: missing {file}");
        }
        assert_eq!(csv_epochs(&run), [1, 2]);
        let report = fs::read_to_string(run.join("report.md")).unwrap();
        assert!(
            report.contains("valid top-1") && report.contains("curves.png"),
            "{report}"
        );
        let eval = run_ok(&["eval", paper, "--run", run.to_str().unwrap()]);
        assert!(String::from_utf8_lossy(&eval.stdout).contains("top-1"));
    }
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let mut child = vireo(&tiny_train("ws", out.path(), "30", &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first complete checkpoint, then kill -9.
    let started = Instant::now();
    let run = loop {
        let runs = fs::read_dir(out.path().join("ws"))
            .map(|d| d.count())
            .unwrap_or(0);
        if runs == 1 {
            let run = single_run(out.path(), "ws");
            let parts = ["model-1.mpk", "optim-1.mpk", "scheduler-1.mpk"];
            if parts
                .iter()
                .all(|p| run.join("checkpoint").join(p).is_file())
            {
                break run;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = csv_epochs(&run).len();
    assert!(
        done_before < 30,
        "the run finished before it could be killed"
    );

    let output = run_ok(&[
        "train",
        "ws",
        "--out",
        out.path().to_str().unwrap(),
        "--resume",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("resuming"), "{stdout}");
    assert_eq!(csv_epochs(&run), (1..=30).collect::<Vec<_>>());
    assert!(
        fs::read_to_string(run.join("report.md"))
            .unwrap()
            .contains("Resumed after epoch")
    );
    // Finished runs cannot be resumed again.
    let err = run_err(&[
        "train",
        "ws",
        "--out",
        out.path().to_str().unwrap(),
        "--resume",
    ]);
    assert!(err.contains("finished all 30 epochs"), "{err}");
}

#[test]
fn resuming_reproduces_the_uninterrupted_run() {
    // Model, optimizer and schedule state are saved in full precision and the batches are a
    // function of (seed, epoch, index), so epoch 3 after a resume from epoch 2 equals epoch 3 of a
    // run that was never stopped.
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_train("ws", out.path(), "3", &[]));
    let run = single_run(out.path(), "ws");
    // Turn it into a run killed after epoch 2.
    let uninterrupted = forget_epoch_3(&run);
    run_ok(&["train", "ws", "--resume", run.to_str().unwrap()]);
    let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
    // Everything but the timing columns is identical.
    assert_eq!(without_timing(&resumed), without_timing(&uninterrupted));
}

#[test]
fn bad_input_fails_clearly_and_touches_nothing() {
    let out = tempfile::tempdir().unwrap();
    let out_str = out.path().to_str().unwrap();
    assert!(
        run_err(&["train", "ws", "--preset", "huge", "--out", out_str])
            .contains("unknown preset 'huge'")
    );
    assert!(
        run_err(&["train", "ws", "--set", "train.epochz=2", "--out", out_str]).contains("epochz")
    );
    assert!(
        run_err(&[
            "train",
            "ws",
            "--set",
            "train.optimizer.momentum=1.5",
            "--out",
            out_str
        ])
        .contains("train.optimizer.momentum")
    );
    assert!(
        run_err(&[
            "train",
            "ws",
            "--config",
            "/nonexistent/cfg.toml",
            "--out",
            out_str
        ])
        .contains("/nonexistent/cfg.toml")
    );
    let err = run_err(&[
        "train",
        "ws",
        "--preset",
        "paper",
        "--set",
        "data.root=/nonexistent/imagenet",
        "--out",
        out_str,
    ]);
    assert!(
        err.contains("/nonexistent/imagenet/train") && err.contains("does not exist"),
        "{err}"
    );
    assert!(
        !out.path().join("ws").exists(),
        "a failed start must not leave a run directory"
    );
    assert!(run_err(&["train", "ws", "--resume", out_str]).contains("not a vireo run directory"));

    // A run whose newest checkpoint is truncated: resume names the file; the run's files stay as they were.
    run_ok(&tiny_train("ws", out.path(), "1", &[]));
    let run = single_run(out.path(), "ws");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    config["config"]["train"]["epochs"] = 3.into();
    fs::write(
        run.join("config.json"),
        serde_json::to_string(&config).unwrap(),
    )
    .unwrap();
    let model = run.join("checkpoint/model-1.mpk");
    let bytes = fs::read(&model).unwrap();
    fs::write(&model, &bytes[..bytes.len() / 3]).unwrap();
    let before: Vec<_> = ["config.json", "metrics.csv", "report.md"]
        .iter()
        .map(|f| fs::read(run.join(f)).unwrap())
        .collect();
    let err = run_err(&["train", "ws", "--resume", run.to_str().unwrap()]);
    assert!(err.contains("model-1.mpk"), "{err}");
    let after: Vec<_> = ["config.json", "metrics.csv", "report.md"]
        .iter()
        .map(|f| fs::read(run.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_diverging_run_stops_with_the_reason() {
    let out = tempfile::tempdir().unwrap();
    let err = run_err(&tiny_train(
        "ws",
        out.path(),
        "3",
        &["--set", "train.optimizer.lr=1e30"],
    ));
    assert!(
        err.contains("loss became") && err.contains("checkpoint"),
        "{err}"
    );
}

#[test]
fn models_lists_the_exact_parameter_counts() {
    let stdout = String::from_utf8(run_ok(&["models"]).stdout).unwrap();
    for line in [
        "resnet50_gn_ws",
        "25,557,032",
        "resnet50_bcn_ws",
        "25,560,424",
        "resnext101_bcn_ws",
        "44,184,360",
        "axial26s",
        "5,944,936",
        "axial50l",
        "43,973,480",
        "moco_v1_encoder",
        "23,770,304",
        "moco_v2_encoder",
        "27,966,656",
        "sake_tu",
        "26,264,564",
        "sake_sketchy",
        "26,256,764",
        "sake_sketchy_512",
        "27,667,516",
        "cse_resnet50_teacher",
        "28,103,128",
        "se_resnet50",
        "28,088,024",
    ] {
        assert!(stdout.contains(line), "{line} missing from:\n{stdout}");
    }
}

#[test]
fn dataset_previews_are_pngs_and_bad_tasks_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for task in ["classification", "panoptic", "occlusion", "scale", "sketch"] {
        let out = dir.path().join(format!("{task}.png"));
        let args = [
            "dataset",
            "preview",
            "shapeworld",
            "--task",
            task,
            "--rows",
            "1",
            "--image-size",
            "32",
            "--out",
            out.to_str().unwrap(),
        ];
        run_ok(&args);
        let png = std::fs::read(&out).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{task}");
    }
    let err = run_err(&["dataset", "preview", "shapeworld", "--task", "depth"]);
    assert!(err.contains("depth") && err.contains("panoptic"), "{err}");
    let err = run_err(&["dataset", "preview", "imagenet"]);
    assert!(
        err.contains("imagenet") && err.contains("shapeworld"),
        "{err}"
    );
}

#[test]
fn image_folders_train_with_the_imagenet_augmentation() {
    let dir = tempfile::tempdir().unwrap();
    let config = image_folder_config(dir.path(), "");
    let out = dir.path().join("runs");
    let args = [
        "train",
        "ws",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    run_ok(&args);
    let run = single_run(&out, "ws");
    assert_eq!(csv_epochs(&run), [1, 2]);
    let config_json = fs::read_to_string(run.join("config.json")).unwrap();
    assert!(config_json.contains("image_folder"), "{config_json}");
    assert_eq!(
        fs::read_to_string(run.join("classes.txt")).unwrap(),
        "n01\nn02\n"
    );
}

#[test]
fn bench_runs_alone_without_pytorch_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("benchmarks.md");
    let args = [
        "bench",
        "--quick",
        "--case",
        "ws_smoke_loader",
        "--torch",
        "/nonexistent/python",
        "--out",
        dir.path().to_str().unwrap(),
        "--docs",
        docs.to_str().unwrap(),
    ];
    let stdout = String::from_utf8(run_ok(&args).stdout).unwrap();
    assert!(stdout.contains("PyTorch not available"), "{stdout}");
    let run = fs::read_dir(dir.path().join("bench"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let results = fs::read_to_string(run.join("results.json")).unwrap();
    assert!(
        results.contains("ws_smoke_loader") && results.contains("median"),
        "{results}"
    );
    let page = fs::read_to_string(&docs).unwrap();
    assert!(
        page.contains("bench:cpu:begin") && page.contains("`ws_smoke_loader`"),
        "{page}"
    );
    let err = run_err(&["bench", "--suite", "everything"]);
    assert!(err.contains("--suite everything"), "{err}");
}

/// Axial-DeepLab on 17 px ShapeWorld scenes: a narrow axial encoder, 16 training images.
#[test]
fn axial_runs_leave_pq_pictures_and_resume_exactly() {
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_axial(out.path(), "3"));
    let run = single_run(out.path(), "axial");
    assert_files(
        &run,
        &[
            "config.json",
            "metrics.csv",
            "curves.png",
            "predictions.png",
            "report.md",
            "model.mpk",
            "checkpoint/model-3.mpk",
            "checkpoint/scheduler-3.mpk",
        ],
    );
    assert_eq!(csv_epochs(&run), [1, 2, 3]);
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("| PQ | SQ | RQ") && report.contains("predictions.png"),
        "{report}"
    );
    let eval = run_ok(&["eval", "axial", "--run", run.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&eval.stdout);
    assert!(stdout.contains("PQ") && stdout.contains("mIoU"), "{stdout}");
    assert!(run.join("eval-predictions.png").is_file());

    // Kill after epoch 2 and resume: the same epoch 3.
    let uninterrupted = forget_epoch_3(&run);
    run_ok(&["train", "axial", "--resume", run.to_str().unwrap()]);
    let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(without_timing(&resumed), without_timing(&uninterrupted));
    assert!(
        fs::read_to_string(run.join("report.md"))
            .unwrap()
            .contains("Resumed after epoch 2")
    );
    // A config for another model is refused by name.
    let err = run_err(&[
        "train",
        "axial",
        "--out",
        out.path().to_str().unwrap(),
        "--set",
        "model.num_classes=3",
    ]);
    assert!(err.contains("model.num_classes = 3"), "{err}");
}

#[test]
fn axial_trains_on_cityscapes_format_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = cityscapes_config(dir.path(), "");
    let out = dir.path().join("runs");
    run_ok(&[
        "train",
        "axial",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let run = single_run(&out, "axial");
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("Result on 2 validation images") && report.contains("| c11 | thing"),
        "{report}"
    );
    // A wrong class count is named after the data is read, before any run directory exists.
    let err = run_err(&[
        "train",
        "axial",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "model.num_classes=7",
    ]);
    assert!(err.contains("the data has 19 semantic classes"), "{err}");
    assert_eq!(fs::read_dir(out.join("axial")).unwrap().count(), 1);
    // A missing annotation file is named.
    let data = dir.path().join("cityscapes");
    fs::remove_file(data.join("gtFine/cityscapes_panoptic_val_trainId.json")).unwrap();
    let err = run_err(&[
        "train",
        "axial",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("cityscapes_panoptic_val_trainId.json"),
        "{err}"
    );
}

#[test]
fn infer_classifies_images_of_any_size_with_a_run() {
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_train("ws", out.path(), "1", &[]));
    let run = single_run(out.path(), "ws");
    let (wide, tall) = (out.path().join("wide.png"), out.path().join("tall.jpg"));
    image_of(40, 24, 90).save(&wide).unwrap();
    image_of(12, 30, 200).save(&tall).unwrap();
    let (run_s, wide_s, tall_s) = (
        run.to_str().unwrap(),
        wide.to_str().unwrap(),
        tall.to_str().unwrap(),
    );
    let args = [
        "infer", "ws", "--run", run_s, "--image", wide_s, "--image", tall_s,
    ];
    let json = json_of(&run_ok(&[&args[..], &["--json"]].concat()));
    // ShapeWorld's ten smoke classes by name, not by index.
    let shapes = [
        "disk", "square", "triangle", "diamond", "hexagon", "star", "cross", "ring", "crescent",
        "heart",
    ];
    for top in top_lists(&json, 2, 5) {
        assert!(
            top.iter().all(|(name, _)| shapes.contains(&name.as_str())),
            "{top:?}"
        );
    }
    // The same from a weights file of the run, in text.
    let checkpoint = run.join("checkpoint/model-1.mpk");
    let text = run_ok(&[
        "infer",
        "ws",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--image",
        wide_s,
        "--top-k",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("wide.png") && stdout.matches(" %").count() == 3,
        "{stdout}"
    );

    // Errors name the file and what was expected.
    let missing = out.path().join("missing.png");
    let err = run_err(&[
        "infer",
        "ws",
        "--run",
        run_s,
        "--image",
        missing.to_str().unwrap(),
    ]);
    assert!(err.contains("missing.png"), "{err}");
    let corrupt = out.path().join("corrupt.png");
    fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let err = run_err(&[
        "infer",
        "ws",
        "--run",
        run_s,
        "--image",
        corrupt.to_str().unwrap(),
    ]);
    assert!(err.contains("corrupt.png"), "{err}");
    let err = run_err(&["infer", "bcn", "--run", run_s, "--image", wide_s]);
    assert!(err.contains("is a run of 'ws', not 'bcn'"), "{err}");
    let err = run_err(&["eval", "axial", "--run", run_s]);
    assert!(err.contains("is a run of 'ws', not 'axial'"), "{err}");
}

#[test]
fn infer_loads_official_layout_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("photo.jpg");
    image_of(50, 37, 120).save(&image).unwrap();
    let image = image.to_str().unwrap();
    // The tiny GN+WS and BCN+WS fixtures (core-nets/tests/fixtures/make_fixtures.py) in the
    // official scripts' layouts; their architecture as a model TOML.
    let tiny = |conv: &str, norm: &str| {
        let path = dir.path().join(format!("{conv}.toml"));
        fs::write(
            &path,
            format!(
                "block = \"bottleneck\"\nlayers = [1, 1, 1, 1]\nplanes = [2, 4, 8, 16]\nstem_width = 8\nconv = {{ kind = \"ws\", variant = \"{conv}\" }}\nnorm = {norm}\n"
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_string()
    };
    for (paper, file, model) in [
        (
            "ws",
            "gn_ws_tiny.pth.tar",
            tiny("official_torch", "{ kind = \"group\", groups = 2 }"),
        ),
        (
            "bcn",
            "bcn_ws_tiny.pth.tar",
            tiny(
                "bcn_repo",
                "{ kind = \"batch_channel\", groups = 2, stage1 = { kind = \"batch\", momentum = 0.1 } }",
            ),
        ),
    ] {
        let json = json_of(&run_ok(&[
            "infer",
            paper,
            "--checkpoint",
            &fixture("core-nets", file),
            "--model",
            &model,
            "--num-classes",
            "5",
            "--image",
            image,
            "--json",
        ]));
        let top = &top_lists(&json, 1, 5)[0];
        assert!(
            top.iter().all(|(name, _)| name.starts_with("class ")),
            "{top:?}"
        );
    }
    // The tiny Axial-ResNet in the released axial26s.pth layout ({'net': …}, flatten_index).
    let model = dir.path().join("axial_tiny.toml");
    fs::write(
        &model,
        "layers = [1, 1, 1, 1]\nwidth = 0.0625\nnum_classes = 10\nspan = 8\nheads = 2\n",
    )
    .unwrap();
    let json = json_of(&run_ok(&[
        "infer",
        "axial",
        "--checkpoint",
        &fixture("axial-deeplab", "axial_tiny.pth"),
        "--model",
        model.to_str().unwrap(),
        "--num-classes",
        "10",
        "--image-size",
        "32",
        "--image",
        image,
        "--json",
    ]));
    top_lists(&json, 1, 5);
    // A 1000-class checkpoint is named with ImageNet's classes: the wrong shape is refused first.
    let err = run_err(&[
        "infer",
        "ws",
        "--checkpoint",
        &fixture("core-nets", "gn_ws_tiny.pth.tar"),
        "--image",
        image,
    ]);
    assert!(
        err.contains("resnet50_gn_ws") && err.contains("gn_ws_tiny"),
        "{err}"
    );
    let truncated = dir.path().join("truncated.pth");
    let bytes = fs::read(fixture("core-nets", "gn_ws_tiny.pth.tar")).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = run_err(&[
        "infer",
        "ws",
        "--checkpoint",
        truncated.to_str().unwrap(),
        "--image",
        image,
    ]);
    assert!(err.contains("truncated.pth"), "{err}");
}

#[test]
fn infer_axial_draws_a_panoptic_overlay_per_image() {
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_axial(out.path(), "1"));
    let run = single_run(out.path(), "axial");
    let pictures = out.path().join("pictures");
    let image = out.path().join("street.png");
    image_of(30, 20, 150).save(&image).unwrap();
    let json = json_of(&run_ok(&[
        "infer",
        "axial",
        "--run",
        run.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--out",
        pictures.to_str().unwrap(),
        "--json",
    ]));
    let prediction = &json[0];
    assert_eq!(prediction["result"]["frame"], serde_json::json!([17, 17]));
    let segments = prediction["result"]["segments"].as_array().unwrap();
    let area: u64 = segments.iter().map(|s| s["area"].as_u64().unwrap()).sum();
    assert!(area <= 17 * 17, "{prediction}");
    for s in segments {
        assert!(
            ["thing", "stuff"].contains(&s["kind"].as_str().unwrap()),
            "{s}"
        );
    }
    let picture = pictures.join("street-panoptic.png");
    assert_eq!(prediction["picture"], picture.to_str().unwrap());
    assert!(image::open(&picture).is_ok());
}

#[test]
fn co2_runs_leave_knn_linear_eval_pictures_and_resume_exactly() {
    let out = tempfile::tempdir().unwrap();
    let stdout = String::from_utf8(run_ok(&tiny_co2(out.path(), "3")).stdout).unwrap();
    assert!(
        stdout.contains("kNN top-1") && stdout.contains("linear eval"),
        "{stdout}"
    );
    let run = single_run(out.path(), "co2");
    assert_files(
        &run,
        &[
            "config.json",
            "metrics.csv",
            "curves.png",
            "embedding.png",
            "similarities.png",
            "report.md",
            "model.mpk",
            "classifier.mpk",
            "classifier-semi.mpk",
            "checkpoint/model-3.mpk",
        ],
    );
    assert_eq!(csv_epochs(&run), [1, 2, 3]);
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("kNN monitor")
            && report.contains("| linear evaluation (64 images), final epoch 1 |")
            && report.contains("| semi-supervised fine-tuning, 10 % of the labels (")
            && report.contains("## Semi-supervised fine-tuning, 10 % of the labels: epochs"),
        "{report}"
    );
    // Killed after epoch 2: the resumed epoch 3 equals the uninterrupted one (queue, key encoder,
    // optimizer and the key-BN permutation all continue).
    let uninterrupted = forget_epoch_3(&run);
    run_ok(&["train", "co2", "--resume", run.to_str().unwrap()]);
    let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(without_timing(&resumed), without_timing(&uninterrupted));
    // The linear classifier names ShapeWorld's classes; eval gives the kNN top-1.
    let image = out.path().join("shape.png");
    image_of(20, 20, 120).save(&image).unwrap();
    let json = json_of(&run_ok(&[
        "infer",
        "co2",
        "--run",
        run.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--json",
    ]));
    top_lists(&json, 1, 5);
    let eval = run_ok(&["eval", "co2", "--run", run.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&eval.stdout).contains("kNN top-1"));
}

#[test]
fn a_diverging_co2_run_stops_and_keeps_the_last_good_checkpoint() {
    // The MoCo strategy on burn-train's Learner stops at the divergence guard like the
    // supervised loops: no checkpoint, no metrics row for the epoch it interrupts.
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_co2(out.path(), "1"));
    let run = single_run(out.path(), "co2");
    let path = run.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    config["config"]["train"]["epochs"] = 2.into();
    config["config"]["train"]["optimizer"]["lr"] = 1e30.into();
    fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    fs::remove_file(run.join("model.mpk")).unwrap();
    let err = run_err(&["train", "co2", "--resume", run.to_str().unwrap()]);
    assert!(
        (err.contains("loss became") || err.contains("exploded"))
            && err.contains("last good checkpoint is epoch 1"),
        "{err}"
    );
    assert!(run.join("checkpoint/model-1.mpk").is_file());
    assert!(!run.join("checkpoint/model-2.mpk").exists());
    assert_eq!(csv_epochs(&run), [1]);
}

#[test]
fn co2_evaluates_an_official_moco_checkpoint_linearly() {
    // The tiny MoCo v2 in the released layout (co2/tests/fixtures/make_moco_checkpoint.py): its
    // architecture through --set, linear evaluation only.
    let out = tempfile::tempdir().unwrap();
    let checkpoint = fixture("co2", "moco_tiny.pth.tar");
    let args = train_args(
        "co2",
        out.path(),
        &[
            format!("pretrained=\"{checkpoint}\""),
            "model.backbone.layers=[1, 1, 1, 1]".into(),
            "model.backbone.planes=[4, 4, 8, 8]".into(),
            "model.backbone.stem_width=4".into(),
            "model.backbone.small_stem=false".into(),
            "model.dim=6".into(),
            "model.queue=16".into(),
            "train.batch_size=16".into(),
            "train.num_workers=1".into(),
            "data.train_size=64".into(),
            "data.valid_size=32".into(),
            "knn.k=10".into(),
            "lincls.epochs=1".into(),
            "lincls.batch_size=16".into(),
            "semi.epochs=1".into(),
        ],
    );
    let output = run_ok(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not optimizer"),
        "the optimizer state is named: {stderr}"
    );
    let run = single_run(out.path(), "co2");
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("pretrained encoder")
            && report.contains("linear evaluation (64 images), final epoch")
            && report.contains("semi-supervised fine-tuning"),
        "{report}"
    );
    assert!(run.join("classifier.mpk").is_file() && run.join("classifier-semi.mpk").is_file());
    // The ResNet-50 MoCo v2 model does not fit the tiny file: refused naming the keys.
    let err = run_err(&[
        "import",
        "--model",
        "moco_v2_encoder",
        "--checkpoint",
        &checkpoint,
    ]);
    assert!(
        err.contains("moco_v2_encoder") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn elastic_runs_leave_scores_by_size_the_scale_policy_and_resume_exactly() {
    let out = tempfile::tempdir().unwrap();
    let stdout = String::from_utf8(run_ok(&tiny_elastic(out.path(), "3")).stdout).unwrap();
    assert!(
        stdout.contains("MFLOPs per 32² image") && stdout.contains("recall small/medium/large"),
        "{stdout}"
    );
    let run = single_run(out.path(), "elastic");
    assert_files(
        &run,
        &[
            "config.json",
            "metrics.csv",
            "curves.png",
            "scale-policy.png",
            "report.md",
            "classes.txt",
            "model.mpk",
            "checkpoint/model-3.mpk",
        ],
    );
    assert_eq!(csv_epochs(&run), [1, 2, 3]);
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    for part in [
        "| overall |",
        "| small |",
        "| medium |",
        "| large |",
        "mAP",
        "scale-policy.png",
    ] {
        assert!(report.contains(part), "{part}: {report}");
    }
    // Killed after epoch 2: the resumed epoch 3 equals the uninterrupted one.
    let uninterrupted = forget_epoch_3(&run);
    run_ok(&["train", "elastic", "--resume", run.to_str().unwrap()]);
    let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(without_timing(&resumed), without_timing(&uninterrupted));
    // Labels with probabilities for an image; eval gives the scores again.
    let image = out.path().join("shapes.png");
    image_of(40, 40, 120).save(&image).unwrap();
    let json = json_of(&run_ok(&[
        "infer",
        "elastic",
        "--run",
        run.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--json",
    ]));
    let labels = json[0]["result"]["labels"].as_array().unwrap();
    assert!(labels.len() >= 5 && labels[0]["probability"].as_f64().unwrap() <= 1.0);
    let eval = run_ok(&["eval", "elastic", "--run", run.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&eval.stdout).contains("F1 overall"));
    // A plain model has no half-resolution path, so no scale-policy picture.
    let plain = tempfile::tempdir().unwrap();
    let mut args = tiny_elastic(plain.path(), "1");
    args.extend(["--set".into(), "model.elastic=false".into()]);
    run_ok(&args);
    assert!(
        !single_run(plain.path(), "elastic")
            .join("scale-policy.png")
            .exists()
    );
}

#[test]
fn elastic_configs_are_checked() {
    let out = tempfile::tempdir().unwrap();
    for (set, named) in [
        ("model.block=\"bottleneck\"", "two_path"),
        ("model.num_classes=10", "data.world.num_classes"),
        ("model.groups=3", "model.groups"),
    ] {
        let mut args = tiny_elastic(out.path(), "1");
        args.extend(["--set".into(), set.into()]);
        let err = run_err(&args);
        assert!(err.contains(named), "{set}: {err}");
    }
}

#[test]
fn elastic_infers_with_a_released_layout_checkpoint_and_import_names_the_model() {
    // The tiny elastic SE-ResNeXt in the released ImageNet layout
    // (elastic/tests/fixtures/make_elastic_checkpoint.py); its architecture as a model TOML.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("elastic_tiny.toml");
    fs::write(
        &model,
        "block = \"two_path\"\nlayers = [2, 2, 2, 1]\nplanes = [8, 8, 16, 16]\nstem_width = 8\ngroups = 4\nelastic = true\nse = true\n",
    )
    .unwrap();
    let image = dir.path().join("photo.jpg");
    image_of(50, 37, 120).save(&image).unwrap();
    let checkpoint = fixture("elastic", "elastic_tiny.pth.tar");
    let json = json_of(&run_ok(&[
        "infer",
        "elastic",
        "--checkpoint",
        &checkpoint,
        "--model",
        model.to_str().unwrap(),
        "--num-classes",
        "5",
        "--image-size",
        "35",
        "--image",
        image.to_str().unwrap(),
        "--json",
    ]));
    let top = &top_lists(&json, 1, 5)[0];
    assert!(
        top.iter().all(|(name, _)| name.starts_with("class ")),
        "{top:?}"
    );
    // The full-size model does not fit the tiny file: refused, naming the model.
    let err = run_err(&[
        "import",
        "--model",
        "resnext50_elastic",
        "--checkpoint",
        &checkpoint,
    ]);
    assert!(err.contains("resnext50_elastic"), "{err}");
    // A released VOC model's name routes to the segmentation variant: the tiny segmentation
    // fixture's keys are the layout's (the backbone's at the top level, mapped), its sizes are not.
    let seg = fixture("elastic", "seg_tiny.pth.tar");
    let err = run_err(&[
        "import",
        "--model",
        "resnext50_elastic_voc",
        "--checkpoint",
        &seg,
        "--num-classes",
        "5",
    ]);
    assert!(
        err.contains("resnext50_elastic_voc") && err.contains("'backbone.conv1.weight'"),
        "{err}"
    );
}

#[test]
fn elastic_fine_tunes_from_a_released_layout_checkpoint() {
    // The tiny elastic SE-ResNeXt fixture (5 classes) as the starting point of a 12-label run;
    // its architecture through --set.
    let out = tempfile::tempdir().unwrap();
    let checkpoint = fixture("elastic", "elastic_tiny.pth.tar");
    let sets = [
        "model.layers=[2, 2, 2, 1]",
        "model.planes=[8, 8, 16, 16]",
        "model.stem_width=8",
        "model.groups=4",
        "model.se=true",
        "devices=2",
        "train.batch_size=8",
        "train.epochs=1",
        "train.num_workers=1",
        "data.train_size=32",
        "data.valid_size=16",
        "data.world.image_size=32",
    ];
    let mut args = train_args("elastic", out.path(), &sets);
    args.extend([
        "--set".into(),
        format!("pretrained={{ file = \"{checkpoint}\", classes = 5 }}"),
    ]);
    let stdout = String::from_utf8(run_ok(&args).stdout).unwrap();
    assert!(
        stdout.contains("initialised from") && stdout.contains("a new 12-way classifier"),
        "{stdout}"
    );
    // Another architecture does not fit: refused, naming the setting.
    let mut args = tiny_elastic(out.path(), "1");
    args.extend([
        "--set".into(),
        format!("pretrained={{ file = \"{checkpoint}\", classes = 5 }}"),
    ]);
    let err = run_err(&args);
    assert!(err.contains("pretrained.file"), "{err}");
}

/// A tiny MS-COCO 2014 tree: 80 categories (ids 1..=90 with COCO's gaps), `n` images per split of
/// `size`², each with one annotation of category 1 (small) or 90 (large).
fn write_coco(root: &std::path::Path, n: usize, size: u32) {
    let gaps = [12, 26, 29, 30, 45, 66, 68, 69, 71, 83];
    let categories: Vec<String> = (1..=90u64)
        .filter(|c| !gaps.contains(c))
        .map(|c| format!(r#"{{"id": {c}, "name": "c{c}"}}"#))
        .collect();
    fs::create_dir_all(root.join("annotations")).unwrap();
    for split in ["train", "val"] {
        let dir = root.join(format!("{split}2014"));
        fs::create_dir_all(&dir).unwrap();
        let mut images = Vec::new();
        let mut annotations = Vec::new();
        for i in 0..n {
            image_of(size, size, 40 + 20 * i as u8)
                .save(dir.join(format!("{i}.jpg")))
                .unwrap();
            images.push(format!(r#"{{"id": {i}, "file_name": "{i}.jpg"}}"#));
            let (category, area) = if i % 2 == 0 { (1, 500) } else { (90, 20000) };
            annotations.push(format!(
                r#"{{"id": {i}, "image_id": {i}, "category_id": {category}, "area": {area}, "iscrowd": 0}}"#
            ));
        }
        fs::write(
            root.join(format!("annotations/instances_{split}2014.json")),
            format!(
                r#"{{"images": [{}], "annotations": [{}], "categories": [{}]}}"#,
                images.join(", "),
                annotations.join(", "),
                categories.join(", ")
            ),
        )
        .unwrap();
    }
}

#[test]
fn elastic_trains_on_coco_files_and_names_a_corrupt_image() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("coco");
    write_coco(&root, 8, 40);
    let out = dir.path().join("runs");
    let sets = [
        "data={ source = \"coco\", root = \"ROOT\", image_size = 32 }"
            .replace("ROOT", root.to_str().unwrap()),
        "model.num_classes=80".into(),
        "model.planes=[8, 8, 16, 16]".into(),
        "model.stem_width=8".into(),
        "model.groups=4".into(),
        "train.batch_size=4".into(),
        "train.epochs=1".into(),
        "train.num_workers=1".into(),
    ];
    run_ok(&train_args("elastic", &out, &sets));
    let report = fs::read_to_string(single_run(&out, "elastic").join("report.md")).unwrap();
    // Categories 1 and 90 at COCO's area thresholds: small and large targets, no medium.
    assert!(
        report.contains("| small | 4 |")
            && report.contains("| medium | 0 |")
            && report.contains("| large | 4 |"),
        "{report}"
    );
    // A corrupt image stops the run naming the file.
    fs::write(root.join("train2014/3.jpg"), b"not a jpeg").unwrap();
    let err = run_err(&train_args("elastic", &dir.path().join("runs2"), &sets));
    assert!(err.contains("3.jpg"), "{err}");
}

#[test]
fn elastic_classifies_image_folders_with_per_device_bn() {
    // The ImageNet task (§4.1) on a two-class folder: the classification run (top-1/top-5,
    // classes.txt) with ELASTIC's model, init and per-device BN, the scale-policy picture,
    // resume, eval and infer.
    let dir = tempfile::tempdir().unwrap();
    image_folder_config(dir.path(), "");
    let root = dir.path().join("folder");
    let out = dir.path().join("runs");
    let sets = [
        "data={ source = \"classification\", images = { source = \"image_folder\", root = \"ROOT\", image_size = 16 } }"
            .replace("ROOT", root.to_str().unwrap()),
        "model.num_classes=2".into(),
        "model.planes=[8, 8, 16, 16]".into(),
        "model.stem_width=8".into(),
        "model.groups=4".into(),
        "devices=2".into(),
        "train.batch_size=2".into(),
        "train.epochs=3".into(),
        "train.num_workers=1".into(),
    ];
    let stdout = String::from_utf8(run_ok(&train_args("elastic", &out, &sets)).stdout).unwrap();
    assert!(stdout.contains("valid top-1"), "{stdout}");
    let run = single_run(&out, "elastic");
    assert_files(
        &run,
        &[
            "config.json",
            "classes.txt",
            "metrics.csv",
            "curves.png",
            "scale-policy.png",
            "report.md",
            "model.mpk",
        ],
    );
    assert_eq!(csv_epochs(&run), [1, 2, 3]);
    let uninterrupted = forget_epoch_3(&run);
    run_ok(&["train", "elastic", "--resume", run.to_str().unwrap()]);
    let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(without_timing(&resumed), without_timing(&uninterrupted));
    let eval = run_ok(&["eval", "elastic", "--run", run.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&eval.stdout).contains("top-1"));
    let json = json_of(&run_ok(&[
        "infer",
        "elastic",
        "--run",
        run.to_str().unwrap(),
        "--image",
        root.join("val/n01/0.png").to_str().unwrap(),
        "--json",
    ]));
    let top = top_lists(&json, 1, 2);
    assert!(top[0].iter().any(|(name, _)| name == "n01"), "{top:?}");
}

#[test]
fn elastic_segments_shapeworld_scenes_and_resumes_exactly() {
    // The segmentation task (§4.3) on the embedded scenes: the DeepLabv3 variant, mIoU per epoch
    // and per class, the pictures, resume, eval and infer (a picture of the predicted classes).
    let out = tempfile::tempdir().unwrap();
    let sets = [
        "train.epochs=3",
        "train.batch_size=4",
        "train.num_workers=1",
        "data.train_size=8",
        "data.valid_size=4",
        "data.world.image_size=32",
        "model.planes=[8, 8, 16, 16]",
        "model.stem_width=8",
        "model.groups=4",
        "model.layers=[1, 1, 1, 3]",
        "aspp.channels=8",
    ];
    let mut args = train_args("elastic", out.path(), &sets);
    args.extend(["--preset".into(), "segmentation".into()]);
    let stdout = String::from_utf8(run_ok(&args).stdout).unwrap();
    assert!(stdout.contains("valid mIoU"), "{stdout}");
    let run = single_run(out.path(), "elastic");
    assert_files(
        &run,
        &[
            "config.json",
            "classes.txt",
            "metrics.csv",
            "curves.png",
            "predictions.png",
            "scale-policy.png",
            "report.md",
            "model.mpk",
            "checkpoint/model-3.mpk",
        ],
    );
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("## Validation mIoU of the final model") && report.contains("| sky |"),
        "{report}"
    );
    let uninterrupted = forget_epoch_3(&run);
    run_ok(&["train", "elastic", "--resume", run.to_str().unwrap()]);
    let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(without_timing(&resumed), without_timing(&uninterrupted));
    let eval = run_ok(&["eval", "elastic", "--run", run.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&eval.stdout).contains("mIoU"));
    let image = out.path().join("scene.png");
    image_of(40, 24, 90).save(&image).unwrap();
    let pictures = out.path().join("pictures");
    let json = json_of(&run_ok(&[
        "infer",
        "elastic",
        "--run",
        run.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--out",
        pictures.to_str().unwrap(),
        "--json",
    ]));
    assert!(
        json[0]["result"]["classes"][0]["pixel_share"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{json}"
    );
    assert!(image::open(pictures.join("scene-segmentation.png")).is_ok());
}

/// A DeepLabv3.pytorch VOC tree under `root`: `n` images per list, a person (class 15) on the
/// right half of each, background on the left, a void column between.
fn write_voc(root: &std::path::Path, n: usize) {
    for dir in ["list", "JPEGImages", "SegmentationClassAug"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    for list in ["train_aug", "val"] {
        let mut lines = String::new();
        for i in 0..n {
            let id = format!("{list}_{i}");
            image_of(40, 30, 40 + 20 * i as u8)
                .save(root.join(format!("JPEGImages/{id}.jpg")))
                .unwrap();
            let label = image::GrayImage::from_fn(40, 30, |x, _| {
                image::Luma([match x {
                    0..20 => 0,
                    20 => 255,
                    _ => 15,
                }])
            });
            label
                .save(root.join(format!("SegmentationClassAug/{id}.png")))
                .unwrap();
            lines += &format!("/JPEGImages/{id}.jpg /SegmentationClassAug/{id}.png\n");
        }
        fs::write(root.join(format!("list/{list}.txt")), lines).unwrap();
    }
}

#[test]
fn elastic_segments_voc_files_and_names_a_corrupt_image() {
    // The voc preset on a tiny VOC tree, its backbone from a released-layout ImageNet classifier
    // (the fixture's architecture through --set; a new head), then a corrupt image named.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("VOC2012");
    write_voc(&root, 4);
    let checkpoint = fixture("elastic", "seg_backbone_tiny.pth.tar");
    let out = dir.path().join("runs");
    let sets = [
        format!("data.root={}", root.to_str().unwrap()),
        "data.crop=32".into(),
        format!("pretrained={{ file = \"{checkpoint}\", classes = 5 }}"),
        "model.planes=[8, 8, 16, 16]".into(),
        "model.stem_width=8".into(),
        "model.groups=4".into(),
        "model.layers=[1, 1, 1, 3]".into(),
        "aspp.channels=8".into(),
        "train.batch_size=2".into(),
        "train.epochs=1".into(),
        "train.num_workers=1".into(),
    ];
    let mut args = train_args("elastic", &out, &sets);
    args.extend(["--preset".into(), "voc".into()]);
    let stdout = String::from_utf8(run_ok(&args).stdout).unwrap();
    assert!(
        stdout.contains("backbone from") && stdout.contains("over 21 classes (4 images)"),
        "{stdout}"
    );
    let report = fs::read_to_string(single_run(&out, "elastic").join("report.md")).unwrap();
    assert!(
        report.contains("| background |") && report.contains("| person |"),
        "{report}"
    );
    // A corrupt image stops the run naming the file.
    fs::write(root.join("JPEGImages/train_aug_2.jpg"), b"not a jpeg").unwrap();
    let mut args = train_args("elastic", &dir.path().join("runs2"), &sets);
    args.extend(["--preset".into(), "voc".into()]);
    let err = run_err(&args);
    assert!(err.contains("train_aug_2.jpg"), "{err}");
}

/// A folder of grey "photos" (one JPEG, the rest PNG: both are read) and a `side`² "sketch".
fn gallery_and_sketch(
    out: &std::path::Path,
    shades: &[u8],
    side: u32,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let gallery = out.join("gallery");
    fs::create_dir(&gallery).unwrap();
    for (i, &shade) in shades.iter().enumerate() {
        let ext = if i == 0 { "jpg" } else { "png" };
        image_of(50, 40, shade)
            .save(gallery.join(format!("photo{i}.{ext}")))
            .unwrap();
    }
    let sketch = out.join("sketch.png");
    image_of(side, side, 250).save(&sketch).unwrap();
    (gallery, sketch)
}

#[test]
fn sake_runs_both_stages_leave_retrieval_pictures_and_resume_exactly() {
    let out = tempfile::tempdir().unwrap();
    let stdout = String::from_utf8(run_ok(&tiny_sake(out.path(), "3", &[])).stdout).unwrap();
    assert!(
        stdout.contains("teacher pre-training") && stdout.contains("unseen mAP@all"),
        "{stdout}"
    );
    let run = single_run(out.path(), "sake");
    assert_files(
        &run,
        &[
            "config.json",
            "teacher/model.mpk",
            "teacher/metrics.csv",
            "metrics.csv",
            "curves.png",
            "pr-curves.png",
            "retrieval.png",
            "retrieval.json",
            "report.md",
            "model.mpk",
            "checkpoint/model-3.mpk",
        ],
    );
    assert_eq!(csv_epochs(&run), [1, 2, 3]);
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("| real-valued, 16-d |")
            && report.contains("| binary, 16 bits (ITQ) |")
            && report.contains("held-out seen-class sketch top-1"),
        "{report}"
    );
    let scores: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("retrieval.json")).unwrap()).unwrap();
    for kind in ["real", "binary"] {
        let map = scores[kind]["map_all"].as_f64().unwrap();
        assert!(map > 0.0 && map <= 1.0, "{scores}");
    }
    // Killed after epoch 2: the resumed epoch 3 equals the uninterrupted one (student, teacher,
    // Adam state, schedule and the zipped stream's permutations all continue).
    let uninterrupted = forget_epoch_3(&run);
    run_ok(&["train", "sake", "--resume", run.to_str().unwrap()]);
    let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(without_timing(&resumed), without_timing(&uninterrupted));
    // eval gives the retrieval scores; infer ranks a folder of photos for a sketch.
    let eval = run_ok(&["eval", "sake", "--run", run.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&eval.stdout).contains("unseen mAP@all"));
    let (gallery, sketch) = gallery_and_sketch(out.path(), &[40, 120, 200], 24);
    let json = json_of(&run_ok(&[
        "infer",
        "sake",
        "--run",
        run.to_str().unwrap(),
        "--image",
        sketch.to_str().unwrap(),
        "--gallery",
        gallery.to_str().unwrap(),
        "--top-k",
        "2",
        "--json",
    ]));
    let ranked = json[0]["result"].as_array().expect("a ranking");
    assert_eq!(ranked.len(), 2, "{json}");
    assert!(ranked[0]["distance"].as_f64().unwrap() <= ranked[1]["distance"].as_f64().unwrap());
    let err = run_err(&[
        "infer",
        "sake",
        "--run",
        run.to_str().unwrap(),
        "--image",
        sketch.to_str().unwrap(),
    ]);
    assert!(err.contains("--gallery"), "{err}");
}

#[test]
fn sake_without_fine_tuning_evaluates_the_teacher_initialised_student() {
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_sake(out.path(), "1", &["finetune=false"]));
    let run = single_run(out.path(), "sake");
    assert_files(&run, &["model.mpk", "retrieval.json", "report.md"]);
    assert!(!run.join("metrics.csv").exists());
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("no fine-tuning"), "{report}");
}

#[test]
fn sake_trains_with_the_official_ems_option() {
    let out = tempfile::tempdir().unwrap();
    run_ok(&tiny_sake(
        out.path(),
        "1",
        &["model.ems=true", "loss.ems_m=2"],
    ));
    let run = single_run(out.path(), "sake");
    assert_eq!(csv_epochs(&run), [1]);
}

#[test]
fn sake_names_missing_benchmark_files() {
    let out = tempfile::tempdir().unwrap();
    let err = run_err(&[
        "train",
        "sake",
        "--preset",
        "sake_tu",
        "--out",
        out.path().to_str().unwrap(),
        "--set",
        "data.root=\"/nonexistent/dataset\"",
    ]);
    assert!(
        err.contains("/nonexistent/dataset") && err.contains("cname_cid.txt"),
        "{err}"
    );
    assert!(!out.path().join("sake").exists());
}

#[test]
fn sake_ranks_a_gallery_with_a_released_layout_checkpoint() {
    // The tiny SAKE model in the released layout (sake/tests/fixtures/make_sake_checkpoint.py),
    // its structure given as a model TOML file.
    let out = tempfile::tempdir().unwrap();
    let model = out.path().join("tiny.toml");
    fs::write(
        &model,
        "hashing_dim = 6\nnum_classes = 5\nteacher_classes = 10\n[backbone]\nblock = \"bottleneck\"\nlayers = [2, 1, 1, 1]\nplanes = [4, 8, 8, 16]\nstem_width = 8\nstyle = \"caffe\"\nse = true\nse_condition = 1\n",
    )
    .unwrap();
    let (gallery, sketch) = gallery_and_sketch(out.path(), &[40, 120, 200, 90], 64);
    let checkpoint = fixture("sake", "sake_tiny.pth.tar");
    let json = json_of(&run_ok(&[
        "infer",
        "sake",
        "--checkpoint",
        &checkpoint,
        "--model",
        model.to_str().unwrap(),
        "--image-size",
        "64",
        "--image",
        sketch.to_str().unwrap(),
        "--gallery",
        gallery.to_str().unwrap(),
        "--top-k",
        "4",
        "--json",
    ]));
    let ranked = json[0]["result"].as_array().expect("a ranking");
    assert_eq!(ranked.len(), 4, "{json}");
    // The full-size released model does not fit the tiny file: refused, naming it.
    let err = run_err(&["import", "--model", "sake_tu", "--checkpoint", &checkpoint]);
    assert!(err.contains("D = 64") && err.contains("shape"), "{err}");
    let teacher = fixture("sake", "se_tiny.pth");
    let err = run_err(&[
        "import",
        "--model",
        "cse_resnet50_teacher",
        "--checkpoint",
        &teacher,
    ]);
    assert!(err.contains("Cadene") && err.contains("shape"), "{err}");
}

#[test]
fn compnet_runs_every_stage_leaves_the_occluder_pictures_and_resumes_exactly() {
    let out = tempfile::tempdir().unwrap();
    let stdout = String::from_utf8(run_ok(&tiny_compnet(out.path(), "3")).stdout).unwrap();
    assert!(
        stdout.contains("DCNN:")
            && stdout.contains("initialisation:")
            && stdout.contains("occluder AUC"),
        "{stdout}"
    );
    let run = single_run(out.path(), "compnet");
    assert_files(
        &run,
        &[
            "config.json",
            "dcnn/model.mpk",
            "init/init.json",
            "init/compnet.mpk",
            "init/bernoulli.mpk",
            "metrics.csv",
            "curves.png",
            "accuracy.png",
            "roc.png",
            "occluders-L0.png",
            "occluders-L3.png",
            "evaluation.json",
            "report.md",
            "model.mpk",
            "checkpoint/model-3.mpk",
        ],
    );
    assert_eq!(csv_epochs(&run), [1, 2, 3]);
    let report = fs::read_to_string(run.join("report.md")).unwrap();
    for needle in [
        "| L0 |",
        "| L3 |",
        "| mean L0–L3 |",
        "| CN-vMF |",
        "| Bernoulli |",
    ] {
        assert!(report.contains(needle), "{needle}: {report}");
    }
    let e: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("evaluation.json")).unwrap()).unwrap();
    let levels = e["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 4, "{e}");
    for level in levels {
        for model in ["DCNN", "Bernoulli", "CN-WACV", "CN-vMF"] {
            let a = level["accuracy"][model].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&a), "{model}: {e}");
        }
    }
    for l in e["localisation"].as_array().unwrap() {
        let auc = l["auc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auc), "{e}");
    }
    // Killed after epoch 2: the resumed epoch 3 equals the uninterrupted one (the cached DCNN and
    // initialisation, the head, Adagrad's accumulators and the schedule all continue).
    let uninterrupted = forget_epoch_3(&run);
    run_ok(&["train", "compnet", "--resume", run.to_str().unwrap()]);
    let resumed = fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(without_timing(&resumed), without_timing(&uninterrupted));
    let eval = run_ok(&["eval", "compnet", "--run", run.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&eval.stdout).contains("mean accuracy over L0–L3"),
        "{eval:?}"
    );
    // infer names a class and draws the occluder map.
    let image = out.path().join("occluded.png");
    image_of(48, 40, 90).save(&image).unwrap();
    let json = json_of(&run_ok(&[
        "infer",
        "compnet",
        "--run",
        run.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--out",
        out.path().join("pictures").to_str().unwrap(),
        "--json",
    ]));
    assert!(json[0]["result"]["class"].is_string(), "{json}");
    assert_eq!(
        json[0]["result"]["occluder_map"]["values"]
            .as_array()
            .unwrap()
            .len(),
        4,
        "a 2 × 2 map at 32 px, pool4: {json}"
    );
    assert!(std::path::Path::new(json[0]["picture"].as_str().unwrap()).is_file());
}

/// The released code's untested option: a ResNet backbone (here a tiny basic-block one cut after
/// layer3) under both compositional models, batch norms frozen with their running statistics.
#[test]
fn compnet_runs_on_a_resnet_backbone() {
    let out = tempfile::tempdir().unwrap();
    let mut args = tiny_compnet(out.path(), "1");
    args.extend([
        "--set".into(),
        "backbone.resnet = { net = { block = \"basic\", layers = [1, 1, 1, 1], planes = [8, 16, 32, 64], stem_width = 8 }, cut = \"second\" }".into(),
    ]);
    let stdout = String::from_utf8(run_ok(&args).stdout).unwrap();
    assert!(
        stdout.contains("ResNet [1, 1, 1, 1]") && stdout.contains("to layer3"),
        "{stdout}"
    );
    let run = single_run(out.path(), "compnet");
    let e: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("evaluation.json")).unwrap()).unwrap();
    assert_eq!(e["levels"].as_array().unwrap().len(), 4, "{e}");
}

#[test]
fn compnet_rejects_bad_settings_by_name() {
    for (set, named) in [
        ("train.optimizer.kind=\"sgd\"", "train.optimizer.kind"),
        ("head.occ=0", "head.occ"),
        ("init.dictionary.components=1", "init.dictionary.components"),
        ("eval.tau_switch=2", "eval.tau_switch"),
        ("data.world.image_size=8", "data.world.image_size"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let err = run_err(&[
            "train",
            "compnet",
            "--out",
            out.path().to_str().unwrap(),
            "--set",
            set,
        ]);
        assert!(err.contains(named), "{set}: {err}");
    }
}

#[test]
fn a_released_compnet_checkpoint_imports_and_predicts_with_background_images() {
    let out = tempfile::tempdir().unwrap();
    let checkpoint = fixture("compnet", "best_tiny.pth");
    // The fixture's network: VGG-16 / 16 cut at pool5, 2 classes × 2 mixtures.
    let model = out.path().join("tiny.toml");
    fs::write(
        &model,
        "classes = [\"car\", \"bus\"]\n[vgg]\ncut = \"pool5\"\nwidth_divisor = 16\n[head]\nmixtures_per_class = 2\n",
    )
    .unwrap();
    let backgrounds = out.path().join("backgrounds");
    fs::create_dir(&backgrounds).unwrap();
    for (name, shade) in [
        ("coast_white.png", 250),
        ("coast_noise.png", 120),
        ("street.png", 60),
    ] {
        image_of(70, 50, shade)
            .save(backgrounds.join(name))
            .unwrap();
    }
    let image = out.path().join("occluded.jpg");
    image_of(90, 60, 140).save(&image).unwrap();
    let args = |with_backgrounds: bool| {
        let mut a = vec![
            "infer".to_string(),
            "compnet".into(),
            "--checkpoint".into(),
            checkpoint.clone(),
            "--model".into(),
            model.to_str().unwrap().into(),
            "--image".into(),
            image.to_str().unwrap().into(),
            "--out".into(),
            out.path().join("pictures").to_str().unwrap().into(),
            "--json".into(),
        ];
        if with_backgrounds {
            a.extend(["--backgrounds".into(), backgrounds.to_str().unwrap().into()]);
        }
        a
    };
    let argv = args(true);
    let json = json_of(&run_ok(
        &argv.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let class = json[0]["result"]["class"].as_str().unwrap();
    assert!(["car", "bus"].contains(&class), "{json}");
    // Short side 60 → 224, long side ⌊90·224/60⌋ = 336: a 7 × 10 pool5 map.
    let map = &json[0]["result"]["occluder_map"];
    assert_eq!(
        (map["height"].as_u64(), map["width"].as_u64()),
        (Some(7), Some(10)),
        "{json}"
    );
    let argv = args(false);
    let err = run_err(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("--backgrounds"), "{err}");
    // `vireo import` reads the released layout; the full-size preset does not fit the tiny file.
    let err = run_err(&[
        "import",
        "--model",
        "compnet_vmf_pool5",
        "--checkpoint",
        &checkpoint,
    ]);
    assert!(err.contains("conv1o1.weight"), "{err}");
}

/// A tiny occluded-PASCAL3D+ tree (`compnet.md` §7): `car` and `bus` with 6 training images
/// each, 2 test images at every level with natural-object occluders and both masks.
fn tiny_pascal3d_occ(root: &std::path::Path) {
    let save = |path: std::path::PathBuf, image: image::RgbImage| {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        image.save(path).unwrap();
    };
    let mask = |w: u32, h: u32, left: bool| {
        image::GrayImage::from_fn(w, h, |x, _| {
            image::Luma([if (x < w / 2) == left { 255 } else { 0 }])
        })
    };
    for (c, category) in ["car", "bus"].iter().enumerate() {
        let names: Vec<String> = (0..6).map(|i| format!("n0{c}_{i}")).collect();
        fs::write(
            root.join(format!("{category}_imagenet_train.txt")),
            names.join("\n"),
        )
        .unwrap();
        for (i, name) in names.iter().enumerate() {
            save(
                root.join(format!("TRAINING_DATA/{category}_imagenet/{name}.JPEG")),
                image_of(60 + 4 * i as u32, 40, 40 + 90 * c as u8 + 10 * i as u8),
            );
        }
        let tests: Vec<String> = (0..2).map(|i| format!("t0{c}_{i}_1")).collect();
        fs::write(
            root.join(format!("{category}_imagenet_occ.txt")),
            tests.join("\n"),
        )
        .unwrap();
        for (i, name) in tests.iter().enumerate() {
            let stem = &name[..name.len() - 2];
            save(
                root.join(format!("{category}LEVELZERO/{stem}.JPEG")),
                image_of(56, 40, 60 + 90 * c as u8),
            );
            for level in ["ONE", "FIVE", "NINE"] {
                save(
                    root.join(format!("{category}LEVEL{level}/{name}.JPEG")),
                    image_of(56, 40, 70 + 80 * c as u8),
                );
                let path = root.join(format!("{category}LEVEL{level}_mask_object/{name}.JPEG"));
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                mask(56, 40, i == 0).save(path).unwrap();
            }
            let object = root.join(format!(
                "0_old_masks/{category}_imagenet_occludee_mask/{name}.png"
            ));
            fs::create_dir_all(object.parent().unwrap()).unwrap();
            image::GrayImage::from_pixel(56, 40, image::Luma([255]))
                .save(object)
                .unwrap();
        }
    }
}

#[test]
fn compnet_trains_and_evaluates_on_an_occluded_pascal3d_tree() {
    let out = tempfile::tempdir().unwrap();
    let root = out.path().join("pascal3d+_occ");
    fs::create_dir(&root).unwrap();
    tiny_pascal3d_occ(&root);
    let backgrounds = out.path().join("background_images");
    fs::create_dir(&backgrounds).unwrap();
    for (name, shade) in [
        ("coast_white.JPEG", 250),
        ("coast_noise.JPEG", 120),
        ("street_general.JPEG", 60),
    ] {
        image_of(64, 48, shade)
            .save(backgrounds.join(name))
            .unwrap();
    }
    let config = out.path().join("tiny.toml");
    fs::write(
        &config,
        format!(
            r#"
[train]
epochs = 2
batch_size = 1
num_workers = 1
checkpoints_kept = 2
optimizer = {{ kind = "adagrad", lr = 0.01, weight_decay = 0.0 }}
schedule = {{ kind = "exponential", gamma = 0.98, period = 1 }}

[backbone]
vgg = {{ cut = "pool4", width_divisor = 16 }}

[backbone.pretrain]
epochs = 1
batch_size = 1
num_workers = 1
optimizer = {{ lr = 0.01 }}
schedule = {{ kind = "constant" }}

[init]
border = 0
dictionary_images_per_class = 4
dictionary = {{ components = 8 }}

[eval]
batch_size = 4
pictures_per_level = 1

[data]
source = "pascal3d_occ"
root = "{}"
backgrounds = "{}"
valid_fraction = 0.2
"#,
            root.display(),
            backgrounds.display()
        ),
    )
    .unwrap();
    let runs = out.path().join("runs");
    let output = run_ok(&[
        "train",
        "compnet",
        "--config",
        config.to_str().unwrap(),
        "--out",
        runs.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("occluder AUC"), "{stdout}");
    let run = single_run(&runs, "compnet");
    let e: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("evaluation.json")).unwrap()).unwrap();
    // 2 vehicles × 2 test images per level; the object-occluder rows; masks give a ROC.
    let levels = e["levels"].as_array().unwrap();
    assert!(levels.iter().all(|l| l["images"] == 4), "{e}");
    assert_eq!(e["kinds"][0]["level"], "object", "{e}");
    assert_eq!(e["localisation"].as_array().unwrap().len(), 2, "{e}");
    let init: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("init/init.json")).unwrap()).unwrap();
    // Ten classes have no training list: their rows stay empty.
    let empty = init["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.as_array().unwrap().is_empty())
        .count();
    assert_eq!(empty, 10, "{init}");
    assert!(run.join("occluders-L1.png").is_file());
    let eval = run_ok(&["eval", "compnet", "--run", run.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&eval.stdout).contains("mean accuracy over L0–L3"),
        "{eval:?}"
    );
    // The released initialisation (converted pickles: K = 8, D = 32, car and bus) instead of
    // the computed one, at pool5.
    let released = out.path().join("released");
    run_ok(&[
        "train",
        "compnet",
        "--config",
        config.to_str().unwrap(),
        "--set",
        "backbone.vgg.cut=\"pool5\"",
        "--set",
        &format!(
            "init.file=\"{}\"",
            fixture("compnet", "init_k8_d32.safetensors")
        ),
        "--out",
        released.to_str().unwrap(),
    ]);
    let init: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(single_run(&released, "compnet").join("init/init.json")).unwrap(),
    )
    .unwrap();
    assert!(
        init["source"].as_str().unwrap().contains("released"),
        "{init}"
    );
    assert_eq!(init["mixture_size"], serde_json::json!([3, 5]), "{init}");
    // A missing list folder is named before any run directory is made.
    let err = run_err(&[
        "train",
        "compnet",
        "--config",
        config.to_str().unwrap(),
        "--set",
        "data.root=\"/nonexistent/pascal3d+_occ\"",
        "--out",
        out.path().join("other").to_str().unwrap(),
    ]);
    assert!(
        err.contains("training image") || err.contains("/nonexistent"),
        "{err}"
    );
    assert!(!out.path().join("other").exists());
}
