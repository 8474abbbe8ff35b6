//! `allatom graph` and `allatom embed` read WURCS and GlycoCT as they read IUPAC-condensed:
//! the same molecule, the same embedding bytes with the built-in model, and positioned errors.

use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const IUPAC: &str = "Neu5Ac(a2-3)Gal(b1-4)GlcNAc6S";
const WURCS: &str =
    "WURCS=2.0/3,3,2/[u2122h_2*NCC/3=O_6*OSO/3=O/3=O][a2112h-1b_1-5][Aad21122h-2a_2-6_5*NCC/3=O]/1-2-3/a4-b1_b3-c2";
const GLYCOCT: &str = "RES 1b:x-dglc-HEX-1:5 2s:n-acetyl 3s:sulfate 4b:b-dgal-HEX-1:5 5b:a-dgro-dgal-NON-2:6|1:a|2:keto|3:d 6s:n-acetyl LIN 1:1d(2+1)2n 2:1o(6+1)3n 3:1o(4+1)4d 4:4o(3+2)5d 5:5d(5+1)6n";

#[test]
fn every_notation_embeds_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for (k, g) in [IUPAC, WURCS, GLYCOCT].iter().enumerate() {
        let out = dir.path().join(format!("e{k}.npy"));
        let o = allatom().args(["embed", "--glycan", g, "--out"]).arg(&out).output().unwrap();
        assert!(o.status.success(), "{g}: {}", String::from_utf8_lossy(&o.stderr));
        bytes.push(std::fs::read(&out).unwrap());
        let meta = std::fs::read_to_string(out.with_extension("jsonl")).unwrap();
        let line: serde_json::Value = serde_json::from_str(meta.lines().next().unwrap()).unwrap();
        assert_eq!(line["input"], *g);
        if k > 0 {
            assert_eq!(line["iupac"], "Neu5Ac(a2-3)Gal(b1-4)GlcNAc6S", "{line}");
        }
    }
    assert_eq!(bytes[0], bytes[1], "WURCS embeds differently from IUPAC");
    assert_eq!(bytes[0], bytes[2], "GlycoCT embeds differently from IUPAC");
}

#[test]
fn graph_reads_a_mixed_file_and_honours_format() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("g.txt");
    std::fs::write(&list, format!("{IUPAC}\n{WURCS}\n{GLYCOCT}\n")).unwrap();
    let jsonl = dir.path().join("g.jsonl");
    let o = allatom().args(["graph", "--glycans"]).arg(&list).arg("--jsonl").arg(&jsonl).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let notations: Vec<&str> = recs.iter().map(|r| r["notation"].as_str().unwrap()).collect();
    assert_eq!(notations, ["iupac", "wurcs", "glycoct"]);
    for r in &recs {
        assert_eq!(r["formula"], recs[0]["formula"], "{r}");
        assert_eq!(r["bonds"], recs[0]["bonds"], "{r}");
    }
    // Forced IUPAC: the WURCS string is not IUPAC-condensed, a positioned error and status 1.
    let o = allatom().args(["graph", "--format", "iupac", "--glycan", WURCS]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at character"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = allatom().args(["graph", "--format", "smiles", "--glycan", IUPAC]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "an unknown --format is a usage error");
    // A malformed WURCS string: the position of the unreadable substituent.
    let bad = WURCS.replace("*OSO/3=O/3=O", "*OXO");
    let o = allatom().args(["graph", "--glycan", &bad]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("at character 38: unknown element 'X'"), "{err}");
}

/// Loosely written IUPAC (IUPAC-extended, glycan-array short forms with a spacer, Greek and
/// typographic artefacts) embeds to the condensed string's bytes; `graph` reports the
/// condensed form read and the spacer.
#[test]
fn loose_forms_embed_like_their_condensed_string() {
    let dir = tempfile::tempdir().unwrap();
    let forms = [
        "Neu5Ac(a2-3)Gal(b1-4)GlcNAc6S",
        "α-Neu5Ac-(2→3)-β-D-Galp-(1→4)-GlcNAc6S",
        "Neu5Aca2-3Galb1-4GlcNAc6S",
        "“Neu5Ac(α2‐3)Gal(β1‐4)GlcNAc6S”",
        "NeuAc-α-2,3-Gal-β-1,4-GlcNAc6S",
    ];
    let mut bytes = Vec::new();
    for (k, g) in forms.iter().enumerate() {
        let out = dir.path().join(format!("e{k}.npy"));
        let o = allatom().args(["embed", "--glycan", g, "--out"]).arg(&out).output().unwrap();
        assert!(o.status.success(), "{g}: {}", String::from_utf8_lossy(&o.stderr));
        bytes.push(std::fs::read(&out).unwrap());
    }
    assert!(bytes.iter().all(|b| *b == bytes[0]), "a loose form embeds differently");
    // The embedding's metadata says what a loose form was read as, and its spacer.
    let out = dir.path().join("sp.npy");
    let o = allatom().args(["embed", "--glycan", "Galb1-4GlcNAcb-Sp8", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta = std::fs::read_to_string(out.with_extension("jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(meta.lines().next().unwrap()).unwrap();
    assert_eq!(line["iupac"], "Gal(b1-4)GlcNAc(b1-", "{line}");
    assert_eq!(line["aglycone"], "Sp8", "{line}");
    let meta0 = std::fs::read_to_string(dir.path().join("e0.jsonl")).unwrap();
    assert!(!meta0.contains("\"iupac\""), "a condensed input needs no iupac field: {meta0}");
    let o = allatom().args(["graph", "--json", "--glycan", "Galb1-4GlcNAcb-Sp8"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec["iupac"], "Gal(b1-4)GlcNAc(b1-", "{rec}");
    assert_eq!(rec["aglycone"], "Sp8", "{rec}");
    let o = allatom().args(["graph", "--glycan", "Galb1-4GlcNAcb-Sp8"]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("iupac    Gal(b1-4)GlcNAc(b1-") && text.contains("aglycone Sp8"), "{text}");
    // What no form fits stays a positioned error.
    let o = allatom().args(["graph", "--glycan", "Galb9-4GlcNAc("]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at character"), "{}", String::from_utf8_lossy(&o.stderr));
}
