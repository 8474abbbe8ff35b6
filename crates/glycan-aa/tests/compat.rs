//! The compatibility featurisation against the official GlycanAA atom table (fixture made by
//! `tests/reference/official_compat_units.py` from the official source with RDKit).

use std::collections::BTreeMap;

use glycan_aa::compat::{featurize, CompatVocab};

struct Row {
    core: String,
    heavy: usize,
    elements: String,
    bonds: [usize; 4],
}

fn fixture() -> Vec<Row> {
    let mut rdr = csv::Reader::from_reader(include_str!("../data/official_compat_units.csv").as_bytes());
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            Row {
                core: r[0].to_string(),
                heavy: r[1].parse().unwrap(),
                elements: r[2].to_string(),
                bonds: [r[3].parse().unwrap(), r[4].parse().unwrap(), r[5].parse().unwrap(), r[6].parse().unwrap()],
            }
        })
        .collect()
}

/// A vocabulary with the official 127 unit names (in the fixture's order, not the official
/// id order, which lives in GlycanML's pickle) and the links of the pretraining set.
fn test_vocab() -> CompatVocab {
    let units = fixture().into_iter().map(|r| r.core).collect();
    let links = ["a1-2", "a1-3", "a1-4", "a1-6", "a2-3", "a2-6", "a2-8", "b1-2", "b1-3", "b1-4", "b1-6"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    CompatVocab { units, links }
}

#[test]
fn every_official_residue_has_the_official_atoms_and_bonds() {
    let rows = fixture();
    assert_eq!(rows.len(), 127);
    let vocab = test_vocab();
    let nl = vocab.links.len() as u32;
    for row in &rows {
        let g = featurize(&row.core, &vocab).unwrap_or_else(|e| panic!("{}: {e}", row.core));
        assert_eq!(g.num_units, 1);
        let atoms = &g.node_type[1..];
        assert_eq!(atoms.len(), row.heavy, "{}: heavy atoms", row.core);
        let mut el: BTreeMap<String, usize> = BTreeMap::new();
        for &t in atoms {
            let z = t as usize - vocab.units.len();
            *el.entry(aa_graph::Element::from_atomic_number(z as u8).unwrap().symbol().to_string()).or_default() += 1;
        }
        let el: Vec<String> = el.iter().map(|(k, v)| format!("{k}{v}")).collect();
        assert_eq!(el.join(" "), row.elements, "{}: elements", row.core);
        let mut bonds = [0usize; 4];
        for e in &g.edges {
            if e[2] >= nl && e[2] < nl + 4 {
                bonds[(e[2] - nl) as usize] += 1;
            }
        }
        let halved = bonds.map(|b| b / 2);
        assert_eq!(halved, row.bonds, "{}: bonds by type", row.core);
        let membership = g.edges.iter().filter(|e| e[2] == nl + 4).count();
        assert_eq!(membership, 2 * row.heavy, "{}", row.core);
    }
}

#[test]
fn official_layout_on_a_real_glycan() {
    let vocab = test_vocab();
    let g = featurize("Neu5Ac9Ac(a2-3)Gal(b1-4)GlcNAc6S(b1-", &vocab).unwrap();
    let id = |u: &str| vocab.units.iter().position(|x| x == u).unwrap() as u32;
    // Modifications are dropped to the core; units first, in string order.
    assert_eq!(&g.node_type[..3], &[id("Neu5Ac"), id("Gal"), id("GlcNAc")]);
    // Free monosaccharides: Neu5Ac 21, Gal 12, GlcNAc 15 heavy atoms.
    assert_eq!(g.cumsum, vec![3, 24, 36, 51]);
    assert_eq!(g.node_type.len(), 51);
    assert!(g.node_type[3..].iter().all(|&t| t == 127 + 6 || t == 127 + 7 || t == 127 + 8));
    let a23 = vocab.links.iter().position(|l| l == "a2-3").unwrap() as u32;
    let b14 = vocab.links.iter().position(|l| l == "b1-4").unwrap() as u32;
    assert_eq!(&g.edges[..4], &[[0, 1, a23], [1, 0, a23], [1, 2, b14], [2, 1, b14]]);
    assert_eq!(vocab.num_relations(), vocab.links.len() + 5);
    // No edge between atoms of different residues.
    for e in &g.edges {
        if e[0] >= 3 && e[1] >= 3 {
            let res = |a: u32| g.cumsum.windows(2).position(|w| a >= w[0] && a < w[1]).unwrap();
            assert_eq!(res(e[0]), res(e[1]));
        }
    }
    let h = g.to_hetero(&vocab);
    h.validate().unwrap();
    assert_eq!(h.num_atoms(), 48);
    assert_eq!(h.unit_links.len(), 2);
    assert_eq!(h.unit_links[0].type_id, a23);
}

#[test]
fn floating_parts_and_unknown_links_get_no_unit_edge() {
    let vocab = test_vocab();
    let g = featurize("{Fuc(a1-?)}Gal(b1-4)GlcNAc", &vocab).unwrap();
    let unit_edges = g.edges.iter().filter(|e| e[0] < 3 && e[1] < 3).count();
    assert_eq!(unit_edges, 2, "only Gal–GlcNAc");
    let g = featurize("Gal(b1-5)GlcNAc", &vocab).unwrap();
    assert_eq!(g.edges.iter().filter(|e| e[0] < 2 && e[1] < 2).count(), 0);
    // An unknown name is the core "Monosaccharide", a vocabulary word without atoms.
    let g = featurize("Zzz(b1-4)Glc", &vocab).unwrap();
    assert_eq!(g.cumsum, vec![2, 2, 14]);
    // A core outside the vocabulary is an error (the official code drops such glycans).
    let e = featurize("IdoN(b1-4)Glc", &vocab).unwrap_err().to_string();
    assert!(e.contains("not in the GlycanAA vocabulary"), "{e}");
}

#[test]
fn vocab_from_the_pickle_dump() {
    let v = CompatVocab::from_json(r#"["Glc", "b1-4", "Gal", "a2-3", "1-4"]"#).unwrap();
    assert_eq!(v.units, vec!["Glc", "Gal"]);
    assert_eq!(v.links, vec!["b1-4", "a2-3", "1-4"]);
    let v2 = CompatVocab::from_json(&serde_json::to_string(&v).unwrap()).unwrap();
    assert_eq!(v, v2);
    assert!(CompatVocab::from_json("{\"units\": 3}").is_err());
}

/// The official featurisation survives the round trip through the shared graph exactly — node
/// types, the edge list in the official order, the residue atom ranges — for every glycan of
/// the PreGlycanAA set that featurises: what the encoder interface hands to the `glycanaa`
/// family is what official weights were trained on.
#[test]
fn official_graphs_round_trip_through_the_shared_graph() {
    use glycan_aa::compat::CompatGraph;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/glycans/glycan_pretrain.csv");
    let mut rdr = csv::Reader::from_path(path).expect("../shared/data/glycans/glycan_pretrain.csv");
    let glycans: Vec<String> = rdr.records().map(|r| r.unwrap()[0].trim().to_string()).collect();
    let vocab = CompatVocab::with_frequent_links(CompatVocab::official_unit_names(), &glycans, 84);
    let mut n = 0;
    for g in glycans.iter().step_by(7) {
        let Ok(official) = featurize(g, &vocab) else { continue };
        let back = CompatGraph::from_hetero(&official.to_hetero(&vocab), &vocab).unwrap();
        assert_eq!(back, official, "{g}");
        n += 1;
    }
    assert!(n > 5000, "{n} glycans");
    // A residue graph is not an official glycan graph.
    let mut protein = glycan_aa::Glycan::from_iupac("Gal").unwrap().molecule.graph;
    protein.units[0].kind = aa_graph::UnitKind::Residue;
    assert!(CompatGraph::from_hetero(&protein, &vocab).unwrap_err().contains("not a monosaccharide"));
}
