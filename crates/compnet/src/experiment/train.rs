//! One CompNet run: the DCNN (`dcnn/`), the initialisation (`init/`: dictionary, mixtures,
//! occluder models, CN-WACV's Bernoulli model), CN-vMF's end-to-end training on the Learner
//! (Adagrad, per-epoch exponential decay, backbone frozen), model selection on L0 validation
//! accuracy, then the evaluation. Each stage is cached in the run directory, so `--resume`
//! continues where the run stopped.

use std::{fs, sync::Arc, time::Instant};

use anyhow::{Context, Result};
use burn::{
    data::dataset::Dataset,
    module::{AutodiffModule, Module, Param},
    tensor::{
        Tensor, TensorData,
        backend::{AutodiffBackend, Backend},
    },
};
use core_train::{
    AtomicRecorder, EpochLog, EpochRow, FitOptions, Outcome, RunDir, Session,
    checkpoint::write_atomically,
};
use datasets::{ClassificationBatcher, ClassificationItem, loader::EpochLoader};
use serde::{Deserialize, Serialize};

use super::{
    config::{CompNetExperiment, CompositionalFeatures},
    data::{backgrounds, l0_sets, test_items},
    evaluate::{evaluate, write_report},
};
use crate::{
    backbone::Backbone,
    bernoulli::{BernoulliNet, BernoulliSettings},
    binary::class_threshold,
    dcnn::Dcnn,
    features::{cosine_maps, feature_maps},
    head::CompositionalHead,
    init::{
        ClassMixtures, Map, bernoulli_for_mixtures, bernoulli_occluder, class_mixtures, dictionary,
        fill_rows, valid_positions,
    },
    model::CompNet,
    official::{background_maps, load_released_init, occluder_models_tensor},
    vmf::VmfKernels,
};

/// What the initialisation found (`init/init.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InitNote {
    /// Occluder models of CN-vMF (`[N, K]`).
    pub occluders: usize,
    /// Clusters surviving per class (before repeating to M rows).
    pub clusters: Vec<Vec<usize>>,
    /// Per class: the binary encoding's distance threshold (none: no training image, or the
    /// released mixtures).
    pub class_thresholds: Vec<Option<f64>>,
    /// Where the dictionary and mixtures come from.
    pub source: String,
    /// CN-WACV's distance threshold (a kernel is on where `1 − cos` is below it).
    pub bernoulli_threshold: f64,
    pub mixture_size: [usize; 2],
    pub seconds: f64,
    /// The DCNN's L0 validation top-1 (%).
    pub dcnn_valid_top1: Option<f64>,
}

pub fn fit<B: AutodiffBackend>(
    config: CompNetExperiment,
    mut session: Session,
    device: &B::Device,
) -> Result<Outcome> {
    let t = &config.train;
    B::seed(device, t.seed);
    let resume_epoch = session.resume_epoch();
    let previous_rows = session.previous_rows(
        |text| EpochRow::read_csv(text).map_err(anyhow::Error::msg),
        |r| r.epoch,
    )?;
    // Data first: a missing dataset or file leaves no run directory behind.
    l0_sets(&config.data)?;
    if let Some(root) = config.data.root() {
        test_items(&config.data, datasets::shapeworld::OcclusionLevel::L1)
            .with_context(|| format!("the test lists under {}", root.display()))?;
    }
    backgrounds(&config.data)?;
    if let Some(file) = &config.backbone.file
        && !file.is_file()
    {
        anyhow::bail!(
            "backbone.file = {}: no such file (torchvision's vgg16-397923af.pth)",
            file.display()
        );
    }
    let run = session.open::<B, _>(&config, device)?;
    let meta = session.meta.clone();
    let verbose = session.verbose;
    if verbose {
        println!("run directory: {}", run.path.display());
    }
    let (dcnn, dcnn_top1) = dcnn_stage::<B>(&config, &run, verbose, device)?;
    let (model, bernoulli, note) =
        init_stage::<B>(&config, &run, &dcnn, dcnn_top1, verbose, device)?;
    let model = match resume_epoch {
        Some(epoch) => {
            let file = run.checkpoint_dir().join(format!("model-{epoch}.mpk"));
            RunDir::load_model(model, &file, device).with_context(|| {
                format!("{} is not a checkpoint of this run's model", file.display())
            })?
        }
        None => model,
    };
    let parameters = head_parameters(&model.head);
    if verbose {
        let [_, _, mh, mw] = model.head.mix_model.dims();
        println!("model: {}", config.model_summary(parameters, [mh, mw]));
    }
    let log = EpochLog::resumed(previous_rows);
    let trained = match train_head::<B>(
        &config,
        &run,
        model,
        resume_epoch,
        log.clone(),
        verbose,
        device,
    ) {
        Ok(done) => done,
        Err(error) => {
            let _ = write_report(
                &run,
                &meta,
                &config,
                parameters,
                &log.rows(),
                &note,
                None,
                "",
                Some(&format!("{error:#}")),
            );
            return Err(error);
        }
    };
    let (model, selection) = trained;
    model
        .clone()
        .save_file(run.file("model"), &AtomicRecorder)
        .with_context(|| format!("writing {}", run.file("model.mpk").display()))?;
    let started = Instant::now();
    let evaluation = evaluate(
        &config,
        &dcnn.valid(),
        &model,
        &bernoulli.valid(),
        Some(&run),
        device,
    )?;
    if verbose {
        println!("evaluation: {:.0} s", started.elapsed().as_secs_f64());
    }
    write_atomically(
        &run.file("evaluation.json"),
        serde_json::to_string_pretty(&evaluation)?.as_bytes(),
    )?;
    let rows = log.rows();
    write_report(
        &run,
        &meta,
        &config,
        parameters,
        &rows,
        &note,
        Some(&evaluation),
        &selection,
        None,
    )?;
    let summary = evaluation.summary();
    if verbose {
        println!(
            "done: {summary}; report: {}",
            run.file("report.md").display()
        );
    }
    Ok(Outcome {
        metric: evaluation.mean_accuracy("CN-vMF"),
        summary,
        run,
        extra: evaluation.study_columns(),
    })
}

/// The head's trainable parameters (kernels and mixtures).
pub fn head_parameters<B: Backend>(head: &CompositionalHead<B>) -> usize {
    head.conv1o1.weight.shape().num_elements() + head.mix_model.shape().num_elements()
}

/// The DCNN of this run: `dcnn/model.mpk`, trained now (SGD, the classification loop) if absent.
pub fn dcnn_stage<B: AutodiffBackend>(
    config: &CompNetExperiment,
    run: &RunDir,
    verbose: bool,
    device: &B::Device,
) -> Result<(Dcnn<B>, Option<f64>)> {
    let stage = RunDir {
        path: run.path.join("dcnn"),
    };
    fs::create_dir_all(&stage.path)
        .with_context(|| format!("creating {}", stage.path.display()))?;
    let weights = stage.file("model.mpk");
    if weights.is_file() {
        let model = RunDir::load_model(config.dcnn().init::<B>(device), &weights, device)?;
        let rows = fs::read_to_string(stage.file("metrics.csv"))
            .ok()
            .and_then(|text| EpochRow::read_csv(&text).ok())
            .unwrap_or_default();
        return Ok((model, rows.last().map(|r| r.valid_top1)));
    }
    let t = &config.pretrain();
    let (train_set, valid_set) = l0_sets(&config.data)?;
    let images = ClassificationBatcher {
        normalization: config.data.normalization(),
    };
    let train_len = train_set.len();
    let train_loader =
        EpochLoader::<B, _, _>::new(train_set, images.clone(), t.batch_size, device.clone())
            .shuffle(t.seed)
            .workers(t.num_workers);
    let valid_loader =
        EpochLoader::<B::InnerBackend, _, _>::new(valid_set, images, t.batch_size, device.clone())
            .workers(t.num_workers);
    if verbose {
        println!(
            "DCNN: VGG features + linear classifier on {train_len} L0 training images, {} epochs (dcnn/)",
            t.epochs
        );
    }
    let statuses = [train_loader.status(), valid_loader.status()];
    let log = EpochLog::default();
    let mut start = config.dcnn().init::<B>(device);
    if let Some(file) = &config.backbone.file {
        start.features = config.backbone_choice().load_pretrained(file, device)?;
    }
    let outcome = core_train::fit_classifier(
        start,
        Arc::new(train_loader),
        Arc::new(valid_loader),
        FitOptions {
            run: &stage,
            train: t,
            num_classes: config.data.num_classes(),
            iters_per_epoch: train_len.div_ceil(t.batch_size),
            train_images: train_len,
            resume_epoch: None,
            log: log.clone(),
            stop: datasets::stop_on_load_failure(&statuses),
            grad_accumulation: None,
        },
    )
    .context("the DCNN's training")?;
    let model = <Dcnn<B> as AutodiffModule<B>>::from_inner(outcome.model);
    model
        .clone()
        .save_file(stage.file("model"), &AtomicRecorder)
        .with_context(|| format!("writing {}", weights.display()))?;
    let rows = log.rows();
    core_train::plot::draw_curves(
        &rows,
        "CompNet: the DCNN (L0 images)",
        &stage.file("curves.png"),
    )?;
    Ok((model, rows.last().map(|r| r.valid_top1)))
}

/// CN-WACV's settings: binary maps at the initialisation's distance threshold.
fn bernoulli_settings(config: &CompNetExperiment, distance_threshold: f64) -> BernoulliSettings {
    BernoulliSettings {
        cos_threshold: 1.0 - distance_threshold,
        occ: config.head.occ,
        mixtures_per_class: config.head.mixtures_per_class,
        official_padding: config.eval.bernoulli_official_padding,
    }
}

/// The features the compositional models sit on (`backbone.compositional`): the DCNN's, or
/// `backbone.file`'s ImageNet features as they are.
pub fn compositional_backbone<B: Backend>(
    config: &CompNetExperiment,
    dcnn: &Dcnn<B>,
    device: &B::Device,
) -> Result<Backbone<B>> {
    match (config.backbone.compositional, &config.backbone.file) {
        (CompositionalFeatures::Imagenet, Some(file)) => {
            config.backbone_choice().load_pretrained(file, device)
        }
        _ => Ok(dcnn.features.clone()),
    }
}

/// The templates the cached initialisation (`note`) loads into.
fn templates<B: Backend>(
    config: &CompNetExperiment,
    backbone: Backbone<B>,
    note: &InitNote,
    device: &B::Device,
) -> (CompNet<B>, BernoulliNet<B>) {
    let (occluders, [h, w], bernoulli_threshold) =
        (note.occluders, note.mixture_size, note.bernoulli_threshold);
    let (k, d) = (config.kernels(), config.backbone_choice().out_channels());
    let rows = config.data.num_classes() * config.head.mixtures_per_class;
    let kernels = || Tensor::<B, 2>::ones([k, d], device);
    let model = CompNet::new(
        backbone,
        CompositionalHead::new(
            kernels(),
            Tensor::zeros([rows, k, h, w], device),
            config.head.clone(),
        ),
        Tensor::zeros([occluders.max(1), k], device),
        config.loss.clone(),
    );
    let bernoulli = BernoulliNet {
        kernels: VmfKernels::from_rows(kernels()),
        log_alpha: Param::from_tensor(Tensor::zeros([rows, k, h, w], device)),
        valid: Param::from_tensor(Tensor::zeros([rows, 1, h, w], device)),
        occluder: Param::from_tensor(Tensor::zeros([k], device)),
        settings: bernoulli_settings(config, bernoulli_threshold),
    };
    (model, bernoulli)
}

/// A run's cached initialisation (`init/`): CN-vMF before training, CN-WACV's model, the note.
pub fn load_init<B: Backend>(
    config: &CompNetExperiment,
    run: &RunDir,
    dcnn: &Dcnn<B>,
    device: &B::Device,
) -> Result<(CompNet<B>, BernoulliNet<B>, InitNote)> {
    let dir = run.path.join("init");
    let note_file = dir.join("init.json");
    let text = fs::read_to_string(&note_file)
        .with_context(|| format!("reading {} (the run's initialisation)", note_file.display()))?;
    let note: InitNote = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a CompNet initialisation note", note_file.display()))?;
    let backbone = compositional_backbone(config, dcnn, device)?;
    let (model, bernoulli) = templates(config, backbone, &note, device);
    let model = RunDir::load_model(model, &dir.join("compnet.mpk"), device)?;
    let bernoulli = RunDir::load_model(bernoulli, &dir.join("bernoulli.mpk"), device)?;
    Ok((model, bernoulli, note))
}

fn tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The first `take` of `items` as images.
fn images(items: &[ClassificationItem], take: usize) -> Vec<(&[f32], [usize; 2])> {
    items
        .iter()
        .take(take)
        .map(|i| (i.pixels.as_slice(), i.size))
        .collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The initialisation of this run: `init/` if present, else computed now (§2.9, §2.10, §2.5).
fn init_stage<B: AutodiffBackend>(
    config: &CompNetExperiment,
    run: &RunDir,
    dcnn: &Dcnn<B>,
    dcnn_top1: Option<f64>,
    verbose: bool,
    device: &B::Device,
) -> Result<(CompNet<B>, BernoulliNet<B>, InitNote)> {
    let dir = run.path.join("init");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let note_file = dir.join("init.json");
    if note_file.is_file() {
        return load_init(config, run, dcnn, device);
    }
    let started = Instant::now();
    let backbone = compositional_backbone(config, dcnn, device)?;
    let inner = backbone.valid();
    let normalization = config.data.normalization();
    let batch = config.eval.batch_size;
    let classes = config.data.num_classes();
    let kappa = config.head.kappa;
    let init_config = config.init_config();
    // The L0 training images by class, as many as the stages use.
    let (train_set, _) = l0_sets(&config.data)?;
    let wanted = init_config
        .dictionary_images_per_class
        .max(init_config.mixture_images_per_class);
    let mut per_class: Vec<Vec<ClassificationItem>> = vec![Vec::new(); classes];
    for i in 0..train_set.len() {
        if let Some(item) = train_set.get(i) {
            if per_class[item.label].len() < wanted {
                per_class[item.label].push(item);
            }
        } else if let Some(error) = datasets::take_load_error() {
            anyhow::bail!("the initialisation's training images: {error}");
        }
    }
    let m = config.head.mixtures_per_class;
    let (k, d) = (config.kernels(), config.backbone_choice().out_channels());
    // 1. The dictionary: sampled feature vectors clustered by vMF-EM, or the released one.
    let released = match &init_config.file {
        Some(file) => Some(load_released_init(
            file,
            &config.data.class_names(),
            config.backbone.vgg.cut,
            m,
        )?),
        None => None,
    };
    let mu = match &released {
        Some(r) => {
            if r.dictionary.len() != k || r.dictionary.first().map_or(0, Vec::len) != d {
                anyhow::bail!(
                    "init.file: a dictionary of {} × {}, expected K = {k} (init.dictionary.components) × D = {d}",
                    r.dictionary.len(),
                    r.dictionary.first().map_or(0, Vec::len)
                );
            }
            r.dictionary.clone()
        }
        None => {
            let sampled: Vec<(&[f32], [usize; 2])> = per_class
                .iter()
                .flat_map(|c| images(c, init_config.dictionary_images_per_class))
                .collect();
            if verbose {
                println!(
                    "initialisation: vMF dictionary of {k} kernels from {} images ({} positions each)",
                    sampled.len(),
                    init_config.positions_per_image
                );
            }
            dictionary(
                &feature_maps(&sampled, &inner, &normalization, batch, device),
                &init_config,
            )
        }
    };
    let kernels = VmfKernels::from_rows(tensor::<B::InnerBackend, 2>(
        f32s(&mu.concat()),
        [k, d],
        device,
    ));
    // 2. Per class: clusters and mixtures (a class without training images gets empty rows).
    let class_cos: Vec<Vec<Map>> = per_class
        .iter()
        .map(|c| {
            cosine_maps(
                &images(c, init_config.mixture_images_per_class),
                &inner,
                &kernels,
                &normalization,
                batch,
                device,
            )
        })
        .collect();
    let pooled: Vec<(Vec<f64>, [usize; 3])> = class_cos
        .iter()
        .flat_map(|maps| maps.iter().take(100 / classes.max(1) + 1))
        .map(|m| {
            (
                m.values.iter().map(|c| 1.0 - c).collect(),
                [m.channels(), m.size[0], m.size[1]],
            )
        })
        .collect();
    if pooled.is_empty() {
        anyhow::bail!("no training image: nothing to initialise the compositional models from");
    }
    let bernoulli_threshold = class_threshold(&pooled);
    let (mixtures, size): (Vec<Option<ClassMixtures>>, [usize; 2]) = match &released {
        None => {
            let mixtures: Vec<Option<ClassMixtures>> = class_cos
                .iter()
                .map(|maps| {
                    (!maps.is_empty())
                        .then(|| class_mixtures(maps, kappa, bernoulli_threshold, &init_config))
                })
                .collect();
            let size = [0, 1].map(|axis| {
                mixtures
                    .iter()
                    .flatten()
                    .map(|m| m.vmf[0].size[axis])
                    .max()
                    .unwrap_or(1)
            });
            (mixtures, size)
        }
        Some(r) => {
            // The released mixtures as they are; CN-WACV's from the images each one explains best.
            let per_row = k * r.size[0] * r.size[1];
            let mixtures = class_cos
                .iter()
                .enumerate()
                .map(|(c, maps)| {
                    let unique = r.clusters[c].min(m);
                    if unique == 0 || maps.is_empty() {
                        return None;
                    }
                    let vmf: Vec<Map> = (0..unique)
                        .map(|row| Map {
                            values: r.mixtures
                                [(c * m + row) * per_row..(c * m + row + 1) * per_row]
                                .iter()
                                .map(|&v| f64::from(v))
                                .collect(),
                            size: r.size,
                        })
                        .collect();
                    let (bernoulli, clusters) =
                        bernoulli_for_mixtures(maps, &vmf, kappa, bernoulli_threshold, r.size);
                    Some(ClassMixtures {
                        vmf,
                        bernoulli,
                        clusters,
                        threshold: f64::NAN,
                    })
                })
                .collect();
            (mixtures, r.size)
        }
    };
    let positions = size[0] * size[1];
    let (mut vmf_rows, mut log_alpha, mut valid) = (Vec::new(), Vec::new(), Vec::new());
    let eps = init_config.bernoulli_epsilon;
    for (class, mix) in mixtures.iter().enumerate() {
        let Some(mix) = mix else {
            vmf_rows.extend(std::iter::repeat_n(0.0f32, m * k * positions));
            log_alpha.extend(std::iter::repeat_n(eps.ln() as f32, m * k * positions));
            valid.extend(std::iter::repeat_n(0.0f32, m * positions));
            continue;
        };
        let sizes: Vec<[usize; 2]> = class_cos[class].iter().map(|m| m.size).collect();
        let class_valid: Vec<f32> = valid_positions(&sizes, size)
            .into_iter()
            .map(|v| f32::from(u8::from(v)))
            .collect();
        for row in fill_rows(&mix.vmf, m) {
            vmf_rows.extend(f32s(&row.centred(size).values));
        }
        for row in fill_rows(&mix.bernoulli, m) {
            log_alpha.extend(
                row.centred(size)
                    .values
                    .iter()
                    .map(|&p| p.clamp(eps, 1.0 - eps).ln() as f32),
            );
            valid.extend(class_valid.iter().copied());
        }
    }
    let rows = classes * m;
    // 3. Occluder models from the background images.
    let background = background_maps(
        &backgrounds(&config.data)?,
        &inner,
        &kernels,
        &normalization,
        batch,
        device,
    );
    let occluders = occluder_models_tensor(&background, &config.head, &init_config, device)?;
    let bernoulli_occ = bernoulli_occluder(&background, bernoulli_threshold);
    let note = InitNote {
        occluders: occluders.dims()[0],
        clusters: mixtures
            .iter()
            .map(|m| m.as_ref().map_or(Vec::new(), |m| m.clusters.clone()))
            .collect(),
        class_thresholds: mixtures
            .iter()
            .map(|m| m.as_ref().map(|m| m.threshold).filter(|t| t.is_finite()))
            .collect(),
        source: match &init_config.file {
            Some(file) => format!(
                "the released dictionary and mixtures of {} (CN-WACV's from the images each mixture explains best)",
                file.display()
            ),
            None => format!(
                "vMF-EM and spectral clustering + ML/EM on {} training images",
                per_class.iter().map(Vec::len).sum::<usize>()
            ),
        },
        bernoulli_threshold,
        mixture_size: size,
        seconds: started.elapsed().as_secs_f64(),
        dcnn_valid_top1: dcnn_top1,
    };
    let [h, w] = size;
    let model = CompNet::new(
        backbone,
        CompositionalHead::new(
            tensor(f32s(&mu.concat()), [k, d], device),
            tensor(vmf_rows, [rows, k, h, w], device),
            config.head.clone(),
        ),
        occluders,
        config.loss.clone(),
    );
    let bernoulli = BernoulliNet {
        kernels: VmfKernels::from_rows(tensor(f32s(&mu.concat()), [k, d], device)),
        log_alpha: Param::from_tensor(tensor(log_alpha, [rows, k, h, w], device)),
        valid: Param::from_tensor(tensor(valid, [rows, 1, h, w], device)),
        occluder: Param::from_tensor(tensor(f32s(&bernoulli_occ), [k], device)),
        settings: bernoulli_settings(config, bernoulli_threshold),
    };
    model
        .clone()
        .save_file(dir.join("compnet"), &AtomicRecorder)
        .with_context(|| format!("writing {}", dir.join("compnet.mpk").display()))?;
    bernoulli
        .clone()
        .save_file(dir.join("bernoulli"), &AtomicRecorder)
        .with_context(|| format!("writing {}", dir.join("bernoulli.mpk").display()))?;
    write_atomically(&note_file, serde_json::to_string_pretty(&note)?.as_bytes())?;
    if verbose {
        println!(
            "initialisation: {} occluder models, clusters per class {:?}, CN-WACV threshold cos > {:.2}, {:.0} s (init/)",
            note.occluders,
            note.clusters.iter().map(Vec::len).collect::<Vec<_>>(),
            1.0 - bernoulli_threshold,
            note.seconds
        );
    }
    Ok((model, bernoulli, note))
}

/// CN-vMF's end-to-end training; returns the selected model (best L0 validation top-1 whose
/// checkpoint is kept, else the last) and how it was selected.
#[allow(clippy::too_many_arguments)]
fn train_head<B: AutodiffBackend>(
    config: &CompNetExperiment,
    run: &RunDir,
    model: CompNet<B>,
    resume_epoch: Option<usize>,
    log: EpochLog<EpochRow>,
    verbose: bool,
    device: &B::Device,
) -> Result<(CompNet<B::InnerBackend>, String)> {
    let t = &config.train;
    let (train_set, valid_set) = l0_sets(&config.data)?;
    let train_len = train_set.len();
    let images = ClassificationBatcher {
        normalization: config.data.normalization(),
    };
    let train_loader =
        EpochLoader::<B, _, _>::new(train_set, images.clone(), t.batch_size, device.clone())
            .shuffle(t.seed)
            .workers(t.num_workers)
            .starting_at_epoch(resume_epoch.unwrap_or(0));
    let valid_loader = EpochLoader::<B::InnerBackend, _, _>::new(
        valid_set,
        images,
        config.eval.batch_size,
        device.clone(),
    )
    .workers(t.num_workers);
    if verbose {
        println!(
            "CN-vMF: kernels and mixtures trained end to end on {train_len} L0 images, batch {}, {} epochs (Adagrad lr {})",
            t.batch_size, t.epochs, t.optimizer.lr
        );
    }
    let statuses = [train_loader.status(), valid_loader.status()];
    let template = model.valid();
    let outcome = core_train::fit_classifier_with(
        model,
        t.optimizer.adagrad().init::<B, CompNet<B>>(),
        Arc::new(train_loader),
        Arc::new(valid_loader),
        FitOptions {
            run,
            train: t,
            num_classes: config.data.num_classes(),
            iters_per_epoch: train_len.div_ceil(t.batch_size),
            train_images: train_len,
            resume_epoch,
            log: log.clone(),
            stop: datasets::stop_on_load_failure(&statuses),
            grad_accumulation: None,
        },
    )?;
    run.select_best_epoch(
        &log.rows(),
        |r| (r.epoch, r.valid_top1),
        "L0 validation top-1",
        template,
        outcome.model,
        device,
    )
}
