//! Real data: the PreGlycanAA pretraining set (shared/) and glycowork 1.11.0's species table
//! (fetched by `cargo xtask fetch-glycowork`). Failures are counted by kind and printed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use glycan_aa::Glycan;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_column(path: &PathBuf, column: &str) -> Vec<String> {
    let mut rdr = csv::Reader::from_path(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (see README: data)", path.display()));
    let col = rdr.headers().unwrap().iter().position(|h| h == column).expect("column present");
    rdr.records().map(|r| r.unwrap()[col].trim().to_string()).collect()
}

/// Builds every glycan; returns the success fraction and prints failures by message kind.
fn build_all(name: &str, glycans: &[String]) -> f64 {
    let mut kinds: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut ok = 0;
    for g in glycans {
        match Glycan::from_iupac(g) {
            Ok(m) => {
                let gr = &m.molecule.graph;
                gr.validate().unwrap();
                assert_eq!(gr.atom_components(), 1, "{g} is not one molecule");
                assert!(gr.atoms.iter().all(|a| a.unit < gr.units.len() as u32));
                ok += 1;
            }
            Err(e) => {
                assert!(e.position() <= g.len(), "{g}: error position {} beyond input", e.position());
                let msg = e.to_string();
                let key: String = msg.split(": ").skip(1).collect::<Vec<_>>().join(": ");
                let key =
                    key.split('\'').enumerate().map(|(i, p)| if i % 2 == 1 { "…" } else { p }).collect::<String>();
                let entry = kinds.entry(key).or_insert((0, g.clone()));
                entry.0 += 1;
            }
        }
    }
    let frac = ok as f64 / glycans.len() as f64;
    eprintln!("{name}: {ok}/{} built ({:.2}%)", glycans.len(), 100.0 * frac);
    let mut v: Vec<_> = kinds.into_iter().collect();
    v.sort_by(|a, b| b.1 .0.cmp(&a.1 .0));
    for (k, (n, ex)) in v.iter().take(15) {
        eprintln!("  {n:5}  {k}   e.g. {ex}");
    }
    frac
}

#[test]
fn pretraining_set_builds() {
    let glycans = read_column(&workspace().join("../shared/data/glycans/glycan_pretrain.csv"), "IUPAC Condensed");
    assert_eq!(glycans.len(), 40_781);
    let frac = build_all("glycan_pretrain.csv", &glycans);
    assert!(frac >= 0.995, "only {:.3}% of the pretraining glycans built", 100.0 * frac);
}

#[test]
fn glycowork_species_builds() {
    let path = workspace().join("data/fetched/glycowork/glycowork/glycan_data/v12_df_species.csv");
    assert!(path.exists(), "{} missing: run `cargo xtask fetch-glycowork` first", path.display());
    let mut glycans = read_column(&path, "glycan");
    glycans.sort();
    glycans.dedup();
    assert_eq!(glycans.len(), 23_745);
    let frac = build_all("v12_df_species.csv (unique)", &glycans);
    assert!(frac >= 0.995, "only {:.3}% of the species glycans built", 100.0 * frac);
}
