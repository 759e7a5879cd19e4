//! Pictures of each ShapeWorld task with its annotations drawn over the images, so a person can
//! check what the models are given (`cargo xtask dataset preview shapeworld --task …`).

use std::str::FromStr;

use image::{Rgb, RgbImage, imageops::FilterType};

use super::{Hierarchy, Layer, OcclusionLevel, PanopticSample, ShapeClass, ShapeWorld, Split};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreviewTask {
    Classification,
    Panoptic,
    Occlusion,
    Scale,
    Sketch,
}

impl PreviewTask {
    pub const ALL: [PreviewTask; 5] = [
        Self::Classification,
        Self::Panoptic,
        Self::Occlusion,
        Self::Scale,
        Self::Sketch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Classification => "classification",
            Self::Panoptic => "panoptic",
            Self::Occlusion => "occlusion",
            Self::Scale => "scale",
            Self::Sketch => "sketch",
        }
    }

    /// Tiles per row of the preview grid: a panoptic example's four views, occlusion's four levels,
    /// two sketch/photo pairs, or four single-view examples.
    pub const COLUMNS: usize = 4;

    /// The world a task is previewed in when the user gives none.
    pub fn default_world(self) -> ShapeWorld {
        match self {
            Self::Scale => ShapeWorld::scale_task(),
            Self::Panoptic => ShapeWorld {
                image_size: 64,
                num_classes: ShapeClass::TASK_CLASSES,
                scale_range: [0.1, 0.25],
                ..ShapeWorld::default()
            },
            _ => ShapeWorld {
                image_size: 64,
                num_classes: ShapeClass::TASK_CLASSES,
                scale_range: [0.3, 0.45],
                ..ShapeWorld::default()
            },
        }
    }
}

impl FromStr for PreviewTask {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown ShapeWorld task {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// One picture of the grid and its caption.
pub struct Tile {
    pub image: RgbImage,
    pub caption: String,
}

/// `rows` examples of `task` (train split), each as [`PreviewTask::columns`] tiles or one tile per
/// example for single-view tasks, upscaled to at least 160 pixels.
pub fn preview_tiles(world: &ShapeWorld, task: PreviewTask, rows: usize) -> Vec<Tile> {
    let mut tiles = Vec::new();
    let names = world.semantic_classes();
    match task {
        PreviewTask::Classification => {
            for index in 0..(rows * PreviewTask::COLUMNS) as u64 {
                let (scene, label) = world.classification_scene(Split::Train, index);
                tiles.push(tile(
                    to_image(&scene.render(), scene.size),
                    world.class_names()[label],
                ));
            }
        }
        PreviewTask::Panoptic => {
            for index in 0..rows as u64 {
                let s = world.panoptic_scene(Split::Train, index);
                let things: Vec<_> = s.instances.iter().map(|i| names[i.semantic]).collect();
                tiles.extend([
                    tile(
                        to_image(&s.scene.render(), s.scene.size),
                        &things.join(", "),
                    ),
                    tile(semantic_overlay(&s), "semantic"),
                    tile(instance_overlay(&s), "instances + centres"),
                    tile(offset_picture(&s), "offsets (hue = direction)"),
                ]);
            }
        }
        PreviewTask::Occlusion => {
            for index in 0..rows as u64 {
                for level in OcclusionLevel::ALL {
                    let s = world.occlusion_scene(Split::Test, index, level);
                    let mut picture = to_image(&s.scene.render(), s.scene.size);
                    tint(&mut picture, &s.occluder_mask, [255, 0, 0], 0.45);
                    outline(&mut picture, &s.object_mask, [0, 255, 0]);
                    let caption = format!(
                        "{} {level:?} {:.0}%",
                        world.class_names()[s.label],
                        100.0 * s.occluded_fraction
                    );
                    tiles.push(tile(picture, &caption));
                }
            }
        }
        PreviewTask::Scale => {
            for index in 0..(rows * PreviewTask::COLUMNS) as u64 {
                let s = world.scale_scene(Split::Train, index);
                let mut picture = to_image(&s.scene.render(), s.scene.size);
                let layers = s.scene.layers();
                for (k, object) in s.scene.objects.iter().enumerate() {
                    let mask: Vec<bool> = layers.iter().map(|l| *l == Layer::Object(k)).collect();
                    outline(&mut picture, &mask, palette(object.class.index() + 3));
                }
                let labels: Vec<_> = s
                    .targets
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| **t == 1.0)
                    .map(|(c, _)| world.class_names()[c])
                    .collect();
                tiles.push(tile(picture, &labels.join(", ")));
            }
        }
        PreviewTask::Sketch => {
            let task_classes = &ShapeClass::ALL[..ShapeClass::TASK_CLASSES];
            for index in 0..rows as u64 * 2 {
                let sketch = world.sketch(Split::Train, index, task_classes);
                let (photo, _) = world.photo(Split::Train, index, &[sketch.class]);
                let seen = if Hierarchy::UNSEEN.contains(&sketch.class) {
                    "unseen"
                } else {
                    "seen"
                };
                let group = Hierarchy::GROUPS[Hierarchy::group(sketch.class)];
                let caption = format!("{} sketch ({seen}, {group})", sketch.class.name());
                tiles.push(tile(to_image(&sketch.pixels, sketch.size), &caption));
                tiles.push(tile(
                    to_image(&photo.render(), photo.size),
                    "photo, same class",
                ));
            }
        }
    }
    tiles
}

/// A captioned tile, enlarged by an integer factor to at least 160 px wide.
pub fn tile(image: RgbImage, caption: &str) -> Tile {
    let scale = 160u32.div_ceil(image.width()).max(1);
    let image = image::imageops::resize(
        &image,
        image.width() * scale,
        image.height() * scale,
        FilterType::Nearest,
    );
    Tile {
        image,
        caption: caption.to_string(),
    }
}

/// Square RGB pixels in `[0, 1]` (HWC) as an image.
pub fn to_image(pixels: &[f32], size: usize) -> RgbImage {
    rgb_picture(pixels, [size, size])
}

/// `[H, W, 3]` pixels in `[0, 1]` as an image.
pub fn rgb_picture(pixels: &[f32], [h, w]: [usize; 2]) -> RgbImage {
    let bytes = pixels
        .iter()
        .map(|&p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    RgbImage::from_raw(w as u32, h as u32, bytes).expect("pixels hold h·w RGB values")
}

/// A fixed, well-spread colour per index (golden-angle hues).
fn palette(index: usize) -> [u8; 3] {
    let hue = (index as f32 * 137.508) % 360.0;
    let [r, g, b] = super::hsv_to_rgb(hue, 0.75, 0.95);
    [(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8]
}

fn tint(picture: &mut RgbImage, mask: &[bool], colour: [u8; 3], alpha: f32) {
    for (pixel, &m) in picture.pixels_mut().zip(mask) {
        if m {
            for c in 0..3 {
                pixel[c] = (pixel[c] as f32 * (1.0 - alpha) + colour[c] as f32 * alpha) as u8;
            }
        }
    }
}

/// Marks the pixels of `mask` that touch a pixel outside it.
fn outline(picture: &mut RgbImage, mask: &[bool], colour: [u8; 3]) {
    let (n, rows) = (picture.width() as usize, picture.height() as usize);
    let at = |r: isize, c: isize| {
        r >= 0
            && c >= 0
            && (r as usize) < rows
            && (c as usize) < n
            && mask[r as usize * n + c as usize]
    };
    for (p, &inside) in mask.iter().enumerate() {
        let (r, c) = ((p / n) as isize, (p % n) as isize);
        if inside && !(at(r - 1, c) && at(r + 1, c) && at(r, c - 1) && at(r, c + 1)) {
            picture.put_pixel(c as u32, r as u32, Rgb(colour));
        }
    }
}

fn semantic_overlay(s: &PanopticSample) -> RgbImage {
    let labels: Vec<u32> = s.semantic.iter().map(|&c| c as u32).collect();
    semantic_picture(&to_image(&s.scene.render(), s.scene.size), &labels)
}

fn instance_overlay(s: &PanopticSample) -> RgbImage {
    let ids: Vec<u32> = s.instance.iter().map(|&i| i as u32).collect();
    let centers: Vec<[usize; 2]> = s.instances.iter().map(|i| i.center).collect();
    instance_picture(&to_image(&s.scene.render(), s.scene.size), &ids, &centers)
}

/// `image` with each pixel's class colour blended in (70 %); one fixed colour per class.
pub fn semantic_picture(image: &RgbImage, semantic: &[u32]) -> RgbImage {
    let mut picture = image.clone();
    for (pixel, &class) in picture.pixels_mut().zip(semantic) {
        let colour = palette(class as usize);
        for c in 0..3 {
            pixel[c] = (pixel[c] as f32 * 0.3 + colour[c] as f32 * 0.7) as u8;
        }
    }
    picture
}

/// `image` with each instance (id > 0 in `instance`) tinted and outlined, and each `(row, col)`
/// of `centers` marked with a white dot in a black cross.
pub fn instance_picture(image: &RgbImage, instance: &[u32], centers: &[[usize; 2]]) -> RgbImage {
    let mut picture = image.clone();
    let mut ids: Vec<u32> = instance.iter().copied().filter(|&i| i > 0).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let mask: Vec<bool> = instance.iter().map(|&i| i == id).collect();
        tint(&mut picture, &mask, palette(id as usize * 5), 0.6);
        outline(&mut picture, &mask, [255, 255, 255]);
    }
    let (w, h) = (picture.width() as i64, picture.height() as i64);
    for center in centers {
        let [r, c] = center.map(|v| v as i64);
        for (dr, dc) in [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)] {
            let (rr, cc) = (r + dr, c + dc);
            if (0..h).contains(&rr) && (0..w).contains(&cc) {
                let colour = if (dr, dc) == (0, 0) {
                    [255, 255, 255]
                } else {
                    [0, 0, 0]
                };
                picture.put_pixel(cc as u32, rr as u32, Rgb(colour));
            }
        }
    }
    picture
}

/// A `[H, W]` map of values in `[0, 1]` (a centre heatmap) as a grey picture.
pub fn heatmap_picture(values: &[f32], [h, w]: [usize; 2]) -> RgbImage {
    let bytes = values
        .iter()
        .flat_map(|&v| [(v.clamp(0.0, 1.0) * 255.0).round() as u8; 3])
        .collect();
    RgbImage::from_raw(w as u32, h as u32, bytes).expect("values hold h·w entries")
}

/// The centre offsets as colours: hue the direction, brightness the length; stuff black.
fn offset_picture(s: &PanopticSample) -> RgbImage {
    let n = s.scene.size;
    let longest = s
        .offsets
        .iter()
        .map(|o| (o[0] * o[0] + o[1] * o[1]).sqrt())
        .fold(1.0f32, f32::max);
    let mut picture = RgbImage::new(n as u32, n as u32);
    for (p, o) in s.offsets.iter().enumerate() {
        if s.instance[p] == 0 {
            continue;
        }
        let hue = o[0].atan2(o[1]).to_degrees().rem_euclid(360.0);
        let length = (o[0] * o[0] + o[1] * o[1]).sqrt() / longest;
        let [r, g, b] = super::hsv_to_rgb(hue, 0.9, 0.25 + 0.75 * length);
        picture.put_pixel(
            (p % n) as u32,
            (p / n) as u32,
            Rgb([r, g, b].map(|v| (v * 255.0) as u8)),
        );
    }
    picture
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_previews_and_names_parse() {
        for task in PreviewTask::ALL {
            assert_eq!(task.name().parse::<PreviewTask>().unwrap(), task);
            let world = ShapeWorld {
                image_size: 32,
                ..task.default_world()
            };
            let tiles = preview_tiles(&world, task, 1);
            assert!(!tiles.is_empty());
            assert!(
                tiles
                    .iter()
                    .all(|t| t.image.width() >= 160 && !t.caption.is_empty())
            );
        }
        let err = "segmentation".parse::<PreviewTask>().unwrap_err();
        assert!(err.contains("panoptic"), "{err}");
    }
}
