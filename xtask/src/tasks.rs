//! GlycanML-style tasks rebuilt from glycowork 1.11.0's curated tables.
//!
//! - `glycan_type.csv`: glycosylation type N / O / free from the sugarbase's `glycan_type`
//!   (other values — repeat, lipid, missing — left out; a glycan listed with two types is
//!   dropped). Split stratified by class.
//! - `taxonomy_<level>.csv` for Domain, Kingdom, Phylum, Class, Order, Family, Genus, Species:
//!   GlycanML's formulation — single-label classification per level over the glycans whose
//!   species annotations give exactly one taxon at every level (one lineage), all taxa kept.
//!   The eight files hold the same glycans in the same splits, so the levels can also be
//!   trained jointly (GlycanML-MTL).
//!
//! - `immunogenicity.csv`: glycanbench 1.0.0's binary `label` (1 immunogenic, 0 not) for the
//!   glycans of its `glycobase.csv` source (1,320 rows in the release: the size of GlycanML's
//!   immunogenicity set); a glycan listed with both labels is dropped. Split stratified, by
//!   linkage-free string (glycans equal once `(a1-3)`-style linkages are removed share a split).
//!
//! - `interaction_proteins.csv` and `interaction.csv`: glycowork 1.11.0's
//!   `v12_glycan_binding.csv` (one row per protein: its sequence in `target`, its name in
//!   `protein`, one column per glycan with a z-scored binding value or nothing). Proteins
//!   (`protein,name,sequence,split`; 0-based ids in file order, rows without any value left out)
//!   are split by sequence — identical sequences share a split, as GlycanML splits by protein;
//!   pairs (`protein,glycan,value`) follow their protein.
//!
//! Splits are 80/10/10 and deterministic without a random generator: glycans are ordered by a
//! seeded FNV-1a hash of their string (within each class for stratification) and every tenth
//! position goes to validation, the next to test. A glycan string is in one split only.
//! Rows: `glycan,labels,split` with `;` between labels.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Seed of the split hash.
const SEED: u64 = 20261123;
const LEVELS: [&str; 8] = ["Domain", "Kingdom", "Phylum", "Class", "Order", "Family", "Genus", "Species"];

fn hash(s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ SEED;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `train`/`valid`/`test` by position in hash order (positions 8 and 9 of every ten).
fn assign(mut glycans: Vec<String>, out: &mut BTreeMap<String, &'static str>) {
    glycans.sort_by_key(|g| (hash(g), g.clone()));
    for (i, g) in glycans.into_iter().enumerate() {
        out.insert(
            g,
            ["train", "train", "train", "train", "train", "train", "train", "train", "valid", "test"][i % 10],
        );
    }
}

fn write_task(
    dir: &Path,
    name: &str,
    rows: &BTreeMap<String, Vec<String>>,
    split: &BTreeMap<String, &str>,
) -> Result<serde_json::Value> {
    let mut text = String::from("glycan,labels,split\n");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut classes: BTreeSet<&str> = BTreeSet::new();
    for (g, labels) in rows {
        let s = split[g];
        *counts.entry(s).or_default() += 1;
        classes.extend(labels.iter().map(String::as_str));
        let quoted = format!("\"{}\"", g.replace('"', "\"\""));
        text.push_str(&format!("{quoted},{},{s}\n", labels.join(";")));
    }
    let path = dir.join(format!("{name}.csv"));
    let tmp = dir.join(format!(".{name}.csv.tmp"));
    std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)?;
    Ok(serde_json::json!({
        "rows": rows.len(),
        "classes": classes.len(),
        "splits": counts,
        "sha256": format!("{:x}", Sha256::digest(text.as_bytes())),
    }))
}

pub fn build(glycowork: &Path, glycanbench: &Path, out: &Path) -> Result<()> {
    let data = glycowork.join("glycowork/glycan_data");
    std::fs::create_dir_all(out)?;
    let mut manifest = serde_json::Map::new();

    // Glycosylation type: the sugarbase is pandas "split" JSON in xz; Python's stdlib reads it.
    let script = "import json, lzma, sys\nd = json.load(lzma.open(sys.argv[1]))\ncol = d['columns']\ng, t = col.index('glycan'), col.index('glycan_type')\nfor r in d['data']:\n    a, b = r[g].get('value'), r[t].get('value')\n    if isinstance(a, str) and isinstance(b, str):\n        print(a + '\\t' + b)\n";
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(data.join("v12_sugarbase.json.xz"))
        .output()
        .context("running python3 to read the sugarbase")?;
    if !o.status.success() {
        bail!("reading the sugarbase: {}", String::from_utf8_lossy(&o.stderr));
    }
    let mut types: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(o.stdout)?.lines() {
        if let Some((g, t)) = line.split_once('\t') {
            if ["N", "O", "free"].contains(&t) {
                types.entry(g.to_string()).or_default().insert(t.to_string());
            }
        }
    }
    let rows: BTreeMap<String, Vec<String>> =
        types.into_iter().filter(|(_, t)| t.len() == 1).map(|(g, t)| (g, t.into_iter().collect())).collect();
    let mut split = BTreeMap::new();
    let mut by_class: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (g, l) in &rows {
        by_class.entry(l[0].as_str()).or_default().push(g.clone());
    }
    for (_, gs) in by_class {
        assign(gs, &mut split);
    }
    manifest.insert("glycan_type".into(), write_task(out, "glycan_type", &rows, &split)?);

    // Taxonomy: one row per (glycan, species) in v12_df_species.csv.
    let path = data.join("v12_df_species.csv");
    let mut reader = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers()?.clone();
    let col = |name: &str| {
        header.iter().position(|h| h == name).with_context(|| format!("{}: no column {name}", path.display()))
    };
    let gcol = col("glycan")?;
    let lcols: Vec<usize> = LEVELS.iter().map(|l| col(l)).collect::<Result<_>>()?;
    let mut taxa: Vec<BTreeMap<String, BTreeSet<String>>> = vec![BTreeMap::new(); LEVELS.len()];
    for rec in reader.records() {
        let rec = rec?;
        let g = rec.get(gcol).unwrap_or("").trim();
        if g.is_empty() {
            continue;
        }
        for (k, &c) in lcols.iter().enumerate() {
            let t = rec.get(c).unwrap_or("").trim();
            if !t.is_empty() && t != "undetermined" {
                taxa[k].entry(g.to_string()).or_default().insert(t.to_string());
            }
        }
    }
    // Glycans with one lineage: exactly one determined taxon at every level.
    let lineage: BTreeMap<&String, Vec<&String>> = taxa[LEVELS.len() - 1]
        .keys()
        .filter_map(|g| {
            let per_level: Option<Vec<&String>> = taxa
                .iter()
                .map(|level| level.get(g).filter(|ts| ts.len() == 1).and_then(|ts| ts.iter().next()))
                .collect();
            per_level.map(|l| (g, l))
        })
        .collect();
    let mut split = BTreeMap::new();
    assign(lineage.keys().map(|g| g.to_string()).collect(), &mut split);
    for (k, level) in LEVELS.iter().enumerate() {
        let rows: BTreeMap<String, Vec<String>> =
            lineage.iter().map(|(g, l)| (g.to_string(), vec![l[k].clone()])).collect();
        let name = format!("taxonomy_{}", level.to_lowercase());
        manifest.insert(name.clone(), write_task(out, &name, &rows, &split)?);
    }
    // Immunogenicity: glycanbench's labelled table, rows from the glycobase source.
    let path = glycanbench.join("glycanbench/dataset/merged_glycan_dataset.csv");
    let mut reader = csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers()?.clone();
    let col = |name: &str| {
        header.iter().position(|h| h == name).with_context(|| format!("{}: no column {name}", path.display()))
    };
    let (gcol, lcol, scol) = (col("glycan")?, col("label")?, col("source")?);
    let mut immuno: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rec in reader.records() {
        let rec = rec?;
        let (g, l, src) =
            (rec.get(gcol).unwrap_or("").trim(), rec.get(lcol).unwrap_or("").trim(), rec.get(scol).unwrap_or(""));
        let label = match l {
            "0" | "0.0" => "0",
            "1" | "1.0" => "1",
            _ => continue,
        };
        if !g.is_empty() && src == "glycobase.csv" {
            immuno.entry(g.to_string()).or_default().insert(label.to_string());
        }
    }
    let rows: BTreeMap<String, Vec<String>> =
        immuno.into_iter().filter(|(_, l)| l.len() == 1).map(|(g, l)| (g, l.into_iter().collect())).collect();
    // Glycans equal once their linkages are removed stay in one split (36 of a random split's
    // test glycans would otherwise match a training glycan that way): the linkage-free strings
    // are split, stratified by the label of their first glycan, and each glycan follows its own.
    let core = |g: &str| {
        let mut out = String::with_capacity(g.len());
        let mut rest = g;
        while let Some(i) = rest.find('(') {
            out.push_str(&rest[..i]);
            match rest[i..].find(')') {
                Some(j) if rest[i + 1..i + j].contains('-') => rest = &rest[i + j + 1..],
                _ => {
                    out.push('(');
                    rest = &rest[i + 1..];
                }
            }
        }
        out.push_str(rest);
        out
    };
    let mut core_class: BTreeMap<String, &str> = BTreeMap::new();
    for (g, l) in &rows {
        core_class.entry(core(g)).or_insert(l[0].as_str());
    }
    let mut by_class: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (c, l) in &core_class {
        by_class.entry(l).or_default().push(c.clone());
    }
    let mut core_split = BTreeMap::new();
    for (_, cs) in by_class {
        assign(cs, &mut core_split);
    }
    let split: BTreeMap<String, &str> = rows.keys().map(|g| (g.clone(), core_split[&core(g)])).collect();
    manifest.insert("immunogenicity".into(), write_task(out, "immunogenicity", &rows, &split)?);
    interaction(&data.join("v12_glycan_binding.csv"), out, &mut manifest)?;
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(manifest))?;
    std::fs::write(out.join("MANIFEST.json"), text + "\n")?;
    println!("tasks in {}", out.display());
    Ok(())
}

/// Writes `text` to `<dir>/<name>.csv` through a temporary file; its manifest entry.
fn write_csv(dir: &Path, name: &str, text: &str, extra: serde_json::Value) -> Result<serde_json::Value> {
    let path = dir.join(format!("{name}.csv"));
    let tmp = dir.join(format!(".{name}.csv.tmp"));
    std::fs::write(&tmp, text.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)?;
    let mut entry = extra;
    entry["sha256"] = format!("{:x}", Sha256::digest(text.as_bytes())).into();
    Ok(entry)
}

/// Protein–glycan interaction from the binding table (see the module documentation).
fn interaction(path: &Path, out: &Path, manifest: &mut serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers()?.clone();
    let col = |name: &str| {
        header.iter().position(|h| h == name).with_context(|| format!("{}: no column {name}", path.display()))
    };
    let (scol, ncol) = (col("target")?, col("protein")?);
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut proteins: Vec<(String, String, Vec<(usize, String)>)> = Vec::new();
    for rec in reader.records() {
        let rec = rec?;
        let values: Vec<(usize, String)> = rec
            .iter()
            .enumerate()
            .filter(|(c, v)| *c != scol && *c != ncol && !v.trim().is_empty())
            .map(|(c, v)| (c, v.trim().to_string()))
            .collect();
        let seq = rec.get(scol).unwrap_or("").trim().to_string();
        if values.is_empty() || seq.is_empty() {
            continue;
        }
        for (c, v) in &values {
            if v.parse::<f64>().map_or(true, |x| !x.is_finite()) {
                bail!(
                    "{}: protein {}: value {v:?} for {} is not a number",
                    path.display(),
                    proteins.len(),
                    &header[*c]
                );
            }
        }
        proteins.push((rec.get(ncol).unwrap_or("").trim().to_string(), seq, values));
    }
    let mut split = BTreeMap::new();
    assign(proteins.iter().map(|p| p.1.clone()).collect::<BTreeSet<_>>().into_iter().collect(), &mut split);
    let mut ptext = String::from("protein,name,sequence,split\n");
    let mut pairs = String::from("protein,glycan,value\n");
    let (mut counts, mut pair_counts): (BTreeMap<&str, usize>, BTreeMap<&str, usize>) = Default::default();
    let mut glycans = BTreeSet::new();
    for (i, (name, seq, values)) in proteins.iter().enumerate() {
        let s = split[seq];
        *counts.entry(s).or_default() += 1;
        *pair_counts.entry(s).or_default() += values.len();
        ptext.push_str(&format!("{i},{},{seq},{s}\n", quote(name)));
        for (c, v) in values {
            glycans.insert(*c);
            pairs.push_str(&format!("{i},{},{v}\n", quote(&header[*c])));
        }
    }
    let n_pairs: usize = pair_counts.values().sum();
    manifest.insert(
        "interaction_proteins".into(),
        write_csv(
            out,
            "interaction_proteins",
            &ptext,
            serde_json::json!({ "rows": proteins.len(), "splits": counts }),
        )?,
    );
    manifest.insert(
        "interaction".into(),
        write_csv(
            out,
            "interaction",
            &pairs,
            serde_json::json!({ "rows": n_pairs, "glycans": glycans.len(), "splits": pair_counts }),
        )?,
    );
    Ok(())
}
