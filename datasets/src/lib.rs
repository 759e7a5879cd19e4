//! Every image that enters a vireo model.
//!
//! * [`shapeworld`]: the embedded default, a procedural world of textured shape classes on
//!   textured background "stuff", rendered on the fly and deterministic from (seed, split, index).
//! * [`classification`]: burn datasets and the batcher that turns labelled images into tensors.
//!
//! Real-format loaders and augmentation pipelines grow here (datasets issue).

pub mod classification;
pub mod formats;
pub mod image_folder;
pub mod loader;
pub mod shapeworld;

pub use classification::{
    ClassificationBatch, ClassificationBatcher, ClassificationItem, Normalization,
};
pub use image_folder::{FolderError, ImageFolder};
pub use loader::EpochLoader;
pub use shapeworld::{ShapeClass, ShapeWorld, ShapeWorldClassification, Split};
