//! `vireo dataset preview`: a PNG grid of a dataset's images with their annotations drawn over them.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use datasets::shapeworld::{PreviewTask, preview_tiles};

#[derive(Subcommand, Clone, Debug)]
pub enum DatasetCommand {
    /// Write a PNG grid of examples with their annotations.
    Preview(PreviewArgs),
}

#[derive(Args, Clone, Debug)]
pub struct PreviewArgs {
    /// The dataset: shapeworld (the embedded world).
    pub dataset: String,
    /// classification, panoptic, occlusion, scale or sketch.
    #[arg(long, default_value = "classification")]
    pub task: String,
    /// Rows of examples in the grid.
    #[arg(long, default_value_t = 4)]
    pub rows: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image side in pixels (default: the task's own).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Output PNG (default: previews/<dataset>-<task>.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn dispatch(command: DatasetCommand) -> Result<()> {
    match command {
        DatasetCommand::Preview(args) => preview(args),
    }
}

fn preview(args: PreviewArgs) -> Result<()> {
    if args.dataset != "shapeworld" {
        bail!(
            "dataset '{}': only the embedded 'shapeworld' has previews (real datasets are read from disk by the training configs)",
            args.dataset
        );
    }
    let task: PreviewTask = args.task.parse().map_err(anyhow::Error::msg)?;
    if !(1..=32).contains(&args.rows) {
        bail!("--rows {}: expected 1..=32", args.rows);
    }
    let mut world = task.default_world();
    world.seed = args.seed;
    if let Some(size) = args.image_size {
        world.image_size = size;
    }
    world.validate().map_err(anyhow::Error::msg)?;
    let tiles = preview_tiles(&world, task, args.rows);
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("previews/shapeworld-{}.png", task.name())));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let cells: Vec<_> = tiles
        .iter()
        .map(|t| (&t.image, t.caption.as_str()))
        .collect();
    let title = format!(
        "ShapeWorld {} (seed {}, {}x{} px)",
        task.name(),
        world.seed,
        world.image_size,
        world.image_size
    );
    core_train::plot::draw_tile_grid(&cells, PreviewTask::COLUMNS, &title, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}
