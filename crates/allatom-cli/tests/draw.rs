//! `allatom draw`: a real N-glycan in SNFG symbols as SVG (it parses, one symbol per residue,
//! the SNFG colours) and PNG (it decodes, the picture is not blank), from IUPAC and WURCS; bad
//! input fails with a status and no file.

use std::process::Command;

fn allatom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allatom"))
}

const GLYCAN: &str = "Neu5Ac(a2-6)Gal(b1-4)GlcNAc(b1-2)Man(a1-3)[Gal(b1-4)GlcNAc(b1-2)Man(a1-6)]Man(b1-4)GlcNAc(b1-4)[Fuc(a1-6)]GlcNAc(b1-";

#[test]
fn svg_and_png_of_an_n_glycan() {
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("g.svg");
    let o = allatom().args(["draw", "--glycan", GLYCAN, "--out"]).arg(&svg_path).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert_eq!(svg.matches("class=\"residue\"").count(), 11);
    for (colour, n) in [("#0072BC", 4), ("#00A651", 3), ("#FFD400", 2), ("#A54399", 1), ("#ED1C24", 1)] {
        assert_eq!(svg.matches(colour).count(), n, "{colour}");
    }
    // It parses as SVG (the same renderer the PNG uses).
    assert!(aa_plot::png_of_svg(&svg).is_ok());
    let png_path = dir.path().join("g.png");
    let o = allatom().args(["draw", "--glycan", GLYCAN, "--out"]).arg(&png_path).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(info.width > 300 && info.height > 100, "{}×{}", info.width, info.height);
    let bytes = &buf[..info.buffer_size()];
    assert!(bytes.chunks(4).any(|p| p[0] < 50 && p[1] < 150 && p[2] > 150), "blue GlcNAc pixels");
    // WURCS draws the same picture as its IUPAC form.
    let wurcs = "WURCS=2.0/2,2,1/[a2122h-1b_1-5_2*NCC/3=O][a2112h-1b_1-5]/1-2/a4-b1";
    let w = dir.path().join("w.svg");
    let o = allatom().args(["draw", "--glycan", wurcs, "--out"]).arg(&w).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let i = dir.path().join("i.svg");
    assert!(allatom().args(["draw", "--glycan", "Gal(b1-4)GlcNAc(b1-", "--out"]).arg(&i).status().unwrap().success());
    assert_eq!(std::fs::read(&w).unwrap(), std::fs::read(&i).unwrap());
}

#[test]
fn bad_input_and_formats_fail_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.svg");
    let o = allatom().args(["draw", "--glycan", "Gal(b1-4", "--out"]).arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at character"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.exists());
    let o = allatom().args(["draw", "--glycan", "Gal", "--out"]).arg(dir.path().join("x.gif")).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(".svg or .png"));
}
