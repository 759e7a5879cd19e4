//! A SAKE run (`sake.md` §4): the teacher (Cadene's ImageNet SE-ResNet-50 from a file, or — on
//! the embedded data — a plain SE-ResNet trained first on ShapeWorld photos of every class, in
//! `teacher/`), converted to the CSE-ResNet by zero domain columns; the student initialised from
//! it (trunk copied, hashing heads from the SVD of its classifier); SAKE fine-tuning on
//! burn-train's Learner with the shared pieces (`core_train::fit_supervised_with`: Adam, the
//! per-epoch schedule, atomic checkpoints holding student and teacher, resume, the divergence
//! guard, `metrics.csv`); model selection on held-out seen-class sketches; then zero-shot
//! retrieval, real-valued and binary, with its pictures and report.

use std::{fmt::Write as _, fs, sync::Arc};

use anyhow::{Context, Result};
use burn::{
    module::Module,
    tensor::backend::AutodiffBackend,
    train::metric::{AccuracyMetric, LossMetric},
};
use core_nets::{ResNet, ResNetConfig};
use core_train::{
    AtomicRecorder, EpochLog, EpochMeans, EpochMetrics, EpochRow, FitOptions, Outcome, Part,
    RunDir, RunMeta, Session,
    checkpoint::write_atomically,
    metrics_csv::{MetricsRow, read_rows},
    plot::{Panel, draw_panels},
    report::{group_thousands, write_header},
};
use datasets::{ClassificationBatcher, EpochLoader, ShapeWorld, ShapeWorldClassification, Split};

use super::{
    config::{SakeData, SakeExperiment, TeacherPretrain},
    data::{Plain, SakeBatcher, SakeSources, Zipped},
    evaluate::{Retrieval, draw_precision_recall, draw_sheet, embed, retrieve},
    learner::{STEP_VALUES, SakeTraining, step_metrics},
};
use crate::{SakeNet, official::load_imagenet_teacher};

/// One epoch of SAKE fine-tuning.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SakeRow {
    pub epoch: usize,
    pub lr: f64,
    /// CE + λ·L_kd.
    pub loss: f64,
    pub cross_entropy: f64,
    /// L_kd on the photos.
    pub knowledge: f64,
    /// Top-1 (%) of the seen-class classifier on the training batches.
    pub train_top1: f64,
    /// Top-1 (%) on held-out seen-class sketches (model selection).
    pub valid_top1: f64,
    pub valid_loss: f64,
    pub train_images_per_s: f64,
    pub epoch_seconds: f64,
}

impl MetricsRow for SakeRow {
    const HEADER: &'static str = "epoch,lr,loss,cross_entropy,knowledge,train_top1,valid_top1,valid_loss,train_images_per_s,epoch_seconds";

    fn values(&self) -> Vec<f64> {
        vec![
            self.epoch as f64,
            self.lr,
            self.loss,
            self.cross_entropy,
            self.knowledge,
            self.train_top1,
            self.valid_top1,
            self.valid_loss,
            self.train_images_per_s,
            self.epoch_seconds,
        ]
    }

    fn from_values(v: &[f64]) -> Self {
        Self {
            epoch: v[0] as usize,
            lr: v[1],
            loss: v[2],
            cross_entropy: v[3],
            knowledge: v[4],
            train_top1: v[5],
            valid_top1: v[6],
            valid_loss: v[7],
            train_images_per_s: v[8],
            epoch_seconds: v[9],
        }
    }
}

impl EpochMetrics for SakeRow {
    fn record(&mut self, part: Part, means: &EpochMeans) {
        match part {
            Part::Train => {
                let [loss, ce, kd, top1] = STEP_VALUES.map(|name| means.of(|n| n == name));
                (
                    self.loss,
                    self.cross_entropy,
                    self.knowledge,
                    self.train_top1,
                ) = (loss, ce, kd, top1);
                self.lr = means.of(|n| n == "Learning Rate");
            }
            Part::Valid => {
                self.valid_top1 = means.of(|n| n == "Accuracy");
                self.valid_loss = means.of(|n| n == "Loss");
            }
        }
    }

    core_train::epoch_timing!();

    fn summary(&self) -> String {
        format!(
            "lr {:.2e} | loss {:.4} (CE {:.4}, KD {:.4}) | train top-1 {:5.1}% | held-out sketches top-1 {:5.1}% | {:.0} img/s | {:.0}s",
            self.lr,
            self.loss,
            self.cross_entropy,
            self.knowledge,
            self.train_top1,
            self.valid_top1,
            self.train_images_per_s,
            self.epoch_seconds,
        )
    }

    fn reference_loss(&self) -> Option<f64> {
        Some(self.loss)
    }
}

/// Where the teacher came from, for the report.
#[derive(Clone, Debug)]
pub struct TeacherNote {
    pub source: String,
    /// The pre-training stage's final validation top-1 (%), where it ran.
    pub valid_top1: Option<f64>,
}

/// Trains `config` into `session`'s run directory (fresh or resumed) and evaluates retrieval.
pub fn fit<B: AutodiffBackend>(
    config: SakeExperiment,
    mut session: Session,
    device: &B::Device,
) -> Result<Outcome> {
    let t = &config.train;
    B::seed(device, t.seed);
    let resume_epoch = session.resume_epoch();
    // Data first: a missing or malformed dataset leaves no run directory behind.
    let sources = config.sources()?;
    if let Some(file) = &config.teacher.file
        && !file.is_file()
    {
        anyhow::bail!(
            "teacher.file = {}: no such file (Cadene's se_resnet50-ce0d4300.pth, `sake.md` §5)",
            file.display()
        );
    }
    let previous_rows = session.previous_rows(read_rows::<SakeRow>, |r| r.epoch)?;
    let run = session.open::<B, _>(&config, device)?;
    let meta = session.meta.clone();
    let verbose = session.verbose;
    if verbose {
        println!("run directory: {}", run.path.display());
    }
    let size = sources.image_size;
    let (training, teacher_note) = match resume_epoch {
        Some(epoch) => {
            let template = SakeTraining {
                student: config.model.init::<B>(device),
                teacher: config.model.init_teacher::<B>(device),
                loss: config.loss.clone(),
            };
            let file = run.checkpoint_dir().join(format!("model-{epoch}.mpk"));
            let training = RunDir::load_model(template, &file, device).with_context(|| {
                format!("{} is not a checkpoint of this run's model", file.display())
            })?;
            (training, read_teacher_note(&run))
        }
        None => {
            let (teacher, note) = teacher::<B>(&config, &run, verbose, device)?;
            write_atomically(
                &run.file("teacher.txt"),
                format!(
                    "{}\n{}\n",
                    note.source,
                    note.valid_top1.map_or("-".into(), |v| v.to_string())
                )
                .as_bytes(),
            )?;
            let student = SakeNet::from_teacher(&teacher, &config.model, device);
            let training = SakeTraining {
                student,
                teacher,
                loss: config.loss.clone(),
            };
            (training, note)
        }
    };
    let parameters = core_nets::count_parameters::<B, _>(&training.student);
    if verbose {
        println!("model: {}", config.model_summary(parameters));
        println!(
            "teacher: {}{}",
            teacher_note.source,
            teacher_note
                .valid_top1
                .map_or(String::new(), |v| format!(" (valid top-1 {v:.1} %)"))
        );
    }
    let log = EpochLog::resumed(previous_rows);
    let (student, selection) = if config.finetune {
        match finetune::<B>(
            &config,
            &sources,
            &run,
            training,
            resume_epoch,
            log.clone(),
            verbose,
            device,
        ) {
            Ok(done) => done,
            Err(error) => {
                let rows = log.rows();
                let _ = write_report(
                    &run,
                    &meta,
                    &config,
                    parameters,
                    &rows,
                    &teacher_note,
                    None,
                    &sources,
                    "",
                    Some(&format!("{error:#}")),
                );
                return Err(error);
            }
        }
    } else {
        use burn::module::AutodiffModule;
        let selection =
            "no fine-tuning: the teacher's trunk under the SVD-initialised heads".into();
        (training.student.valid(), selection)
    };
    student
        .clone()
        .save_file(run.file("model"), &AtomicRecorder)
        .with_context(|| format!("writing {}", run.file("model.mpk").display()))?;
    let queries = embed(&student, &sources.queries, &config, size, device)?;
    let gallery = embed(&student, &sources.gallery, &config, size, device)?;
    let retrieval = retrieve(&queries, &gallery, &config)?;
    draw_precision_recall(
        &retrieval,
        config.model.hashing_dim,
        &run.file("pr-curves.png"),
    )?;
    draw_sheet(
        &retrieval,
        &sources,
        &queries,
        &gallery,
        &run.file("retrieval.png"),
    )?;
    write_atomically(
        &run.file("retrieval.json"),
        retrieval_json(&retrieval, &config).to_string().as_bytes(),
    )?;
    let rows = log.rows();
    write_report(
        &run,
        &meta,
        &config,
        parameters,
        &rows,
        &teacher_note,
        Some(&retrieval),
        &sources,
        &selection,
        None,
    )?;
    let summary = retrieval_summary(&retrieval, &config);
    if verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    let k = config.eval.precision_k;
    let extra = vec![
        (format!("P@{k}, real (%)"), 100.0 * retrieval.real.precision),
        (
            format!("mAP@all, {} bits (%)", retrieval.bits),
            100.0 * retrieval.binary.map_all,
        ),
        (
            format!("P@{k}, {} bits (%)", retrieval.bits),
            100.0 * retrieval.binary.precision,
        ),
    ];
    Ok(Outcome {
        metric: 100.0 * retrieval.real.map_all,
        summary,
        run,
        extra,
    })
}

/// "unseen mAP@all 41.2 %, P@100 38.0 % (32-d); 32-bit ITQ: 35.1 %, 33.3 %".
pub fn retrieval_summary(r: &Retrieval, config: &SakeExperiment) -> String {
    let k = config.eval.precision_k;
    format!(
        "unseen mAP@all {:.2} %, P@{k} {:.2} % ({}-d); {}-bit ITQ: mAP@all {:.2} %, P@{k} {:.2} %",
        100.0 * r.real.map_all,
        100.0 * r.real.precision,
        config.model.hashing_dim,
        r.bits,
        100.0 * r.binary.map_all,
        100.0 * r.binary.precision
    )
}

fn retrieval_json(r: &Retrieval, config: &SakeExperiment) -> serde_json::Value {
    let scores = |s: &crate::retrieval::RetrievalScores| {
        serde_json::json!({
            "map_all": s.map_all,
            "map_top": s.map_top,
            "precision": s.precision,
            "precision_k": s.precision_k,
            "queries": s.queries,
        })
    };
    serde_json::json!({
        "real": scores(&r.real),
        "binary": scores(&r.binary),
        "bits": r.bits,
        "dim": config.model.hashing_dim,
        "map_reduction": config.eval.map_reduction,
    })
}

/// The teacher of `config`: loaded from `teacher.file`, or this run's pre-trained one
/// (`teacher/model.mpk`, trained now if absent), converted to the CSE-ResNet.
fn teacher<B: AutodiffBackend>(
    config: &SakeExperiment,
    run: &RunDir,
    verbose: bool,
    device: &B::Device,
) -> Result<(ResNet<B>, TeacherNote)> {
    if let Some(file) = &config.teacher.file {
        let (teacher, report) = load_imagenet_teacher::<B>(&config.model, file, device)?;
        return Ok((
            teacher,
            TeacherNote {
                source: format!("{} ({})", file.display(), report.summary()),
                valid_top1: None,
            },
        ));
    }
    let pretrain = config
        .teacher
        .pretrain
        .as_ref()
        .context("[teacher.pretrain] or teacher.file")?;
    let plain_config = ResNetConfig {
        se_condition: 0,
        ..config.model.teacher_config()
    };
    let stage = RunDir {
        path: run.path.join("teacher"),
    };
    fs::create_dir_all(&stage.path)
        .with_context(|| format!("creating {}", stage.path.display()))?;
    let weights = stage.file("model.mpk");
    let (plain, valid_top1) = if weights.is_file() {
        let plain = RunDir::load_model(plain_config.init::<B>(device), &weights, device)?;
        let rows = fs::read_to_string(stage.file("metrics.csv"))
            .ok()
            .and_then(|text| EpochRow::read_csv(&text).ok())
            .unwrap_or_default();
        (plain, rows.last().map(|r| r.valid_top1))
    } else {
        pretrain_teacher::<B>(config, pretrain, &plain_config, &stage, verbose, device)?
    };
    Ok((
        plain.conditioned(config.model.backbone.se_condition),
        TeacherNote {
            source: format!(
                "pre-trained in this run on ShapeWorld photos of all {} classes ({} images, {} epochs; teacher/)",
                config.model.teacher_classes, pretrain.train_size, pretrain.train.epochs
            ),
            valid_top1,
        },
    ))
}

/// The stand-in for ImageNet pre-training: a plain SE-ResNet classifier on ShapeWorld photos of
/// every teacher class, with the classification loop (`teacher/metrics.csv`, checkpoints).
fn pretrain_teacher<B: AutodiffBackend>(
    config: &SakeExperiment,
    pretrain: &TeacherPretrain,
    plain_config: &ResNetConfig,
    stage: &RunDir,
    verbose: bool,
    device: &B::Device,
) -> Result<(ResNet<B>, Option<f64>)> {
    let SakeData::Shapeworld {
        world,
        normalization,
        ..
    } = &config.data
    else {
        anyhow::bail!("[teacher.pretrain] needs ShapeWorld data");
    };
    let world = ShapeWorld {
        num_classes: config.model.teacher_classes,
        ..world.clone()
    };
    let t = &pretrain.train;
    let images = ClassificationBatcher {
        normalization: *normalization,
    };
    let set = |split, len| {
        Arc::new(ShapeWorldClassification {
            world: world.clone(),
            split,
            len,
        })
    };
    let train_loader = EpochLoader::<B, _, _>::new(
        set(Split::Train, pretrain.train_size),
        images.clone(),
        t.batch_size,
        device.clone(),
    )
    .shuffle(t.seed)
    .workers(t.num_workers);
    let valid_loader = EpochLoader::<B::InnerBackend, _, _>::new(
        set(Split::Val, pretrain.valid_size),
        images,
        t.batch_size,
        device.clone(),
    )
    .workers(t.num_workers);
    if verbose {
        println!(
            "teacher pre-training: SE-ResNet on {} ShapeWorld photos of {} classes, {} epochs (teacher/)",
            pretrain.train_size, config.model.teacher_classes, t.epochs
        );
    }
    let statuses = [train_loader.status(), valid_loader.status()];
    let log = EpochLog::default();
    let outcome = core_train::fit_classifier(
        plain_config.init::<B>(device),
        Arc::new(train_loader),
        Arc::new(valid_loader),
        FitOptions {
            run: stage,
            train: t,
            num_classes: config.model.teacher_classes,
            iters_per_epoch: pretrain.train_size.div_ceil(t.batch_size),
            train_images: pretrain.train_size,
            resume_epoch: None,
            log: log.clone(),
            stop: datasets::stop_on_load_failure(&statuses),
            grad_accumulation: None,
        },
    )
    .context("the teacher's pre-training")?;
    // Back on the autodiff backend: the teacher's record, loaded into a fresh autodiff model.
    let model = <ResNet<B> as burn::module::AutodiffModule<B>>::from_inner(outcome.model);
    model
        .clone()
        .save_file(stage.file("model"), &AtomicRecorder)
        .with_context(|| format!("writing {}", stage.file("model.mpk").display()))?;
    let rows = log.rows();
    core_train::plot::draw_curves(
        &rows,
        "SAKE teacher pre-training (ShapeWorld photos)",
        &stage.file("curves.png"),
    )?;
    Ok((model, rows.last().map(|r| r.valid_top1)))
}

fn read_teacher_note(run: &RunDir) -> TeacherNote {
    let text = fs::read_to_string(run.file("teacher.txt")).unwrap_or_default();
    let mut lines = text.lines();
    TeacherNote {
        source: lines.next().unwrap_or("(teacher.txt missing)").to_string(),
        valid_top1: lines.next().and_then(|v| v.parse().ok()),
    }
}

/// SAKE fine-tuning; returns the selected student (best held-out seen-sketch top-1 whose
/// checkpoint is kept, else the last) and how it was selected.
#[allow(clippy::too_many_arguments)]
fn finetune<B: AutodiffBackend>(
    config: &SakeExperiment,
    sources: &SakeSources,
    run: &RunDir,
    training: SakeTraining<B>,
    resume_epoch: Option<usize>,
    log: EpochLog<SakeRow>,
    verbose: bool,
    device: &B::Device,
) -> Result<(SakeNet<B::InnerBackend>, String)> {
    let t = &config.train;
    let size = sources.image_size;
    let zipped = Zipped::new(
        sources.train_sketches.clone(),
        sources.train_photos.clone(),
        [config.batching.sketches, config.batching.photos],
        size,
        config.augment.clone(),
        t.seed,
    );
    let steps = zipped.steps();
    if steps == 0 {
        anyhow::bail!(
            "{} training sketches and {} photos give no step of {} + {}",
            sources.train_sketches.len(),
            sources.train_photos.len(),
            config.batching.sketches,
            config.batching.photos
        );
    }
    let step_size = zipped.step_size();
    let epoch = zipped.epoch.clone();
    let batcher = SakeBatcher {
        normalization: config.data.normalization(),
        relations: sources.relations.clone(),
    };
    let skip = config.data.skip_corrupt();
    let train_loader =
        EpochLoader::<B, _, _>::new(Arc::new(zipped), batcher.clone(), step_size, device.clone())
            .workers(t.num_workers)
            .sharing_epoch(epoch)
            .starting_at_epoch(resume_epoch.unwrap_or(0))
            .skip_failures(skip);
    let valid_loader = EpochLoader::<B::InnerBackend, _, _>::new(
        Arc::new(Plain {
            set: sources.valid_sketches.clone(),
            size,
        }),
        batcher,
        config.eval.batch_size,
        device.clone(),
    )
    .workers(t.num_workers)
    .skip_failures(skip);
    if verbose {
        println!(
            "data: {} sketches + {} photos of {} seen classes ({} steps of {} + {}), {} held-out sketches, {} epochs",
            sources.train_sketches.len(),
            sources.train_photos.len(),
            sources.seen_names.len(),
            steps,
            config.batching.sketches,
            config.batching.photos,
            sources.valid_sketches.len(),
            t.epochs
        );
    }
    let statuses = [train_loader.status(), valid_loader.status()];
    let optimizer = t.optimizer.adam().init::<B, SakeTraining<B>>();
    let outcome = core_train::fit_supervised_with(
        training,
        optimizer,
        Arc::new(train_loader),
        Arc::new(valid_loader),
        FitOptions {
            run,
            train: t,
            num_classes: config.model.num_classes,
            iters_per_epoch: steps,
            train_images: steps * step_size,
            resume_epoch,
            log: log.clone(),
            stop: datasets::stop_on_load_failure(&statuses),
            grad_accumulation: None,
        },
        |training| {
            let [loss, ce, kd, top1] = step_metrics();
            training
                .metric_train_numeric(loss)
                .metric_train_numeric(ce)
                .metric_train_numeric(kd)
                .metric_train_numeric(top1)
                .metric_valid_numeric(AccuracyMetric::new())
                .metric_valid_numeric(LossMetric::new())
        },
    )?;
    let template = SakeTraining {
        student: config.model.init::<B::InnerBackend>(device),
        teacher: config.model.init_teacher::<B::InnerBackend>(device),
        loss: config.loss.clone(),
    };
    let (selected, selection) = run.select_best_epoch(
        &log.rows(),
        |r| (r.epoch, r.valid_top1),
        "held-out seen-class sketch top-1",
        template,
        outcome.model,
        device,
    )?;
    Ok((selected.student, selection))
}

/// `curves.png` and `report.md`.
#[allow(clippy::too_many_arguments)]
pub fn write_report(
    run: &RunDir,
    meta: &RunMeta,
    config: &SakeExperiment,
    parameters: usize,
    rows: &[SakeRow],
    teacher: &TeacherNote,
    retrieval: Option<&Retrieval>,
    sources: &SakeSources,
    selection: &str,
    stopped: Option<&str>,
) -> Result<()> {
    let series = |pick: fn(&SakeRow) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.epoch as f64, pick(r))).collect()
    };
    if !rows.is_empty() {
        draw_panels(
            &[
                Panel {
                    name: "loss".into(),
                    series: vec![
                        ("total".into(), series(|r| r.loss)),
                        ("cross-entropy".into(), series(|r| r.cross_entropy)),
                        ("knowledge preservation".into(), series(|r| r.knowledge)),
                    ],
                },
                Panel {
                    name: "seen-class top-1 (%)".into(),
                    series: vec![
                        ("train batches".into(), series(|r| r.train_top1)),
                        ("held-out sketches".into(), series(|r| r.valid_top1)),
                    ],
                },
            ],
            "SAKE fine-tuning",
            &run.file("curves.png"),
        )?;
    }
    let mut md = String::new();
    let seconds: f64 = rows.iter().map(|r| r.epoch_seconds).sum();
    write_header(
        &mut md,
        "SAKE: zero-shot sketch-based image retrieval",
        meta,
        seconds,
        rows.len(),
        &config.model_summary(parameters),
        stopped,
    );
    let _ = writeln!(md, "{}\n", config.description);
    let _ = writeln!(md, "## Data\n");
    let _ = writeln!(
        md,
        "- training: {} sketches + {} photos of {} seen classes, {} + {} per step\n- model selection: {} held-out seen-class sketches\n- zero-shot: {} query sketches against {} gallery photos of {} unseen classes ({})\n",
        group_thousands(sources.train_sketches.len()),
        group_thousands(sources.train_photos.len()),
        sources.seen_names.len(),
        config.batching.sketches,
        config.batching.photos,
        group_thousands(sources.valid_sketches.len()),
        group_thousands(sources.queries.len()),
        group_thousands(sources.gallery.len()),
        sources.unseen_names.len(),
        sources.unseen_names.join(", ")
    );
    let _ = writeln!(md, "## Teacher\n\n{}", teacher.source);
    if let Some(top1) = teacher.valid_top1 {
        let _ = writeln!(md, "\nValidation top-1 after pre-training: {top1:.2} %.");
    }
    let _ = writeln!(
        md,
        "\nλ = {} (knowledge preservation), kd_lambda {}, kdneg_lambda {}.\n",
        config.loss.sake_lambda, config.loss.kd_lambda, config.loss.kdneg_lambda
    );
    if let Some(r) = retrieval {
        let k = config.eval.precision_k;
        let _ = writeln!(md, "## Zero-shot retrieval\n");
        if !selection.is_empty() {
            let _ = writeln!(md, "Model: {selection}.\n");
        }
        let top = config.eval.top;
        let _ = write!(md, "| features | mAP@all | P@{k} |");
        if let Some(top) = top {
            let _ = write!(md, " mAP@{top} |");
        }
        let _ = writeln!(
            md,
            "\n|---|---|---|{}",
            if top.is_some() { "---|" } else { "" }
        );
        for (name, s) in [
            (
                format!("real-valued, {}-d", config.model.hashing_dim),
                &r.real,
            ),
            (format!("binary, {} bits (ITQ)", r.bits), &r.binary),
        ] {
            let _ = write!(
                md,
                "| {name} | {:.2} % | {:.2} % |",
                100.0 * s.map_all,
                100.0 * s.precision
            );
            if let Some(v) = s.map_top {
                let _ = write!(md, " {:.2} % |", 100.0 * v);
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(
            md,
            "\nmAP reduction: {:?}; ITQ fitted on {:?}, {} iterations, seed {}. Chance mAP is about the fraction of the gallery in the query's class (1/{} for balanced classes).\n",
            config.eval.map_reduction,
            config.eval.itq.fit_on,
            config.eval.itq.n_iter,
            config.eval.itq.seed,
            sources.unseen_names.len()
        );
        let _ = writeln!(
            md,
            "![precision–recall](pr-curves.png)\n\n![retrieval](retrieval.png)\n"
        );
    }
    if !rows.is_empty() {
        let _ = writeln!(md, "## Fine-tuning\n\n![curves](curves.png)\n");
        let _ = writeln!(
            md,
            "| epoch | lr | loss | CE | KD | train top-1 | held-out top-1 | s |\n|---|---|---|---|---|---|---|---|"
        );
        for r in rows {
            let _ = writeln!(
                md,
                "| {} | {:.2e} | {:.4} | {:.4} | {:.4} | {:.1} % | {:.1} % | {:.0} |",
                r.epoch,
                r.lr,
                r.loss,
                r.cross_entropy,
                r.knowledge,
                r.train_top1,
                r.valid_top1,
                r.epoch_seconds
            );
        }
    }
    write_atomically(&run.file("report.md"), md.as_bytes())
        .with_context(|| format!("writing {}", run.file("report.md").display()))
}
