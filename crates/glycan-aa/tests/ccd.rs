//! Our monosaccharides against the wwPDB Chemical Component Dictionary: every residue with a
//! CCD component has the same heavy atoms (by element), the same heavy–heavy bonds and the
//! same backbone/ring atom names as the free molecule in the CCD.

use std::collections::BTreeMap;

use glycan_aa::ccd::{component, RESIDUE_COMPONENTS};
use glycan_aa::Glycan;

#[test]
fn residues_match_their_ccd_components() {
    let mut checked = 0;
    for (name, a, b) in RESIDUE_COMPONENTS {
        let ours = Glycan::from_iupac(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let g = &ours.molecule.graph;
        for id in [a, b].into_iter().flatten() {
            let c = component(id).unwrap_or_else(|| panic!("{id} not embedded"));
            let mut ccd_el: BTreeMap<String, usize> = BTreeMap::new();
            for at in c.heavy_atoms() {
                *ccd_el.entry(at.element.clone()).or_default() += 1;
            }
            assert_eq!(g.heavy_composition(), ccd_el, "{name} vs {id} ({})", c.name);
            assert_eq!(g.bonds.len(), c.heavy_bond_count(), "{name} vs {id}: heavy bonds");
            // Backbone carbons and the ring oxygen carry the CCD's names.
            let ccd_names: std::collections::HashSet<&str> = c.heavy_atoms().map(|x| x.name.as_str()).collect();
            for at in &g.atoms {
                let backbone = at.name.len() <= 3
                    && at.name.starts_with(['C', 'O', 'N'])
                    && at.name[1..].bytes().all(|x| x.is_ascii_digit());
                if backbone {
                    assert!(ccd_names.contains(at.name.as_str()), "{name} vs {id}: atom {} not in the CCD", at.name);
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked}");
}

#[test]
fn component_lookup_by_anomer() {
    use aa_graph::Anomer;
    assert_eq!(glycan_aa::ccd::component_for("GlcNAc", Anomer::Beta).unwrap().id, "NAG");
    assert_eq!(glycan_aa::ccd::component_for("GlcNAc", Anomer::Alpha).unwrap().id, "NDG");
    assert_eq!(glycan_aa::ccd::component_for("Kdo", Anomer::Beta).unwrap().id, "KDO");
    assert!(glycan_aa::ccd::component_for("GlcNAc6S", Anomer::Beta).is_none());
}
