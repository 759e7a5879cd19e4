//! Presets and configs: the TOML a paper compiles in (`crates/<paper>/presets/*.toml`) or a
//! `--config FILE`, `--set key=value` overrides on top, then the paper's typed config. Every error
//! names the file or key and what was expected.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;

/// One preset compiled into a paper crate; its text opens with the command that runs it, what it
/// gives and what it costs.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    pub name: &'static str,
    pub toml: &'static str,
}

/// The preset called `name` among `presets` (of `paper`, for the error).
pub fn find_preset<'a>(presets: &'a [Preset], paper: &str, name: &str) -> Result<&'a Preset> {
    presets.iter().find(|p| p.name == name).with_context(|| {
        let names: Vec<_> = presets.iter().map(|p| p.name).collect();
        format!(
            "unknown preset '{name}' for {paper}: expected one of {}",
            names.join(", ")
        )
    })
}

/// Parses TOML text (a preset or `--config FILE`) and applies `--set key=value` overrides.
pub fn load_table(text: &str, origin: &str, overrides: &[String]) -> Result<toml::Table> {
    let mut table: toml::Table =
        toml::from_str(text).with_context(|| format!("{origin} is not valid TOML"))?;
    for assignment in overrides {
        set_key(&mut table, assignment)?;
    }
    Ok(table)
}

pub fn read_config_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))
}

/// The typed config of `table`; a wrong type or an unknown key is named with its dotted path
/// (`train.batch_size: invalid value: integer -4, expected usize`).
pub fn parse_config<C: DeserializeOwned>(table: toml::Table, origin: &str) -> Result<C> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim_end();
        if path == "." || path.is_empty() {
            anyhow::anyhow!("{origin}: {message}")
        } else {
            anyhow::anyhow!("{origin}: {path}: {message}")
        }
    })
}

/// A model given as a TOML file (`vireo infer --model my_resnet.toml`): the model section of a
/// config, on its own.
pub fn read_model_file<C: DeserializeOwned>(path: &Path) -> Result<C> {
    let text = read_config_file(path)?;
    let origin = path.display().to_string();
    parse_config(load_table(&text, &origin, &[])?, &origin)
}

/// `name` as a model: a `.toml` file of its config ([`read_model_file`]), or one of the named
/// presets `lookup` knows (`choices` lists them in the error).
pub fn model_preset_or_file<C: DeserializeOwned>(
    name: &str,
    lookup: impl Fn(&str) -> Option<C>,
    choices: &[&str],
) -> Result<C> {
    if name.ends_with(".toml") {
        return read_model_file(Path::new(name));
    }
    lookup(name).with_context(|| {
        format!(
            "unknown model '{name}': expected one of {}, or a model TOML file",
            choices.join(", ")
        )
    })
}

/// `a.b.c=value`: the value is read as TOML (`0.1`, `true`, `[1, 2]`, `"text"`), or as a string.
fn set_key(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .with_context(|| format!("--set {assignment}: expected key=value, e.g. train.epochs=3"))?;
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed key v"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {assignment}: '{key}' is not a dotted key like train.epochs");
    }
    let (last, parents) = parts.split_last().expect("split yields at least one part");
    let mut node = table;
    for (depth, part) in parents.iter().enumerate() {
        node = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| {
                format!(
                    "--set {key}: '{}' is a value, not a table",
                    parts[..=depth].join(".")
                )
            })?;
    }
    node.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        train: Train,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Train {
        epochs: usize,
        batch_size: usize,
    }

    const TEXT: &str = "[train]\nepochs = 2\nbatch_size = 4\n";

    fn parse(overrides: &[&str]) -> Result<Config> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        parse_config(load_table(TEXT, "preset t", &overrides)?, "preset t")
    }

    #[test]
    fn overrides_apply_and_type_errors_name_the_key() {
        assert_eq!(parse(&["train.epochs=7"]).unwrap().train.epochs, 7);
        let err = format!("{:#}", parse(&["train.batch_size=-4"]).unwrap_err());
        assert!(
            err.contains("train.batch_size") && err.contains("-4"),
            "{err}"
        );
        let err = format!("{:#}", parse(&["train.epoch=7"]).unwrap_err());
        assert!(err.contains("epoch"), "{err}");
        let err = format!("{:#}", parse(&["train.epochs.x=1"]).unwrap_err());
        assert!(err.contains("train.epochs"), "{err}");
        assert!(parse(&["noequals"]).is_err());
        assert!(parse(&["train..epochs=1"]).is_err());
    }

    #[test]
    fn unknown_presets_are_named_with_the_choices() {
        let presets = [Preset {
            name: "smoke",
            toml: TEXT,
        }];
        assert!(find_preset(&presets, "ws", "smoke").is_ok());
        let err = find_preset(&presets, "ws", "huge").unwrap_err().to_string();
        assert!(
            err.contains("unknown preset 'huge' for ws: expected one of smoke"),
            "{err}"
        );
    }
}
