//! Model packages: byte 0 picks a tiny package (GlycanAA on molecules, Vabs-Net) and whether
//! the rest replaces its config.json (even byte) or its model.safetensors (odd byte).
//! `ALLATOM_FUZZ_WRITE_SEEDS=1 fuzz/target/x86_64-unknown-linux-gnu/release/package -runs=0`
//! writes the seeds (`fuzz/seeds/package/`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: allatom_fuzz::write_package_seeds_if_asked(), |data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let packages = allatom_fuzz::tiny_packages();
    let (config, weights) = &packages[(pick as usize / 2) % packages.len()];
    let files = allatom::families::NoFiles;
    let _ = if pick % 2 == 0 {
        allatom::Model::from_bytes(rest, weights, "fuzz", &files)
    } else {
        allatom::Model::from_bytes(config, rest, "fuzz", &files)
    };
});
