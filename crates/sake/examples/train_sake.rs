//! SAKE through the library API, no `vireo` binary: train the smoke preset (teacher pre-training
//! on ShapeWorld photos, then SAKE fine-tuning), then rank a folder of unseen-class photos for an
//! unseen-class sketch written as a PNG.
//!
//! `cargo run --release -p sake --example train_sake [-- --set train.epochs=1 …]`

use burn::backend::{Autodiff, Flex};
use core_train::{Experiment, InferOptions, Session, Weights};
use datasets::{
    Split,
    shapeworld::{Hierarchy, rgb_picture},
};
use sake::{SAKE, experiment::config::SakeData};

fn main() -> anyhow::Result<()> {
    // `--set key=value` pairs from the command line change the preset, as in `vireo train`.
    let overrides: Vec<String> = std::env::args().skip(1).filter(|a| a != "--set").collect();
    let config = SAKE.config("smoke", &overrides)?;
    let SakeData::Shapeworld { world, .. } = config.data.clone() else {
        unreachable!("the smoke preset trains on ShapeWorld")
    };
    let device = Default::default();

    let session = Session::new("sake", "smoke", "runs");
    let outcome = SAKE.fit::<Autodiff<Flex>>(config.clone(), session, &device)?;
    println!(
        "trained: {} in {}",
        outcome.summary,
        outcome.run.path.display()
    );

    // A gallery of unseen-class photos and one unseen-class sketch, as image files.
    let unseen = Hierarchy::UNSEEN;
    let gallery = outcome.run.file("example-gallery");
    std::fs::create_dir_all(&gallery)?;
    for i in 0..12 {
        let (scene, label) = world.photo(Split::Test, 10_000 + i, &unseen);
        let name = format!("{i:02}-{}.png", unseen[label].name());
        rgb_picture(&scene.render(), [scene.size; 2]).save(gallery.join(name))?;
    }
    let sketch = world.sketch(Split::Test, 10_000, &unseen);
    let png = outcome.run.file("example-sketch.png");
    rgb_picture(&sketch.pixels, [sketch.size; 2]).save(&png)?;
    let weights = Weights::Run {
        file: outcome.run.final_weights()?,
        run: outcome.run,
        config,
    };
    let options = InferOptions {
        out: "predictions".into(),
        top_k: 4,
        gallery: Some(gallery),
        backgrounds: None,
    };
    let predictions = SAKE.predict::<Flex>(weights, &[png], &options, &device)?;
    println!("query sketch: a {}", sketch.class.name());
    for line in &predictions[0].lines {
        println!("  {line}");
    }
    Ok(())
}
