//! The PyTorch side: `bench/pytorch/bench.py` as a child process answering one JSON line per
//! command, so that vireo and PyTorch alternate within one run.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub struct Torch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// `torch.__version__`, thread count and device name, as the script reports them.
    pub version: String,
    pub threads: usize,
    pub device: String,
}

impl Torch {
    /// Starts the script with `python`; `Err` says why PyTorch is unavailable (no python, no
    /// torch, no script), which the report then states.
    pub fn start(python: &str, script: &Path, threads: usize, device: &str) -> Result<Torch> {
        if python == "none" {
            bail!("not asked for: --torch none");
        }
        if !script.is_file() {
            bail!(
                "{} not found (run from the repository root)",
                script.display()
            );
        }
        let probe = Command::new(python)
            .args(["-c", "import torch, torchvision"])
            .output()
            .with_context(|| format!("cannot run {python}"))?;
        if !probe.status.success() {
            let reason = String::from_utf8_lossy(&probe.stderr);
            let last = reason.lines().last().unwrap_or("import failed");
            bail!("{python} cannot import torch and torchvision ({last})");
        }
        let mut child = Command::new(python)
            .arg(script)
            .args(["--threads", &threads.to_string(), "--device", device])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {python} {}", script.display()))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        let mut torch = Torch {
            child,
            stdin,
            stdout,
            version: String::new(),
            threads: 0,
            device: String::new(),
        };
        let info = torch.request(json!({"cmd": "info"}))?;
        torch.version = info["torch"].as_str().unwrap_or("?").to_string();
        torch.threads = info["threads"].as_u64().unwrap_or(0) as usize;
        torch.device = info["device"].as_str().unwrap_or("?").to_string();
        Ok(torch)
    }

    fn request(&mut self, request: Value) -> Result<Value> {
        writeln!(self.stdin, "{request}").context("writing to the PyTorch benchmark")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the PyTorch benchmark exited (its error is above)");
        }
        let reply: Value = serde_json::from_str(&line)
            .with_context(|| format!("the PyTorch benchmark answered {line:?}"))?;
        if let Some(error) = reply.get("error") {
            bail!("{}", error.as_str().unwrap_or("error"));
        }
        Ok(reply)
    }

    /// Builds and warms up `case`; returns its items per iteration.
    pub fn prepare(&mut self, case: &str, warmup_s: f64, data_dir: &Path) -> Result<usize> {
        let reply = self.request(json!({
            "cmd": "prepare", "case": case, "warmup_s": warmup_s,
            "data_dir": data_dir.display().to_string(),
        }))?;
        reply["items"]
            .as_u64()
            .map(|n| n as usize)
            .context("no item count")
    }

    pub fn measure(&mut self, case: &str, reps: usize, min_rep_s: f64) -> Result<Vec<f64>> {
        let reply = self.request(
            json!({"cmd": "measure", "case": case, "reps": reps, "min_rep_s": min_rep_s}),
        )?;
        serde_json::from_value(reply["seconds"].clone()).context("malformed seconds")
    }

    pub fn release(&mut self, case: &str) -> Result<()> {
        self.request(json!({"cmd": "release", "case": case}))
            .map(|_| ())
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
