//! Loaders for the glycan tasks that `cargo xtask data` rebuilds from glycowork 1.11.0
//! (`data/tasks/`, see its README): glycosylation type, taxonomy at eight levels,
//! immunogenicity, and the protein–glycan interaction pairs ([`load_interaction`]).
//!
//! A task has one or more *targets* (label columns): one per file, or — for the name
//! `taxonomy` — the eight taxonomy levels joined by glycan, to be trained jointly.

use std::path::Path;

mod interaction;
pub use interaction::{load_interaction, Interaction, InteractionProtein};

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

/// One glycan and its labels: for each target, indices into that target's classes.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    /// IUPAC-condensed glycan.
    pub glycan: String,
    /// Per target, label indices (one for single-label targets).
    pub labels: Vec<Vec<usize>>,
    /// Its split.
    pub split: Split,
}

/// One label column (the workspace's [`aa_encoder::tasks::Target`]).
pub use aa_encoder::tasks::Target;

/// A task: rows with labels for one or more targets.
#[derive(Clone, Debug)]
pub struct GlycanTask {
    /// Task name (a file stem, or `taxonomy`).
    pub name: String,
    /// The label columns.
    pub targets: Vec<Target>,
    /// Every row.
    pub rows: Vec<TaskRow>,
}

/// The taxonomy levels, coarse to fine (`taxonomy_<level>` files).
pub const TAXONOMY_LEVELS: [&str; 8] = ["domain", "kingdom", "phylum", "class", "order", "family", "genus", "species"];

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
    /// The files of a joined task disagree on a glycan.
    #[error("{path}: {message}")]
    Join {
        /// File.
        path: String,
        /// What differs.
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

/// Loads `<dir>/<name>.csv`, or for `taxonomy` the eight `taxonomy_<level>.csv` files joined by
/// glycan (they must list the same glycans in the same splits). When `<dir>/MANIFEST.json` lists
/// a file, its SHA-256 must match.
pub fn load(dir: &Path, name: &str) -> Result<GlycanTask, TaskError> {
    if name != "taxonomy" {
        return load_file(dir, name);
    }
    let mut joined: Option<GlycanTask> = None;
    for level in TAXONOMY_LEVELS {
        let file = format!("taxonomy_{level}");
        let next = load_file(dir, &file)?;
        let Some(task) = joined.as_mut() else {
            joined = Some(GlycanTask { name: name.to_string(), ..next });
            continue;
        };
        let path = dir.join(format!("{file}.csv")).display().to_string();
        if next.rows.len() != task.rows.len() {
            let message = format!("{} rows, taxonomy_domain has {}", next.rows.len(), task.rows.len());
            return Err(TaskError::Join { path, message });
        }
        for (row, other) in task.rows.iter_mut().zip(next.rows) {
            if (row.glycan.as_str(), row.split) != (other.glycan.as_str(), other.split) {
                let message = format!(
                    "{} ({:?}) where taxonomy_domain has {} ({:?})",
                    other.glycan, other.split, row.glycan, row.split
                );
                return Err(TaskError::Join { path, message });
            }
            row.labels.extend(other.labels);
        }
        task.targets.extend(next.targets);
    }
    Ok(joined.expect("eight levels"))
}

/// The bytes of `<dir>/<name>.csv` and its path for messages, checked against
/// `<dir>/MANIFEST.json` when that lists the file.
fn read_checked(dir: &Path, name: &str) -> Result<(Vec<u8>, String), TaskError> {
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
    Ok((bytes, p))
}

/// A split name of a task file.
fn parse_split(s: &str) -> Option<Split> {
    match s {
        "train" => Some(Split::Train),
        "valid" => Some(Split::Valid),
        "test" => Some(Split::Test),
        _ => None,
    }
}

fn load_file(dir: &Path, name: &str) -> Result<GlycanTask, TaskError> {
    let (bytes, p) = read_checked(dir, name)?;
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
        let Some(split) = parse_split(&rec[2]) else { return Err(fmt(format!("unknown split {:?}", &rec[2]))) };
        let labels: Vec<String> = rec[1].split(';').filter(|s| !s.is_empty()).map(str::to_string).collect();
        if labels.is_empty() {
            return Err(fmt("no label".into()));
        }
        classes.extend(labels.iter().cloned());
        raw.push((rec[0].to_string(), labels, split));
    }
    let classes: Vec<String> = classes.into_iter().collect();
    let multi_label = raw.iter().any(|(_, labels, _)| labels.len() > 1);
    let rows = raw
        .into_iter()
        .map(|(glycan, labels, split)| TaskRow {
            glycan,
            labels: vec![labels.iter().map(|l| classes.binary_search(l).unwrap_or(0)).collect()],
            split,
        })
        .collect();
    let target = Target { name: name.to_string(), classes, multi_label };
    Ok(GlycanTask { name: name.to_string(), targets: vec![target], rows })
}
