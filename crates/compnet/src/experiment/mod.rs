//! The CompNet experiment (`vireo train compnet`): the DCNN (trained first on the L0 images), the
//! initialisation (vMF dictionary, mixtures by spectral clustering and ML/EM, occluder models,
//! CN-WACV's Bernoulli model), CN-vMF's end-to-end training on burn-train's Learner (the released
//! recipe), then accuracy per occlusion level and occluder kind for the DCNN, CN-WACV and CN-vMF,
//! and occluder localisation (ROC, AUC) with pictures; `metrics.csv`, `curves.png`,
//! `accuracy.png`, `roc.png`, `occluders-L*.png`, `evaluation.json`, `report.md`, `model.mpk`.
//!
//! * [`config`]: the TOML configuration and its validation.
//! * [`data`]: ShapeWorld's occlusion task and the background images.
//! * [`train`]: the run's stages; [`evaluate`]: the evaluation, pictures and report.

pub mod config;
pub mod data;
pub mod evaluate;
pub mod train;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::{AutodiffBackend, Backend};
use core_nets::vgg::{VggConfig, VggCut};
use core_train::{
    Card, Experiment, InferOptions, ModelCount, Outcome, Prediction, Preset, RunDir, Session,
    Weights,
};

pub use config::CompNetExperiment;

use crate::{
    bernoulli::BernoulliNet, dcnn::VggClassifier, model::CompNet, score::MapMode,
    score::occluder_map,
};

/// The CompNet experiment (`vireo train compnet`).
pub struct CompNetPaper;

/// The registry entry.
pub const COMPNET: CompNetPaper = CompNetPaper;

const CARD: Card = Card {
    name: "compnet",
    description: "Compositional Nets (arXiv 1905.11826, 2003.04490, 1911.08571): vMF compositional heads robust to occlusion, CN-WACV's DCNN switch, occluder localisation",
    presets: &[Preset {
        name: "smoke",
        toml: include_str!("../../presets/smoke.toml"),
    }],
    study_metric: "CN-vMF mean top-1 over L0–L3 (%)",
};

/// A run's three models.
pub struct RunModels<B: Backend> {
    pub dcnn: VggClassifier<B>,
    /// CN-vMF from `file`.
    pub model: CompNet<B>,
    pub bernoulli: BernoulliNet<B>,
    /// The run's `model.mpk` or newest intact checkpoint.
    pub file: PathBuf,
}

/// A run's three models: the DCNN, CN-vMF (its `model.mpk` or newest intact checkpoint) and
/// CN-WACV's Bernoulli model.
pub fn load_run<B: Backend>(
    config: &CompNetExperiment,
    run: &RunDir,
    device: &B::Device,
) -> Result<RunModels<B>> {
    let dcnn_file = run.path.join("dcnn").join("model.mpk");
    let dcnn = RunDir::load_model(config.dcnn().init::<B>(device), &dcnn_file, device)
        .with_context(|| format!("{}: the run's DCNN", dcnn_file.display()))?;
    let (template, bernoulli, _) = train::load_init(config, run, &dcnn, device)?;
    let file = run.final_weights()?;
    let model = RunDir::load_model(template, &file, device)?;
    Ok(RunModels {
        dcnn,
        model,
        bernoulli,
        file,
    })
}

impl Experiment for CompNetPaper {
    type Config = CompNetExperiment;

    fn card(&self) -> &Card {
        &CARD
    }

    fn validate(&self, config: &CompNetExperiment) -> Result<()> {
        config.validate()
    }

    fn epochs(&self, config: &CompNetExperiment) -> usize {
        config.train.epochs
    }

    fn fit<B: AutodiffBackend>(
        &self,
        config: CompNetExperiment,
        session: Session,
        device: &B::Device,
    ) -> Result<Outcome> {
        train::fit::<B>(config, session, device)
    }

    /// Accuracy per level and occluder localisation of a run's models on its test images.
    fn evaluate<B: Backend>(
        &self,
        config: CompNetExperiment,
        run: &RunDir,
        device: &B::Device,
    ) -> Result<String> {
        let m = load_run::<B>(&config, run, device)?;
        let e = evaluate::evaluate(&config, &m.dcnn, &m.model, &m.bernoulli, None, device)?;
        Ok(format!("{}: {}", m.file.display(), e.summary()))
    }

    /// The class of each image by CN-vMF (all classes' scores listed) and its occluder map for
    /// that class, drawn beside the image.
    fn predict<B: Backend>(
        &self,
        weights: Weights<CompNetExperiment>,
        images: &[PathBuf],
        options: &InferOptions,
        device: &B::Device,
    ) -> Result<Vec<Prediction>> {
        let Weights::Run { run, config, file } = weights else {
            bail!(
                "compnet predicts with a vireo run (--run DIR); the released best.pth is not read yet"
            );
        };
        let model = RunDir::load_model(load_run::<B>(&config, &run, device)?.model, &file, device)?;
        let size = config.data.image_size();
        let names = config.data.class_names();
        std::fs::create_dir_all(&options.out)
            .with_context(|| format!("creating {}", options.out.display()))?;
        let mut predictions = Vec::new();
        for path in images {
            let image = image::open(path)
                .with_context(|| format!("reading {}", path.display()))?
                .to_rgb8();
            let image = image::imageops::resize(
                &image,
                size as u32,
                size as u32,
                image::imageops::FilterType::Triangle,
            );
            let pixels: Vec<f32> = image.as_raw().iter().map(|&b| b as f32 / 255.0).collect();
            let features = evaluate::features_of(
                &model.backbone,
                std::iter::once((pixels.as_slice(), [size, size])),
                &config.data.normalization(),
                device,
            );
            let [_, _, h, w] = features.dims();
            let out = model.forward_features(features);
            let p: Vec<f32> = out
                .probabilities
                .clone()
                .into_data()
                .iter::<f32>()
                .collect();
            let mut order: Vec<usize> = (0..p.len()).collect();
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
            let class = order[0];
            let map = occluder_map(&out.terms, 0, class, MapMode::MixtureBg);
            let picture = options.out.join(format!(
                "{}-occluders.png",
                path.file_stem().and_then(|s| s.to_str()).unwrap_or("image")
            ));
            let tiles = [
                datasets::shapeworld::tile(image.clone(), "image"),
                datasets::shapeworld::tile(
                    evaluate::map_picture(&map, [h, w], size, 7.0),
                    "occluder map (CN-vMF, [0, 7])",
                ),
            ];
            let refs: Vec<(&image::RgbImage, &str)> = tiles
                .iter()
                .map(|t| (&t.image, t.caption.as_str()))
                .collect();
            core_train::plot::draw_tile_grid(
                &refs,
                2,
                &format!("{}: {}", path.display(), names[class]),
                &picture,
            )?;
            let occluded = map.iter().filter(|&&v| v > 0.0).count();
            let mut lines: Vec<String> = order
                .iter()
                .take(options.top_k)
                .map(|&c| format!("{:>6.2} %  {}", 100.0 * p[c], names[c]))
                .collect();
            lines.push(format!(
                "occluder map: {occluded} of {} positions better explained by an occluder ({})",
                map.len(),
                picture.display()
            ));
            predictions.push(Prediction {
                image: path.clone(),
                lines,
                result: serde_json::json!({
                    "class": names[class],
                    "probabilities": order.iter().take(options.top_k).map(|&c| serde_json::json!({"class": names[c], "p": p[c]})).collect::<Vec<_>>(),
                    "occluder_map": { "height": h, "width": w, "values": map },
                }),
                picture: Some(picture),
            });
        }
        Ok(predictions)
    }

    fn models(&self) -> Vec<ModelCount> {
        use burn::backend::Flex;
        let device = Default::default();
        let mut models = Vec::new();
        for (name, cut) in [
            ("vgg16_pool5", VggCut::Pool5),
            ("vgg16_pool4", VggCut::Pool4),
        ] {
            models.push(ModelCount {
                name: name.into(),
                group: "CompNet backbone (VGG-16 features, frozen)".into(),
                parameters: core_nets::count_parameters::<Flex, _>(
                    &VggConfig::vgg16(cut).init::<Flex>(&device),
                ),
                gflops: None,
            });
        }
        // The released head: 512 kernels of 512, 12 classes × 4 mixtures; its mixtures' size
        // comes from the init files, so the kernels are counted alone.
        models.push(ModelCount {
            name: "compnet_vmf_kernels".into(),
            group: "CN-vMF vMF kernels (conv1o1, K = 512, D = 512)".into(),
            parameters: core_nets::count_parameters::<Flex, _>(
                &crate::vmf::VmfKernels::<Flex>::from_rows(burn::tensor::Tensor::zeros(
                    [512, 512],
                    &device,
                )),
            ),
            gflops: None,
        });
        models
    }
}
