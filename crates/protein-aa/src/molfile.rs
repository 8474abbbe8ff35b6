//! MDL molfiles and SD files (V2000): small molecules as all-atom graphs with one unit, so
//! ligands from docking or compound libraries enter every encoder as atoms (e.g. ESM-AA's
//! all-atom sequences). Explicit hydrogens are folded into their heavy atom's hydrogen count;
//! formal charges come from the atom block (`M  CHG` property lines are not read).

use aa_graph::{Atom, Bond, BondOrder, Element, HeteroGraph, Unit, UnitKind};

use crate::StructureError;

fn field(line: &str, a: usize, b: usize) -> &str {
    line.get(a..b.min(line.len())).unwrap_or("").trim()
}

/// Parses one molfile record (header, counts line, atom and bond blocks).
fn parse_record(lines: &[&str], first_line: usize) -> Result<HeteroGraph, StructureError> {
    let at = |i: usize, m: String| StructureError::at(first_line + i, m);
    let counts = lines.get(3).ok_or_else(|| at(3, "truncated molfile: no counts line".into()))?;
    if counts.contains("V3000") {
        return Err(at(3, "V3000 molfiles are not supported (write V2000)".into()));
    }
    let n_atoms: usize = field(counts, 0, 3).parse().map_err(|_| at(3, format!("bad atom count in {counts:?}")))?;
    let n_bonds: usize = field(counts, 3, 6).parse().map_err(|_| at(3, format!("bad bond count in {counts:?}")))?;
    if lines.len() < 4 + n_atoms + n_bonds {
        return Err(at(lines.len(), format!("truncated molfile: {n_atoms} atoms and {n_bonds} bonds announced")));
    }
    let name = lines[0].trim();
    let mut graph = HeteroGraph {
        atoms: Vec::new(),
        units: vec![Unit {
            kind: UnitKind::Other,
            type_id: 0,
            name: if name.is_empty() { "LIG".into() } else { name.to_string() },
            anchor: None,
            label: None,
        }],
        bonds: Vec::new(),
        unit_links: Vec::new(),
        positions: Some(Vec::new()),
        spatial: Vec::new(),
    };
    // File atom index → graph atom (None for hydrogens).
    let mut map: Vec<Option<u32>> = Vec::with_capacity(n_atoms);
    let mut hydrogens: Vec<usize> = Vec::new();
    for k in 0..n_atoms {
        let i = 4 + k;
        let l = lines[i];
        let xyz: Option<Vec<f32>> = [(0, 10), (10, 20), (20, 30)]
            .iter()
            .map(|&(a, b)| field(l, a, b).parse::<f32>().ok().filter(|v| crate::read::physical(f64::from(*v))))
            .collect();
        let xyz = xyz.ok_or_else(|| {
            at(
                i,
                format!(
                    "bad coordinates in atom line {l:?} (need finite numbers within ±{:e} Å)",
                    crate::read::MAX_COORDINATE
                ),
            )
        })?;
        let sym = field(l, 31, 34);
        let element = Element::from_symbol(sym).ok_or_else(|| at(i, format!("unknown element {sym:?}")))?;
        let charge = match field(l, 36, 39) {
            "1" => 3,
            "2" => 2,
            "3" => 1,
            "5" => -1,
            "6" => -2,
            "7" => -3,
            _ => 0,
        };
        if element == Element::H {
            map.push(None);
            hydrogens.push(k);
            continue;
        }
        map.push(Some(graph.atoms.len() as u32));
        graph.atoms.push(Atom {
            element,
            formal_charge: charge,
            aromatic: false,
            implicit_h: 0,
            name: format!("{}{}", element.symbol(), k + 1),
            unit: 0,
        });
        if let Some(p) = graph.positions.as_mut() {
            p.push([xyz[0], xyz[1], xyz[2]]);
        }
    }
    for k in 0..n_bonds {
        let i = 4 + n_atoms + k;
        let l = lines[i];
        let idx = |a, b| -> Result<usize, StructureError> {
            let v: usize = field(l, a, b).parse().map_err(|_| at(i, format!("bad bond line {l:?}")))?;
            if v == 0 || v > n_atoms {
                return Err(at(i, format!("bond names atom {v}, but there are {n_atoms}")));
            }
            Ok(v - 1)
        };
        let (a, b) = (idx(0, 3)?, idx(3, 6)?);
        if a == b {
            return Err(at(i, format!("bond from atom {} to itself", a + 1)));
        }
        let order = match field(l, 6, 9) {
            "1" => BondOrder::Single,
            "2" => BondOrder::Double,
            "3" => BondOrder::Triple,
            "4" => BondOrder::Aromatic,
            t => return Err(at(i, format!("bond type {t:?} is not 1, 2, 3 or 4"))),
        };
        match (map[a], map[b]) {
            (Some(x), Some(y)) => {
                if order == BondOrder::Aromatic {
                    graph.atoms[x as usize].aromatic = true;
                    graph.atoms[y as usize].aromatic = true;
                }
                graph.bonds.push(Bond { a: x, b: y, order });
            }
            (Some(x), None) | (None, Some(x)) => graph.atoms[x as usize].implicit_h += 1,
            (None, None) => {}
        }
    }
    if graph.atoms.is_empty() {
        return Err(at(0, "the molecule has no heavy atoms".into()));
    }
    Ok(graph)
}

/// Parses an SD file (records separated by `$$$$`) or a single molfile.
pub fn parse_sdf(text: &str) -> Result<Vec<HeteroGraph>, StructureError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let end = (start..lines.len()).find(|&i| lines[i].trim() == "$$$$").unwrap_or(lines.len());
        let rec = &lines[start..end];
        if rec.iter().any(|l| !l.trim().is_empty()) {
            let m_end = rec.iter().position(|l| l.trim_start().starts_with("M  END"));
            if m_end.is_none() {
                return Err(StructureError::at(start + rec.len(), "truncated molfile: no \"M  END\" line"));
            }
            out.push(parse_record(rec, start + 1)?);
        }
        start = end + 1;
    }
    if out.is_empty() {
        return Err(StructureError::new("no molecules in the file"));
    }
    Ok(out)
}

/// Whether a file name looks like a molfile / SD file.
pub fn is_molfile(path: &std::path::Path) -> bool {
    let n = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    n.ends_with(".sdf") || n.ends_with(".mol") || n.ends_with(".sd")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETHANOL: &str = "ethanol\n  test\n\n  3  2  0  0  0  0  0  0  0  0999 V2000\n    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n    1.5000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n    2.0000    1.4000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n  1  2  1  0\n  2  3  1  0\nM  END\n$$$$\n";

    #[test]
    fn reads_records_and_rejects_truncation() {
        let g = parse_sdf(&format!("{ETHANOL}{ETHANOL}")).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].atoms.len(), 3);
        assert_eq!(g[0].bonds.len(), 2);
        assert_eq!(g[0].units[0].name, "ethanol");
        assert_eq!(g[0].positions.as_ref().unwrap()[2], [2.0, 1.4, 0.0]);
        let cut: String = ETHANOL.lines().take(6).map(|l| format!("{l}\n")).collect();
        let e = parse_sdf(&cut).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        assert!(parse_sdf(&ETHANOL.replace("  2  3  1  0", "  2  9  1  0"))
            .unwrap_err()
            .to_string()
            .contains("atom 9"));
        // Found by the sdf fuzz target: a bond from an atom to itself made an invalid graph.
        let e = parse_sdf(&ETHANOL.replace("  1  2  1  0", "  1  1  1  0")).unwrap_err().to_string();
        assert!(e.contains("to itself"), "{e}");
    }

    #[test]
    fn non_finite_or_absurd_coordinates_are_errors() {
        for bad in ["       nan", "    1e+030", "       inf"] {
            let text = ETHANOL.replacen("    1.5000", bad, 1);
            let e = parse_sdf(&text).expect_err(bad).to_string();
            assert!(e.contains("bad coordinates") && e.contains("finite"), "{e}");
        }
    }
}
