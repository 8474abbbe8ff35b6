//! Reading PDB and mmCIF files (plain, gzip or bzip2, detected from the bytes, not the file
//! name) into flat atom records plus the connection records that carry inter-residue bonds
//! (PDB `LINK`/`CONECT`, mmCIF `_struct_conn`).

use std::borrow::Cow;
use std::io::Read;

use aa_graph::Element;

/// A short text field (atom, residue and chain names), stored inline without allocation.
pub type Label = compact_str::CompactString;

use crate::StructureError;

/// One atom record as written in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct AtomRecord {
    /// Serial number (PDB) or `_atom_site.id` (mmCIF), when readable.
    pub serial: Option<i64>,
    /// Atom name (`CA`, `C1`, `ND2`).
    pub name: Label,
    /// Alternate location indicator, empty when none.
    pub altloc: Label,
    /// Residue (component) name (`ASN`, `NAG`).
    pub resname: Label,
    /// Author chain id.
    pub chain: Label,
    /// Author residue number.
    pub resseq: i32,
    /// Insertion code, empty when none.
    pub icode: Label,
    /// Coordinates in ångström, as written (f64: Vabs-Net's official featurisation computes its
    /// geometry in double precision; the graph stores f32).
    pub pos: [f64; 3],
    /// Occupancy (1 when not given).
    pub occupancy: f32,
    /// Isotropic B-factor in Å² (PDB columns 61–66, mmCIF `B_iso_or_equiv`; 0 when not given).
    pub b_factor: f32,
    /// Element from the element column (or `type_symbol`); `None` when not written.
    pub element: Option<Element>,
    /// HETATM record (or `group_PDB` HETATM).
    pub hetatm: bool,
    /// Model number (1 when the file has no MODEL records).
    pub model: i32,
    /// 1-based line number in the (decompressed) file.
    pub line: usize,
}

/// An atom named in a connection record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AtomRef {
    /// Chain.
    pub chain: Label,
    /// Residue number.
    pub resseq: i32,
    /// Insertion code.
    pub icode: Label,
    /// Residue name.
    pub resname: Label,
    /// Atom name.
    pub name: Label,
    /// Alternate location, empty when none.
    pub altloc: Label,
}

/// A covalent connection between two named atoms (PDB `LINK`, mmCIF `_struct_conn`).
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    /// First partner.
    pub a: AtomRef,
    /// Second partner.
    pub b: AtomRef,
    /// mmCIF `conn_type_id` (`covale`, `disulf`, `metalc`, …); `link` for PDB LINK records.
    pub kind: String,
}

/// File format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PDB fixed-column format.
    Pdb,
    /// mmCIF.
    Mmcif,
}

/// Everything read from one file.
#[derive(Clone, Debug)]
pub struct RawStructure {
    /// Format detected.
    pub format: Format,
    /// Atom records of every model.
    pub atoms: Vec<AtomRecord>,
    /// LINK / struct_conn connections.
    pub connections: Vec<Connection>,
    /// CONECT pairs by serial number.
    pub conect: Vec<(i64, i64)>,
    /// Non-fatal problems met while reading.
    pub warnings: Vec<String>,
}

/// Default cap on the decompressed size of a structure file (1 GiB; the largest mmCIF files of
/// the PDB are a few hundred MB); `ALLATOM_MAX_DECOMPRESSED_BYTES` overrides it.
pub const MAX_DECOMPRESSED_BYTES: usize = 1 << 30;

/// The decompressed-size cap in force: `ALLATOM_MAX_DECOMPRESSED_BYTES`, else
/// [`MAX_DECOMPRESSED_BYTES`].
pub fn max_decompressed_bytes() -> usize {
    std::env::var("ALLATOM_MAX_DECOMPRESSED_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_DECOMPRESSED_BYTES)
}

/// The bytes of the file at `path` if it holds at most `limit` of them, `None` if it holds
/// more: reading stops one byte past the limit, so a huge file, a FIFO or `/dev/zero` costs
/// bounded memory.
pub fn read_file_at_most(path: &std::path::Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// Decompresses gzip or bzip2 content (detected by magic bytes) and checks it is text, with the
/// default size cap ([`MAX_DECOMPRESSED_BYTES`]).
pub fn decode(bytes: &[u8]) -> Result<String, StructureError> {
    decode_capped(bytes, max_decompressed_bytes())
}

/// [`decode`] with a cap of `limit` decompressed bytes. Decompression stops at the cap (a
/// decompression bomb costs at most `limit` bytes of memory) and as soon as the first 4 KiB show
/// binary data (NUL bytes), with an error that says which.
pub fn decode_capped(bytes: &[u8], limit: usize) -> Result<String, StructureError> {
    let raw: Vec<u8> = if bytes.starts_with(&[0x1f, 0x8b]) {
        read_capped(flate2::read::MultiGzDecoder::new(bytes), limit, "gzip")?
    } else if bytes.starts_with(b"BZh") {
        read_capped(bzip2::read::MultiBzDecoder::new(bytes), limit, "bzip2")?
    } else {
        bytes.to_vec()
    };
    if raw.is_empty() {
        return Err(StructureError::new("the file is empty"));
    }
    if is_binary(&raw) {
        return Err(StructureError::new("binary data: not a PDB or mmCIF text file"));
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn is_binary(raw: &[u8]) -> bool {
    raw.iter().take(4096).any(|&b| b == 0)
}

fn read_capped(mut r: impl Read, limit: usize, what: &str) -> Result<Vec<u8>, StructureError> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut checked = false;
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StructureError::new(format!("{what} data is damaged or truncated: {e}"))),
        };
        if out.len() + n > limit {
            return Err(StructureError::new(format!(
                "{what} data decompresses to more than {limit} bytes (the limit; raise it with ALLATOM_MAX_DECOMPRESSED_BYTES)"
            )));
        }
        out.extend_from_slice(&chunk[..n]);
        if !checked && out.len() >= 4096 {
            if is_binary(&out) {
                return Err(StructureError::new("binary data: not a PDB or mmCIF text file"));
            }
            checked = true;
        }
    }
    Ok(out)
}

/// Reads a structure from file content (any supported compression and format).
pub fn read_structure(bytes: &[u8]) -> Result<RawStructure, StructureError> {
    let text = decode(bytes)?;
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
    let mut s = if first.starts_with("data_") || text.contains("\n_atom_site.") {
        parse_mmcif(&text)?
    } else {
        parse_pdb(&text)?
    };
    if s.atoms.is_empty() {
        return Err(StructureError::new("no ATOM/HETATM records: not a PDB or mmCIF structure"));
    }
    // Written files end with a line end or a closing record (`END`, mmCIF's `#`); a file cut
    // mid-line (a failed download or copy) ends inside a record.
    let closed = |l: &str| {
        let t = l.trim();
        t.is_empty() || t.starts_with("END") || t == "#"
    };
    if let Some(last) = text.lines().last().filter(|l| !closed(l) && !text.ends_with('\n')) {
        let shown: String = last.chars().take(30).collect();
        s.warnings.push(format!(
            "line {}: the file ends mid-line ('{shown}' has no line end): it may be truncated",
            text.lines().count()
        ));
    }
    Ok(s)
}

/// Largest coordinate magnitude read, in ångström: far beyond any assembly (the PDB format
/// itself stops at 9999.999), small enough that squared distances stay finite in `f32`.
pub const MAX_COORDINATE: f64 = 1e6;

/// Whether a coordinate is finite and within ±[`MAX_COORDINATE`].
pub(crate) fn physical(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_COORDINATE
}

/// The reason a parsable coordinate was refused, for the error message.
fn beyond(text: &str) -> String {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => format!(" (beyond ±{MAX_COORDINATE:e} Å: not a physical structure)"),
        _ => String::new(),
    }
}

fn field(line: &str, a: usize, b: usize) -> &str {
    // Columns are 1-based inclusive; lines may be shorter than the standard width.
    let bytes = line.as_bytes();
    if a > bytes.len() {
        return "";
    }
    let end = b.min(bytes.len());
    line.get(a - 1..end).unwrap_or("").trim()
}

/// Residue numbers: decimal, or hybrid-36 for numbers past 9999 (`A000` = 10000).
fn parse_resseq(s: &str) -> Option<i32> {
    if let Ok(v) = s.parse::<i32>() {
        return Some(v);
    }
    hybrid36(s, 4)
}

fn hybrid36(s: &str, width: u32) -> Option<i32> {
    let s = s.trim();
    if s.len() != width as usize {
        return None;
    }
    let first = s.as_bytes()[0];
    let digits = |alpha_upper: bool| -> Option<i64> {
        let mut v: i64 = 0;
        for c in s.bytes() {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'A'..=b'Z' if alpha_upper => c - b'A' + 10,
                b'a'..=b'z' if !alpha_upper => c - b'a' + 10,
                _ => return None,
            } as i64;
            v = v * 36 + d;
        }
        Some(v)
    };
    let base = 10i64.pow(width);
    let span = 26 * 36i64.pow(width - 1);
    if first.is_ascii_uppercase() {
        digits(true).map(|v| (v - 10 * 36i64.pow(width - 1) + base) as i32)
    } else if first.is_ascii_lowercase() {
        digits(false).map(|v| (v - 10 * 36i64.pow(width - 1) + base + span) as i32)
    } else {
        None
    }
}

/// Element from the element column (charges and digits ignored); `None` when the column is
/// empty or unreadable — the builder then asks the residue's CCD template or the atom name.
fn element_column(element_field: &str) -> Option<Element> {
    let t = element_field.trim_matches(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c.is_whitespace());
    if t.is_empty() {
        return None;
    }
    Element::from_symbol(t)
}

/// Parses the PDB format.
pub fn parse_pdb(text: &str) -> Result<RawStructure, StructureError> {
    let mut s =
        RawStructure { format: Format::Pdb, atoms: vec![], connections: vec![], conect: vec![], warnings: vec![] };
    let mut model = 1;
    let mut seen_model = false;
    let mut in_model = false;
    for (k, line) in text.lines().enumerate() {
        let ln = k + 1;
        let rec = field(line, 1, 6);
        match rec {
            "MODEL" => {
                model = field(line, 11, 14).parse().unwrap_or(if seen_model { model + 1 } else { 1 });
                seen_model = true;
                in_model = true;
            }
            "ENDMDL" => {
                in_model = false;
            }
            "ATOM" | "HETATM" => {
                if seen_model && !in_model {
                    // Atoms after ENDMDL without a new MODEL record start the next model.
                    model += 1;
                    in_model = true;
                }
                if line.len() < 54 {
                    return Err(StructureError::at(
                        ln,
                        format!("{rec} record too short ({} columns, need 54): truncated file?", line.len()),
                    ));
                }
                let coord = |a, b| -> Result<f64, StructureError> {
                    let t = field(line, a, b);
                    t.parse::<f64>().ok().filter(|v| physical(*v)).ok_or_else(|| {
                        StructureError::at(ln, format!("bad coordinate {t:?} in columns {a}-{b}{}", beyond(t)))
                    })
                };
                let pos = [coord(31, 38)?, coord(39, 46)?, coord(47, 54)?];
                let name = Label::new(field(line, 13, 16));
                let resseq_txt = field(line, 23, 26);
                let Some(resseq) = parse_resseq(resseq_txt) else {
                    return Err(StructureError::at(ln, format!("bad residue number {resseq_txt:?}")));
                };
                let occupancy = field(line, 55, 60).parse::<f32>().ok().filter(|v| v.is_finite()).unwrap_or(1.0);
                let b_factor = field(line, 61, 66).parse::<f32>().ok().filter(|v| v.is_finite()).unwrap_or(0.0);
                let element = element_column(field(line, 77, 78));
                s.atoms.push(AtomRecord {
                    serial: field(line, 7, 11)
                        .parse()
                        .ok()
                        .or_else(|| hybrid36(field(line, 7, 11), 5).map(|v| v as i64)),
                    name,
                    altloc: Label::new(field(line, 17, 17)),
                    resname: Label::new(field(line, 18, 21)),
                    chain: Label::new(field(line, 22, 22)),
                    resseq,
                    icode: Label::new(field(line, 27, 27)),
                    pos,
                    occupancy,
                    b_factor,
                    element,
                    hetatm: rec == "HETATM",
                    model,
                    line: ln,
                });
            }
            "LINK" => {
                let r = |a: usize| AtomRef {
                    name: Label::new(field(line, a, a + 3)),
                    altloc: Label::new(field(line, a + 4, a + 4)),
                    resname: Label::new(field(line, a + 5, a + 7)),
                    chain: Label::new(field(line, a + 9, a + 9)),
                    resseq: parse_resseq(field(line, a + 10, a + 13)).unwrap_or(i32::MIN),
                    icode: Label::new(field(line, a + 14, a + 14)),
                };
                let (a, b) = (r(13), r(43));
                if a.resseq == i32::MIN || b.resseq == i32::MIN || a.name.is_empty() || b.name.is_empty() {
                    s.warnings.push(format!("line {ln}: unreadable LINK record ignored"));
                } else {
                    s.connections.push(Connection { a, b, kind: "link".into() });
                }
            }
            "CONECT" => {
                let from = field(line, 7, 11).parse::<i64>();
                if let Ok(from) = from {
                    for (a, b) in [(12, 16), (17, 21), (22, 26), (27, 31)] {
                        if let Ok(to) = field(line, a, b).parse::<i64>() {
                            s.conect.push((from, to));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// A CIF table: column names and its values row after row (`.`/`?` kept as written), all
/// borrowed from the tokens.
#[derive(Debug, Default)]
struct Table<'t> {
    columns: Vec<&'t str>,
    values: Vec<&'t str>,
    line: usize,
}

impl<'t> Table<'t> {
    /// The rows.
    fn rows(&self) -> std::slice::Chunks<'_, &'t str> {
        self.values.chunks(self.columns.len().max(1))
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| *c == name)
    }
}

/// A CIF token: text, line, and whether it was quoted (a quoted `_x` is a value, not a tag).
/// Borrowed from the file's text, so a token costs no allocation (a multi-line `;` text field,
/// whose lines are joined, excepted).
type Token<'a> = (Cow<'a, str>, usize, bool);

/// Splits CIF text into tokens with their line numbers (quotes and `;` text fields handled).
fn cif_tokens(text: &str) -> Result<Vec<Token<'_>>, StructureError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((k, line)) = lines.next() {
        let ln = k + 1;
        if let Some(rest) = line.strip_prefix(';') {
            let mut buf = rest.to_string();
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                if l.starts_with(';') {
                    closed = true;
                    break;
                }
                buf.push('\n');
                buf.push_str(l);
            }
            if !closed {
                return Err(StructureError::at(ln, "text field starting with ';' is never closed: truncated file?"));
            }
            out.push((Cow::Owned(buf), ln, true));
            continue;
        }
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_whitespace() {
                i += 1;
                continue;
            }
            if c == b'#' {
                break;
            }
            if c == b'\'' || c == b'"' {
                // A quote closes only when followed by whitespace or the end of the line.
                let mut j = i + 1;
                loop {
                    if j >= b.len() {
                        return Err(StructureError::at(ln, "unterminated quoted value"));
                    }
                    if b[j] == c && (j + 1 == b.len() || b[j + 1].is_ascii_whitespace()) {
                        break;
                    }
                    j += 1;
                }
                out.push((Cow::Borrowed(&line[i + 1..j]), ln, true));
                i = j + 1;
                continue;
            }
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push((Cow::Borrowed(&line[start..i]), ln, false));
        }
    }
    Ok(out)
}

/// Reads the categories we need from mmCIF into tables (loops and single-row key/value form).
fn cif_tables<'t>(toks: &'t [Token<'_>], wanted: &[&str]) -> Result<Vec<(String, Table<'t>)>, StructureError> {
    let is_tag = |k: usize| !toks[k].2 && toks[k].0.starts_with('_');
    let is_keyword =
        |k: usize| !toks[k].2 && (toks[k].0.eq_ignore_ascii_case("loop_") || toks[k].0.starts_with("data_"));
    let mut tables: Vec<(String, Table<'t>)> = Vec::new();
    let mut i = 0;
    let category = |tag: &str| tag.split('.').next().unwrap_or("").to_string();
    while i < toks.len() {
        let (t, ln) = (&toks[i].0, toks[i].1);
        if !toks[i].2 && t.eq_ignore_ascii_case("loop_") {
            i += 1;
            let mut cols: Vec<&'t str> = Vec::new();
            while i < toks.len() && is_tag(i) {
                cols.push(&toks[i].0);
                i += 1;
            }
            if cols.is_empty() {
                return Err(StructureError::at(ln, "loop_ without column names"));
            }
            let cat = category(cols[0]);
            let first = i;
            while i < toks.len() && !is_tag(i) && !is_keyword(i) {
                i += 1;
            }
            let values = &toks[first..i];
            if wanted.contains(&cat.as_str()) {
                if !values.len().is_multiple_of(cols.len()) {
                    return Err(StructureError::at(
                        ln,
                        format!("loop {cat}: {} values for {} columns: truncated file?", values.len(), cols.len()),
                    ));
                }
                let columns: Vec<&'t str> = cols.iter().map(|c| column_name(c)).collect();
                let values = values.iter().map(|t| t.0.as_ref()).collect();
                tables.push((cat, Table { columns, values, line: ln }));
            }
            continue;
        }
        if is_tag(i) {
            let cat = category(t);
            let col = column_name(t);
            let Some((v, _, _)) = toks.get(i + 1) else {
                return Err(StructureError::at(ln, format!("{t} has no value: truncated file?")));
            };
            if wanted.contains(&cat.as_str()) {
                // Key/value form: one row, a column per tag.
                match tables
                    .iter_mut()
                    .find(|(c, t)| *c == cat && t.values.len() == t.columns.len() && !t.columns.contains(&col))
                {
                    Some((_, tab)) => {
                        tab.columns.push(col);
                        tab.values.push(v.as_ref());
                    }
                    None => tables.push((cat, Table { columns: vec![col], values: vec![v.as_ref()], line: ln })),
                }
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    Ok(tables)
}

/// The column part of a tag (`_atom_site.Cartn_x` → `Cartn_x`).
fn column_name(tag: &str) -> &str {
    tag.split('.').nth(1).unwrap_or("")
}

fn cif_value(v: &str) -> &str {
    if v == "." || v == "?" {
        ""
    } else {
        v
    }
}

/// Parses mmCIF (`_atom_site` and `_struct_conn`), preferring author names and numbering.
pub fn parse_mmcif(text: &str) -> Result<RawStructure, StructureError> {
    let toks = cif_tokens(text)?;
    let tables = cif_tables(&toks, &["_atom_site", "_struct_conn"])?;
    let mut s =
        RawStructure { format: Format::Mmcif, atoms: vec![], connections: vec![], conect: vec![], warnings: vec![] };
    for (cat, t) in &tables {
        if cat == "_atom_site" {
            let pick = |names: &[&str]| names.iter().find_map(|n| t.col(n));
            let need = |names: &[&str]| {
                pick(names).ok_or_else(|| StructureError::at(t.line, format!("_atom_site has no {} column", names[0])))
            };
            let (cx, cy, cz) = (need(&["Cartn_x"])?, need(&["Cartn_y"])?, need(&["Cartn_z"])?);
            let name_c = need(&["auth_atom_id", "label_atom_id"])?;
            let res_c = need(&["auth_comp_id", "label_comp_id"])?;
            let chain_c = need(&["auth_asym_id", "label_asym_id"])?;
            let seq_c = pick(&["auth_seq_id", "label_seq_id"]);
            let el_c = pick(&["type_symbol"]);
            let alt_c = pick(&["label_alt_id"]);
            let ins_c = pick(&["pdbx_PDB_ins_code"]);
            let occ_c = pick(&["occupancy"]);
            let b_c = pick(&["B_iso_or_equiv"]);
            let model_c = pick(&["pdbx_PDB_model_num"]);
            let group_c = pick(&["group_PDB"]);
            let id_c = pick(&["id"]);
            for (k, row) in t.rows().enumerate() {
                let ln = t.line;
                let num = |c: usize| -> Result<f64, StructureError> {
                    row[c].parse::<f64>().ok().filter(|v| physical(*v)).ok_or_else(|| {
                        StructureError::at(
                            ln,
                            format!("_atom_site row {}: bad coordinate {:?}{}", k + 1, row[c], beyond(row[c])),
                        )
                    })
                };
                let pos = [num(cx)?, num(cy)?, num(cz)?];
                let name = Label::new(row[name_c]);
                let resseq = match seq_c.map(|c| cif_value(row[c])) {
                    Some(v) if !v.is_empty() => v.parse::<i32>().map_err(|_| {
                        StructureError::at(ln, format!("_atom_site row {}: bad residue number {v:?}", k + 1))
                    })?,
                    _ => 0,
                };
                let el = el_c.map(|c| cif_value(row[c])).unwrap_or("");
                s.atoms.push(AtomRecord {
                    serial: id_c.and_then(|c| row[c].parse().ok()),
                    element: element_column(el),
                    name,
                    altloc: alt_c.map(|c| Label::new(cif_value(row[c]))).unwrap_or_default(),
                    resname: Label::new(row[res_c]),
                    chain: Label::new(cif_value(row[chain_c])),
                    resseq,
                    icode: ins_c.map(|c| Label::new(cif_value(row[c]))).unwrap_or_default(),
                    pos,
                    occupancy: occ_c.and_then(|c| row[c].parse::<f32>().ok()).filter(|v| v.is_finite()).unwrap_or(1.0),
                    b_factor: b_c.and_then(|c| row[c].parse::<f32>().ok()).filter(|v| v.is_finite()).unwrap_or(0.0),
                    hetatm: group_c.is_some_and(|c| row[c] == "HETATM"),
                    model: model_c.and_then(|c| row[c].parse().ok()).unwrap_or(1),
                    line: ln,
                });
            }
        } else if cat == "_struct_conn" {
            let side = |p: &str, row: &[&str]| -> Option<AtomRef> {
                let get = |names: &[String]| names.iter().find_map(|n| t.col(n)).map(|c| Label::new(cif_value(row[c])));
                let f = |a: &str, b: &str| vec![format!("{p}_{a}"), format!("{p}_{b}")];
                Some(AtomRef {
                    chain: get(&f("auth_asym_id", "label_asym_id"))?,
                    resseq: get(&f("auth_seq_id", "label_seq_id"))?.parse().ok()?,
                    icode: get(&[format!("pdbx_{p}_PDB_ins_code")]).unwrap_or_default(),
                    resname: get(&f("auth_comp_id", "label_comp_id"))?,
                    name: get(&f("auth_atom_id", "label_atom_id"))?,
                    altloc: get(&[format!("pdbx_{p}_label_alt_id")]).unwrap_or_default(),
                })
            };
            let kind_c = t.col("conn_type_id");
            for row in t.rows() {
                match (side("ptnr1", row), side("ptnr2", row)) {
                    (Some(a), Some(b)) => s.connections.push(Connection {
                        a,
                        b,
                        kind: kind_c.map(|c| row[c].to_lowercase()).unwrap_or_default(),
                    }),
                    _ => s.warnings.push("unreadable _struct_conn row ignored".into()),
                }
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid36_numbers() {
        assert_eq!(parse_resseq("9999"), Some(9999));
        assert_eq!(parse_resseq("A000"), Some(10000));
        assert_eq!(parse_resseq("-12"), Some(-12));
        assert_eq!(parse_resseq("x!"), None);
    }

    #[test]
    fn element_columns() {
        assert_eq!(element_column(" N"), Some(Element::N));
        assert_eq!(element_column("ZN"), Element::from_symbol("Zn"));
        assert_eq!(element_column("O1-"), Some(Element::O));
        assert_eq!(element_column("  "), None);
        assert_eq!(element_column("X"), None);
    }

    #[test]
    fn cif_tokens_quotes_and_text() {
        let t = cif_tokens("_a 'it''s x' \"b c\"\n;line1\nline2\n;\nd # comment\n").unwrap();
        let v: Vec<&str> = t.iter().map(|x| x.0.as_ref()).collect();
        assert_eq!(v, vec!["_a", "it''s x", "b c", "line1\nline2", "d"]);
        assert!(t[1].2 && !t[0].2);
        assert!(cif_tokens(";open\nno close\n").is_err());
    }
}
