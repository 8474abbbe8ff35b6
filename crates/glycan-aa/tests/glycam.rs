//! GLYCAM condensed sequences of real glycans (every 20th of the PreGlycanAA set), written by
//! two tools independent of this workspace — glycowork 1.11.0's `glycan_to_glycam` and
//! crabwurcs 0.3.3 — and kept only where the other tool reads them back into the same glycan
//! (`tests/reference/glycan_glycam.py`, fixture `tests/fixtures/glycam.json`). Each must be read
//! (detected, no `--format`) into the molecule of its IUPAC-condensed form — formula, heavy
//! bonds, units, links — or refused; never into another molecule.

use glycan_aa::Glycan;
use serde_json::Value;

/// The IUPAC form without its open reducing-end link (`GalNAc(a1-` → `GalNAc`): GLYCAM ends
/// in a free reducing end (`-OH`) or nothing.
fn free_end(iupac: &str) -> &str {
    match iupac.rfind('(') {
        Some(k) if iupac.ends_with('-') => &iupac[..k],
        _ => iupac,
    }
}

fn signature(g: &Glycan) -> (String, usize, Vec<u32>, Vec<String>) {
    let m = &g.molecule.graph;
    let mut links: Vec<String> = m.unit_links.iter().map(|l| format!("{} {} {:?}", l.src, l.dst, l.kind)).collect();
    links.sort();
    (m.formula(), m.bonds.len(), m.units.iter().map(|u| u.type_id).collect(), links)
}

#[test]
fn glycam_of_real_glycans_reads_into_the_same_molecule() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/glycam.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for tool in ["glycowork", "crabwurcs"] {
        let (mut total, mut read, mut wrong, mut unread) = (0usize, 0usize, Vec::new(), Vec::new());
        for rec in fx["glycans"].as_array().unwrap() {
            let Some(glycam) = rec[tool].as_str() else { continue };
            let iupac = rec["iupac"].as_str().unwrap();
            let Ok(want) = Glycan::from_iupac(free_end(iupac)) else { continue };
            total += 1;
            match Glycan::parse(glycam) {
                Ok(got) => {
                    read += 1;
                    if signature(&got) != signature(&want) {
                        wrong.push(format!("{iupac} as {glycam} → {}", got.iupac));
                    }
                }
                Err(e) => unread.push(format!("{glycam}: {e}")),
            }
        }
        let rate = read as f64 / total as f64;
        eprintln!(
            "{tool}: {read} of {total} read ({:.1} %), {} wrong; unread e.g. {:?}",
            100.0 * rate,
            wrong.len(),
            &unread[..unread.len().min(4)]
        );
        assert!(total > 500, "{tool}: {total} glycans");
        assert!(wrong.is_empty(), "{tool}: wrong molecules: {:?}", &wrong[..wrong.len().min(5)]);
        assert!(rate >= 0.95, "{tool}: only {:.1} % read", 100.0 * rate);
    }
}
