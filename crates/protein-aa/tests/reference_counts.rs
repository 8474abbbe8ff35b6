//! Every fetched real structure file (mdanalysistests 2.11.0, biopython 1.88 Tests/PDB,
//! pdbrust 0.7.1) reads without panic, and chain/residue/atom counts equal gemmi's (fixture
//! made by `tests/reference/structure_counts.py`).

use std::path::PathBuf;

use protein_aa::{read_structure_file, StructureOptions};

/// Files where gemmi and we knowingly differ, each checked by hand: our expected
/// (chains, residues, atoms) or `None` for a clean error, and why.
const KNOWN: &[(&str, Option<(usize, usize, usize)>, &str)] = &[
    ("biopython/a_structure.pdb", Some((1, 0, 7)), "deliberately odd test file: gemmi reads the element column's 'A' segment letters; we keep N CA CB CG OE C O of PCA"),
    ("mdanalysistests/adk_closed.pdb", Some((1, 211, 1656)), "left-justified names, no element column: gemmi turns HG/HE/HD hydrogens into heavy elements; CCD templates give H"),
    ("mdanalysistests/adk_open.pdb", Some((1, 211, 1656)), "as adk_closed"),
    ("mdanalysistests/adk_open_10res.pdb", Some((1, 10, 71)), "as adk_closed"),
    ("mdanalysistests/adk_oplsaa.pdb", Some((1, 214, 1660)), "gemmi drops the four NA+ ions; we keep them as Na"),
    ("mdanalysistests/analysis/1k5i_c36.pdb.gz", Some((1, 0, 509)), "CHARMM 4-letter residue names: TIP3 waters (gemmi reads 'TIP') are dropped"),
    ("mdanalysistests/5digitResid.pdb", None, "only TIP3 waters (4-letter name) and hydrogens"),
    ("mdanalysistests/cryst_then_model.pdb", None, "only TIP3 waters and hydrogens"),
    ("mdanalysistests/model_then_cryst.pdb", None, "only TIP3 waters and hydrogens"),
    ("mdanalysistests/xl_serial.pdb", None, "only TIP3 waters and hydrogens"),
    ("mdanalysistests/sameresid_diffresname.pdb", Some((1, 1, 2)), "4-letter POPC: chain S, not gemmi's chain C"),
    ("mdanalysistests/gromos11/gromos11_traj_solv.pdb.gz", Some((4, 4, 959)), "4-letter LYSH (not a standard residue for us); SOL atoms named OW/HW are not water names gemmi drops either way"),
    ("mdanalysistests/gromos11/gromos11_traj_vac.pdb.gz", Some((3, 4, 51)), "4-letter LYSH read by gemmi as LYS in chain H"),
    ("mdanalysistests/RANDOM_WALK_TOPO.pdb", None, "every element is X: no chemistry to build"),
    ("mdanalysistests/mmcif/1YJP_invalid.cif.gz", Some((1, 7, 58)), "one atom has element X and is skipped with a warning"),
    ("mdanalysistests/mmcif/5PTI.cif.gz", Some((1, 58, 459)), "UNX (element X) is skipped with a warning"),
    ("mdanalysistests/incomplete.pdb", Some((1, 3, 3)), "CA-only lines without occupancy columns: gemmi refuses, we read them"),
    ("mdanalysistests/varying_occ_tmp.pdb", Some((1, 2, 2)), "gemmi refuses the short MODEL line; we read it"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/structures")
}

#[test]
fn counts_equal_gemmi() {
    let root = root();
    assert!(root.exists(), "{} missing: run `cargo xtask fetch-data` first", root.display());
    let text = include_str!("fixtures/gemmi_counts.csv");
    let body: String = text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    let mut rdr = csv::Reader::from_reader(body.as_bytes());
    let opts = StructureOptions { atom_knn: None, unit_knn: None, ..Default::default() };
    let (mut compared, mut both_fail) = (0, 0);
    let mut diffs = Vec::new();
    for row in rdr.records() {
        let row = row.unwrap();
        let path = root.join(&row[0]);
        let ours = read_structure_file(&path, &opts);
        if let Some((_, want, why)) = KNOWN.iter().find(|k| k.0 == &row[0]) {
            let got = ours.as_ref().ok().map(|s| (s.chains, s.residues, s.graph.num_atoms()));
            if got != *want {
                diffs.push(format!("{} (known: {why}): expected {want:?}, ours {got:?}", &row[0]));
            }
            continue;
        }
        if !row[4].is_empty() {
            // gemmi could not read it (no atoms, tar archive, malformed): we must fail cleanly.
            match ours {
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    both_fail += 1;
                }
                Ok(s) => diffs.push(format!("{}: gemmi fails, we read {} atoms", &row[0], s.graph.num_atoms())),
            }
            continue;
        }
        let want: (usize, usize, usize) = (row[1].parse().unwrap(), row[2].parse().unwrap(), row[3].parse().unwrap());
        match ours {
            Ok(s) => {
                let got = (s.chains, s.residues, s.graph.num_atoms());
                if got != want {
                    diffs.push(format!("{}: gemmi {want:?}, ours {got:?}", &row[0]));
                }
                s.graph.validate().unwrap();
                compared += 1;
            }
            Err(e) => diffs.push(format!("{}: gemmi {want:?}, ours error {e}", &row[0])),
        }
    }
    eprintln!("{compared} structures compared, {both_fail} unreadable by both");
    assert!(diffs.is_empty(), "differences from gemmi:\n{}", diffs.join("\n"));
    assert!(compared > 140, "{compared}");
}
