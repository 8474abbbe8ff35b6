//! Every glycan notation gives the molecule its IUPAC-condensed form gives, on real glycans
//! converted by independent tools (`tests/reference/glycan_notations.py`: crabwurcs 0.3.3 for
//! WURCS, glycowork 1.11.0 for GlycoCT, each checked by reading it back with glycowork).

use glycan_aa::notation::Notation;
use glycan_aa::Glycan;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// An order-free signature of a molecule: formula, unit types, link count, and the sorted
/// Weisfeiler–Lehman labels of the atom graph (element, hydrogens, charge, unit type; bond
/// orders).
fn signature(g: &Glycan) -> (String, Vec<u32>, usize, usize, Vec<u64>) {
    let m = &g.molecule.graph;
    let n = m.atoms.len();
    let mut nb: Vec<Vec<(usize, u8)>> = vec![Vec::new(); n];
    for b in &m.bonds {
        nb[b.a as usize].push((b.b as usize, b.order as u8));
        nb[b.b as usize].push((b.a as usize, b.order as u8));
    }
    let mut label: Vec<u64> = m
        .atoms
        .iter()
        .map(|a| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (a.element.atomic_number(), a.implicit_h, a.formal_charge, m.units[a.unit as usize].type_id).hash(&mut h);
            h.finish()
        })
        .collect();
    for _ in 0..6 {
        label = (0..n)
            .map(|i| {
                let mut v: Vec<(u64, u8)> = nb[i].iter().map(|&(j, o)| (label[j], o)).collect();
                v.sort_unstable();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (label[i], v).hash(&mut h);
                h.finish()
            })
            .collect();
    }
    label.sort_unstable();
    let mut types: Vec<u32> = m.units.iter().map(|u| u.type_id).collect();
    types.sort_unstable();
    (m.formula(), types, m.unit_links.len(), m.bonds.len(), label)
}

#[test]
fn wurcs_and_glycoct_of_real_glycans_build_the_iupac_molecule() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/notations.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for rec in v["records"].as_array().unwrap() {
        let iupac = rec["iupac"].as_str().unwrap();
        let want = signature(&Glycan::from_iupac(iupac).unwrap());
        for (key, notation) in [("wurcs", Notation::Wurcs), ("glycoct", Notation::GlycoCt)] {
            let Some(s) = rec[key].as_str() else { continue };
            assert_eq!(Notation::detect(s), notation, "{s}");
            match Glycan::parse(s) {
                Ok(g) if signature(&g) == want => *checked.entry(key).or_default() += 1,
                Ok(g) => failures.push(format!("{key}: {iupac}\n  read as {}\n  from {s}", g.iupac)),
                Err(e) => failures.push(format!("{key}: {iupac}\n  error {e}\n  from {s}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the real glycans differ:\n{}",
        failures.len(),
        failures[..failures.len().min(15)].join("\n")
    );
    let stats = &v["stats"];
    assert_eq!(checked.get("wurcs").copied(), stats["wurcs_kept"].as_u64().map(|x| x as usize));
    assert_eq!(checked.get("glycoct").copied(), stats["glycoct_kept"].as_u64().map(|x| x as usize));
    assert!(checked["wurcs"] > 1000 && checked["glycoct"] > 500, "{checked:?}");
}
