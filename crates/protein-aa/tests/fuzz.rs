//! Bad structure input: truncated, empty, binary, wrong format, absurd coordinates — a clear
//! error or a warning, never a panic.

use std::path::PathBuf;

use aa_graph::SpatialKind;
use proptest::prelude::*;
use protein_aa::{structure_from_bytes, StructureOptions};

fn real(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fetched/structures").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask fetch-data`)", p.display()))
}

fn opts() -> StructureOptions {
    StructureOptions { atom_knn: Some(8), unit_knn: Some(4), ..Default::default() }
}

fn check(bytes: &[u8]) {
    match structure_from_bytes(bytes, &opts()) {
        Ok(s) => s.graph.validate().unwrap(),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn named_bad_inputs() {
    for (bytes, needle) in [
        (&b""[..], "empty"),
        (&b"\x00\x01\x02binary"[..], "binary"),
        (&b"hello world\nthis is not a structure\n"[..], "no ATOM/HETATM"),
        (&b"ATOM      1  N   ALA A   1      11.104  6.134"[..], "too short"),
        (&b"ATOM      1  N   ALA A   1      11.104  abcdef  -2.100  1.00  0.00           N\n"[..], "bad coordinate"),
        (&b"ATOM      1  N   ALA A   1         nan   6.134  -2.100  1.00  0.00           N\n"[..], "bad coordinate"),
        (&b"ATOM      1  N   ALA A   1    1.00e+30   6.134  -2.100  1.00  0.00           N\n"[..], "not a physical"),
        (
            &b"data_x\nloop_\n_atom_site.group_PDB\n_atom_site.type_symbol\n_atom_site.label_atom_id\n_atom_site.label_comp_id\n_atom_site.label_asym_id\n_atom_site.label_seq_id\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n_atom_site.Cartn_z\nATOM C CA ALA A 1 1e30 0 0\n"[..],
            "not a physical",
        ),
        (&b"\x1f\x8b\x08\x00\x00\x00"[..], "gzip"),
        (&b"data_x\nloop_\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n1.0\n"[..], "truncated"),
        (&b"data_x\n;unterminated text\n"[..], "never closed"),
    ] {
        let e = structure_from_bytes(bytes, &opts()).expect_err(&String::from_utf8_lossy(bytes)).to_string();
        assert!(e.contains(needle), "{e}");
    }
}

#[test]
fn building_an_empty_parse_is_an_error() {
    // Found by the pdb/mmcif fuzz targets: `build` on a parse without atoms indexed an empty
    // model list.
    let raw = protein_aa::read::parse_pdb("").expect("the parser itself accepts an empty text");
    let e = protein_aa::build(&raw, &opts()).unwrap_err().to_string();
    assert!(e.contains("no atoms"), "{e}");
}

#[test]
fn absurd_coordinates_warn() {
    let pdb = b"ATOM      1  N   ALA A   1    99999.00-99999.0 12345.67  1.00  0.00           N\nATOM      2  CA  ALA A   1    99999.50-99999.0 12345.67  1.00  0.00           C\nATOM      3  C   ALA A   1       0.000   0.000   0.000  1.00  0.00           C\n";
    let s = structure_from_bytes(pdb, &opts()).unwrap();
    assert!(s.warnings.iter().any(|w| w.contains("9999")), "{:?}", s.warnings);
}

#[test]
fn coincident_atoms_are_capped_with_a_warning() {
    // 6,000 untemplated atoms at one point: bond perception's radius search and the atom k-NN
    // once grew quadratically here (20,000 such atoms wanted > 5 GB); now each row is capped and
    // the structure says so.
    let mut pdb = String::new();
    for i in 0..6000 {
        pdb.push_str(&format!(
            "HETATM{:>5}  C1  UNL A{:>4}       0.000   0.000   0.000  1.00  0.00           C\n",
            i % 100_000,
            i % 10_000
        ));
    }
    let o = StructureOptions { atom_knn: Some(16), ..opts() };
    let s = structure_from_bytes(pdb.as_bytes(), &o).unwrap();
    assert!(
        s.warnings.iter().any(|w| w.contains("denser than any molecule") && w.contains("bond perception")),
        "{:?}",
        s.warnings
    );
    assert!(s.warnings.iter().any(|w| w.contains("atom k-NN")), "{:?}", s.warnings);
    let knn = s.graph.spatial.iter().find(|r| r.kind == SpatialKind::Knn { k: 16 }).unwrap();
    assert_eq!(knn.neighbors.neighbors(0).len(), 16);
    s.graph.validate().unwrap();
}

#[test]
fn truncated_gzip_is_an_error() {
    let gz = real("mdanalysistests/1osm.pdb.gz");
    check(&gz);
    let e = structure_from_bytes(&gz[..gz.len() / 2], &opts()).unwrap_err().to_string();
    assert!(e.contains("gzip"), "{e}");
}

/// A real file cut at `cut`, with the byte at `pos` replaced.
fn damaged(rel: &str, cut: usize, pos: usize, byte: u8) -> Vec<u8> {
    let text = real(rel);
    let mut t = text[..cut.min(text.len())].to_vec();
    if !t.is_empty() {
        let p = pos % t.len();
        t[p] = byte;
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn truncated_and_corrupted_pdb(cut in 0usize..200_000, pos in 0usize..200_000, byte in any::<u8>()) {
        check(&damaged("pdbrust/examples/pdb_files/1UBQ.pdb", cut, pos, byte));
    }

    #[test]
    fn truncated_and_corrupted_cif(cut in 0usize..200_000, pos in 0usize..200_000, byte in any::<u8>()) {
        check(&damaged("pdbrust/examples/pdb_files/1CRN.cif", cut, pos, byte));
    }

    #[test]
    fn random_bytes(v in proptest::collection::vec(any::<u8>(), 0..400)) {
        check(&v);
    }
}

/// Decompression bombs: a gzip of zeros stops at the first 4 KiB (binary data), a large text
/// stops at the cap; both with a clear error, never an out-of-memory.
#[test]
fn decompression_is_capped() {
    use std::io::Write;
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let zeros = gz(&vec![0u8; 64 << 20]);
    assert!(zeros.len() < 1 << 20);
    let e = structure_from_bytes(&zeros, &opts()).unwrap_err();
    assert!(e.to_string().contains("binary data"), "{e}");
    let text = gz("REMARK   1 A LINE OF TEXT\n".repeat(200_000).as_bytes());
    let e = protein_aa::read::decode_capped(&text, 1 << 20).unwrap_err();
    assert!(e.to_string().contains("more than 1048576 bytes"), "{e}");
    assert!(protein_aa::read::decode_capped(&text, 8 << 20).is_ok());
}

/// A file cut mid-line (a failed download) after the coordinates of an ATOM record still reads,
/// with a warning naming the line (a cut before column 54 is an error already).
#[test]
fn a_file_cut_mid_line_warns() {
    let text = real("biopython/7DDO.pdb");
    let s = String::from_utf8_lossy(&text);
    let at = s.match_indices("\nATOM").nth(100).unwrap().0 + 1 + 60;
    let cut = &text[..at];
    let got = structure_from_bytes(cut, &opts()).unwrap();
    assert!(got.warnings.iter().any(|w| w.contains("ends mid-line")), "{:?}", got.warnings);
    let whole = structure_from_bytes(&text, &opts()).unwrap();
    assert!(!whole.warnings.iter().any(|w| w.contains("ends mid-line")));
}
