//! Loaders for the glycan tasks that `cargo xtask data` rebuilds from glycowork 1.11.0
//! (`data/tasks/`, see its README): glycosylation type and taxonomy at eight levels.

use std::path::Path;

/// Which split a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training.
    Train,
    /// Validation (model selection).
    Valid,
    /// Held-out test.
    Test,
}

/// One glycan and its labels (indices into [`GlycanTask::classes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    /// IUPAC-condensed glycan.
    pub glycan: String,
    /// Label indices (one for single-label tasks).
    pub labels: Vec<usize>,
    /// Its split.
    pub split: Split,
}

/// A task file.
#[derive(Clone, Debug)]
pub struct GlycanTask {
    /// Task name (the file stem).
    pub name: String,
    /// Class names, sorted.
    pub classes: Vec<String>,
    /// Whether a glycan may carry several labels.
    pub multi_label: bool,
    /// Every row.
    pub rows: Vec<TaskRow>,
}

impl GlycanTask {
    /// Rows of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &TaskRow> {
        self.rows.iter().filter(move |r| r.split == split)
    }
}

/// Errors loading a task.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The file could not be read.
    #[error("{path}: {source} (build the tasks with `cargo xtask data`)")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A malformed line.
    #[error("{path}:{line}: {message}")]
    Format {
        /// File.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file differs from the manifest.
    #[error("{path}: SHA-256 {got} differs from {expected} in MANIFEST.json (rebuild with `cargo xtask data`)")]
    Checksum {
        /// File.
        path: String,
        /// Computed.
        got: String,
        /// Expected.
        expected: String,
    },
}

/// Loads `<dir>/<name>.csv`; when `<dir>/MANIFEST.json` lists the task, the file's SHA-256 must
/// match it. `multi_label` tasks are the taxonomy ones (labels joined by `;`).
pub fn load(dir: &Path, name: &str) -> Result<GlycanTask, TaskError> {
    let path = dir.join(format!("{name}.csv"));
    let p = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| TaskError::Io { path: p.clone(), source })?;
    if let Ok(manifest) = std::fs::read_to_string(dir.join("MANIFEST.json")) {
        let expected = serde_json::from_str::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|m| m[name]["sha256"].as_str().map(str::to_string));
        if let Some(expected) = expected {
            let got = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes));
            if got != expected {
                return Err(TaskError::Checksum { path: p, got, expected });
            }
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let mut raw = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for (i, rec) in reader.records().enumerate() {
        let fmt = |message: String| TaskError::Format { path: p.clone(), line: i + 2, message };
        let rec = rec.map_err(|e| fmt(e.to_string()))?;
        if rec.len() != 3 {
            return Err(fmt(format!("{} fields, expected glycan,labels,split", rec.len())));
        }
        let split = match &rec[2] {
            "train" => Split::Train,
            "valid" => Split::Valid,
            "test" => Split::Test,
            other => return Err(fmt(format!("unknown split {other:?}"))),
        };
        let labels: Vec<String> = rec[1].split(';').filter(|s| !s.is_empty()).map(str::to_string).collect();
        if labels.is_empty() {
            return Err(fmt("no label".into()));
        }
        classes.extend(labels.iter().cloned());
        raw.push((rec[0].to_string(), labels, split));
    }
    let classes: Vec<String> = classes.into_iter().collect();
    let multi_label = name.starts_with("taxonomy");
    let rows = raw
        .into_iter()
        .map(|(glycan, labels, split)| TaskRow {
            glycan,
            labels: labels.iter().map(|l| classes.binary_search(l).unwrap_or(0)).collect(),
            split,
        })
        .collect();
    Ok(GlycanTask { name: name.to_string(), classes, multi_label, rows })
}
