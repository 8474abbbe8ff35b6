//! Inputs as windows of the shared graph: glycans (IUPAC-condensed, WURCS, GlycoCT) in the
//! graph their encoder reads, structure files, FASTA, glycan files — what the runs,
//! `allatom embed` and the Python bindings read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aa_encoder::Window;
use aa_graph::HeteroGraph;
use anyhow::{bail, Context, Result};
use glycan_aa::compat::{featurize, CompatVocab};
use glycan_aa::notation::Notation;
use glycan_aa::GlycanError;

/// Which graph of a glycan an encoder reads.
#[derive(Clone, Debug, PartialEq)]
pub enum GlycanGraphs {
    /// The official GlycanAA featurisation (`glycan_aa::compat`): residues reduced to their
    /// cores with GlycanML's glycoword ids, each core's free-monosaccharide atoms.
    Official(CompatVocab),
    /// The true condensed molecule (`glycan_aa::Glycan`): shared glycosidic oxygens,
    /// substituents as atoms.
    Molecule,
}

impl GlycanGraphs {
    /// The graph of one glycan in any notation `glycan_aa` reads (IUPAC-condensed, WURCS,
    /// GlycoCT; detected by [`Notation::detect`]). Residue names are checked as the molecule
    /// builder checks them (the verdicts of `allatom graph`), in both featurisations.
    pub fn graph(&self, glycan: &str) -> Result<HeteroGraph, GlycanError> {
        self.graph_as(glycan, Notation::detect(glycan))
    }

    /// [`GlycanGraphs::graph`] of a glycan written in `notation`; a WURCS or GlycoCT glycan, or
    /// a loosely written IUPAC one, is read into its IUPAC-condensed form first (errors point
    /// into `glycan`).
    pub fn graph_as(&self, glycan: &str, notation: Notation) -> Result<HeteroGraph, GlycanError> {
        Ok(self.read_as(glycan, notation)?.graph)
    }

    /// [`GlycanGraphs::graph_as`] with what the input was read as: its IUPAC-condensed form
    /// when that differs from the input (a WURCS, GlycoCT or loosely written IUPAC glycan), and
    /// the spacer or aglycone a short form named.
    pub fn read_as(&self, glycan: &str, notation: Notation) -> Result<ReadGlycan, GlycanError> {
        let strict = |iupac: &str| {
            if let GlycanGraphs::Official(_) = self {
                glycan_aa::compat::check_names(iupac)?;
            }
            self.graph_as_glycanml(iupac)
        };
        // The graph of a glycan read from another form (its molecule moved, not copied).
        let read = |g: glycan_aa::Glycan, check_names: bool| -> Result<ReadGlycan, GlycanError> {
            let graph = match self {
                GlycanGraphs::Molecule => g.molecule.graph,
                GlycanGraphs::Official(_) if check_names => strict(&g.iupac)?,
                GlycanGraphs::Official(_) => self.graph_as_glycanml(&g.iupac)?,
            };
            Ok(ReadGlycan { graph, iupac: (g.iupac != glycan).then_some(g.iupac), aglycone: g.aglycone })
        };
        if notation == Notation::Iupac {
            // Loosely written IUPAC (extended, short forms, copy-paste artefacts) only when the
            // string is not IUPAC-condensed as it stands; the strict error otherwise.
            return strict(glycan).map(|graph| ReadGlycan { graph, iupac: None, aglycone: None }).or_else(|e| {
                match glycan_aa::Glycan::parse_as(glycan, notation) {
                    Ok(g) if g.iupac != glycan => read(g, true),
                    _ => Err(e),
                }
            });
        }
        read(glycan_aa::Glycan::parse_as(glycan, notation)?, false)
    }

    /// [`GlycanGraphs::graph`], except that the official featurisation maps names it cannot
    /// reduce to a core onto GlycanML's catch-all `Monosaccharide` unit, as GlycanML's data
    /// pipeline does (the glycan tasks, so that their sets equal GlycanML's).
    pub fn graph_as_glycanml(&self, iupac: &str) -> Result<HeteroGraph, GlycanError> {
        match self {
            GlycanGraphs::Official(vocab) => Ok(featurize(iupac, vocab)?.to_hetero(vocab)),
            GlycanGraphs::Molecule => Ok(glycan_aa::Glycan::from_iupac(iupac)?.molecule.graph),
        }
    }

    /// The whole-glycan window of one glycan in any notation ([`GlycanGraphs::graph`]).
    pub fn window(&self, glycan: &str) -> Result<Window, GlycanError> {
        Ok(Window::whole(Arc::new(self.graph(glycan)?)))
    }

    /// The whole-glycan window of a glycan written in `notation` ([`GlycanGraphs::graph_as`]).
    pub fn window_as(&self, glycan: &str, notation: Notation) -> Result<Window, GlycanError> {
        Ok(Window::whole(Arc::new(self.graph_as(glycan, notation)?)))
    }
}

/// A glycan's graph and what its input was read as ([`GlycanGraphs::read_as`]).
#[derive(Clone, Debug)]
pub struct ReadGlycan {
    /// The graph in the featurisation's form.
    pub graph: HeteroGraph,
    /// The IUPAC-condensed form, when the input was written otherwise.
    pub iupac: Option<String>,
    /// The spacer or aglycone a glycan-array short form named.
    pub aglycone: Option<String>,
}

const STRUCTURE_SUFFIXES: [&str; 12] = [
    ".pdb",
    ".ent",
    ".cif",
    ".mmcif",
    ".pdb.gz",
    ".ent.gz",
    ".cif.gz",
    ".mmcif.gz",
    ".pdb.bz2",
    ".cif.bz2",
    ".pqr",
    ".pdb1",
];

/// A structure file as given, or the structure files of a directory (sorted).
pub fn structure_files(path: &Path) -> Result<Vec<PathBuf>> {
    Ok(if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read directory {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
                p.is_file() && STRUCTURE_SUFFIXES.iter().any(|s| n.ends_with(s))
            })
            .collect();
        v.sort();
        if v.is_empty() {
            bail!("{}: no structure files (.pdb, .cif, .ent, optionally .gz/.bz2) in the directory", path.display());
        }
        v
    } else {
        if !path.exists() {
            bail!("cannot read {}: no such file or directory", path.display());
        }
        vec![path.to_path_buf()]
    })
}

/// The structure files a list names, one path per line (blank lines and `#` comments
/// skipped; relative paths are relative to the working directory, as `tar -T` reads them).
/// A listed file that is missing or unreadable becomes that input's error, not the job's.
pub fn read_file_list(path: &Path) -> Result<Vec<PathBuf>> {
    let text = String::from_utf8(read_capped(path)?).map_err(|e| {
        anyhow::anyhow!("{}: not UTF-8 text (invalid byte at offset {})", path.display(), e.utf8_error().valid_up_to())
    })?;
    let files: Vec<PathBuf> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(PathBuf::from).collect();
    if files.is_empty() {
        bail!("{}: lists no files", path.display());
    }
    Ok(files)
}

/// Largest glycan, FASTA or SD file read (1 GiB, like the decompressed-structure cap);
/// `ALLATOM_MAX_INPUT_BYTES` overrides it.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// A file's bytes, at most [`MAX_INPUT_BYTES`] (or `ALLATOM_MAX_INPUT_BYTES`): reading stops at
/// the cap, so a huge file, a FIFO or `/dev/zero` costs bounded memory and a clear error.
pub(crate) fn read_capped(path: &Path) -> Result<Vec<u8>> {
    let limit = std::env::var("ALLATOM_MAX_INPUT_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_INPUT_BYTES);
    protein_aa::read::read_file_at_most(path, limit)
        .with_context(|| format!("cannot read {}", path.display()))?
        .with_context(|| {
            format!(
                "{}: larger than {limit} bytes (the input limit; set ALLATOM_MAX_INPUT_BYTES to raise it)",
                path.display()
            )
        })
}

/// Reads glycans: a CSV (by extension, or when `column` is given) or one per line.
pub fn read_glycan_file(path: &Path, column: Option<&str>) -> Result<Vec<String>> {
    let bytes = read_capped(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("{}: not UTF-8 text (invalid byte at offset {})", path.display(), e.utf8_error().valid_up_to())
    })?;
    // A UTF-8 byte-order mark (Excel, Windows editors) is not part of the first glycan.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
    let first = text.lines().next().unwrap_or("");
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) || column.is_some();
    if is_csv {
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let headers = rdr.headers().with_context(|| format!("{}: cannot read CSV header", path.display()))?.clone();
        let wanted: Vec<&str> = match column {
            Some(c) => vec![c],
            None => vec!["IUPAC Condensed", "glycan", "iupac"],
        };
        let Some(col) = headers.iter().position(|h| wanted.contains(&h)) else {
            bail!("{}: no column named {:?} in header {:?} (use --column)", path.display(), wanted, first);
        };
        let mut out = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.with_context(|| format!("{}: CSV row {}", path.display(), i + 2))?;
            out.push(rec.get(col).unwrap_or("").trim().to_string());
        }
        Ok(out)
    } else {
        Ok(text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())
    }
}

/// FASTA records `(header, sequence)` of a file.
pub fn read_fasta(path: &Path) -> Result<Vec<(String, String)>> {
    let text = String::from_utf8(read_capped(path)?).map_err(|e| {
        anyhow::anyhow!("{}: not UTF-8 text (invalid byte at offset {})", path.display(), e.utf8_error().valid_up_to())
    })?;
    parse_fasta(&text, path)
}

/// FASTA records `(header, sequence)` of a text; `path` names it in errors.
pub fn parse_fasta(text: &str, path: &Path) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(h) = line.strip_prefix('>') {
            out.push((h.trim().to_string(), String::new()));
        } else if !line.is_empty() {
            match out.last_mut() {
                Some((_, s)) => s.push_str(line),
                None => bail!("{}: line {}: sequence before the first '>' header", path.display(), n + 1),
            }
        }
    }
    if out.is_empty() {
        bail!("{}: no FASTA records", path.display());
    }
    if let Some((h, _)) = out.iter().find(|(_, s)| s.is_empty()) {
        bail!("{}: record {h:?} has no sequence", path.display());
    }
    Ok(out)
}

/// Reads every structure file under `paths` (files or directories) without spatial relations;
/// unreadable files and, with `need_coordinates`, files without coordinates are reported on
/// stderr and skipped.
pub fn read_structures(paths: &[PathBuf], need_coordinates: bool) -> Result<Vec<(PathBuf, protein_aa::Structure)>> {
    let mut files = Vec::new();
    for p in paths {
        files.extend(structure_files(p)?);
    }
    let opts = protein_aa::StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let mut out = Vec::new();
    for f in files {
        match protein_aa::read_structure_file(&f, &opts) {
            Ok(s) if need_coordinates && s.graph.positions.is_none() => {
                eprintln!("skipped {}: no coordinates", f.display())
            }
            Ok(s) => out.push((f, s)),
            Err(e) => eprintln!("skipped {e}"),
        }
    }
    Ok(out)
}
