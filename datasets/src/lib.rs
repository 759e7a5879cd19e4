//! Every image that enters a vireo model.
//!
//! * [`shapeworld`]: the embedded default, a procedural world of textured shape classes on
//!   textured background "stuff", rendered on the fly and deterministic from (seed, split, index).
//! * [`classification`]: burn datasets and the batcher that turns labelled images into tensors.
//! * [`transforms`]: the augmentations of the ImageNet and MoCo recipes, torchvision's definitions.
//! * [`panoptic`]: scale, crop and flip of an image together with its panoptic label.
//!
//! Real-format loaders grow here (datasets issue).

pub mod classification;
pub mod formats;
pub mod image_folder;
pub mod loader;
pub mod multilabel;
pub mod panoptic;
pub mod semantic;
pub mod shapeworld;
pub mod transforms;

pub use classification::{
    ClassificationBatch, ClassificationBatcher, ClassificationItem, Normalization, balanced_subset,
};
pub use image_folder::{FolderError, ImageFolder};
pub use loader::{EpochLoader, LoaderStatus, load_failed, stop_on_load_failure, take_load_error};
pub use multilabel::{MultiLabelBatch, MultiLabelBatcher, MultiLabelItem};
pub use shapeworld::{ShapeClass, ShapeWorld, ShapeWorldClassification, ShapeWorldScale, Split};
pub use transforms::{
    Augmented, Pipeline, Transform, TransformError, TwoCrops, TwoViews, ViewPair, augmentation_rng,
};
