//! Builds in the molecule model when its files are here: in a checkout, `models/` links to the
//! workspace's `models/`; a packaged crate carries only the default model (crates.io's 10 MB
//! limit), and then `preglycanaa-molecule-small` is not built in.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(molecule_model)");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/preglycanaa-molecule-small");
    println!("cargo::rerun-if-changed={}", dir.display());
    if dir.join("model.safetensors").is_file() && dir.join("config.json").is_file() {
        println!("cargo::rustc-cfg=molecule_model");
    }
}
