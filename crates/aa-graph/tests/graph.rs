use aa_graph::*;

fn atom(e: Element, h: u8, name: &str, unit: u32) -> Atom {
    Atom { element: e, formal_charge: 0, aromatic: false, implicit_h: h, name: name.into(), unit }
}

/// Ethylene glycol split into two units, linked.
fn two_unit() -> HeteroGraph {
    HeteroGraph {
        atoms: vec![
            atom(Element::C, 2, "C1", 0),
            atom(Element::O, 1, "O1", 0),
            atom(Element::C, 2, "C2", 1),
            atom(Element::O, 1, "O2", 1),
        ],
        units: vec![
            Unit { kind: UnitKind::Other, type_id: 3, name: "A".into(), anchor: Some(0), label: None },
            Unit { kind: UnitKind::Monosaccharide, type_id: 4, name: "B".into(), anchor: Some(2), label: None },
        ],
        bonds: vec![
            Bond { a: 0, b: 1, order: BondOrder::Single },
            Bond { a: 0, b: 2, order: BondOrder::Single },
            Bond { a: 2, b: 3, order: BondOrder::Single },
        ],
        unit_links: vec![UnitLink { src: 1, dst: 0, kind: UnitLinkKind::Covalent, type_id: 0 }],
        positions: Some(vec![[0.0, 0.0, 0.0], [1.4, 0.0, 0.0], [-1.5, 0.0, 0.0], [-2.9, 0.1, 0.0]]),
        spatial: vec![],
    }
}

#[test]
fn formula_rings_and_csr() {
    let g = two_unit();
    g.validate().unwrap();
    assert_eq!(g.formula(), "C2H6O2");
    assert_eq!(g.ring_count(), 0);
    assert_eq!(g.atom_components(), 1);
    let m = g.unit_members();
    assert_eq!(m.neighbors(0), &[0, 1]);
    assert_eq!(m.neighbors(1), &[2, 3]);
    let b = g.bond_csr();
    assert_eq!(b.neighbors(0), &[1, 2]);
    assert_eq!(g.unit_link_csr().neighbors(0), &[1]);
    let mut ring = g.clone();
    ring.bonds.push(Bond { a: 1, b: 3, order: BondOrder::Single });
    assert_eq!(ring.ring_count(), 1);
}

#[test]
fn hill_order() {
    let mut c = std::collections::BTreeMap::new();
    c.insert("O".to_string(), 4);
    c.insert("S".to_string(), 1);
    c.insert("H".to_string(), 2);
    assert_eq!(hill_formula(&c), "H2O4S");
    c.insert("C".to_string(), 1);
    c.insert("N".to_string(), 2);
    assert_eq!(hill_formula(&c), "CH2N2O4S");
}

#[test]
fn batch_round_trip_and_offsets() {
    let g1 = two_unit();
    let mut g2 = two_unit();
    g2.atoms.truncate(2);
    g2.bonds.truncate(1);
    g2.units.truncate(1);
    g2.unit_links.clear();
    g2.positions.as_mut().unwrap().truncate(2);
    let b = Batch::collate(&[g1.clone(), g2.clone(), g1.clone()]);
    b.graph.validate().unwrap();
    assert_eq!(b.num_graphs(), 3);
    assert_eq!(b.atom_offsets, vec![0, 4, 6, 10]);
    assert_eq!(b.unit_graph, vec![0, 0, 1, 2, 2]);
    assert_eq!(b.graph.bonds[4].a, 6);
    assert_eq!(b.graph.unit_links[1].src, 4);
    assert_eq!(b.graph.units[3].anchor, Some(6));
    assert_eq!(b.unbatch(), vec![g1.clone(), g2.clone(), g1.clone()]);
    let rows: Vec<f32> = (0..20).map(|x| x as f32).collect();
    let parts = b.split_atom_rows(&rows, 2);
    assert_eq!(parts[1], &[8.0, 9.0, 10.0, 11.0]);
    // Positions dropped when one graph lacks them.
    g2.positions = None;
    assert!(Batch::collate(&[g1, g2]).graph.positions.is_none());
}

#[test]
fn json_round_trip_and_validation() {
    let g = two_unit();
    let s = g.to_json();
    assert!(s.contains("\"element\":\"C\""));
    assert_eq!(HeteroGraph::from_json(&s).unwrap(), g);
    let mut bad = g.clone();
    bad.bonds.push(Bond { a: 0, b: 9, order: BondOrder::Single });
    let err = HeteroGraph::from_json(&bad.to_json()).unwrap_err().to_string();
    assert!(err.contains("bond 3"), "{err}");
    assert!(HeteroGraph::from_json("{\"atoms\": 3}").is_err());
}

#[test]
fn spatial_relations_batch_and_unbatch() {
    let mut g = two_unit();
    let pos = g.positions.clone().unwrap();
    g.spatial.push(SpatialRelation {
        level: Level::Atom,
        kind: SpatialKind::Knn { k: 2 },
        neighbors: neighbors::knn(&pos, 2),
    });
    let anchors: Vec<[f32; 3]> = g.anchor_positions().unwrap().into_iter().map(|p| p.unwrap()).collect();
    g.spatial.push(SpatialRelation {
        level: Level::Unit,
        kind: SpatialKind::Radius { cutoff_angstrom: 5.0 },
        neighbors: neighbors::radius(&anchors, 5.0),
    });
    let b = Batch::collate(&[g.clone(), g.clone()]);
    assert_eq!(b.graph.spatial.len(), 2);
    assert_eq!(b.graph.spatial[0].neighbors.neighbors(4), &[5, 6]);
    assert_eq!(b.graph.spatial[1].neighbors.neighbors(2), &[3]);
    assert_eq!(b.unbatch(), vec![g.clone(), g]);
}

#[test]
fn unit_subgraph_keeps_members_bonds_and_links_among_the_units() {
    let g = two_unit();
    // Unit 1 alone: its two atoms, their bond, its anchor and positions; no link, no bond to unit 0.
    let s = g.unit_subgraph(&[1]);
    s.validate().unwrap();
    assert_eq!(s.num_units(), 1);
    assert_eq!(s.units[0].name, "B");
    assert_eq!(s.atoms.iter().map(|a| (a.name.as_str(), a.unit)).collect::<Vec<_>>(), [("C2", 0), ("O2", 0)]);
    assert_eq!(s.bonds, vec![Bond { a: 0, b: 1, order: BondOrder::Single }]);
    assert_eq!(s.units[0].anchor, Some(0));
    assert!(s.unit_links.is_empty());
    assert_eq!(s.positions.as_ref().unwrap(), &vec![[-1.5, 0.0, 0.0], [-2.9, 0.1, 0.0]]);
    // Both units in reverse order: units renumbered, atoms unit by unit, the bond between the
    // units and the link kept with new ids; repeated and unknown ids ignored.
    let r = g.unit_subgraph(&[1, 0, 1, 7]);
    r.validate().unwrap();
    assert_eq!(r.units.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["B", "A"]);
    assert_eq!(r.atoms.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["C2", "O2", "C1", "O1"]);
    assert_eq!(r.bonds.len(), 3);
    assert!(r.bonds.contains(&Bond { a: 2, b: 0, order: BondOrder::Single }));
    assert_eq!(r.unit_links, vec![UnitLink { src: 0, dst: 1, kind: UnitLinkKind::Covalent, type_id: 0 }]);
    assert_eq!((r.units[0].anchor, r.units[1].anchor), (Some(0), Some(2)));
    assert_eq!(r.formula(), g.formula());
}
